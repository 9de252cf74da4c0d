#include "heed/autograd/gradient_buffer.h"

namespace heed::autograd {

GradientBuffer::GradientBuffer(std::vector<Variable> vars) : vars_(std::move(vars)) {
  if (vars_.empty()) return;
  const Device device = vars_.front().value().device();
  int64_t total = 0;
  for (const Variable& v : vars_) {
    HEED_CHECK(v.value().device() == device, "a gradient buffer on {} for a variable on {}", device.str(),
               v.value().device().str());
    offsets_.push_back(total);
    total += v.value().numel();
  }
  // Zeroed once, so that no slice ever holds uninitialised memory that a reader could take for a gradient.
  flat_ = Tensor::zeros({total}, DType::F32, device);
  for (size_t i = 0; i < vars_.size(); ++i)
    vars_[i].set_grad_home(flat_.narrow(0, offsets_[i], vars_[i].value().numel()).view(vars_[i].shape()));
}

bool GradientBuffer::holds(const std::vector<Variable>& vars) const {
  if (vars.size() != vars_.size()) return false;
  for (size_t i = 0; i < vars.size(); ++i)
    if (!vars[i].same(vars_[i]) || vars[i].value().device() != flat_.device()) return false;
  return true;
}

void GradientBuffer::release() {
  for (const Variable& v : vars_) v.set_grad_home(Tensor());
  *this = GradientBuffer();
}

}  // namespace heed::autograd

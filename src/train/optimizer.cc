#include "heed/train/optimizer.h"

namespace heed::train {

AdamOptimizer::AdamOptimizer(const nn::ParameterStore& params, ops::AdamHyper hyper) : hyper_(hyper) {
  for (const auto& [name, p] : params.all()) {
    if (!p.requires_grad()) continue;
    const Device device = p.value().device();
    slots_.push_back(
        {name, p, Tensor::zeros(p.shape(), DType::F32, device), Tensor::zeros(p.shape(), DType::F32, device)});
  }
}

void AdamOptimizer::step(float grad_scale) {
  ++step_;
  std::vector<ops::AdamSlot> batch;
  batch.reserve(slots_.size());
  for (const Slot& s : slots_)
    if (s.param.grad().defined()) batch.push_back({s.param.value(), s.param.grad(), s.m, s.v});
  ops::adam_update(batch, hyper_, step_, grad_scale);
}

io::TensorMap AdamOptimizer::state() const {
  io::TensorMap out;
  for (const Slot& s : slots_) {
    out["exp_avg." + s.name] = s.m;
    out["exp_avg_sq." + s.name] = s.v;
  }
  return out;
}

void AdamOptimizer::load_state(const io::TensorMap& state, int64_t steps, const std::string& source) {
  HEED_CHECK(state.size() == 2 * slots_.size(), "{}: holds {} optimizer moments, expected {} (2 per trainable "
             "parameter); was it written with other frozen parameters?", source, state.size(), 2 * slots_.size());
  for (Slot& s : slots_) {
    for (auto [prefix, target] : {std::pair{"exp_avg.", &s.m}, {"exp_avg_sq.", &s.v}}) {
      auto it = state.find(prefix + s.name);
      HEED_CHECK(it != state.end(), "{}: no optimizer moment {}{}", source, prefix, s.name);
      HEED_CHECK(it->second.shape() == s.param.shape(), "{}: optimizer moment {}{} has shape {}, expected {}", source,
                 prefix, s.name, shape_str(it->second.shape()), shape_str(s.param.shape()));
      target->copy_from(it->second);
    }
  }
  step_ = steps;
}

}  // namespace heed::train

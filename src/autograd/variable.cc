#include "heed/autograd/variable.h"

#include <vector>

#include "heed/ops/elementwise.h"

namespace heed::autograd {

namespace {

struct Node {
  Variable output;
  BackwardFn backward;
};

thread_local std::vector<Node> tape;
thread_local bool grad_mode = true;

}  // namespace

Variable::Variable(Tensor value, bool requires_grad) : impl_(std::make_shared<Impl>()) {
  impl_->value = std::move(value);
  impl_->requires_grad = requires_grad;
}

void Variable::set_value(Tensor value) const {
  HEED_CHECK(value.shape() == impl_->value.shape(), "set_value: shape {} replaces {}", shape_str(value.shape()),
             shape_str(impl_->value.shape()));
  impl_->value = std::move(value);
}

void Variable::accumulate_grad(const Tensor& g) const {
  HEED_CHECK(g.shape() == shape(), "gradient of shape {} for a variable of shape {}", shape_str(g.shape()),
             shape_str(shape()));
  ++impl_->grad_version;
  if (!impl_->grad.defined()) {
    impl_->grad = g;
    impl_->grad_owned = false;
    return;
  }
  if (!impl_->grad_owned) {  // the sum into a buffer of our own: one pass, where a copy and an add take two
    impl_->grad = ops::add(impl_->grad, g);
    impl_->grad_owned = true;
    return;
  }
  ops::axpy_(impl_->grad, g);
}

Tensor& Variable::grad_for_gemm(float* beta) const {
  ++impl_->grad_version;
  if (!impl_->grad.defined()) {
    impl_->grad = Tensor::empty(shape(), DType::F32, impl_->value.device());
    *beta = 0.0f;
  } else {
    if (!impl_->grad_owned) impl_->grad = impl_->grad.clone();
    *beta = 1.0f;
  }
  impl_->grad_owned = true;
  return impl_->grad;
}

Tensor& Variable::grad_for_sum(Tensor* prior) const {
  ++impl_->grad_version;
  *prior = impl_->grad;
  if (!prior->defined() || !impl_->grad_owned)
    impl_->grad = Tensor::empty(shape(), prior->defined() ? prior->dtype() : impl_->value.dtype(),
                                impl_->value.device());
  impl_->grad_owned = true;
  return impl_->grad;
}

bool grad_enabled() { return grad_mode; }

NoGradGuard::NoGradGuard() : previous_(grad_mode) { grad_mode = false; }
NoGradGuard::~NoGradGuard() { grad_mode = previous_; }

bool needs_grad(std::initializer_list<const Variable*> inputs) {
  if (!grad_mode) return false;
  for (const Variable* v : inputs)
    if (v && v->defined() && v->requires_grad()) return true;
  return false;
}

void record(Variable output, BackwardFn backward) {
  output.set_requires_grad(true);
  tape.push_back({output, std::move(backward)});
}

void backward(Variable loss, float seed, const std::function<void(size_t)>& after_node) {
  HEED_CHECK(loss.value().numel() == 1, "backward() needs a scalar, got shape {}", shape_str(loss.shape()));
  HEED_CHECK(loss.requires_grad(), "backward() from a value that does not depend on any parameter");
  loss.accumulate_grad(Tensor::full(loss.shape(), seed, loss.value().device()));
  size_t done = 0;
  for (auto it = tape.rbegin(); it != tape.rend(); ++it) {
    Variable& out = it->output;
    if (out.grad().defined()) {  // else nothing downstream of this node reached the loss
      it->backward(out.grad());
      out.zero_grad();  // intermediate: its gradient has been propagated
    }
    it->backward = nullptr;  // releases the tensors the closure saved
    if (after_node) after_node(++done);
  }
  tape.clear();
}

void clear_tape() { tape.clear(); }

size_t tape_size() { return tape.size(); }

}  // namespace heed::autograd

#include "heed/autograd/variable.h"

#include <vector>

#include "heed/ops/adam.h"
#include "heed/ops/elementwise.h"

namespace heed::autograd {

namespace {

struct Node {
  Variable output;
  BackwardFn backward;
};

thread_local std::vector<Node> tape;
thread_local bool grad_mode = true;
// Variables with a gradient home whose first contribution was stored without a copy (accumulate_grad):
// backward() settles them as it ends.
thread_local std::vector<Variable> unsettled;

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

void Variable::set_grad_home(Tensor home) const {
  HEED_CHECK(!home.defined() || (home.shape() == shape() && home.dtype() == DType::F32 && home.is_contiguous() &&
                                 home.device() == impl_->value.device()),
             "a gradient home must be a contiguous F32 tensor of shape {} on {}", shape_str(shape()),
             impl_->value.device().str());
  impl_->grad_home = std::move(home);
  impl_->grad = Tensor();
}

void Variable::send_grad_to(const Variable& target) const {
  HEED_CHECK(target.defined() && target.shape() == shape(), "send_grad_to: a variable of shape {} for one of shape {}",
             target.defined() ? shape_str(target.shape()) : "(undefined)", shape_str(shape()));
  impl_->grad_target = target.impl_;
  impl_->requires_grad = true;
}

// Why a home is written by its first contribution and not zeroed once per step for every contribution to
// add into: a GEMM writes with beta 0 and reads nothing, where zeroing the whole buffer would write it once
// more and every beta 1 GEMM would read it, about twice the gradients' bytes per step for nothing. Whether
// this step wrote the home yet is whether grad() is defined: zero_grad() resets it without a launch.
void Variable::accumulate_grad(const Tensor& g) const {
  HEED_CHECK(g.shape() == shape(), "gradient of shape {} for a variable of shape {}", shape_str(g.shape()),
             shape_str(shape()));
  if (impl_->grad_target) {
    const Variable target(impl_->grad_target);
    const DType dtype = target.value().dtype();
    target.accumulate_grad(g.dtype() == dtype ? g : g.to(dtype));
    return;
  }
  ++impl_->grad_version;
  if (!impl_->grad.defined()) {
    impl_->grad = g;
    impl_->grad_owned = false;
    if (impl_->grad_home.defined()) unsettled.push_back(*this);
    return;
  }
  if (!impl_->grad_owned) {
    if (impl_->grad_home.defined()) {  // two passes, but only for a second contribution before settling
      impl_->grad_home.copy_from(impl_->grad);
      impl_->grad = impl_->grad_home;
      ops::axpy_(impl_->grad, g);
    } else {  // the sum into a buffer of our own: one pass, where a copy and an add take two
      impl_->grad = ops::add(impl_->grad, g);
    }
    impl_->grad_owned = true;
    return;
  }
  ops::axpy_(impl_->grad, g);
}

Tensor& Variable::grad_for_gemm(float* beta) const {
  if (impl_->grad_target) return Variable(impl_->grad_target).grad_for_gemm(beta);  // the target's Impl lives on
  ++impl_->grad_version;
  Tensor home = impl_->grad_home;  // a handle to the same memory
  if (!impl_->grad.defined()) {
    impl_->grad = home.defined() ? home : Tensor::empty(shape(), DType::F32, impl_->value.device());
    *beta = 0.0f;
  } else {
    if (!impl_->grad_owned) {
      if (home.defined()) {
        home.copy_from(impl_->grad);
        impl_->grad = home;
      } else {
        impl_->grad = impl_->grad.clone();
      }
    }
    *beta = 1.0f;
  }
  impl_->grad_owned = true;
  return impl_->grad;
}

Tensor* Variable::grad_for_sum(Tensor* prior) const {
  if (impl_->grad_target || impl_->grad_home.defined()) return nullptr;
  ++impl_->grad_version;
  *prior = impl_->grad;
  if (!prior->defined() || !impl_->grad_owned)
    impl_->grad = Tensor::empty(shape(), prior->defined() ? prior->dtype() : impl_->value.dtype(),
                                impl_->value.device());
  impl_->grad_owned = true;
  return &impl_->grad;
}

void settle_grads(const std::vector<Variable>& vars, bool zero_missing) {
  std::vector<Tensor> sources, homes;
  for (const Variable& v : vars) {
    Variable::Impl& impl = *v.impl_;
    if (!impl.grad_home.defined() || (impl.grad.defined() && impl.grad_owned)) continue;
    if (!impl.grad.defined() && !zero_missing) continue;
    const Tensor& g = impl.grad;
    if (g.defined() && !(g.dtype() == DType::F32 && g.is_contiguous() && g.device() == impl.grad_home.device())) {
      impl.grad_home.copy_from(g);  // not what the one-launch copy takes: a copy of its own
    } else {
      sources.push_back(g);
      homes.push_back(impl.grad_home);
    }
    impl.grad = impl.grad_home;
    impl.grad_owned = true;
  }
  ops::copy_grads(sources, homes);
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
  settle_grads(unsettled);
  unsettled.clear();
}

void clear_tape() { tape.clear(); }

size_t tape_size() { return tape.size(); }

}  // namespace heed::autograd

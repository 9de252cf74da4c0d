// Autograd-lite: tape-based reverse mode over tensors.
//
// Variable is a handle (like shared_ptr): copies share one value and gradient, and const refers to the
// handle, so backward closures can accumulate into the variables they captured.
//
// A Variable is a shared handle to a value tensor, its gradient, and whether it requires one. Each
// differentiable function (functions.h) computes its forward pass with an op and, when grad mode is on
// and an input requires a gradient, appends a node to the thread's tape: the output variable and a
// closure that maps the output's gradient to the inputs' gradients, calling the op's backward. backward()
// walks the tape in reverse, accumulates gradients into .grad(), frees each intermediate gradient as soon
// as it has been propagated, and finally clears the tape, which releases every saved tensor.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "heed/core/tensor.h"

namespace heed::autograd {

class Variable {
 public:
  Variable() = default;
  explicit Variable(Tensor value, bool requires_grad = false);

  bool defined() const { return impl_ != nullptr; }
  const Tensor& value() const { return impl_->value; }
  // Replaces the value in place (for optimizers and weight loading); the shape must not change.
  void set_value(Tensor value) const;
  bool requires_grad() const { return impl_ && impl_->requires_grad; }
  void set_requires_grad(bool requires_grad) const { impl_->requires_grad = requires_grad; }

  // Undefined until backward() reaches this variable.
  const Tensor& grad() const { return impl_->grad; }
  void zero_grad() const { impl_->grad = Tensor(); }

  // Adds g to the gradient. The first contribution is stored without a copy; since it may be shared with
  // another variable's gradient, the second goes with it into a new buffer, never into it.
  void accumulate_grad(const Tensor& g) const;
  // For backward passes that write a gradient with a GEMM: the gradient buffer to add into and the beta
  // to use (0 when the buffer is fresh and uninitialised, 1 when it already holds a gradient).
  Tensor& grad_for_gemm(float* beta) const;
  // For a backward whose op adds the gradient so far into its own output in the same pass (a GEMM's
  // beta = 1, reading C apart from where it writes D): *prior is that gradient (undefined when there is
  // none), and the returned buffer, of prior's type (else the value's), is where the sum goes and becomes
  // the gradient.
  // That is a new buffer unless the gradient is already our own, which is then summed in place.
  Tensor& grad_for_sum(Tensor* prior) const;
  // Counts the contributions to the gradient, so that a caller can tell when backward has stopped adding
  // to it (data-parallel training starts reducing a gradient as soon as it is complete).
  uint64_t grad_version() const { return impl_->grad_version; }

  const Shape& shape() const { return impl_->value.shape(); }
  int64_t size(int d) const { return impl_->value.size(d); }

  bool same(const Variable& other) const { return impl_ == other.impl_; }

 private:
  struct Impl {
    Tensor value;
    Tensor grad;
    bool requires_grad = false;
    bool grad_owned = false;  // false while grad may alias a tensor that someone else holds
    uint64_t grad_version = 0;
  };
  std::shared_ptr<Impl> impl_;
};

// Whether operations are recorded on the tape (on by default, per thread).
bool grad_enabled();

class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

using BackwardFn = std::function<void(const Tensor& grad_output)>;

// True when a function with these inputs must be recorded.
bool needs_grad(std::initializer_list<const Variable*> inputs);
// Appends a node: when backward reaches `output`, `backward` is called with its gradient.
void record(Variable output, BackwardFn backward);

// Reverse pass from a scalar (0-d or single-element) variable, seeded with `seed`; clears the tape.
// `after_node`, if given, is called after each node of the tape with the number of nodes done so far.
void backward(Variable loss, float seed = 1.0f, const std::function<void(size_t)>& after_node = nullptr);
// Drops every recorded node without running it (e.g. after a forward pass used only for its value).
void clear_tape();
size_t tape_size();

}  // namespace heed::autograd

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
#include <vector>

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

  // Undefined until backward() reaches this variable (again, after zero_grad()).
  const Tensor& grad() const { return impl_->grad; }
  // Drops the gradient: the next contribution starts a new one. A gradient home (below) stays.
  void zero_grad() const { impl_->grad = Tensor(); }

  // A fixed place for the gradient: a contiguous fp32 tensor of the variable's shape (a slice of an
  // autograd::GradientBuffer), which every gradient of the variable then lives in, step after step.
  // Undefined (the default): each gradient is a tensor of its own, as for intermediate values. Either way
  // the current gradient is dropped.
  void set_grad_home(Tensor home) const;
  const Tensor& grad_home() const { return impl_->grad_home; }

  // Sends every gradient contribution to `target` (of this shape) instead, converted to its dtype, and
  // makes this variable require a gradient; its own gradient stays undefined, so no node of the tape is
  // ever run for it. For a parameter's 16-bit copy, whose gradient is the parameter's (cast's gradient): a
  // GEMM then writes the weight gradient straight into the parameter's home, with the parameter's beta.
  void send_grad_to(const Variable& target) const;

  // Adds g to the gradient. The first contribution is stored without a copy; since it may be shared with
  // another variable's gradient, the second goes with it into a new buffer (the home, where there is
  // one), never into it. A first contribution that is still shared when backward() ends is copied into
  // the home then, with all the others of the pass in one launch (settle_grads).
  void accumulate_grad(const Tensor& g) const;
  // For backward passes that write a gradient themselves (a GEMM with its beta, its bias-gradient
  // epilogue, the embedding's scatter): the gradient buffer to write or add into and the beta to use (0
  // when it holds nothing of this gradient yet, whatever its memory holds; 1 when it already holds a
  // contribution). With a home, the buffer is the home.
  Tensor& grad_for_gemm(float* beta) const;
  // For a backward whose op adds the gradient so far into its own output in the same pass (a GEMM's
  // beta = 1, reading C apart from where it writes D): *prior is that gradient (undefined when there is
  // none), and the returned buffer, of prior's type (else the value's), is where the sum goes and becomes
  // the gradient. That is a new buffer unless the gradient is already our own, which is then summed in
  // place. Null for a variable whose gradient has a home or a target (a parameter, or its 16-bit copy):
  // those take accumulate_grad.
  Tensor* grad_for_sum(Tensor* prior) const;
  // Counts the contributions to the gradient, so that a caller can tell when backward has stopped adding
  // to it (data-parallel training starts reducing a gradient as soon as it is complete).
  uint64_t grad_version() const { return impl_->grad_version; }

  const Shape& shape() const { return impl_->value.shape(); }
  int64_t size(int d) const { return impl_->value.size(d); }

  bool same(const Variable& other) const { return impl_ == other.impl_; }

 private:
  friend void settle_grads(const std::vector<Variable>& vars, bool zero_missing);
  struct Impl {
    Tensor value;
    Tensor grad;
    bool requires_grad = false;
    Tensor grad_home;
    std::shared_ptr<Impl> grad_target;  // send_grad_to's
    bool grad_owned = false;  // false while grad may alias a tensor that someone else holds
    uint64_t grad_version = 0;
  };
  explicit Variable(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
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
// Moves the gradients of `vars` that have a home into it: a first contribution still held elsewhere is
// copied there, and with `zero_missing`, a variable without a gradient gets a zero one there (so that
// its slice of a GradientBuffer can be summed over ranks). One launch for all of them on the GPU path.
// backward() does this for every variable it reached before it returns.
void settle_grads(const std::vector<Variable>& vars, bool zero_missing = false);

// Drops every recorded node without running it (e.g. after a forward pass used only for its value).
void clear_tape();
size_t tape_size();

}  // namespace heed::autograd

// One fp32 buffer that holds the gradients of many variables (a model's trainable parameters), each one's
// a fixed slice of it for as long as the buffer lives (its gradient home, Variable::set_grad_home).
//
// Why one buffer: the gradients keep their addresses from step to step, so the multi-tensor tables of
// Adam and of the gradient norm are uploaded once, not every step; a backward pass writes each gradient
// where it stays (a GEMM with beta 0 straight into its slice), instead of into memory of its own; and
// data-parallel training all-reduces consecutive slices in place, a bucket at a time, where copying each
// gradient into a bucket and back took two launches per parameter.
#pragma once

#include <vector>

#include "heed/autograd/variable.h"

namespace heed::autograd {

class GradientBuffer {
 public:
  GradientBuffer() = default;
  // Lays `vars` end to end, in this order, in one zeroed buffer on their device (they must share one),
  // and makes each one's slice its gradient home; their gradients start undefined.
  explicit GradientBuffer(std::vector<Variable> vars);

  bool defined() const { return flat_.defined(); }
  // Whether it holds exactly `vars`, in this order, on the device of their values.
  bool holds(const std::vector<Variable>& vars) const;
  // Gives the variables back gradients of their own (no home) and drops the buffer.
  void release();

  const std::vector<Variable>& vars() const { return vars_; }
  // Every gradient, end to end: numel() floats.
  const Tensor& flat() const { return flat_; }
  // Where vars()[i]'s slice starts in flat().
  int64_t offset(size_t i) const { return offsets_[i]; }

 private:
  std::vector<Variable> vars_;
  std::vector<int64_t> offsets_;
  Tensor flat_;
};

}  // namespace heed::autograd

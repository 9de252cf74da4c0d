// Broadcasting arithmetic, bias add, and the reductions their backward passes need.
#pragma once

#include "heed/core/tensor.h"

namespace heed::ops {

// NumPy broadcasting: trailing dimensions are aligned, and a size-1 (or missing) dimension stretches.
Tensor add(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, float alpha);
// x: [..., N], bias: [N].
Tensor add_bias(const Tensor& x, const Tensor& bias);
// dst += alpha * src, same shape; dst contiguous.
void axpy_(Tensor& dst, const Tensor& src, float alpha = 1.0f);
// Sums grad (the gradient of a broadcast result) down to `shape`, the shape of the operand that was
// broadcast.
Tensor sum_to(const Tensor& grad, const Shape& shape);
// Sum of all elements, as a 0-d tensor (accumulated in double).
Tensor sum(const Tensor& x);
// Sum over the last dimension's rows: [..., N] -> [N], in fp32 whatever x's type: a bias gradient sums
// tens of thousands of rows, which under fp16's loss scale (65536) pass fp16's largest value, 65504.
Tensor sum_rows(const Tensor& x);

}  // namespace heed::ops

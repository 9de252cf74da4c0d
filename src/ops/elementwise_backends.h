// Backend entry points of the elementwise ops; src/ops/elementwise.cc checks and dispatches here.
#pragma once

#include "heed/core/tensor.h"

namespace heed::ops {

enum class Binary { Add, Mul };

}  // namespace heed::ops

namespace heed::ops::cpu {

// out = a (op) b where a and b are already expanded to out's shape (broadcast dims have stride 0).
void binary(const Tensor& a, const Tensor& b, Tensor& out, Binary op);
void scale(const Tensor& x, Tensor& out, float alpha);
void axpy(Tensor& dst, const Tensor& src, float alpha);
// out[j] = the sum of x's rows (its last dimension); x is contiguous, or a 2-d view whose rows are contiguous.
void sum_rows(const Tensor& x, Tensor& out);
// out (contiguous, zeroed by the caller) += grad, with out viewed through `out_expanded` strides.
void sum_to(const Tensor& grad, const Tensor& out_expanded);
// out: a 0-d tensor, the sum accumulated in double.
void sum(const Tensor& x, Tensor& out);

}  // namespace heed::ops::cpu

namespace heed::ops::gpu {

// As on the CPU; the tensors may also be bf16 or fp16 (sum's out stays fp32).
void binary(const Tensor& a, const Tensor& b, Tensor& out, Binary op);
void scale(const Tensor& x, Tensor& out, float alpha);
void axpy(Tensor& dst, const Tensor& src, float alpha);
void sum_rows(const Tensor& x, Tensor& out);
void sum_to(const Tensor& grad, const Tensor& out_expanded);
void sum(const Tensor& x, Tensor& out);

}  // namespace heed::ops::gpu

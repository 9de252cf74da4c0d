#pragma once

#include "heed/core/tensor.h"

namespace heed::ops::cpu {

enum class Binary { Add, Mul };

// out = a (op) b where a and b are already expanded to out's shape (broadcast dims have stride 0).
void binary(const Tensor& a, const Tensor& b, Tensor& out, Binary op);
void scale(const Tensor& x, Tensor& out, float alpha);
void axpy(Tensor& dst, const Tensor& src, float alpha);
void sum_rows(const Tensor& x, Tensor& out);
// out (contiguous, zeroed by the caller) += grad, with out viewed through `out_expanded` strides.
void sum_to(const Tensor& grad, const Tensor& out_expanded);
double sum(const Tensor& x);

}  // namespace heed::ops::cpu

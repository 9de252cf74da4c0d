// Matrix products through cblas_sgemm (OpenBLAS) on the CPU.
#pragma once

#include "heed/core/tensor.h"

namespace heed::ops {

// out = alpha * op(a) . op(b) + beta * out, where op transposes the last two dimensions when asked.
// a: [..., M, K] (or [..., K, M] with trans_a), b: [..., K, N] (or [..., N, K] with trans_b).
// Leading (batch) dimensions must be equal, or b may be 2-d and shared by every batch of a.
// Inputs may be any layout whose last or second-to-last stride is 1; out must be contiguous.
void matmul_into(const Tensor& a, const Tensor& b, Tensor& out, bool trans_a = false, bool trans_b = false,
                 float alpha = 1.0f, float beta = 0.0f);
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false, float alpha = 1.0f);
// A Linear layer's forward: x [N, in] . weight [out, in]^T + bias [out], the bias added in the GEMM's own
// pass over the output (the beta = 1 accumulation on the CPU, cuBLASLt's bias epilogue on a GPU). bias has
// the output's dtype. With `relu`, max(0, .) is applied in the same pass (cuBLASLt's RELU_BIAS epilogue),
// for the feed-forward layer's first product.
Tensor linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, bool relu = false);

}  // namespace heed::ops

// Backend entry points of the matrix product; src/ops/matmul.cc checks shapes and dispatches here.
#pragma once

#include <algorithm>
#include <vector>

#include "heed/core/tensor.h"

namespace heed::ops {

// An operand's last two dimensions as a row-major matrix for BLAS: a matrix whose column stride is 1 is
// row-major with leading dimension = its row stride; one whose row stride is 1 is the transpose of such a
// matrix, which folds into the GEMM's transpose flag, so transposed views go in without a copy.
struct MatmulLayout {
  bool trans;  // whether the GEMM must transpose the stored row-major matrix
  int64_t ld;
};

inline MatmulLayout matmul_layout(const Tensor& t, bool want_trans) {
  const int64_t rs = t.stride(-2), cs = t.stride(-1);
  if (cs == 1 || t.size(-1) == 1) return {want_trans, std::max<int64_t>(rs, t.size(-1))};
  HEED_CHECK(rs == 1 || t.size(-2) == 1, "matmul: operand with strides {} has no unit stride in its last two dims",
             shape_str(t.strides()));
  return {!want_trans, std::max<int64_t>(cs, t.size(-2))};
}

// Offset in elements of batch entry `index` of t's leading dimensions (0 for a shared 2-d operand).
inline int64_t matmul_batch_offset(const Tensor& t, int64_t index) {
  int64_t offset = 0;
  for (int d = t.dim() - 3; d >= 0; --d) {
    offset += (index % t.size(d)) * t.stride(d);
    index /= t.size(d);
  }
  return offset;
}

}  // namespace heed::ops

namespace heed::ops::cpu {

void matmul_into(const Tensor& a, const Tensor& b, Tensor& out, bool trans_a, bool trans_b, float alpha, float beta);
// out = x . weight^T + bias (bias contiguous), and with relu_mask (relu only) the ReLU's mask.
void linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, bool relu, Tensor& out,
                    Tensor* relu_mask);
// dw = dy^T . x + beta * dw, then db = dy's row sums where db is given.
void linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, float beta, Tensor* db);
// dx = dy . weight (+ prior, copied into dx first when it is not dx).
void linear_backward_input(const Tensor& dy, const Tensor& weight, Tensor& dx, const Tensor& prior);
// dx = (dy . weight) * the mask's bits.
void linear_backward_input_relu(const Tensor& dy, const Tensor& weight, Tensor& dx, const Tensor& relu_mask);
// A matrix of `rows` x `cols` with row stride ld, copied into `to` with rows a few floats longer than cols, so
// that rows a multiple of 2 KiB apart no longer share L1 sets (matmul_cpu.cc). Returns the copy's row stride.
int64_t copy_padded(const float* from, int64_t rows, int64_t cols, int64_t ld, std::vector<float>& to);

}  // namespace heed::ops::cpu

namespace heed::ops::gpu {

// a and b: fp32, bf16 or fp16 (one type); out: fp32 or a's type.
void matmul_into(const Tensor& a, const Tensor& b, Tensor& out, bool trans_a, bool trans_b, float alpha, float beta);
// out = x . weight^T + bias through the GEMM's bias epilogue (and the mask through its aux output).
void linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, bool relu, Tensor& out,
                    Tensor* relu_mask);
// dw = dy^T . x + beta * dw, with db from the same GEMM's bias-gradient epilogue.
void linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, float beta, Tensor* db);
// dx = dy . weight + prior, prior read as the GEMM's C.
void linear_backward_input(const Tensor& dy, const Tensor& weight, Tensor& dx, const Tensor& prior);
// dx = (dy . weight) * the mask's bits, through the GEMM's DRELU epilogue.
void linear_backward_input_relu(const Tensor& dy, const Tensor& weight, Tensor& dx, const Tensor& relu_mask);

}  // namespace heed::ops::gpu

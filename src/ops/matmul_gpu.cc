// Matrix products on the GPU path: tensors to a GemmDesc (core/gemm.h), which runs on cuBLASLt or on the
// simulated GPU.
//
// As on the CPU, an operand whose last or second-to-last stride is 1 goes in without a copy, transposed
// as needed. Leading dimensions that collapse to one stride become one strided-batched call; others
// (views with holes) are walked with one call per outer index.
#include "core/gemm.h"
#include "ops/matmul_backends.h"

namespace heed::ops::gpu {

namespace {

GemmOperand operand(const Tensor& t, bool want_trans) {
  const MatmulLayout layout = matmul_layout(t, want_trans);
  return {t.raw_data(), t.dtype(), layout.trans, layout.ld, 0};
}

// The stride of the leading dimensions of t when they collapse to one (every index steps by the same
// amount), or -1. A 2-d operand shared by every batch entry has stride 0.
int64_t batch_stride(const Tensor& t) {
  if (t.dim() == 2) return 0;
  int64_t stride = t.stride(t.dim() - 3), span = t.size(t.dim() - 3);
  for (int d = t.dim() - 4; d >= 0; --d) {
    if (t.size(d) != 1 && t.stride(d) != stride * span) return -1;
    span *= t.size(d);
  }
  return stride;
}

// out = op(a) . op(b) for matrices, out contiguous: a Linear layer's products, before their epilogues.
GemmDesc matrix_product(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& out) {
  GemmDesc d;
  d.m = out.size(0);
  d.n = out.size(1);
  d.k = trans_a ? a.size(0) : a.size(1);
  d.a = operand(a, trans_a);
  d.b = operand(b, trans_b);
  d.out = out.raw_data();
  d.out_dtype = out.dtype();
  d.ldo = d.n;
  return d;
}

}  // namespace

void matmul_into(const Tensor& a, const Tensor& b, Tensor& out, bool trans_a, bool trans_b, float alpha, float beta) {
  GemmDesc d;
  d.m = out.size(-2);
  d.n = out.size(-1);
  d.k = trans_a ? a.size(-2) : a.size(-1);
  d.alpha = alpha;
  d.beta = beta;
  d.out_dtype = out.dtype();
  d.ldo = d.n;
  const int64_t batches = out.numel() / std::max<int64_t>(1, d.m * d.n);
  const int64_t sa = batch_stride(a), sb = batch_stride(b);
  if (sa >= 0 && sb >= 0) {
    d.batch = std::max<int64_t>(1, batches);
    d.a = operand(a, trans_a);
    d.b = operand(b, trans_b);
    d.a.batch_stride = sa;
    d.b.batch_stride = sb;
    d.out = out.raw_data();
    d.out_batch_stride = d.m * d.n;
    gemm(a.device(), d);
    return;
  }
  // Leading dimensions with holes: one call per batch entry.
  d.a = operand(a, trans_a);
  d.b = operand(b, trans_b);
  const size_t a_size = dtype_size(a.dtype()), out_size = dtype_size(out.dtype());
  for (int64_t i = 0; i < batches; ++i) {
    GemmDesc di = d;
    di.a.data = static_cast<const char*>(a.raw_data()) + matmul_batch_offset(a, i) * a_size;
    di.b.data = static_cast<const char*>(b.raw_data()) + matmul_batch_offset(b, i) * a_size;
    di.out = static_cast<char*>(out.raw_data()) + i * d.m * d.n * out_size;
    gemm(a.device(), di);
  }
}

void linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, bool relu, Tensor& out,
                    Tensor* relu_mask) {
  GemmDesc d = matrix_product(x, false, weight, true, out);
  d.bias = bias.raw_data();
  d.relu = relu;
  if (relu_mask) d.relu_mask_out = relu_mask->raw_data();
  gemm(x.device(), d);
}

void linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, float beta, Tensor* db) {
  GemmDesc d = matrix_product(dy, true, x, false, dw);
  d.beta = beta;
  if (db) d.bias_grad = db->raw_data();
  gemm(dy.device(), d);
}

void linear_backward_input(const Tensor& dy, const Tensor& weight, Tensor& dx, const Tensor& prior) {
  GemmDesc d = matrix_product(dy, false, weight, false, dx);
  if (prior.defined()) {
    d.beta = 1.0f;
    d.c = prior.raw_data();
  }
  gemm(dy.device(), d);
}

void linear_backward_input_relu(const Tensor& dy, const Tensor& weight, Tensor& dx, const Tensor& relu_mask) {
  GemmDesc d = matrix_product(dy, false, weight, false, dx);
  d.relu_mask_in = relu_mask.raw_data();
  gemm(dy.device(), d);
}

}  // namespace heed::ops::gpu

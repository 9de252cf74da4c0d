// Matrix products on the CPU: one cblas_sgemm per batch entry.
//
// A strided matrix whose column stride is 1 is a row-major matrix with leading dimension = its row stride;
// one whose row stride is 1 is the transpose of such a matrix. Folding that into CblasTrans lets
// transposed views (attention heads, weight transposes) go into the GEMM without a copy. OpenBLAS's
// OpenMP build parallelises each call on the shared OpenMP thread pool.
#include <cblas.h>

#include "ops/matmul_kernels.h"

namespace heed::ops::cpu {

namespace {

struct MatrixView {
  bool trans;  // whether the GEMM must transpose the stored row-major matrix
  int ld;
};

// View of the last two dimensions as a row-major matrix (possibly transposed) for BLAS.
MatrixView as_blas(const Tensor& t, bool want_trans) {
  const int64_t rs = t.stride(-2), cs = t.stride(-1);
  if (cs == 1 || t.size(-1) == 1) return {want_trans, static_cast<int>(std::max<int64_t>(rs, t.size(-1)))};
  HEED_CHECK(rs == 1 || t.size(-2) == 1, "matmul: operand with strides {} has no unit stride in its last two dims",
             shape_str(t.strides()));
  return {!want_trans, static_cast<int>(std::max<int64_t>(cs, t.size(-2)))};
}

// Offset (in elements) of batch entry `index` of the leading dimensions of t.
int64_t batch_offset(const Tensor& t, int64_t index) {
  int64_t off = 0;
  for (int d = t.dim() - 3; d >= 0; --d) {
    off += (index % t.size(d)) * t.stride(d);
    index /= t.size(d);
  }
  return off;
}

}  // namespace

void matmul_into(const Tensor& a, const Tensor& b, Tensor& out, bool trans_a, bool trans_b, float alpha, float beta) {
  const int m = static_cast<int>(out.size(-2)), n = static_cast<int>(out.size(-1));
  const int k = static_cast<int>(trans_a ? a.size(-2) : a.size(-1));
  const int64_t batches = out.numel() / std::max<int64_t>(1, int64_t(m) * n);
  const MatrixView va = as_blas(a, trans_a), vb = as_blas(b, trans_b);
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* pc = out.data<float>();
  if (k == 0) {  // BLAS leaves C untouched (times beta) for an empty inner dimension; so do we
    for (int64_t i = 0; i < out.numel(); ++i) pc[i] = beta == 0.0f ? 0.0f : beta * pc[i];
    return;
  }
  for (int64_t i = 0; i < batches; ++i) {
    const float* ai = pa + batch_offset(a, i);
    const float* bi = b.dim() == 2 ? pb : pb + batch_offset(b, i);
    cblas_sgemm(CblasRowMajor, va.trans ? CblasTrans : CblasNoTrans, vb.trans ? CblasTrans : CblasNoTrans, m, n, k,
                alpha, ai, va.ld, bi, vb.ld, beta, pc + i * int64_t(m) * n, n);
  }
}

}  // namespace heed::ops::cpu

// Matrix products on the CPU: one cblas_sgemm per batch entry, with transposed views folded into
// CblasTrans by matmul_layout (matmul_kernels.h), so attention heads and weight transposes go in without a
// copy. OpenBLAS's OpenMP build parallelises each call on the shared OpenMP thread pool.
#include <cblas.h>

#include "ops/matmul_kernels.h"

namespace heed::ops::cpu {

void matmul_into(const Tensor& a, const Tensor& b, Tensor& out, bool trans_a, bool trans_b, float alpha, float beta) {
  const int m = static_cast<int>(out.size(-2)), n = static_cast<int>(out.size(-1));
  const int k = static_cast<int>(trans_a ? a.size(-2) : a.size(-1));
  const int64_t batches = out.numel() / std::max<int64_t>(1, int64_t(m) * n);
  const MatmulLayout va = matmul_layout(a, trans_a), vb = matmul_layout(b, trans_b);
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* pc = out.data<float>();
  if (k == 0) {  // BLAS leaves C untouched (times beta) for an empty inner dimension; so do we
    for (int64_t i = 0; i < out.numel(); ++i) pc[i] = beta == 0.0f ? 0.0f : beta * pc[i];
    return;
  }
  for (int64_t i = 0; i < batches; ++i) {
    const float* ai = pa + matmul_batch_offset(a, i);
    const float* bi = b.dim() == 2 ? pb : pb + matmul_batch_offset(b, i);
    cblas_sgemm(CblasRowMajor, va.trans ? CblasTrans : CblasNoTrans, vb.trans ? CblasTrans : CblasNoTrans, m, n, k,
                alpha, ai, static_cast<int>(va.ld), bi, static_cast<int>(vb.ld), beta, pc + i * int64_t(m) * n, n);
  }
}

}  // namespace heed::ops::cpu

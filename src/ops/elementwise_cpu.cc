// Pointwise loops on the CPU.
//
// Broadcast operands arrive as stride-0 views, so one loop serves every case: rows of the last dimension
// are distributed over threads, and the inner loop has a compile-time unit stride when both operands are
// dense in that dimension (the common case), which the compiler vectorises.
#include <vector>

#include <omp.h>

#include "ops/elementwise_backends.h"

namespace heed::ops::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 15;  // below this, thread start-up costs more than the loop

// Offset of row r (over all dims but the last) of t.
inline int64_t row_offset(const Tensor& t, int64_t r) {
  int64_t off = 0;
  for (int d = t.dim() - 2; d >= 0; --d) {
    off += (r % t.size(d)) * t.stride(d);
    r /= t.size(d);
  }
  return off;
}

template <typename F>
void binary_loop(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const int64_t inner = out.dim() ? out.size(-1) : 1;
  const int64_t rows = inner ? out.numel() / inner : 0;
  const int64_t sa = out.dim() ? a.stride(-1) : 0, sb = out.dim() ? b.stride(-1) : 0;
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* po = out.data<float>();
#pragma omp parallel for if (out.numel() > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* ar = pa + row_offset(a, r);
    const float* br = pb + row_offset(b, r);
    float* orow = po + r * inner;
    if (sa == 1 && sb == 1) {
#pragma omp simd
      for (int64_t i = 0; i < inner; ++i) orow[i] = f(ar[i], br[i]);
    } else if (sa == 1 && sb == 0) {
      const float bv = br[0];
#pragma omp simd
      for (int64_t i = 0; i < inner; ++i) orow[i] = f(ar[i], bv);
    } else {
      for (int64_t i = 0; i < inner; ++i) orow[i] = f(ar[i * sa], br[i * sb]);
    }
  }
}

}  // namespace

void binary(const Tensor& a, const Tensor& b, Tensor& out, Binary op) {
  if (op == Binary::Add) binary_loop(a, b, out, [](float x, float y) { return x + y; });
  else binary_loop(a, b, out, [](float x, float y) { return x * y; });
}

void scale(const Tensor& x, Tensor& out, float alpha) {
  const float* px = x.data<float>();
  float* po = out.data<float>();
  const int64_t n = x.numel();
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) po[i] = alpha * px[i];
}

void axpy(Tensor& dst, const Tensor& src, float alpha) {
  float* pd = dst.data<float>();
  const float* ps = src.data<float>();
  const int64_t n = dst.numel();
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) pd[i] += alpha * ps[i];
}

void sum_rows(const Tensor& x, Tensor& out) {
  // Each thread sums a contiguous block of rows; partial sums are then added in thread order, so the
  // result does not depend on scheduling. 2-d rows a stride apart (a column range of a wider gradient, as
  // linear_stacked's q, k and v) are read in place; other non-contiguous layouts are copied first.
  const bool strided_rows = x.dim() == 2 && x.stride(1) == 1;
  if (!strided_rows && !x.is_contiguous()) {
    sum_rows(x.contiguous(), out);
    return;
  }
  const int64_t n = x.size(-1);
  const int64_t rows = n ? x.numel() / n : 0;
  const int64_t row_stride = strided_rows ? x.stride(0) : n;
  const float* px = x.data<float>();
  const int threads = x.numel() > kParallelMin ? omp_get_max_threads() : 1;
  std::vector<float> partial(static_cast<size_t>(threads) * n, 0.0f);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int64_t begin = rows * t / threads, end = rows * (t + 1) / threads;
    float* acc = partial.data() + t * n;
    for (int64_t r = begin; r < end; ++r) {
      const float* row = px + r * row_stride;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) acc[i] += row[i];
    }
  }
  float* po = out.data<float>();
  for (int64_t i = 0; i < n; ++i) po[i] = 0.0f;
  for (int t = 0; t < threads; ++t)
    for (int64_t i = 0; i < n; ++i) po[i] += partial[t * n + i];
}

void sum_to(const Tensor& grad, const Tensor& out_expanded) {
  // Sequential: several grad elements land on one output element, and this path only serves rare,
  // small broadcasts (the common bias case goes through sum_rows).
  Tensor g = grad.contiguous();
  const float* pg = g.data<float>();
  float* po = out_expanded.data<float>();
  const int64_t inner = g.dim() ? g.size(-1) : 1;
  const int64_t rows = inner ? g.numel() / inner : 0;
  const int64_t so = g.dim() ? out_expanded.stride(-1) : 0;
  for (int64_t r = 0; r < rows; ++r) {
    float* orow = po + row_offset(out_expanded, r);
    for (int64_t i = 0; i < inner; ++i) orow[i * so] += pg[r * inner + i];
  }
}

void sum(const Tensor& x, Tensor& out) {
  const float* p = x.data<float>();
  const int64_t n = x.numel();
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += p[i];
  out.data<float>()[0] = static_cast<float>(s);
}

}  // namespace heed::ops::cpu

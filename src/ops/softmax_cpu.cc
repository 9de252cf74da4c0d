// Softmax over rows on the CPU.
//
// Per row: the maximum, then e^(x - max) (so no term overflows and the largest is 1) written to y while
// summing, then a scale by 1 / sum. Three vectorised sweeps over a row that stays in cache; rows are
// split over threads. exp is cpu_math.h's vectorisable one.
#include "ops/cpu_math.h"
#include "ops/softmax_backends.h"

namespace heed::ops::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 14;  // elements; below this, thread start-up costs more than the loop

}  // namespace

void softmax_forward(const Tensor& x, Tensor& y) {
  const int64_t n = x.size(-1), rows = x.numel() / n;
  const float* px = x.data<float>();
  float* py = y.data<float>();
#pragma omp parallel for if (rows * n > kParallelMin)
  for (int64_t row = 0; row < rows; ++row) {
    const float* xr = px + row * n;
    float* yr = py + row * n;
    float mx = xr[0];
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < n; ++j) mx = xr[j] > mx ? xr[j] : mx;
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n; ++j) {
      yr[j] = exp_approx(xr[j] - mx);
      sum += yr[j];
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) yr[j] *= inv;
  }
}

void softmax_backward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  const int64_t n = y.size(-1), rows = y.numel() / n;
  const float* pdy = dy.data<float>();
  const float* py = y.data<float>();
  float* pdx = dx.data<float>();
#pragma omp parallel for if (rows * n > kParallelMin)
  for (int64_t row = 0; row < rows; ++row) {
    const float* dyr = pdy + row * n;
    const float* yr = py + row * n;
    float dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < n; ++j) dot += dyr[j] * yr[j];
    float* dxr = pdx + row * n;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) dxr[j] = yr[j] * (dyr[j] - dot);
  }
}

}  // namespace heed::ops::cpu

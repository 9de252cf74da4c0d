// Log-softmax over rows on the CPU: per row, cpu_math.h's log_softmax_shift (the maximum, then the log of
// the sum of e^(x - max)), then one vectorised sweep that subtracts it. Rows are split over threads.
#include "ops/cpu_math.h"
#include "ops/log_softmax_backends.h"

namespace heed::ops::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 16;  // elements; below this, thread start-up costs more than the loop

}  // namespace

void log_softmax(const Tensor& x, Tensor& y) {
  const int64_t width = x.size(-1), rows = x.numel() / width;
  const float* px = x.data<float>();
  float* py = y.data<float>();
#pragma omp parallel for if (rows * width > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = px + r * width;
    float* yr = py + r * width;
    const LogSoftmaxShift shift = log_softmax_shift(xr, width);
#pragma omp simd
    for (int64_t i = 0; i < width; ++i) yr[i] = shift.log_prob(xr[i]);
  }
}

}  // namespace heed::ops::cpu

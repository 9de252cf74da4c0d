// Loops of the shape the CPU ops run over exp_approx and normal_cdf (ops/cpu_math.h), compiled with the
// project's flags. check.sh disassembles this object and fails if any of them came out scalar: the flags
// that let GCC vectorise them (CMakeLists.txt: -fno-trapping-math) are easy to lose, and nothing else
// would notice, since the results are the same, only several times slower.
#include <cstdint>

#include "ops/cpu_math.h"

using heed::ops::cpu::exp_approx;
using heed::ops::cpu::normal_cdf;

// A softmax or cross-entropy row sum (cross_entropy_cpu.cc's forward).
float probe_exp_sum(const float* x, int64_t n, float shift) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += exp_approx(x[i] - shift);
  return sum;
}

// A row of probabilities written out (cross_entropy_cpu.cc's backward, softmax_cpu.cc).
void probe_exp_store(const float* x, float* y, int64_t n, float shift, float scale) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = scale * exp_approx(x[i] - shift);
}

// GELU (activation_cpu.cc).
void probe_gelu(const float* x, float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * normal_cdf(x[i]);
}

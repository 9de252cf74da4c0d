// Vectorisable fp32 exp and normal CDF for the CPU kernels (softmax, cross-entropy, GELU, SiLU).
//
// glibc's expf and erff are scalar calls (its SIMD variants are only declared under -ffast-math), so a loop
// that calls them runs one element at a time. These functions are branch-free straight-line code that GCC
// inlines and vectorises inside `#pragma omp simd` loops, given -fno-trapping-math (CMakeLists.txt; the test
// "cpu math: the loops over exp_approx and normal_cdf vectorise" checks that they still do): exp's range
// reduction rounds with the 1.5 * 2^23 trick instead of nearbyint and builds 2^n from exponent bits;
// normal_cdf evaluates both of its branches and blends them. Accuracy, checked against double precision in
// tests/test_activation.cc: exp within 1.5e-7 relative (about one ulp); normal_cdf within 1.5e-7 absolute,
// and in the lower tail, where it computes 0.5 * erfc(-x / sqrt 2) rather than 0.5 * (1 + erf(x / sqrt 2))
// (which would cancel), within 2e-6 relative down to x = -5 and 1.5e-5 down to x = -12.5 (the rounding of
// exp's argument, about -x^2 / 2, sets that limit). Below x = -12.7 it returns 0, where the true value is
// under 1e-37.
//
// The polynomial coefficients are Chebyshev fits made with mpmath.chebyfit (50 digits):
//   erf(z) / z as a polynomial in z^2 on [0, 1], error 1.2e-9;
//   log(erfc(t)) + t^2 as a polynomial in u = (t - 5) / 4 on t in [1, 9], error 1.3e-7.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace heed::ops::cpu {

// e^x for finite x: 0 below -87 (where e^x nears the subnormal range) and +inf above 88.
inline float exp_approx(float x) {
  constexpr float kLog2e = 1.44269504f;
  // ln 2 = hi + lo, hi with 9 significant bits so that n * hi is exact with or without FMA contraction.
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f;                               // 1.5 * 2^23
  const float xc = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // Adding 1.5 * 2^23 rounds x * log2(e) to an integer n held in the low mantissa bits of `shifted`.
  const float shifted = xc * kLog2e + kRound;
  const float n = shifted - kRound;
  const int32_t ni = std::bit_cast<int32_t>(shifted) - std::bit_cast<int32_t>(kRound);
  float r = xc - n * kLn2Hi;  // |r| <= ln(2) / 2
  r = r - n * kLn2Lo;
  // Taylor series to degree 7: truncation error (ln 2 / 2)^8 / 8! = 5e-9.
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float scale = std::bit_cast<float>((ni + 127) << 23);  // 2^n, n in [-126, 127]
  const float e = p * scale;
  return x < -87.0f ? 0.0f : (x > 88.0f ? __builtin_inff() : e);
}

// Phi(x) = P(N(0, 1) <= x) = 0.5 * (1 + erf(x / sqrt 2)).
inline float normal_cdf(float x) {
  const float z = x * 0.707106781f;
  const float s = z * z;
  // |z| < 1: 0.5 + 0.5 * erf(z), erf(z) = z * A(z^2).
  float a = 7.875875063e-5f;
  a = a * s - 8.016864287e-4f;
  a = a * s + 5.189087423e-3f;
  a = a * s - 2.685421201e-2f;
  a = a * s + 1.128359472e-1f;
  a = a * s - 3.761262667e-1f;
  a = a * s + 1.128379166f;
  const float central = 0.5f + 0.5f * z * a;
  // |z| >= 1: erfc(t) = exp(B(u) - t^2), t = |z| clamped to the fitted range [1, 9].
  const float t = z < 0.0f ? -z : z;
  const float tc = t < 1.0f ? 1.0f : (t > 9.0f ? 9.0f : t);
  const float u = (tc - 5.0f) * 0.25f;
  float b = -9.725976603e-4f;
  b = b * u + 2.5784717e-3f;
  b = b * u - 3.059728366e-3f;
  b = b * u + 5.090860256e-3f;
  b = b * u - 1.150503183e-2f;
  b = b * u + 2.170261482e-2f;
  b = b * u - 3.892530061e-2f;
  b = b * u + 7.194142023e-2f;
  b = b * u - 1.377693815e-1f;
  b = b * u + 2.869385765e-1f;
  b = b * u - 7.708002221e-1f;
  b = b * u - 2.200889676f;
  // t^2 = x^2 / 2 as an unevaluated sum hi + lo (exact, by FMA): exp's argument then carries only its own
  // rounding, which bounds the relative error of the tail.
  const float half_x = 0.5f * x;
  const float t2_hi = x * half_x;
  const float t2_lo = std::fma(x, half_x, -t2_hi);
  const float half_erfc = t > 9.0f ? 0.0f : 0.5f * exp_approx((b - t2_hi) - t2_lo);
  const float tail = z < 0.0f ? half_erfc : 1.0f - half_erfc;
  return t < 1.0f ? central : tail;
}

// What log_softmax subtracts from a row, as torch computes it: log_prob[i] = (x[i] - max) - log_sum with
// log_sum = log(sum(e^(x - max))). The exp is the vectorisable one above: over a decoder step's [rows, V],
// glibc's scalar expf would cost as much as the output layer.
struct LogSoftmaxShift {
  float max, log_sum;
  float log_prob(float x) const { return (x - max) - log_sum; }
};

inline LogSoftmaxShift log_softmax_shift(const float* row, int64_t width) {
  float max = -INFINITY;
#pragma omp simd reduction(max : max)
  for (int64_t i = 0; i < width; ++i) max = std::max(max, row[i]);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < width; ++i) sum += exp_approx(row[i] - max);
  return {max, std::log(sum)};
}

}  // namespace heed::ops::cpu

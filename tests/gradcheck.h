// Finite-difference gradient checking for ops.
//
// The analytic gradient of a scalar function f(x) is compared with central differences
// (f(x + h e_i) - f(x - h e_i)) / 2h evaluated in fp32 on a fixed sample of coordinates. fp32 forward
// passes make the difference quotient noisy: with h = 1e-2 on O(1) inputs, rounding error is about
// eps_fp32 * |f| / h ~ 1e-5 * |f| and truncation error about h^2 |f'''| ~ 1e-4, so an absolute plus
// relative tolerance of a few 1e-3 separates a correct gradient from any real bug (a wrong gradient is
// off by O(1)).
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

#include "heed/core/tensor.h"

namespace heed::testing {

// Uniform(-1, 1) values, never zeros, from a fixed seed.
inline Tensor random_tensor(const Shape& shape, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor t = Tensor::empty(shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  return t;
}

// (f(x + h e_i) - f(x - h e_i)) / 2h, with x restored after. f must read x afresh on each call.
inline double central_difference(const std::function<double()>& f, float* x, int64_t i, double h) {
  const float saved = x[i];
  x[i] = saved + static_cast<float>(h);
  const double plus = f();
  x[i] = saved - static_cast<float>(h);
  const double minus = f();
  x[i] = saved;
  return (plus - minus) / (2 * h);
}

// Checks `analytic` (the gradient of f at x) against central differences of f on up to max_checks
// coordinates of x (all of them when x is small). f must read x afresh on each call.
inline void check_gradient(const std::function<double()>& f, Tensor& x, const Tensor& analytic,
                           double h = 1e-2, double atol = 2e-3, double rtol = 2e-2, int max_checks = 64) {
  REQUIRE(analytic.shape() == x.shape());
  Tensor g = analytic.contiguous();
  float* xp = x.data<float>();
  const int64_t n = x.numel();
  const int64_t step = std::max<int64_t>(1, n / max_checks);
  for (int64_t i = 0; i < n; i += step) {
    const double numeric = central_difference(f, xp, i, h);
    const double got = g.data<float>()[i];
    INFO("coordinate " << i << ": analytic " << got << ", numeric " << numeric);
    CHECK(std::abs(got - numeric) <= atol + rtol * std::abs(numeric));
  }
}

// How a gradient agrees with central differences on sampled coordinates, each side as one vector.
struct SampledGradient {
  double error = 0;      // ||analytic - numeric||
  double numeric = 0;    // ||numeric||
  int64_t checked = 0;   // coordinates sampled
};

// Central differences of f on up to max_checks evenly spaced coordinates of x, compared with `analytic` (the
// gradient of f at x) as vectors, for checks scaled by each gradient's own norm. f must read x afresh.
inline SampledGradient sample_gradient(const std::function<double()>& f, Tensor& x, const Tensor& analytic,
                                       double h, int max_checks) {
  REQUIRE(analytic.shape() == x.shape());
  const Tensor g = analytic.contiguous();
  float* xp = x.data<float>();
  const int64_t n = x.numel();
  const int64_t step = std::max<int64_t>(1, n / max_checks);
  double error2 = 0, numeric2 = 0;
  SampledGradient out;
  for (int64_t i = 0; i < n; i += step, ++out.checked) {
    const double numeric = central_difference(f, xp, i, h);
    error2 += (g.data<float>()[i] - numeric) * (g.data<float>()[i] - numeric);
    numeric2 += numeric * numeric;
  }
  out.error = std::sqrt(error2);
  out.numeric = std::sqrt(numeric2);
  return out;
}

// Sum of x * w for a fixed random w: a scalar loss whose gradient with respect to x is w, which makes
// every output element matter in a gradient check.
inline double weighted_sum(const Tensor& x, const Tensor& w) {
  Tensor xc = x.contiguous();
  double s = 0;
  for (int64_t i = 0; i < xc.numel(); ++i) s += double(xc.data<float>()[i]) * w.data<float>()[i];
  return s;
}

}  // namespace heed::testing

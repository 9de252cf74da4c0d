// Pointwise activations on the CPU.
//
// One flat loop per activation, templated on the function so that each instantiation is a single
// `parallel for simd` loop with the math inlined; GELU and SiLU use the vectorisable exp and normal CDF
// of cpu_math.h, so these loops run at SIMD width instead of one libm call per element.
#include "ops/activation_backends.h"
#include "ops/dropout_backends.h"
#include "ops/cpu_math.h"

namespace heed::ops::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 14;  // below this, thread start-up costs more than the loop

constexpr float kInvSqrt2Pi = 0.398942280f;  // 1 / sqrt(2 pi)

template <typename F>
void map(const Tensor& x, Tensor& y, F f) {
  const float* px = x.data<float>();
  float* py = y.data<float>();
  const int64_t n = x.numel();
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) py[i] = f(px[i]);
}

// dx = dy * f'(x).
template <typename F>
void map_grad(const Tensor& dy, const Tensor& x, Tensor& dx, F fprime) {
  const float* pdy = dy.data<float>();
  const float* px = x.data<float>();
  float* pdx = dx.data<float>();
  const int64_t n = x.numel();
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) pdx[i] = pdy[i] * fprime(px[i]);
}

inline float sigmoid(float v) { return 1.0f / (1.0f + exp_approx(-v)); }

}  // namespace

void activation_forward(const Tensor& x, Tensor& y, Activation act) {
  switch (act) {
    case Activation::ReLU: map(x, y, [](float v) { return v > 0.0f ? v : 0.0f; }); break;
    case Activation::GELU: map(x, y, [](float v) { return v * normal_cdf(v); }); break;
    case Activation::SiLU: map(x, y, [](float v) { return v * sigmoid(v); }); break;
  }
}

namespace {

// dx = dy * act'(x).
void slope_backward(const Tensor& dy, const Tensor& x, Tensor& dx, Activation act) {
  switch (act) {
    case Activation::ReLU: map_grad(dy, x, dx, [](float v) { return v > 0.0f ? 1.0f : 0.0f; }); break;
    case Activation::GELU:
      // d/dx x Phi(x) = Phi(x) + x phi(x).
      map_grad(dy, x, dx, [](float v) { return normal_cdf(v) + v * kInvSqrt2Pi * exp_approx(-0.5f * v * v); });
      break;
    case Activation::SiLU:
      // d/dx x s(x) = s(x) (1 + x (1 - s(x))).
      map_grad(dy, x, dx, [](float v) {
        const float s = sigmoid(v);
        return s * (1.0f + v * (1.0f - s));
      });
      break;
  }
}

}  // namespace

void activation_backward(const Tensor& dy, const Tensor& x, Tensor& dx, Activation act, float dropout_p,
                         const RandomKey& dropout_key) {
  // The dropout's backward first, then the slope, in the order the two ops' backwards run when composed
  // (the GPU kernel multiplies in the same order). Both maps are elementwise, so dx may be their input.
  if (dropout_p == 0.0f) return slope_backward(dy, x, dx, act);
  dropout_apply(dy, Tensor(), dx, dropout_p, dropout_key);
  slope_backward(dx, x, dx, act);
}

}  // namespace heed::ops::cpu

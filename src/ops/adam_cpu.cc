// The Adam/AdamW element update on the CPU: one fused, vectorised, thread-parallel pass per tensor that
// reads param, grad, m and v once and writes param, m and v once. The arithmetic is fp32, in the order of
// PyTorch's single-tensor implementation, with the step's scalars folded on the host (adam.cc). GCC
// vectorises the loop only under -fno-math-errno: otherwise sqrtf keeps a scalar errno branch.
#include <cmath>

#include "ops/adam_backends.h"

namespace heed::ops::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 15;  // below this, thread start-up costs more than the loop

void update_tensor(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                   const kernels::AdamStepScalars& s) {
  float* pp = param.data<float>();
  const float* pg = grad.data<float>();
  float* pm = m.data<float>();
  float* pv = v.data<float>();
  const int64_t n = param.numel();
  const kernels::AdamStepScalars k = s;  // a local copy: stores through pp, pm, pv cannot alias it, so it stays in registers
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float g = pg[i] * k.grad_scale + k.coupled_decay * pp[i];
    const float mi = k.beta1 * pm[i] + (1.0f - k.beta1) * g;
    const float vi = k.beta2 * pv[i] + (1.0f - k.beta2) * g * g;
    pm[i] = mi;
    pv[i] = vi;
    pp[i] = pp[i] * k.decay - k.step_size * mi / (std::sqrt(vi) / k.bias2_sqrt + k.eps);
  }
}

}  // namespace

void adam_update(const std::vector<AdamSlot>& slots, const kernels::AdamStepScalars& s) {
  for (const AdamSlot& slot : slots) update_tensor(slot.param, slot.grad, slot.m, slot.v, s);
}

}  // namespace heed::ops::cpu

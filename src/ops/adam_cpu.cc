// The Adam/AdamW element update on the CPU, and the sum of squares that clipping needs: one fused,
// vectorised, thread-parallel pass per tensor that reads param, grad, m and v once and writes param, m and v
// once. The arithmetic is fp32, in the order of
// PyTorch's single-tensor implementation, with the step's scalars folded on the host (adam.cc). GCC
// vectorises the loop only under -fno-math-errno: otherwise sqrtf keeps a scalar errno branch.
#include <algorithm>
#include <cmath>
#include <vector>

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

void adam_update(const std::vector<AdamSlot>& slots, const kernels::AdamStepScalars& s, const GradScaling& scaling) {
  kernels::AdamStepScalars scaled = s;
  if (scaling.squares.defined()) {
    const kernels::ClipResult clip =
        kernels::clip_gradients(scaling.squares.item(), scaling.clip_norm, scaling.loss_scale);
    if (clip.skip) return;
    scaled.grad_scale *= clip.grad_scale;
  }
  for (const AdamSlot& slot : slots) update_tensor(slot.param, slot.grad, slot.m, slot.v, scaled);
}

void grad_squares(const std::vector<Tensor>& grads, Tensor& sum) {
  // Chunks of the GPU path's size, each summed in float and the chunks in double, in a fixed order: the
  // same bits for any number of threads.
  constexpr int64_t chunk = kernels::kAdamChunkElements;
  double total = 0;
  for (const Tensor& grad : grads) {
    const float* g = grad.data<float>();
    const int64_t n = grad.numel(), chunks = (n + chunk - 1) / chunk;
    std::vector<float> partials(static_cast<size_t>(chunks));
#pragma omp parallel for if (n > kParallelMin)
    for (int64_t c = 0; c < chunks; ++c) {
      float lanes[16] = {};  // independent sums, which the compiler keeps in one vector register
      const int64_t end = std::min(n, (c + 1) * chunk);
      for (int64_t i = c * chunk; i < end; ++i) lanes[i % 16] += g[i] * g[i];
      float s = 0;
      for (const float lane : lanes) s += lane;
      partials[static_cast<size_t>(c)] = s;
    }
    for (const float p : partials) total += p;
  }
  *sum.data<float>() = static_cast<float>(total);
}

void half_copies(const std::vector<Tensor>& params, const std::vector<Tensor>& copies) {
  for (size_t i = 0; i < params.size(); ++i) {
    Tensor copy = copies[i];  // a handle to the same memory
    copy.copy_from(params[i]);
  }
}

void copy_grads(const std::vector<Tensor>& grads, const std::vector<Tensor>& homes) {
  for (size_t i = 0; i < homes.size(); ++i) {
    Tensor home = homes[i];  // a handle to the same memory
    if (grads[i].defined())
      home.copy_from(grads[i]);
    else
      home.zero_();
  }
}

}  // namespace heed::ops::cpu

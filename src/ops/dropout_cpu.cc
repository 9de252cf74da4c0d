// Dropout on the CPU.
//
// One Philox-4x32-10 call yields the four uniforms of a group of four consecutive elements, exactly as
// dropout_keep() defines the mask, so the generator runs once per four elements. Groups are independent
// (Philox is counter-based), so the loop over groups is split over threads and vectorised across groups
// (the 32x32->64-bit products become vector multiplies). The mask multiplies rather than selects, so the
// load of x is unconditional, which the vectoriser needs. The scalar dropout_keep() finishes a trailing
// partial group.
#include "heed/ops/dropout.h"
#include "ops/dropout_backends.h"

namespace heed::ops::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 14;  // below this, thread start-up costs more than the loop

// The residual's presence is a template flag and every operand a local value (a lambda's captured
// references defeat GCC's alias analysis), so that each instance stays a loop the compiler vectorises.
template <bool kResidual>
void dropout_loop(const float* px, const float* pr, float* py, int64_t n, float p, const RandomKey& key) {
  const int64_t groups = n / 4;
  const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for if (n > kParallelMin)
  for (int64_t g = 0; g < groups; ++g) {
    float u[4];
    philox_uniform4(key, static_cast<uint64_t>(g), u);
    for (int j = 0; j < 4; ++j) {
      const float v = px[4 * g + j] * (u[j] >= p ? scale : 0.0f);
      if constexpr (kResidual) py[4 * g + j] = pr[4 * g + j] + v;
      else py[4 * g + j] = v;
    }
  }
  for (int64_t i = groups * 4; i < n; ++i) {
    const float v = px[i] * (dropout_keep(key, static_cast<uint64_t>(i), p) ? scale : 0.0f);
    if constexpr (kResidual) py[i] = pr[i] + v;
    else py[i] = v;
  }
}

}  // namespace

void dropout_apply(const Tensor& x, const Tensor& residual, Tensor& y, float p, const RandomKey& key) {
  if (residual.defined())
    dropout_loop<true>(x.data<float>(), residual.data<float>(), y.data<float>(), x.numel(), p, key);
  else
    dropout_loop<false>(x.data<float>(), nullptr, y.data<float>(), x.numel(), p, key);
}

}  // namespace heed::ops::cpu

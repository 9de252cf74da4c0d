// y = dropout(act(x)) (+ a residual), forward and backward, in one pass over memory each.
//
// Dropout draws element i's uniform number from Philox group i / 4, lane i % 4 (ops::dropout_keep), so one
// Philox call serves four consecutive elements. Each thread owns eight consecutive flat elements, two
// Philox groups: 16 bytes of bf16 or fp16, which it reads and writes in one 16-byte access per operand
// (two for fp32), so a warp moves 512 contiguous bytes an instruction and a launch needs a thread per 8
// elements, not per one. A thread whose elements run past the end, or whose tensors are not 16-byte
// aligned (a view at an odd offset), takes them one at a time.
//
// The activation is a template parameter, so each kernel has its function inlined and no branch on it.
// GELU is x Phi(x) with Phi(x) = (1 + erf(x / sqrt 2)) / 2 and SiLU is x / (1 + e^-x), as the CPU op.
#include <type_traits>

#include "activation_dropout.h"
#include "common/launch.h"
#include "storage_types.h"

namespace heed::kernels {

namespace {

constexpr int kThreads = 256;
constexpr int kGroup = 4;               // elements a Philox call covers
constexpr int kPerThread = 2 * kGroup;  // elements a thread owns: 16 bytes of a 16-bit type

}  // namespace

namespace HEED_BACKEND {

template <Activation kAct>
__device__ __forceinline__ float activate(float v) {
  if constexpr (kAct == Activation::ReLU) return v > 0.0f ? v : 0.0f;
  if constexpr (kAct == Activation::GELU) return v * (0.5f + 0.5f * erff(v * 0.707106781f));
  if constexpr (kAct == Activation::SiLU) return v / (1.0f + expf(-v));
  return v;
}

// d act / dv.
template <Activation kAct>
__device__ __forceinline__ float activation_slope(float v) {
  if constexpr (kAct == Activation::ReLU) return v > 0.0f ? 1.0f : 0.0f;
  if constexpr (kAct == Activation::GELU) {
    constexpr float kInvSqrt2Pi = 0.398942280f;
    return (0.5f + 0.5f * erff(v * 0.707106781f)) + v * kInvSqrt2Pi * expf(-0.5f * v * v);
  }
  if constexpr (kAct == Activation::SiLU) {
    const float s = 1.0f / (1.0f + expf(-v));
    return s * (1.0f + v * (1.0f - s));
  }
  return 1.0f;
}

// The dropout factors (0 or 1 / (1 - p)) of the flat elements first .. first + kPerThread - 1 (first is a
// multiple of kPerThread, so they are whole Philox groups).
__device__ __forceinline__ void dropout_factors(const ActivationDropoutArgs& p, int64_t first,
                                                float factor[kPerThread]) {
  if (p.dropout_p == 0.0f) {
    for (int k = 0; k < kPerThread; ++k) factor[k] = 1.0f;
    return;
  }
  const float scale = 1.0f / (1.0f - p.dropout_p);
  for (int g = 0; g < kPerThread; g += kGroup) {
    float u[kGroup];
    philox_uniform4(p.dropout_key, static_cast<uint64_t>(first + g) / kGroup, u);
    for (int k = 0; k < kGroup; ++k) factor[g + k] = u[k] >= p.dropout_p ? scale : 0.0f;
  }
}

template <typename T, Activation kAct>
__global__ void __launch_bounds__(kThreads) activation_dropout_forward_kernel(ActivationDropoutArgs p) {
  const int64_t first = (int64_t(blockIdx.x) * kThreads + threadIdx.x) * kPerThread;
  if (first >= p.n) return;
  float factor[kPerThread];
  dropout_factors(p, first, factor);
  const T* x = static_cast<const T*>(p.x) + first;
  const T* residual = p.residual ? static_cast<const T*>(p.residual) + first : nullptr;
  T* y = static_cast<T*>(p.y) + first;
  if (first + kPerThread <= p.n && aligned_16(x, y) && (!residual || aligned_16(residual))) {
    float v[kPerThread], r[kPerThread] = {};
    load_floats(x, v);
    if (residual) load_floats(residual, r);
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) v[k] = r[k] + activate<kAct>(v[k]) * factor[k];
    store_floats(y, v);
    return;
  }
  for (int k = 0; k < kPerThread && first + k < p.n; ++k)
    y[k] = from_float<T>((residual ? to_float(residual[k]) : 0.0f) + activate<kAct>(to_float(x[k])) * factor[k]);
}

template <typename T, Activation kAct>
__global__ void __launch_bounds__(kThreads) activation_dropout_backward_kernel(ActivationDropoutArgs p) {
  const int64_t first = (int64_t(blockIdx.x) * kThreads + threadIdx.x) * kPerThread;
  if (first >= p.n) return;
  float factor[kPerThread];
  dropout_factors(p, first, factor);
  const T* x = static_cast<const T*>(p.x) + first;
  const T* dy = static_cast<const T*>(p.dy) + first;
  T* dx = static_cast<T*>(p.dx) + first;
  if (first + kPerThread <= p.n && aligned_16(x, dy, dx)) {
    float xv[kPerThread], g[kPerThread];
    load_floats(x, xv);
    load_floats(dy, g);
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) g[k] = g[k] * factor[k] * activation_slope<kAct>(xv[k]);
    store_floats(dx, g);
    return;
  }
  for (int k = 0; k < kPerThread && first + k < p.n; ++k)
    dx[k] = from_float<T>(to_float(dy[k]) * factor[k] * activation_slope<kAct>(to_float(x[k])));
}

// Calls body(T{}, std::integral_constant<Activation, act>{}).
template <typename Body>
void with_types(const ActivationDropoutArgs& a, const char* op, Body&& body) {
  with_storage_type(a.dtype, op, [&](auto storage) {
    switch (a.act) {
      case Activation::None: body(storage, std::integral_constant<Activation, Activation::None>{}); break;
      case Activation::ReLU: body(storage, std::integral_constant<Activation, Activation::ReLU>{}); break;
      case Activation::GELU: body(storage, std::integral_constant<Activation, Activation::GELU>{}); break;
      case Activation::SiLU: body(storage, std::integral_constant<Activation, Activation::SiLU>{}); break;
    }
  });
}

void check_args(const ActivationDropoutArgs& a, const char* op) {
  HEED_CHECK(a.n >= 0, "{}: needs n >= 0, got {}", op, a.n);
  HEED_CHECK(a.dropout_p >= 0.0f && a.dropout_p < 1.0f, "{}: dropout p must be in [0, 1), got {}", op,
             a.dropout_p);
}

// One thread per kPerThread elements.
dim3 group_blocks(int64_t n) {
  const int64_t groups = (n + kPerThread - 1) / kPerThread;
  return dim3(static_cast<unsigned>((groups + kThreads - 1) / kThreads));
}

}  // namespace HEED_BACKEND

template <>
void activation_dropout_forward<kBackend>(const ActivationDropoutArgs& a) {
  using namespace HEED_BACKEND;
  check_args(a, "activation_dropout_forward");
  if (a.n == 0) return;
  with_types(a, "activation_dropout_forward", [&](auto storage, auto act) {
    launch(activation_dropout_forward_kernel<decltype(storage), decltype(act)::value>, group_blocks(a.n),
           dim3(kThreads), 0, a.stream, a);
  });
}

template <>
void activation_dropout_backward<kBackend>(const ActivationDropoutArgs& a) {
  using namespace HEED_BACKEND;
  check_args(a, "activation_dropout_backward");
  if (a.n == 0) return;
  with_types(a, "activation_dropout_backward", [&](auto storage, auto act) {
    launch(activation_dropout_backward_kernel<decltype(storage), decltype(act)::value>, group_blocks(a.n),
           dim3(kThreads), 0, a.stream, a);
  });
}

}  // namespace heed::kernels

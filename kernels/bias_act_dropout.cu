// y = residual + dropout(act(x + bias)), forward and backward, in one pass over memory each.
//
// Dropout draws element i's uniform number from Philox group i / 4, lane i % 4 (ops::dropout_keep), so one
// Philox call serves four consecutive elements. The forward kernel therefore gives each thread one aligned
// group of four flat elements (threads of a warp cover 128 consecutive elements, so loads coalesce): one
// Philox call, four reads of x (and the residual), four writes of y. The bias column of an element is its
// flat index mod cols, stepped along the group rather than divided for each element.
//
// The backward pass also sums dx over rows for dbias, so it is column-tiled (column_sums.h): each lane
// owns four consecutive columns and walks rows of its block's row chunk, keeping four fp32 column sums in
// registers; the block's warps then meet in shared memory and one partial per column and chunk goes to
// the workspace, and a second small kernel adds the chunks in order. No atomics: dbias is the same on every
// run. A lane's four elements of a row start at flat index row * cols + col, which is not a multiple of
// four unless cols is, so they take one or two Philox calls.
//
// The activation is a template parameter, so each kernel has its function inlined and no branch on it.
// GELU is x Phi(x) with Phi(x) = (1 + erf(x / sqrt 2)) / 2 and SiLU is x / (1 + e^-x), as the CPU op.
#include <type_traits>

#include "bias_act_dropout.h"
#include "column_sums.h"
#include "common/launch.h"
#include "storage_types.h"

namespace heed::kernels {

namespace {

constexpr int kThreads = 256;
constexpr int kGroup = 4;  // elements a Philox call covers

}  // namespace

namespace HEED_BACKEND {

template <BiasActivation kAct>
__device__ __forceinline__ float activate(float v) {
  if constexpr (kAct == BiasActivation::ReLU) return v > 0.0f ? v : 0.0f;
  if constexpr (kAct == BiasActivation::GELU) return v * (0.5f + 0.5f * erff(v * 0.707106781f));
  if constexpr (kAct == BiasActivation::SiLU) return v / (1.0f + expf(-v));
  return v;
}

// d act / dv.
template <BiasActivation kAct>
__device__ __forceinline__ float activation_slope(float v) {
  if constexpr (kAct == BiasActivation::ReLU) return v > 0.0f ? 1.0f : 0.0f;
  if constexpr (kAct == BiasActivation::GELU) {
    constexpr float kInvSqrt2Pi = 0.398942280f;
    return (0.5f + 0.5f * erff(v * 0.707106781f)) + v * kInvSqrt2Pi * expf(-0.5f * v * v);
  }
  if constexpr (kAct == BiasActivation::SiLU) {
    const float s = 1.0f / (1.0f + expf(-v));
    return s * (1.0f + v * (1.0f - s));
  }
  return 1.0f;
}

__device__ __forceinline__ float element_of(const float u[kGroup], int k) {
  return k == 0 ? u[0] : k == 1 ? u[1] : k == 2 ? u[2] : u[3];
}

// The dropout factors (0 or 1 / (1 - p)) of flat elements first .. first + kGroup - 1.
__device__ __forceinline__ void dropout_factors(const BiasActDropoutArgs& p, int64_t first, float factor[kGroup]) {
  if (p.dropout_p == 0.0f) {
    for (int k = 0; k < kGroup; ++k) factor[k] = 1.0f;
    return;
  }
  const float scale = 1.0f / (1.0f - p.dropout_p);
  const uint64_t group = static_cast<uint64_t>(first) / kGroup;
  const int offset = static_cast<int>(first % kGroup);
  float u[kGroup], next[kGroup];
  philox_uniform4(p.dropout_key, group, u);
  if (offset != 0) philox_uniform4(p.dropout_key, group + 1, next);
  for (int k = 0; k < kGroup; ++k) {
    const int lane = offset + k;
    const float uniform = lane < kGroup ? element_of(u, lane) : element_of(next, lane - kGroup);
    factor[k] = uniform >= p.dropout_p ? scale : 0.0f;
  }
}

template <typename T, BiasActivation kAct>
__global__ void __launch_bounds__(kThreads) bias_act_dropout_forward_kernel(BiasActDropoutArgs p) {
  const int64_t n = p.rows * p.cols;
  const int64_t first = (int64_t(blockIdx.x) * kThreads + threadIdx.x) * kGroup;
  if (first >= n) return;
  float factor[kGroup];
  dropout_factors(p, first, factor);
  const T* x = static_cast<const T*>(p.x);
  const T* residual = static_cast<const T*>(p.residual);
  T* y = static_cast<T*>(p.y);
  int64_t col = first % p.cols;
#pragma unroll
  for (int k = 0; k < kGroup; ++k) {
    const int64_t i = first + k;
    if (i >= n) break;
    const float pre = to_float(x[i]) + (p.bias ? p.bias[col] : 0.0f);
    const float dropped = activate<kAct>(pre) * factor[k];
    y[i] = from_float<T>(residual ? to_float(residual[i]) + dropped : dropped);
    if (++col == p.cols) col = 0;
  }
}

template <typename T, BiasActivation kAct>
__global__ void __launch_bounds__(kColumnThreads) bias_act_dropout_backward_kernel(BiasActDropoutArgs p,
                                                                                   float* partials) {
  __shared__ float scratch[kColumnThreads * kGroup];
  const ColumnSlice s = column_slice<kGroup>(p.rows);
  const T* x = static_cast<const T*>(p.x);
  const T* dy = static_cast<const T*>(p.dy);
  T* dx = static_cast<T*>(p.dx);
  float bias[kGroup], column_sum[kGroup];
  for (int k = 0; k < kGroup; ++k) {
    bias[k] = p.bias && s.col + k < p.cols ? p.bias[s.col + k] : 0.0f;
    column_sum[k] = 0.0f;
  }
  if (s.col < p.cols)
    for (int64_t row = s.row; row < s.row_end; row += kColumnWarps) {
      const int64_t first = row * p.cols + s.col;
      float factor[kGroup];
      dropout_factors(p, first, factor);
#pragma unroll
      for (int k = 0; k < kGroup; ++k) {
        if (s.col + k >= p.cols) break;
        const int64_t i = first + k;
        const float d = to_float(dy[i]) * factor[k] * activation_slope<kAct>(to_float(x[i]) + bias[k]);
        dx[i] = from_float<T>(d);
        column_sum[k] += d;
      }
    }
  if (p.dbias) store_column_partial<kGroup>(column_sum, s, p.cols, partials + int64_t(blockIdx.y) * p.cols, scratch);
}

// Calls body(T{}, std::integral_constant<BiasActivation, act>{}).
template <typename Body>
void with_types(const BiasActDropoutArgs& a, const char* op, Body&& body) {
  with_storage_type(a.dtype, op, [&](auto storage) {
    switch (a.act) {
      case BiasActivation::None: body(storage, std::integral_constant<BiasActivation, BiasActivation::None>{}); break;
      case BiasActivation::ReLU: body(storage, std::integral_constant<BiasActivation, BiasActivation::ReLU>{}); break;
      case BiasActivation::GELU: body(storage, std::integral_constant<BiasActivation, BiasActivation::GELU>{}); break;
      case BiasActivation::SiLU: body(storage, std::integral_constant<BiasActivation, BiasActivation::SiLU>{}); break;
    }
  });
}

void check_args(const BiasActDropoutArgs& a, const char* op) {
  HEED_CHECK(a.rows >= 0 && a.cols > 0, "{}: needs rows >= 0 and cols > 0, got [{}, {}]", op, a.rows, a.cols);
  HEED_CHECK(a.dropout_p >= 0.0f && a.dropout_p < 1.0f, "{}: dropout p must be in [0, 1), got {}", op,
             a.dropout_p);
}

}  // namespace HEED_BACKEND

template <>
void bias_act_dropout_forward<kBackend>(const BiasActDropoutArgs& a) {
  using namespace HEED_BACKEND;
  check_args(a, "bias_act_dropout_forward");
  const int64_t groups = (a.rows * a.cols + kGroup - 1) / kGroup;
  if (groups == 0) return;
  with_types(a, "bias_act_dropout_forward", [&](auto storage, auto act) {
    launch(bias_act_dropout_forward_kernel<decltype(storage), decltype(act)::value>,
           dim3(static_cast<unsigned>((groups + kThreads - 1) / kThreads)), dim3(kThreads), 0, a.stream, a);
  });
}

template <>
size_t bias_act_dropout_backward_workspace_bytes<kBackend>(const BiasActDropoutArgs& a) {
  return a.dbias ? static_cast<size_t>(HEED_BACKEND::column_partial_count(a.rows) * a.cols) * sizeof(float) : 0;
}

template <>
void bias_act_dropout_backward<kBackend>(const BiasActDropoutArgs& a) {
  using namespace HEED_BACKEND;
  check_args(a, "bias_act_dropout_backward");
  float* partials = static_cast<float*>(a.workspace);
  if (a.rows > 0)
    with_types(a, "bias_act_dropout_backward", [&](auto storage, auto act) {
      launch(bias_act_dropout_backward_kernel<decltype(storage), decltype(act)::value>,
             column_partials_grid<kGroup>(a.rows, a.cols), dim3(kColumnThreads), 0, a.stream, a, partials);
    });
  if (a.dbias) sum_column_partials(partials, column_partial_count(a.rows), a.cols, a.cols, a.dbias, a.stream);
}

}  // namespace heed::kernels

// Label-smoothed cross-entropy, forward and backward, one block of kThreads threads per row of logits.
//
// Forward: the row is read once. Threads stride over it (consecutive threads, consecutive logits: the
// loads coalesce) keeping an online logsumexp pair, a running maximum m and sum s of e^(x - m) (a new
// maximum rescales s), and the plain sum of the logits that smoothing needs. The block then merges the
// pairs (the block maximum, and the sum of s e^(m - max)) and the logit sums in block_reduce's fixed
// order, and thread 0 reads x_target and writes the row's loss, nll and lse. One e^x per logit; nothing
// but three floats per row goes back to memory, as the vocabulary can be 32k-250k wide.
//
// Backward: dlogits = grad_scale (e^(x - lse) - eps / V) everywhere, less grad_scale (1 - eps) at the target:
// one read of the logits and one write of the gradient, from the saved lse; no probability tensor exists.
// An ignored row is written with zeros, without reading its logits.
//
// The math follows cross_entropy_cpu.cc, in fp32 (the CPU op finishes each row in double).
#include "common/launch.h"
#include "common/reductions.h"
#include "cross_entropy.h"
#include "storage_types.h"

namespace heed::kernels {

namespace {

constexpr int kThreads = 256;

}  // namespace

namespace HEED_BACKEND {

template <typename T>
__global__ void __launch_bounds__(kThreads) cross_entropy_forward_kernel(CrossEntropyArgs p) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const int32_t target = p.targets[row];
  if (target == p.ignore_index) {  // uniform over the block
    if (threadIdx.x == 0) p.loss[row] = p.nll[row] = p.lse[row] = 0.0f;
    return;
  }
  const T* x = static_cast<const T*>(p.logits) + row * p.classes;
  float run_max = -INFINITY, run_sum = 0.0f, sum_x = 0.0f;
  for (int64_t j = threadIdx.x; j < p.classes; j += kThreads) {
    const float v = to_float(x[j]);
    if (v > run_max) {
      run_sum = run_sum * expf(run_max - v) + 1.0f;
      run_max = v;
    } else {
      run_sum += expf(v - run_max);
    }
    sum_x += v;
  }
  const float row_max = block_max(run_max, scratch);
  // A thread that saw no logit has run_sum = 0 and run_max = -inf; skip it rather than form 0 * e^-inf.
  const float row_sum = block_sum(run_sum > 0.0f ? run_sum * expf(run_max - row_max) : 0.0f, scratch);
  sum_x = block_sum(sum_x, scratch);
  if (threadIdx.x == 0) {
    const float lse = row_max + logf(row_sum);
    const float nll = lse - to_float(x[target]);
    const float mean_nll = lse - sum_x / static_cast<float>(p.classes);
    p.lse[row] = lse;
    p.nll[row] = nll;
    p.loss[row] = (1.0f - p.smoothing) * nll + p.smoothing * mean_nll;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) cross_entropy_backward_kernel(CrossEntropyArgs p) {
  const int64_t row = blockIdx.x;
  const int32_t target = p.targets[row];
  T* dx = static_cast<T*>(p.dlogits) + row * p.classes;
  if (target == p.ignore_index) {
    for (int64_t j = threadIdx.x; j < p.classes; j += kThreads) dx[j] = from_float<T>(0.0f);
    return;
  }
  const T* x = static_cast<const T*>(p.logits) + row * p.classes;
  const float lse = p.lse[row];
  const float grad_scale = p.dloss ? p.grad_scale * *p.dloss : p.grad_scale;
  const float uniform = grad_scale * p.smoothing / static_cast<float>(p.classes);
  const float on_target = grad_scale * (1.0f - p.smoothing);
  for (int64_t j = threadIdx.x; j < p.classes; j += kThreads) {
    const float d = grad_scale * expf(to_float(x[j]) - lse) - uniform;
    dx[j] = from_float<T>(j == target ? d - on_target : d);
  }
}

void check_args(const CrossEntropyArgs& a, const char* op) {
  HEED_CHECK(a.rows >= 0 && a.classes > 0, "{}: logits must be [N, V] with V > 0, got [{}, {}]", op, a.rows,
             a.classes);
  HEED_CHECK(a.rows <= 0x7fffffff, "{}: {} rows exceed a grid's x dimension", op, a.rows);
}

}  // namespace HEED_BACKEND

template <>
void cross_entropy_forward<kBackend>(const CrossEntropyArgs& a) {
  using namespace HEED_BACKEND;
  check_args(a, "cross_entropy_forward");
  if (a.rows == 0) return;
  with_storage_type(a.dtype, "cross_entropy_forward", [&](auto storage) {
    launch(cross_entropy_forward_kernel<decltype(storage)>, dim3(static_cast<unsigned>(a.rows)), dim3(kThreads), 0,
           a.stream, a);
  });
}

template <>
void cross_entropy_backward<kBackend>(const CrossEntropyArgs& a) {
  using namespace HEED_BACKEND;
  check_args(a, "cross_entropy_backward");
  if (a.rows == 0) return;
  with_storage_type(a.dtype, "cross_entropy_backward", [&](auto storage) {
    launch(cross_entropy_backward_kernel<decltype(storage)>, dim3(static_cast<unsigned>(a.rows)), dim3(kThreads), 0,
           a.stream, a);
  });
}

}  // namespace heed::kernels

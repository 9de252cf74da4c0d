// Row softmax, forward and backward: one block of 256 threads per row.
//
// Forward reads the row twice (the maximum, then the sum of e^(x - max)) and a third time to write y, so
// the exponent never overflows and the largest term is 1. Backward reads dy and y once for the row's dot
// product and once more to write dx. Threads stride over the row, so consecutive threads touch
// consecutive elements (coalesced); the row-wide max and sums go through block_reduce, in a fixed order.
// Rows of a few thousand elements stay in L1/L2 between the sweeps; this kernel is for softmax as an op
// (decoding, the unfused attention baseline), not for training attention, which is fused. Log-softmax
// shares the forward pass's two sweeps and writes (x - max) - log(sum) in the third.
#include "common/elements.h"
#include "common/launch.h"
#include "common/reductions.h"
#include "softmax.h"

namespace heed::kernels {

namespace {
constexpr int kThreads = 256;
}  // namespace

namespace HEED_BACKEND {

// The row's maximum and the sum of e^(x - max), both block-wide (every thread gets them).
struct RowShift {
  float max, sum;
};

__device__ RowShift row_shift(const SoftmaxArgs& p, int64_t base, float* scratch) {
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < p.cols; j += kThreads) mx = fmaxf(mx, load_element(p.x, base + j, p.dtype));
  mx = block_max(mx, scratch);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < p.cols; j += kThreads) sum += expf(load_element(p.x, base + j, p.dtype) - mx);
  return {mx, block_sum(sum, scratch)};
}

__global__ void __launch_bounds__(kThreads) softmax_forward_kernel(SoftmaxArgs p) {
  __shared__ float scratch[32];
  const int64_t base = blockIdx.x * p.cols;
  const RowShift shift = row_shift(p, base, scratch);
  const float inv = 1.0f / shift.sum;
  for (int64_t j = threadIdx.x; j < p.cols; j += kThreads)
    store_element(p.out, base + j, p.dtype, expf(load_element(p.x, base + j, p.dtype) - shift.max) * inv);
}

__global__ void __launch_bounds__(kThreads) log_softmax_kernel(SoftmaxArgs p) {
  __shared__ float scratch[32];
  const int64_t base = blockIdx.x * p.cols;
  const RowShift shift = row_shift(p, base, scratch);
  const float log_sum = logf(shift.sum);
  for (int64_t j = threadIdx.x; j < p.cols; j += kThreads)
    store_element(p.out, base + j, p.dtype, (load_element(p.x, base + j, p.dtype) - shift.max) - log_sum);
}

__global__ void __launch_bounds__(kThreads) softmax_backward_kernel(SoftmaxArgs p) {
  __shared__ float scratch[32];
  const int64_t base = blockIdx.x * p.cols;
  float dot = 0.0f;
  for (int64_t j = threadIdx.x; j < p.cols; j += kThreads)
    dot += load_element(p.dy, base + j, p.dtype) * load_element(p.y, base + j, p.dtype);
  dot = block_sum(dot, scratch);
  for (int64_t j = threadIdx.x; j < p.cols; j += kThreads) {
    const float y = load_element(p.y, base + j, p.dtype);
    store_element(p.out, base + j, p.dtype, y * (load_element(p.dy, base + j, p.dtype) - dot));
  }
}

}  // namespace HEED_BACKEND

template <>
void softmax_forward<kBackend>(const SoftmaxArgs& args) {
  if (args.rows == 0) return;
  HEED_BACKEND::launch(HEED_BACKEND::softmax_forward_kernel, dim3(static_cast<unsigned>(args.rows)), dim3(kThreads),
                       0, args.stream, args);
}

template <>
void softmax_backward<kBackend>(const SoftmaxArgs& args) {
  if (args.rows == 0) return;
  HEED_BACKEND::launch(HEED_BACKEND::softmax_backward_kernel, dim3(static_cast<unsigned>(args.rows)),
                       dim3(kThreads), 0, args.stream, args);
}

template <>
void log_softmax<kBackend>(const SoftmaxArgs& args) {
  if (args.rows == 0) return;
  HEED_BACKEND::launch(HEED_BACKEND::log_softmax_kernel, dim3(static_cast<unsigned>(args.rows)), dim3(kThreads), 0,
                       args.stream, args);
}

}  // namespace heed::kernels

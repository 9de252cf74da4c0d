// Multi-tensor Adam/AdamW: every parameter tensor of a model in one launch.
//
// A model has hundreds of tensors, from a bias of a few hundred elements to an embedding of tens of
// millions; one launch per tensor would spend more time launching than updating the small ones. So the
// tensors are cut into chunks of kAdamChunkElements, numbered consecutively across tensors
// (adam_assign_chunks), and block b updates chunk b: it finds its tensor by a binary search over the
// tensors' first_chunk (a few cached loads of the small descriptor array), then its threads stride over
// the chunk, consecutive threads on consecutive elements. Each element is read once (param, grad, m, v)
// and written once (param, m, v, and the 16-bit copy when the tensor has one), which is the whole cost:
// the update is memory-bound.
//
// The arithmetic is the CPU op's (adam_cpu.cc), in the same order; nvcc may contract a multiply and an add
// into one FMA, so results can differ from the CPU's in the last bit or two.
//
// Clipping by the global norm needs the sum of squares of every gradient before any is used. The trainer
// used to fetch one per-tensor sum to the host for each of ~250 tensors: three launches and a host
// synchronisation each. grad_squares_kernel walks the same chunks (one block each, 256 threads, the
// block's sum by common/reductions.h into one float a chunk: coalesced 4-byte loads, memory-bound like
// the update), sum_chunk_squares_kernel adds the partials in double in one block, and adam_kernel reads
// the result: each block derives the clip factor from it (clip_gradients, one cached 4-byte load) and
// returns at once when the norm is not finite. The step never waits for the host.
//
// half_copies_kernel walks the same chunks to round every parameter into the 16-bit copy a forward pass
// reads (autograd::ParameterCopies): one launch a step where a cast per weight took ~190 for base.
//
// copy_grads_kernel walks chunks of a table in its launch parameters to move the first gradient
// contributions of a backward pass into their slices of the one gradient buffer (autograd::settle_grads),
// with zeros for a parameter without one: a launch per 100 tensors where a copy each took one per tensor.
#include "adam.h"
#include "common/launch.h"
#include "common/reductions.h"
#include "storage_types.h"

namespace heed::kernels {

namespace {

constexpr int kThreads = 256;

}  // namespace

namespace HEED_BACKEND {

// The tensor that holds chunk `chunk`: the last with first_chunk <= chunk (tensors with no elements
// share their successor's first_chunk and are passed over).
template <typename Tensor>
__device__ __forceinline__ int tensor_of_chunk(const Tensor* tensors, int count, int64_t chunk) {
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (tensors[mid].first_chunk <= chunk)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

template <typename Half16>
__global__ void __launch_bounds__(kThreads) adam_kernel(AdamArgs p) {
  const int64_t chunk = blockIdx.x;
  const AdamTensor t = p.tensors[tensor_of_chunk(p.tensors, p.count, chunk)];
  AdamStepScalars s = p.step;
  if (p.grad_squares) {
    const ClipResult clip = clip_gradients(*p.grad_squares, p.clip_norm, p.loss_scale);
    if (clip.skip) return;
    s.grad_scale *= clip.grad_scale;
  }
  const int64_t begin = (chunk - t.first_chunk) * kAdamChunkElements;
  const int64_t end = min(t.numel, begin + kAdamChunkElements);
  Half16* half_param = static_cast<Half16*>(t.half_param);
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
    const float g = t.grad[i] * s.grad_scale + s.coupled_decay * t.param[i];
    const float m = s.beta1 * t.m[i] + (1.0f - s.beta1) * g;
    const float v = s.beta2 * t.v[i] + (1.0f - s.beta2) * g * g;
    t.m[i] = m;
    t.v[i] = v;
    const float updated = t.param[i] * s.decay - s.step_size * m / (sqrtf(v) / s.bias2_sqrt + s.eps);
    t.param[i] = updated;
    if (half_param) half_param[i] = from_float<Half16>(updated);
  }
}

__global__ void __launch_bounds__(kThreads) grad_squares_kernel(GradSquaresArgs p) {
  __shared__ float scratch[32];
  const int64_t chunk = blockIdx.x;
  const AdamTensor& t = p.tensors[tensor_of_chunk(p.tensors, p.count, chunk)];
  const int64_t begin = (chunk - t.first_chunk) * kAdamChunkElements;
  const int64_t end = min(t.numel, begin + kAdamChunkElements);
  float sum = 0.0f;
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) sum += t.grad[i] * t.grad[i];
  sum = block_sum(sum, scratch);
  if (threadIdx.x == 0) p.partials[chunk] = sum;
}

// One chunk a block, consecutive threads on consecutive elements: coalesced 4-byte loads and 2-byte
// stores, memory-bound like the update.
template <typename Half16>
__global__ void __launch_bounds__(kThreads) half_copies_kernel(HalfCopiesArgs p) {
  const int64_t chunk = blockIdx.x;
  const AdamTensor t = p.tensors[tensor_of_chunk(p.tensors, p.count, chunk)];
  const int64_t begin = (chunk - t.first_chunk) * kAdamChunkElements;
  const int64_t end = min(t.numel, begin + kAdamChunkElements);
  Half16* copy = static_cast<Half16*>(t.half_param);
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) copy[i] = from_float<Half16>(t.param[i]);
}

// One chunk a block, as half_copies_kernel: coalesced 4-byte loads and stores, memory-bound.
__global__ void __launch_bounds__(kThreads) copy_grads_kernel(CopyGradsArgs p) {
  const int64_t chunk = blockIdx.x;
  const GradCopy c = p.copies[tensor_of_chunk(p.copies, p.count, chunk)];
  const int64_t begin = (chunk - c.first_chunk) * kAdamChunkElements;
  const int64_t end = min(c.numel, begin + kAdamChunkElements);
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) c.home[i] = c.grad ? c.grad[i] : 0.0f;
}

constexpr int kSumThreads = 1024;

__global__ void __launch_bounds__(kSumThreads) sum_chunk_squares_kernel(GradSquaresArgs p) {
  __shared__ double partial[kSumThreads];
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < p.chunks; i += kSumThreads) sum += p.partials[i];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int half = kSumThreads / 2; half > 0; half /= 2) {  // a fixed pairing: the same bits every run
    if (static_cast<int>(threadIdx.x) < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) *p.sum = static_cast<float>(partial[0]);
}

// The grid of a launch with one block a chunk, after checking the counts.
dim3 chunk_grid(const char* op, int count, int64_t chunks) {
  HEED_CHECK(count >= 0 && chunks >= 0, "{}: {} tensors, {} chunks", op, count, chunks);
  HEED_CHECK(chunks <= 0x7fffffff, "{}: {} chunks exceed a grid's x dimension", op, chunks);
  return dim3(static_cast<unsigned>(chunks));
}

// Calls body(T{}) with T the 16-bit type of `half`.
template <typename Body>
void with_half(Half half, Body&& body) {
  if (half == Half::BF16)
    body(__nv_bfloat16{});
  else
    body(__half{});
}

}  // namespace HEED_BACKEND

template <>
void grad_squares<kBackend>(const GradSquaresArgs& a) {
  using namespace HEED_BACKEND;
  const dim3 grid = chunk_grid("grad_squares", a.count, a.chunks);
  if (a.chunks > 0) launch(grad_squares_kernel, grid, dim3(kThreads), 0, a.stream, a);
  launch(sum_chunk_squares_kernel, dim3(1), dim3(kSumThreads), 0, a.stream, a);
}

template <>
void adam_update<kBackend>(const AdamArgs& a) {
  using namespace HEED_BACKEND;
  const dim3 grid = chunk_grid("adam_update", a.count, a.chunks);
  if (a.chunks == 0) return;
  with_half(a.half_dtype, [&](auto half) { launch(adam_kernel<decltype(half)>, grid, dim3(kThreads), 0, a.stream, a); });
}

template <>
void half_copies<kBackend>(const HalfCopiesArgs& a) {
  using namespace HEED_BACKEND;
  const dim3 grid = chunk_grid("half_copies", a.count, a.chunks);
  if (a.chunks == 0) return;
  with_half(a.half_dtype,
            [&](auto half) { launch(half_copies_kernel<decltype(half)>, grid, dim3(kThreads), 0, a.stream, a); });
}

template <>
void copy_grads<kBackend>(const CopyGradsArgs& a) {
  using namespace HEED_BACKEND;
  HEED_CHECK(a.count <= kGradCopiesPerLaunch, "copy_grads: {} entries, at most {} a launch", a.count,
             kGradCopiesPerLaunch);
  const dim3 grid = chunk_grid("copy_grads", a.count, a.chunks);
  if (a.chunks > 0) launch(copy_grads_kernel, grid, dim3(kThreads), 0, a.stream, a);
}

}  // namespace heed::kernels

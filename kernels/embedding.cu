// Embedding lookup (forward) and scatter-add (backward).
//
// Forward: a warp per position copies (and scales) one weight row; lanes stride over the row, so each
// load and store instruction of the warp touches consecutive elements. Rows of popular ids are read by
// many warps and stay in L2.
//
// Backward, two ways:
//  - Deterministic, when the caller passes the positions grouped by id (embedding_group_positions, a
//    counting sort on the host, where the batch's ids are made): a block per vocabulary row, its threads
//    striding over the row's columns, adds the dy rows of that id's positions in increasing position order
//    and scales the sum, exactly the CPU op's order; rows with no position (or pad_id) are written with
//    zeros. Every row of dweight is written once by one block: no atomics, the same bits on every run.
//  - Otherwise, by atomics: dweight is zeroed, then a warp per position adds scale * dy into its id's row
//    with float atomicAdd. Positions that share an id race, so the order of their additions (and the last
//    bits of the sum) vary between runs; the result agrees with the deterministic path to rounding.
#include <algorithm>

#include "common/launch.h"
#include "embedding.h"
#include "storage_types.h"

namespace heed::kernels {

namespace {

constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = kThreads / 32;

}  // namespace

namespace HEED_BACKEND {

__device__ __forceinline__ int64_t warp_position() { return int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; }

template <typename T>
__global__ void __launch_bounds__(kThreads) embedding_forward_kernel(EmbeddingArgs p) {
  const int64_t position = warp_position();
  if (position >= p.positions) return;
  const T* row = static_cast<const T*>(p.weight) + static_cast<int64_t>(p.ids[position]) * p.dim;
  T* out = static_cast<T*>(p.out) + position * p.dim;
  for (int64_t j = threadIdx.x % 32; j < p.dim; j += 32) out[j] = from_float<T>(p.scale * to_float(row[j]));
}

template <typename T>
__global__ void __launch_bounds__(kThreads) embedding_backward_grouped_kernel(EmbeddingArgs p) {
  const int64_t id = blockIdx.x;
  const int32_t begin = p.id_starts[id], end = id == p.pad_id ? begin : p.id_starts[id + 1];
  if (p.accumulate && begin == end) return;  // nothing to add: the row is not even read
  const T* dy = static_cast<const T*>(p.dy);
  float* row = p.dweight + id * p.dim;
  for (int64_t j = threadIdx.x; j < p.dim; j += kThreads) {
    float sum = 0.0f;
    for (int32_t k = begin; k < end; ++k) sum += to_float(dy[static_cast<int64_t>(p.positions_by_id[k]) * p.dim + j]);
    row[j] = p.accumulate ? row[j] + sum * p.scale : sum * p.scale;
  }
}

__global__ void __launch_bounds__(kThreads) zero_kernel(float* data, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += int64_t(gridDim.x) * kThreads)
    data[i] = 0.0f;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) embedding_backward_atomic_kernel(EmbeddingArgs p) {
  const int64_t position = warp_position();
  if (position >= p.positions || p.ids[position] == p.pad_id) return;
  const T* dy = static_cast<const T*>(p.dy) + position * p.dim;
  float* row = p.dweight + static_cast<int64_t>(p.ids[position]) * p.dim;
  for (int64_t j = threadIdx.x % 32; j < p.dim; j += 32) atomicAdd(&row[j], p.scale * to_float(dy[j]));
}

dim3 warp_per_position_grid(int64_t positions) {
  return dim3(static_cast<unsigned>((positions + kWarpsPerBlock - 1) / kWarpsPerBlock));
}

void check_args(const EmbeddingArgs& a, const char* op) {
  HEED_CHECK(a.positions >= 0 && a.vocab > 0 && a.dim > 0, "{}: needs positions >= 0, vocab > 0 and dim > 0, got {}, {}, {}",
             op, a.positions, a.vocab, a.dim);
  HEED_CHECK(a.vocab <= 0x7fffffff && a.positions <= 0x7fffffff, "{}: vocab {} or positions {} exceed int32 indexing",
             op, a.vocab, a.positions);
  HEED_CHECK((a.id_starts == nullptr) == (a.positions_by_id == nullptr),
             "{}: pass both id_starts and positions_by_id, or neither", op);
}

}  // namespace HEED_BACKEND

template <>
void embedding_forward<kBackend>(const EmbeddingArgs& a) {
  using namespace HEED_BACKEND;
  check_args(a, "embedding_forward");
  if (a.positions == 0) return;
  with_storage_type(a.dtype, "embedding_forward", [&](auto storage) {
    launch(embedding_forward_kernel<decltype(storage)>, warp_per_position_grid(a.positions), dim3(kThreads), 0,
           a.stream, a);
  });
}

template <>
void embedding_backward<kBackend>(const EmbeddingArgs& a) {
  using namespace HEED_BACKEND;
  check_args(a, "embedding_backward");
  with_storage_type(a.dtype, "embedding_backward", [&](auto storage) {
    using T = decltype(storage);
    if (a.positions_by_id) {
      launch(embedding_backward_grouped_kernel<T>, dim3(static_cast<unsigned>(a.vocab)), dim3(kThreads), 0, a.stream,
             a);
      return;
    }
    const int64_t n = a.vocab * a.dim;
    if (!a.accumulate)
      launch(zero_kernel, dim3(static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535))),
             dim3(kThreads), 0, a.stream, a.dweight, n);
    if (a.positions > 0)
      launch(embedding_backward_atomic_kernel<T>, warp_per_position_grid(a.positions), dim3(kThreads), 0, a.stream,
             a);
  });
}

}  // namespace heed::kernels

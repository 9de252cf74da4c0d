// Deterministic column sums of a [rows, cols] quantity that a kernel computes on the fly: the gradients
// of LayerNorm's gamma and beta (layer_norm.cu) and the bias gradients (sum_rows, reduce.cu).
//
// Two stages and no atomics, so the bits are the same on every run:
//  1. A grid of (column tiles) x (row chunks). A block of kColumnWarps warps owns 32 kColumnsPerLane
//     columns (kColumnsPerLane consecutive ones a lane, so each warp's loads of a row are contiguous) and
//     kRowsPerPartial rows; warp w takes rows w, w + kColumnWarps, ... of the chunk. The warps' sums meet
//     in shared memory and are added in warp order into one partial per (chunk, column), written to a
//     workspace.
//  2. sum_column_partials: a block of kColumnWarps warps per 32 columns; warp w adds chunks w,
//     w + kColumnWarps, ... of its lane's column in double, and the warps' sums meet in shared memory
//     and are added in warp order (double, like the CPU ops' chunk sums, so the order costs nothing at
//     fp32) into the fp32 result.
// The work per thread is bounded in stage 1 (kRowsPerPartial / kColumnWarps rows) and spread over the
// warps in stage 2 (a 25,000-row batch has 196 chunks: 25 loads a thread, where one thread per column
// made 196 one after another), so a long sequence of rows is spread over many blocks and warps instead
// of serialising in one thread per column.
#pragma once

#include "common/device.h"
#include "common/launch.h"

namespace heed::kernels::HEED_BACKEND {

inline constexpr int kColumnWarps = 8;
inline constexpr int kColumnThreads = 32 * kColumnWarps;
inline constexpr int64_t kRowsPerPartial = 128;

inline int64_t column_partial_count(int64_t rows) { return (rows + kRowsPerPartial - 1) / kRowsPerPartial; }

// Stage 1's grid for a [rows, cols] quantity, with kColumnThreads threads a block and each lane owning
// kColumnsPerLane consecutive columns (a block's tile is 32 kColumnsPerLane columns wide).
template <int kColumnsPerLane>
dim3 column_partials_grid(int64_t rows, int64_t cols) {
  constexpr int64_t tile = 32 * kColumnsPerLane;
  const int64_t chunks = column_partial_count(rows);
  HEED_CHECK(chunks <= 65535, "column sums: {} rows need {} row chunks, more than a grid's y dimension holds",
             rows, chunks);
  return dim3(static_cast<unsigned>((cols + tile - 1) / tile), static_cast<unsigned>(chunks));
}

// Where a stage-1 thread works: its first column col (it owns col .. col + kColumnsPerLane - 1, some
// possibly past the last column: such a thread still takes part in the barriers) and its first row; it
// then steps by kColumnWarps rows while row < row_end.
struct ColumnSlice {
  int64_t col, row, row_end;
};

template <int kColumnsPerLane>
__device__ __forceinline__ ColumnSlice column_slice(int64_t rows) {
  ColumnSlice s;
  s.col = (int64_t(blockIdx.x) * 32 + threadIdx.x % 32) * kColumnsPerLane;
  const int64_t chunk_begin = int64_t(blockIdx.y) * kRowsPerPartial;
  s.row = chunk_begin + threadIdx.x / 32;
  s.row_end = min(rows, chunk_begin + kRowsPerPartial);
  return s;
}

// Adds the kColumnWarps warps' values of each column in warp order, and warp 0 stores the sums at
// partial[col ...] (partial = this chunk's row of the workspace). `scratch` holds
// kColumnThreads * kColumnsPerLane floats. Every thread of the block must call it. It starts with a
// barrier, so whatever the block did with scratch before (an earlier call, as LayerNorm's backward makes
// for gamma and then beta) is over; it needs none at its end, since every caller leaves scratch alone
// after its last call.
template <int kColumnsPerLane>
__device__ __forceinline__ void store_column_partial(const float (&v)[kColumnsPerLane], const ColumnSlice& s,
                                                     int64_t cols, float* partial, float* scratch) {
  __syncthreads();
  for (int k = 0; k < kColumnsPerLane; ++k) scratch[threadIdx.x * kColumnsPerLane + k] = v[k];
  __syncthreads();
  if (threadIdx.x < 32)
    for (int k = 0; k < kColumnsPerLane && s.col + k < cols; ++k) {
      float sum = 0.0f;
      for (int w = 0; w < kColumnWarps; ++w) sum += scratch[(w * 32 + threadIdx.x) * kColumnsPerLane + k];
      partial[s.col + k] = sum;
    }
}

// A template (on kColumnWarps), so that the header may define it in every kernel file that includes it.
template <int kWarps>
__global__ void __launch_bounds__(32 * kWarps)
    sum_column_partials_kernel(const float* partials, int64_t count, int64_t stride, int64_t cols, float* out) {
  __shared__ double scratch[32 * kWarps];
  const int64_t col = int64_t(blockIdx.x) * 32 + threadIdx.x % 32;
  double sum = 0.0;
  if (col < cols)
    for (int64_t c = threadIdx.x / 32; c < count; c += kWarps) sum += partials[c * stride + col];
  scratch[threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.x < 32 && col < cols) {
    double total = 0.0;
    for (int w = 0; w < kWarps; ++w) total += scratch[w * 32 + threadIdx.x];
    out[col] = static_cast<float>(total);
  }
}

// Stage 2: out[col] = sum over c < count of partials[c * stride + col], for col < cols.
inline void sum_column_partials(const float* partials, int64_t count, int64_t stride, int64_t cols, float* out,
                                Stream stream) {
  launch(sum_column_partials_kernel<kColumnWarps>, dim3(static_cast<unsigned>((cols + 31) / 32)), dim3(kColumnThreads), 0, stream,
         partials, count, stride, cols, out);
}

}  // namespace heed::kernels::HEED_BACKEND

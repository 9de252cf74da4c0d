// The simulator's test kernels: small, each exercising one primitive or one misuse (see the header).
#include "common/device.h"
#include "common/launch.h"
#include "common/ptx.h"
#include "sim_test_kernels.h"

namespace heed::kernels::HEED_BACKEND {

__device__ __forceinline__ uint32_t pack(uint16_t lo, uint16_t hi) { return lo | static_cast<uint32_t>(hi) << 16; }

template <bool kBf16>
__global__ void mma_kernel(const uint16_t* a, const uint16_t* b, const float* c, float* d) {
  const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
  auto A = [&](int r, int k) { return a[r * 16 + k]; };
  auto B = [&](int k, int n) { return b[k * 8 + n]; };
  const uint32_t ra[4] = {pack(A(g, 2 * t), A(g, 2 * t + 1)), pack(A(g + 8, 2 * t), A(g + 8, 2 * t + 1)),
                          pack(A(g, 2 * t + 8), A(g, 2 * t + 9)), pack(A(g + 8, 2 * t + 8), A(g + 8, 2 * t + 9))};
  const uint32_t rb[2] = {pack(B(2 * t, g), B(2 * t + 1, g)), pack(B(2 * t + 8, g), B(2 * t + 9, g))};
  const float rc[4] = {c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t], c[(g + 8) * 8 + 2 * t + 1]};
  float rd[4];
  if (kBf16) mma_m16n8k16_bf16(rd, ra, rb, rc);
  else mma_m16n8k16_f16(rd, ra, rb, rc);
  d[g * 8 + 2 * t] = rd[0];
  d[g * 8 + 2 * t + 1] = rd[1];
  d[(g + 8) * 8 + 2 * t] = rd[2];
  d[(g + 8) * 8 + 2 * t + 1] = rd[3];
}

template <int kMatrices, bool kTrans>
__global__ void ldmatrix_kernel(const uint16_t* m, uint32_t* out) {
  __shared__ __align__(16) uint16_t tile[4 * 64];
  const int lane = threadIdx.x;
  // Rows are where the lanes' addresses say, not where a contiguous tile would have them: matrix j is
  // stored in reverse row order, at the place of matrix j + 1.
  auto stored_row = [](int matrix, int row) { return (matrix + 1) % kMatrices * 64 + (7 - row) * 8; };
  for (int i = lane; i < kMatrices * 64; i += 32) tile[stored_row(i / 64, i / 8 % 8) + i % 8] = m[i];
  __syncwarp();
  // Lane l gives the address of row l % 8 of matrix l / 8; the PTX ISA ignores lanes past the last matrix.
  const uint16_t* row = lane < 8 * kMatrices ? tile + stored_row(lane / 8, lane % 8) : nullptr;
  uint32_t r[4];
  if (kMatrices == 4) kTrans ? ldmatrix_x4_trans(r, row) : ldmatrix_x4(r, row);
  else kTrans ? ldmatrix_x2_trans(r, row) : ldmatrix_x2(r, row);
  for (int j = 0; j < kMatrices; ++j) out[lane * kMatrices + j] = r[j];
}

__global__ void shuffle_kernel(int* out) {
  const int lane = threadIdx.x;
  const unsigned full = 0xffffffffu;
  out[0 * 32 + lane] = __shfl_xor_sync(full, lane * 10, 5);
  out[1 * 32 + lane] = __shfl_down_sync(full, lane, 3);
  out[2 * 32 + lane] = __shfl_up_sync(full, lane, 3);
  out[3 * 32 + lane] = __shfl_sync(full, lane * 7, 31 - lane);
  out[4 * 32 + lane] = __shfl_down_sync(full, lane, 3, 8);  // within groups of 8 lanes
  out[5 * 32 + lane] = static_cast<int>(__ballot_sync(full, lane % 3 == 0));
  out[6 * 32 + lane] = __any_sync(full, lane == 17) + 2 * __all_sync(full, lane < 32) + 4 * __all_sync(full, lane < 31);
  out[7 * 32 + lane] = static_cast<int>(__shfl_xor_sync(full, lane + 0.5f, 1) * 2);
  out[8 * 32 + lane] = __shfl_xor_sync(full, lane, 8, 8);  // groups of 8 may read earlier groups only
  out[9 * 32 + lane] = __shfl_sync(full, lane, 9, 8);       // lane 9 % 8 of each group of 8
}

// Every thread of a 3-d grid of 3-d blocks writes what it sees of the builtins at its own place.
__global__ void builtins_kernel(int* out) {
  const int block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  const int thread = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  int* mine = out + (block * blockDim.x * blockDim.y * blockDim.z + thread) * 6;
  mine[0] = threadIdx.x, mine[1] = threadIdx.y, mine[2] = threadIdx.z;
  mine[3] = blockIdx.x, mine[4] = blockIdx.y, mine[5] = blockIdx.z;
}

// A block of 48 threads: its second warp has lanes 0..15 only. A full-mask xor shuffle across 16 lanes
// reads lanes that do not exist there.
__global__ void partial_warp_kernel(float* out) {
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<float>(threadIdx.x), 16);
}

// Thread 0 of each block takes the next ticket: tickets[i] is the i-th block to get there.
__global__ void block_order_kernel(int* next_ticket, int* tickets) {
  if (threadIdx.x == 0) tickets[atomicAdd(next_ticket, 1)] = static_cast<int>(blockIdx.x);
}

// Row softmax with 128 threads a row (the simulator's speed benchmark): each thread keeps its share of the
// row in registers, and the max and the sum go through warp shuffles and one shared slot per warp.
__device__ float block_allreduce(float v, bool is_max) {
  __shared__ float partial[4];
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other = __shfl_xor_sync(0xffffffffu, v, offset);
    v = is_max ? fmaxf(v, other) : v + other;
  }
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
  __syncthreads();
  v = partial[0];
  for (int w = 1; w < 4; ++w) v = is_max ? fmaxf(v, partial[w]) : v + partial[w];
  __syncthreads();
  return v;
}

__global__ void softmax_kernel(const float* in, int cols, float* out) {
  const float* row = in + static_cast<int64_t>(blockIdx.x) * cols;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < cols; j += 128) mx = fmaxf(mx, row[j]);
  mx = block_allreduce(mx, true);
  float sum = 0.0f;
  for (int j = threadIdx.x; j < cols; j += 128) sum += expf(row[j] - mx);
  const float inv = 1.0f / block_allreduce(sum, false);
  float* out_row = out + static_cast<int64_t>(blockIdx.x) * cols;
  for (int j = threadIdx.x; j < cols; j += 128) out_row[j] = expf(row[j] - mx) * inv;
}

__global__ void neighbour_sums_kernel(const float* in, int chunks, bool missing_barrier, float* out) {
  __shared__ float buffer[256];
  __shared__ float total;
  const int tid = threadIdx.x;
  if (tid == 0) total = 0.0f;
  for (int c = 0; c < chunks; ++c) {
    buffer[tid] = in[(blockIdx.x * chunks + c) * 256 + tid];
    __syncthreads();
    atomicAdd(&total, buffer[(tid + 1) % 256]);
    if (!missing_barrier) __syncthreads();  // nobody may overwrite the buffer before all have read it
  }
  __syncthreads();
  if (tid == 0) out[blockIdx.x] = total;
}

__global__ void atomics_kernel(int* count, float* sum) {
  atomicAdd(count, 1);
  atomicAdd(sum, static_cast<float>(blockIdx.x * blockDim.x + threadIdx.x));
}

__global__ void async_copy_kernel(const float* in, bool wait, float* out) {
  float* tile = dynamic_shared_memory<float>();
  const int tid = threadIdx.x;
  cp_async_16(tile + 4 * tid, in + 4 * tid);
  cp_async_commit();
  if (wait) cp_async_wait<0>();
  __syncthreads();
  const int from = (tid + 1) % blockDim.x;
  for (int i = 0; i < 4; ++i) out[4 * tid + i] = tile[4 * from + i];
}

// Double-buffered like the attention kernels: chunk c + 1 is copied into one buffer while chunk c is read
// from the other. 64 threads copy 4 floats each; each thread reads its neighbour's 4.
__global__ void pipelined_sums_kernel(const float* in, int chunks, bool missing_barrier, float* out) {
  float* buffers = dynamic_shared_memory<float>();  // 2 x 256
  __shared__ float total;
  const int tid = threadIdx.x;
  if (tid == 0) total = 0.0f;
  cp_async_16(buffers + 4 * tid, in + 4 * tid);
  cp_async_commit();
  for (int c = 0; c < chunks; ++c) {
    if (c + 1 < chunks) {
      cp_async_16(buffers + (c + 1) % 2 * 256 + 4 * tid, in + (c + 1) * 256 + 4 * tid);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const float* piece = buffers + c % 2 * 256 + 4 * ((tid + 1) % 64);
    atomicAdd(&total, piece[0] + piece[1] + piece[2] + piece[3]);
    if (!missing_barrier) __syncthreads();  // the next prefetch overwrites this buffer
  }
  __syncthreads();
  if (tid == 0) *out = total;
}

__global__ void partial_barrier_kernel() {
  if (threadIdx.x >= 16) return;
  __syncthreads();
}

__global__ void missing_lane_kernel() {
  if (threadIdx.x == 5) return;
  __shfl_sync(0xffffffffu, 1, 0);
}

__global__ void deadlock_kernel() {
  if (threadIdx.x < 16) __syncthreads();
  else __syncwarp();
}

__global__ void disagreeing_lanes_kernel() {
  if (threadIdx.x % 2 == 0) __shfl_xor_sync(0xffffffffu, 1, 1);
  else __syncwarp();
}

__global__ void mma_in_partial_warp_kernel() {
  const uint32_t a[4] = {}, b[2] = {};
  const float c[4] = {};
  float d[4];
  mma_m16n8k16_bf16(d, a, b, c);
}

__global__ void throwing_kernel() {
  HEED_CHECK(threadIdx.x != 7, "thread {} refuses", threadIdx.x);
}

}  // namespace heed::kernels::HEED_BACKEND

namespace heed::sim_tests {

namespace k = heed::kernels::HEED_BACKEND;

void mma(bool bf16, const uint16_t* a, const uint16_t* b, const float* c, float* d) {
  k::launch(bf16 ? k::mma_kernel<true> : k::mma_kernel<false>, dim3(1), dim3(32), 0, nullptr, a, b, c, d);
}

void ldmatrix(int matrices, bool trans, const uint16_t* m, uint32_t* out) {
  auto kernel = matrices == 4 ? (trans ? k::ldmatrix_kernel<4, true> : k::ldmatrix_kernel<4, false>)
                              : (trans ? k::ldmatrix_kernel<2, true> : k::ldmatrix_kernel<2, false>);
  k::launch(kernel, dim3(1), dim3(32), 0, nullptr, m, out);
}

void shuffles(int* out) { k::launch(k::shuffle_kernel, dim3(1), dim3(32), 0, nullptr, out); }

void builtins(Dim3 grid, Dim3 block, int* out) {
  k::launch(k::builtins_kernel, dim3(grid.x, grid.y, grid.z), dim3(block.x, block.y, block.z), 0, nullptr, out);
}

void partial_warp(float* out) { k::launch(k::partial_warp_kernel, dim3(1), dim3(48), 0, nullptr, out); }

void block_order(int blocks, int* tickets) {
  int next_ticket = 0;
  k::launch(k::block_order_kernel, dim3(blocks), dim3(32), 0, nullptr, &next_ticket, tickets);
}

void softmax(const float* in, int rows, int cols, float* out) {
  k::launch(k::softmax_kernel, dim3(rows), dim3(128), 0, nullptr, in, cols, out);
}

void neighbour_sums(const float* in, int blocks, int chunks, bool missing_barrier, float* out) {
  k::launch(k::neighbour_sums_kernel, dim3(blocks), dim3(256), 0, nullptr, in, chunks, missing_barrier, out);
}

void atomics(int blocks, int* count, float* sum) {
  k::launch(k::atomics_kernel, dim3(blocks), dim3(128), 0, nullptr, count, sum);
}

void async_copy(const float* in, bool wait, float* out) {
  k::launch(k::async_copy_kernel, dim3(1), dim3(64), 64 * 4 * sizeof(float), nullptr, in, wait, out);
}

void pipelined_sums(const float* in, int chunks, bool missing_barrier, float* out) {
  k::launch(k::pipelined_sums_kernel, dim3(1), dim3(64), 2 * 256 * sizeof(float), nullptr, in, chunks, missing_barrier,
            out);
}

void partial_barrier() { k::launch(k::partial_barrier_kernel, dim3(1), dim3(32), 0, nullptr); }
void missing_lane() { k::launch(k::missing_lane_kernel, dim3(1), dim3(32), 0, nullptr); }
void deadlock() { k::launch(k::deadlock_kernel, dim3(1), dim3(32), 0, nullptr); }
void disagreeing_lanes() { k::launch(k::disagreeing_lanes_kernel, dim3(1), dim3(32), 0, nullptr); }
void mma_in_partial_warp() { k::launch(k::mma_in_partial_warp_kernel, dim3(1), dim3(48), 0, nullptr); }
void throwing_kernel() { k::launch(k::throwing_kernel, dim3(1), dim3(32), 0, nullptr); }

}  // namespace heed::sim_tests

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
  for (int i = lane; i < kMatrices * 64; i += 32) tile[i] = m[i];
  __syncwarp();
  // Lane l gives the address of row l % 8 of matrix l / 8 (lanes past the last matrix repeat it).
  const uint16_t* row = tile + (lane / 8 % kMatrices) * 64 + lane % 8 * 8;
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
void throwing_kernel() { k::launch(k::throwing_kernel, dim3(1), dim3(32), 0, nullptr); }

}  // namespace heed::sim_tests

// Kernels that exist to test the CUDA simulator itself (tests/test_sim.cc), built for the simulator only.
// Each entry point launches one kernel on host memory and returns when it has finished.
#pragma once

#include <cstdint>

namespace heed::sim_tests {

// D = A B + C through one mma.m16n8k16, with each lane's registers built from A (16x16), B (16x8, row-major
// k x n) and C (16x8) by the PTX ISA's fragment layout. a, b: 16-bit bits; bf16 or fp16.
void mma(bool bf16, const uint16_t* a, const uint16_t* b, const float* c, float* d);

// ldmatrix of `matrices` (2 or 4) 8x8 matrices of 16-bit elements (m: matrices x 64, row-major), with or
// without .trans: out[lane * matrices + j] is register j of lane `lane`.
void ldmatrix(int matrices, bool trans, const uint16_t* m, uint32_t* out);

// out[k * 32 + lane] for the shuffles and votes listed in sim_test_kernels.cu.
void shuffles(int* out);

// out[6 * (b * threads + t) + 0..5]: threadIdx x, y, z and blockIdx x, y, z of thread t of block b (both
// numbered with x fastest). `grid`, `block`: CUDA's dim3, as plain numbers.
struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};
void builtins(Dim3 grid, Dim3 block, int* out);

// out[t] for the 48 threads of one block: the xor shuffle of t with lane mask 16.
void partial_warp(float* out);

// tickets[i]: the index of the i-th of `blocks` blocks to take a ticket with atomicAdd.
void block_order(int blocks, int* tickets);

// Row softmax of a rows x cols matrix, one block of 128 threads a row.
void softmax(const float* in, int rows, int cols, float* out);

// out[b] = sum over chunks c of in[(b * chunks + c) * 256 + (tid + 1) % 256] summed over tid: each chunk
// goes through one shared buffer that every thread writes and reads its neighbour's entry of.
// `missing_barrier` leaves out the __syncthreads that keeps the next chunk from overwriting the buffer
// before every thread has read it.
void neighbour_sums(const float* in, int blocks, int chunks, bool missing_barrier, float* out);

// Every thread of `blocks` blocks of 128 adds 1 to *count and its global index to *sum.
void atomics(int blocks, int* count, float* sum);

// Each thread copies 4 floats to shared memory with cp.async and reads its neighbour's 4 back; with
// `wait` false it skips cp_async_wait, reading whatever shared memory held.
void async_copy(const float* in, bool wait, float* out);

// The sum of in[0 .. 256 * chunks) through a double-buffered cp.async pipeline. `missing_barrier` leaves
// out the __syncthreads that keeps the prefetch of chunk c + 2 from overwriting chunk c's buffer while
// other warps still read it.
void pipelined_sums(const float* in, int chunks, bool missing_barrier, float* out);

// Misuse the simulator must report: threads 16..31 return before a __syncthreads; lane 5 returns
// before a full-warp shuffle; half the lanes of a warp wait at __syncthreads and the other half at
// __syncwarp (a deadlock); even lanes shuffle while odd lanes __syncwarp; a block of 48 threads runs mma,
// which its second warp of 16 lanes cannot; device code throws.
void partial_barrier();
void missing_lane();
void deadlock();
void disagreeing_lanes();
void mma_in_partial_warp();
void throwing_kernel();

}  // namespace heed::sim_tests

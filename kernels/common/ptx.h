// The tensor-core and async-copy instructions kernels use, as thin wrappers: the only inline PTX in Heed.
//
// On the GPU each wrapper is one PTX instruction. Under the simulator the same names come from
// heed::cuda_sim (src/sim), which computes, lane by lane, what the PTX ISA defines for each lane's
// registers. Kernels call these wrappers and never write asm themselves, so one header is all the
// simulator has to stand in for.
//
// Register layouts (PTX ISA, "Matrix fragments for mma.m16n8k16"), with g = lane / 4 and t = lane % 4; a
// 32-bit register holds two 16-bit elements, the lower index in the low half:
//   A (16x16, row-major): a[0] = A[g][2t..2t+1]   a[1] = A[g+8][2t..2t+1]
//                         a[2] = A[g][2t+8..+9]   a[3] = A[g+8][2t+8..+9]
//   B (16x8, column):     b[0] = B[2t..2t+1][g]   b[1] = B[2t+8..2t+9][g]
//   C, D (16x8, fp32):    c[0], c[1] = C[g][2t], C[g][2t+1]    c[2], c[3] = C[g+8][2t], C[g+8][2t+1]
// ldmatrix .x4 loads four 8x8 matrices of 16-bit elements: lanes 8j..8j+7 give the addresses of rows 0..7
// of matrix j, and register j of lane l receives matrix j's row l/4, columns 2(l%4) and 2(l%4)+1 (.trans:
// the same positions of the transposed matrix). .x2 uses lanes 0..15 for matrices 0 and 1.
#pragma once

#include "common/device.h"

namespace heed::kernels::HEED_BACKEND {

#if defined(__CUDACC__)

// D = A * B + C with bf16 (or fp16) inputs and fp32 accumulators.
__device__ __forceinline__ void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                  const float c[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
}

__device__ __forceinline__ void mma_m16n8k16_f16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                 const float c[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
}

__device__ __forceinline__ uint32_t shared_address(const void* ptr) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(ptr));
}

// `row` is this lane's row address in shared memory (16-byte aligned).
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row)));
}

__device__ __forceinline__ void ldmatrix_x2(uint32_t r[2], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(shared_address(row)));
}

__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t r[2], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(shared_address(row)));
}

// Copies 16 bytes from global to shared memory without passing through registers. With valid == false
// nothing is read and the 16 bytes are zero-filled, which is how tiles past the end of a sequence load.
__device__ __forceinline__ void cp_async_16(void* smem_dst, const void* gmem_src, bool valid = true) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(smem_dst)),
               "l"(gmem_src), "r"(valid ? 16 : 0));
}

// Closes the group of cp.async issued since the last commit.
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

// Waits until at most `kPending` committed groups are still in flight. The copies are visible to the
// issuing thread only; a __syncthreads() must follow before other threads read them.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

#else  // the simulator

using ::heed::cuda_sim::cp_async_16;
using ::heed::cuda_sim::cp_async_commit;
using ::heed::cuda_sim::ldmatrix_x2;
using ::heed::cuda_sim::ldmatrix_x2_trans;
using ::heed::cuda_sim::ldmatrix_x4;
using ::heed::cuda_sim::ldmatrix_x4_trans;
using ::heed::cuda_sim::mma_m16n8k16_bf16;
using ::heed::cuda_sim::mma_m16n8k16_f16;

template <int kPending>
inline void cp_async_wait() {
  ::heed::cuda_sim::cp_async_wait(kPending);
}

#endif

}  // namespace heed::kernels::HEED_BACKEND

// Matrix products on the GPU path: cuBLASLt on a real GPU, the CPU's sgemm on the simulated one.
//
// The description is row-major, as Heed's tensors are; gemm_cublaslt.cu turns it into cuBLAS's
// column-major terms. Inputs may be fp32, bf16 or fp16 (both the same type) and are multiplied with fp32
// accumulation, which is what cuBLASLt's CUBLAS_COMPUTE_32F does on tensor cores; the simulated GPU
// widens 16-bit inputs to fp32 exactly and calls sgemm, so both compute the same products, differing
// only in the order of the fp32 sums. alpha, beta and the bias are applied in fp32 and the result is
// rounded once to the output type, as cuBLASLt's epilogue does.
#pragma once

#include <cstdint>

#include "heed/core/device.h"
#include "heed/core/dtype.h"

namespace heed {

// One operand: a row-major matrix of `rows` x `cols` as stored (before the transpose), with row stride
// `ld`, repeated every `batch_stride` elements (0: one matrix shared by every batch entry).
struct GemmOperand {
  const void* data = nullptr;
  DType dtype = DType::F32;
  bool trans = false;
  int64_t ld = 0;
  int64_t batch_stride = 0;
};

// out[i] = alpha * op(a[i]) . op(b[i]) + beta * out[i] (+ bias, then ReLU) for i < batch, where op(a) is
// m x k and op(b) is k x n. With bias_grad, also the sums of op(a)'s rows.
struct GemmDesc {
  int64_t m = 0, n = 0, k = 0, batch = 1;
  GemmOperand a, b;
  void* out = nullptr;
  DType out_dtype = DType::F32;
  int64_t ldo = 0, out_batch_stride = 0;
  float alpha = 1.0f, beta = 0.0f;
  // What beta scales, when it is not out itself: out = alpha * op(a) . op(b) + beta * c (cuBLASLt's C apart
  // from its D), with out's type and layout. A backward pass sums a gradient so far into a new buffer this way.
  const void* c = nullptr;
  const void* bias = nullptr;  // optional [n], of out_dtype, added to every row
  bool relu = false;           // after the bias (cuBLASLt's RELU_BIAS epilogue); needs a bias
  // Optional [m], fp32: bias_grad[i] = sum over j < k of op(a)[i, j], written (not added to) from the same pass
  // over a (cuBLASLt's BGRADB epilogue). For a Linear layer's weight gradient dy^T . x, that is the bias
  // gradient, with no launch and no second read of dy of its own. Needs batch 1, no bias and fp32 out.
  void* bias_grad = nullptr;
  // The ReLU's mask, one bit an element of out (1 where the value before the ReLU is positive), which a
  // Linear layer's backward needs and which costs 1/16 of a 16-bit output's bytes: written by a product
  // with relu (cuBLASLt's RELU_AUX_BIAS epilogue), and read by one that multiplies its result by it (DRELU:
  // the ReLU's derivative applied to an input gradient in the GEMM that makes it, with beta 0 and no bias).
  // Row r's bits start at bit r * relu_mask_ld(n); only the GEMM reads and writes them. Batch 1.
  void* relu_mask_out = nullptr;
  const void* relu_mask_in = nullptr;
};

// Bits a row of a ReLU mask takes: n rounded up to 128, as cuBLASLt's bitmask epilogues ask.
inline int64_t relu_mask_ld(int64_t n) { return (n + 127) / 128 * 128; }

// Runs on `device` (cuda or sim); every pointer is that device's memory.
void gemm(Device device, const GemmDesc& desc);

// c = alpha * op(a) . op(b) + beta * c on the CPU, row-major fp32 (op(a) m x k, op(b) k x n): oneDNN's
// sgemm, run by the calling thread alone, with SIGINT and SIGTERM held back until it returns.
//
// Why the signals wait: a SIGTERM handled while oneDNN's just-in-time kernels ran corrupted the heap
// (glibc aborted in dnnl_sgemm's free, "corrupted size vs. prev_size", in about one stop in six of the
// SIGTERM check of tests/python/test_train_cli.py; none in 90 with the signals held). A signal that comes
// meanwhile is delivered as the product ends, so a stop still saves. Why the calling thread alone: no
// other thread may run those kernels with the signals let through. Heed's CPU matmul splits large products
// over its threads itself, one call each (ops/matmul_cpu.cc).
void cpu_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
               int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
// The same with bf16 inputs (their bits) and fp32 accumulation and output: oneDNN's gemm_bf16bf16f32, which
// runs AVX512_BF16's dot products (AMX's tiles where the CPU has them). Below AVX512_BF16 oneDNN emulates
// them slowly, or has no kernel at all (AVX2), so callers first check ops::cpu_has_bf16_gemm().
void cpu_gemm_bf16(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const uint16_t* a,
                   int64_t lda, const uint16_t* b, int64_t ldb, float beta, float* c, int64_t ldc);

#ifdef HEED_WITH_CUDA
namespace cuda {
void gemm_cublaslt(int device, const GemmDesc& desc);  // gemm_cublaslt.cu
}
#endif

}  // namespace heed

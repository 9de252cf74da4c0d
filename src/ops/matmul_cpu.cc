// Matrix products on the CPU: oneDNN's sgemm per batch entry (cpu_sgemm, core/gemm.h), with transposed
// views folded into its transpose flags by matmul_layout (matmul_backends.h), so attention heads and weight
// transposes go in without a copy.
//
// bf16 (training.precision: bf16, CpuBf16GemmScope in heed/ops/matmul.h): each operand is first rounded to
// a dense bf16 copy, then oneDNN's gemm_bf16bf16f32 multiplies the copies with fp32 accumulation into the
// fp32 output. The copies read each operand once and write half its bytes: about 5% of the base training
// step's CPU time in perf, against the half of the GEMMs' time that AVX512_BF16's kernels save (twice the
// multiply-adds of fp32 FMAs per instruction; docs/cpu.md).
//
// Threads: rather than letting the library split each product over the OpenMP threads, we give each thread a
// block of the output's rows or of its columns, whichever side is longer, and it runs a single-threaded sgemm
// on its block. Each thread then packs only its own panels and never waits on the others mid-product. A
// thread's block of m' x n' packs m' k values of op(A) and k n' of op(B), fewest when the longer side is
// split: on a 2-core Zen 3 (bench/bench_gemm_split, three runs), the weight gradient of the base model's second
// feed-forward layer (512 x 2048, k 3072, TN) ran at 39-63 GFLOP/s split by rows and 82-141 by columns, and
// its transpose (2048 x 512) at 82-143 by rows and 47-60 by columns. On the training step's shapes this
// measured faster than the libraries' own threading on a 2-core EPYC, OpenBLAS's (up to 25%) and oneDNN's
// (about 5%), most on the output layer's products with the vocabulary (bench/bench_train_step). A product of
// fewer than two blocks of 2^20 multiply-adds runs on the calling thread alone. Blocks start on a multiple of
// the 16-row micro-kernel tile. The split is fixed by the shape and the thread count, so a run reproduces
// exactly.
#include <omp.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "core/gemm.h"
#include "heed/core/half.h"
#include "heed/ops/matmul.h"
#include "ops/elementwise_backends.h"
#include "ops/matmul_backends.h"

namespace heed::ops::cpu {

namespace {

constexpr int64_t kSplitMinBlockMacs = int64_t(1) << 20;
constexpr int kSplitAlign = 16;

// One product's operands, fp32 or (with T = uint16_t) the bits of bf16 inputs rounded from them.
template <typename T>
struct Gemm {
  bool ta, tb;  // op(A) = A^T, op(B) = B^T
  int m, n, k;
  float alpha, beta;
  const T* a;
  int lda;
  const T* b;
  int ldb;
  float* c;
  int ldc;

  void run() const {
    if constexpr (std::is_same_v<T, float>)
      cpu_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
      cpu_gemm_bf16(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }

  // Rows [begin, end) of the product: rows of op(A) are rows of A, or columns of a transposed A.
  Gemm rows(int begin, int end) const {
    Gemm g = *this;
    g.m = end - begin;
    g.a = a + (ta ? begin : int64_t(begin) * lda);
    g.c = c + int64_t(begin) * ldc;
    return g;
  }
  // Columns [begin, end): columns of op(B) are columns of B, or rows of a transposed B.
  Gemm columns(int begin, int end) const {
    Gemm g = *this;
    g.n = end - begin;
    g.b = b + (tb ? int64_t(begin) * ldb : begin);
    g.c = c + begin;
    return g;
  }
};

template <typename T>
void run_split(const Gemm<T>& g) {
  const int64_t most = std::min<int64_t>(omp_get_max_threads(), int64_t(g.m) * g.n * g.k / kSplitMinBlockMacs);
  // Along the longer side of the output where every thread gets a tile of it, else along the other.
  const bool rows_fit = g.m >= most * kSplitAlign, columns_fit = g.n >= most * kSplitAlign;
  const bool by_rows = rows_fit && (g.m >= g.n || !columns_fit);
  const int extent = by_rows ? g.m : g.n;
  const int64_t tiles = (extent + kSplitAlign - 1) / kSplitAlign;
  const int64_t parts = std::min(most, tiles);
  if (parts < 2 || omp_in_parallel()) {
    g.run();
    return;
  }
  const int chunk = static_cast<int>((tiles + parts - 1) / parts * kSplitAlign);
#pragma omp parallel num_threads(static_cast<int>(parts))
  {
    const int begin = std::min(extent, omp_get_thread_num() * chunk);
    const int end = std::min(extent, begin + chunk);
    if (begin < end) (by_rows ? g.rows(begin, end) : g.columns(begin, end)).run();
  }
}

// oneDNN's sgemm reads both operands of a product with A transposed and B not (a Linear layer's weight
// gradient dy^T . x) down k, one row of each per step. Where a row stride is a multiple of 2 KiB (every
// power-of-two layer width from 512 floats up), those rows share a few sets of the L1 cache. On a 2-core
// Zen 3, small's fc1 gradient (1024 x 256 x 3072) ran at 55-61 GFLOP/s from the operands as stored and at
// 86-107 from copies with rows 16 floats longer, the copies included (bench/bench_gemm_split, two runs). So
// such an operand is copied first, where the product is large: one read and write of each element, against
// m n / (m + n) multiply-adds per element of both operands (205 there).
constexpr int64_t kAliasingStride = 512;
constexpr int64_t kStridePadding = 16;
constexpr int64_t kPaddedCopyMinMacs = int64_t(1) << 24;

int64_t padded_stride(int64_t cols) { return cols + kStridePadding; }

// g with A transposed and B not, its operands whose rows are a multiple of kAliasingStride apart taken from
// padded copies. B's is made only when copy_b: a B shared by a batch's products is copied for the first.
void pad_aliased_operands(Gemm<float>& g, bool copy_b) {
  thread_local std::vector<float> padded_a, padded_b;  // kept for the next product's capacity
  if (!g.ta || g.tb || int64_t(g.m) * g.n * g.k < kPaddedCopyMinMacs) return;
  if (g.lda % kAliasingStride == 0) {  // A is k x m as stored
    g.lda = static_cast<int>(copy_padded(g.a, g.k, g.m, g.lda, padded_a));
    g.a = padded_a.data();
  }
  if (g.ldb % kAliasingStride == 0) {  // B is k x n
    if (copy_b) copy_padded(g.b, g.k, g.n, g.ldb, padded_b);
    g.b = padded_b.data();
    g.ldb = static_cast<int>(padded_stride(g.n));
  }
}

// A matrix of `rows` x `cols` with row stride ld, rounded to bf16 (to nearest even) into a dense one.
void round_to_bf16(const float* from, int64_t rows, int64_t cols, int64_t ld, std::vector<uint16_t>& to) {
  to.resize(rows * cols);
  uint16_t* out = to.data();
#pragma omp parallel for if (rows * cols > (1 << 16))
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = float_to_bf16_bits(from[r * ld + c]);
}

// The ReLU's bit mask holds column c of a row in bit c % 8 of byte c / 8. Both loops below go a byte (eight
// columns) at a time with the bit index a constant per lane, so each byte's eight elements are one vector
// operation, not eight gathers; a trailing partial byte finishes element by element.

// row = max(row, 0); bits (when not null) records which elements were positive.
void relu_row(float* row, int64_t cols, uint8_t* bits) {
  const int64_t full_bytes = cols / 8;
  for (int64_t b = 0; b < full_bytes; ++b) {
    unsigned byte = 0;
    for (int j = 0; j < 8; ++j) {
      const float v = row[8 * b + j];
      byte |= static_cast<unsigned>(v > 0.0f) << j;
      row[8 * b + j] = v > 0.0f ? v : 0.0f;
    }
    if (bits) bits[b] = static_cast<uint8_t>(byte);
  }
  unsigned byte = 0;
  for (int64_t c = full_bytes * 8; c < cols; ++c) {
    byte |= static_cast<unsigned>(row[c] > 0.0f) << (c % 8);
    row[c] = row[c] > 0.0f ? row[c] : 0.0f;
  }
  if (bits && cols % 8) bits[full_bytes] = static_cast<uint8_t>(byte);
}

// row[c] = 0 where bit c of bits is clear.
void mask_row(float* row, int64_t cols, const uint8_t* bits) {
  const int64_t full_bytes = cols / 8;
  for (int64_t b = 0; b < full_bytes; ++b) {
    const unsigned byte = bits[b];
    for (int j = 0; j < 8; ++j) row[8 * b + j] = (byte >> j) & 1u ? row[8 * b + j] : 0.0f;
  }
  for (int64_t c = full_bytes * 8; c < cols; ++c) row[c] = (bits[c / 8] >> (c % 8)) & 1u ? row[c] : 0.0f;
}

}  // namespace

int64_t copy_padded(const float* from, int64_t rows, int64_t cols, int64_t ld, std::vector<float>& to) {
  const int64_t to_ld = padded_stride(cols);
  to.resize(rows * to_ld);
  float* out = to.data();
#pragma omp parallel for if (rows * cols > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) std::copy(from + r * ld, from + r * ld + cols, out + r * to_ld);
  return to_ld;
}

void matmul_into(const Tensor& a, const Tensor& b, Tensor& out, bool trans_a, bool trans_b, float alpha, float beta) {
  const int m = static_cast<int>(out.size(-2)), n = static_cast<int>(out.size(-1));
  const int k = static_cast<int>(trans_a ? a.size(-2) : a.size(-1));
  const int64_t batches = out.numel() / std::max<int64_t>(1, int64_t(m) * n);
  const MatmulLayout va = matmul_layout(a, trans_a), vb = matmul_layout(b, trans_b);
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* pc = out.data<float>();
  if (k == 0) {  // BLAS leaves C untouched (times beta) for an empty inner dimension; so do we
    for (int64_t i = 0; i < out.numel(); ++i) pc[i] = beta == 0.0f ? 0.0f : beta * pc[i];
    return;
  }
  const bool bf16 = cpu_bf16_gemm_on();
  // Each operand's matrix as stored: op(A) is m x k, op(B) is k x n.
  const int a_rows = va.trans ? k : m, a_cols = va.trans ? m : k;
  const int b_rows = vb.trans ? n : k, b_cols = vb.trans ? k : n;
  thread_local std::vector<uint16_t> a16, b16;  // bf16 copies, kept for the next product's capacity
  for (int64_t i = 0; i < batches; ++i) {
    const float* ai = pa + matmul_batch_offset(a, i);
    const float* bi = b.dim() == 2 ? pb : pb + matmul_batch_offset(b, i);
    float* ci = pc + i * int64_t(m) * n;
    if (!bf16) {
      Gemm<float> g{va.trans, vb.trans, m, n, k, alpha, beta, ai, static_cast<int>(va.ld),
                    bi, static_cast<int>(vb.ld), ci, n};
      pad_aliased_operands(g, i == 0 || b.dim() != 2);
      run_split(g);
      continue;
    }
    round_to_bf16(ai, a_rows, a_cols, va.ld, a16);
    if (i == 0 || b.dim() != 2) round_to_bf16(bi, b_rows, b_cols, vb.ld, b16);
    run_split(Gemm<uint16_t>{va.trans, vb.trans, m, n, k, alpha, beta, a16.data(), a_cols, b16.data(), b_cols, ci, n});
  }
}

void linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, bool relu, Tensor& out,
                    Tensor* relu_mask) {
  // The bias rows first, then the GEMM accumulates onto them (beta = 1): one pass over the output, not two.
  const float* b = bias.data<float>();
  float* o = out.data<float>();
  const int64_t rows = out.size(0), cols = out.size(1);
#pragma omp parallel for if (rows * cols > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) std::copy(b, b + cols, o + r * cols);
  matmul_into(x, weight, out, false, true, 1.0f, 1.0f);
  if (!relu) return;
  uint8_t* bits = relu_mask ? relu_mask->data<uint8_t>() : nullptr;
  const int64_t row_bytes = relu_mask ? relu_mask->size(1) : 0;
#pragma omp parallel for if (rows * cols > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) relu_row(o + r * cols, cols, bits ? bits + r * row_bytes : nullptr);
}

void linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, float beta, Tensor* db) {
  matmul_into(dy, x, dw, true, false, 1.0f, beta);
  if (db) sum_rows(dy, *db);
}

void linear_backward_input(const Tensor& dy, const Tensor& weight, Tensor& dx, const Tensor& prior) {
  if (prior.defined() && prior.raw_data() != dx.raw_data()) dx.copy_from(prior);
  matmul_into(dy, weight, dx, false, false, 1.0f, prior.defined() ? 1.0f : 0.0f);
}

void linear_backward_input_relu(const Tensor& dy, const Tensor& weight, Tensor& dx, const Tensor& relu_mask) {
  matmul_into(dy, weight, dx, false, false, 1.0f, 0.0f);
  const uint8_t* bits = relu_mask.data<uint8_t>();
  float* g = dx.data<float>();
  const int64_t rows = dx.size(0), cols = dx.size(1), row_bytes = relu_mask.size(1);
#pragma omp parallel for if (rows * cols > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) mask_row(g + r * cols, cols, bits + r * row_bytes);
}

}  // namespace heed::ops::cpu

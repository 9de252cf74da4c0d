#include "core/gemm.h"

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>

#include <csignal>
#include <vector>

#include "heed/core/error.h"
#include "heed/core/half.h"
#include "sim/counters.h"

// oneDNN exports its bf16 GEMM from the library but declares it in no public header (its own tests and
// Intel's TensorFlow extension declare it as here): row-major like dnnl_sgemm, bf16 as its 16 bits.
// CMakeLists.txt checks at configure time that the library has it.
extern "C" dnnl_status_t dnnl_gemm_bf16bf16f32(char transa, char transb, dnnl_dim_t M, dnnl_dim_t N, dnnl_dim_t K,
                                                float alpha, const uint16_t* A, dnnl_dim_t lda, const uint16_t* B,
                                                dnnl_dim_t ldb, float beta, float* C, dnnl_dim_t ldc);

namespace heed {

namespace {

float load(const void* base, int64_t i, DType dtype) {
  switch (dtype) {
    case DType::BF16: return bf16_bits_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::F16: return fp16_bits_to_float(static_cast<const uint16_t*>(base)[i]);
    default: return static_cast<const float*>(base)[i];
  }
}

void store(void* base, int64_t i, DType dtype, float v) {
  switch (dtype) {
    case DType::BF16: static_cast<uint16_t*>(base)[i] = float_to_bf16_bits(v); break;
    case DType::F16: static_cast<uint16_t*>(base)[i] = float_to_fp16_bits(v); break;
    default: static_cast<float*>(base)[i] = v;
  }
}

// One matrix of an operand, widened to a dense fp32 copy as stored (rows x cols, row-major).
std::vector<float> widen(const GemmOperand& op, int64_t batch_index, int64_t rows, int64_t cols) {
  std::vector<float> dense(rows * cols);
  const int64_t base = batch_index * op.batch_stride;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dense[r * cols + c] = load(op.data, base + r * op.ld + c, op.dtype);
  return dense;
}

void set_bit(void* bits, int64_t i, bool value) {
  uint8_t& byte = static_cast<uint8_t*>(bits)[i / 8];
  byte = static_cast<uint8_t>(value ? byte | (1u << (i % 8)) : byte & ~(1u << (i % 8)));
}

bool get_bit(const void* bits, int64_t i) { return (static_cast<const uint8_t*>(bits)[i / 8] >> (i % 8)) & 1u; }

// out[i] = sum over j of op(a)[i, j], in fp32 from the widened inputs, as the epilogue reduces them.
void sum_rows_of_op_a(const std::vector<float>& a, bool trans, int64_t m, int64_t k, float* out) {
  for (int64_t i = 0; i < m; ++i) {
    float sum = 0.0f;
    for (int64_t j = 0; j < k; ++j) sum += trans ? a[j * m + i] : a[i * k + j];
    out[i] = sum;
  }
}

// The simulated GPU's GEMM: exact widening of the inputs, sgemm with fp32 accumulation, then the epilogue
// in fp32 and one rounding to the output type.
void gemm_sim(const GemmDesc& d) {
  const int64_t a_rows = d.a.trans ? d.k : d.m, a_cols = d.a.trans ? d.m : d.k;
  const int64_t b_rows = d.b.trans ? d.n : d.k, b_cols = d.b.trans ? d.k : d.n;
  std::vector<float> c(d.m * d.n);
  for (int64_t i = 0; i < d.batch; ++i) {
    std::vector<float> a = widen(d.a, i, a_rows, a_cols), b = widen(d.b, i, b_rows, b_cols);
    for (int64_t r = 0; r < d.m; ++r)
      for (int64_t col = 0; col < d.n; ++col)
        c[r * d.n + col] = d.beta == 0.0f ? 0.0f : load(d.c ? d.c : d.out, i * d.out_batch_stride + r * d.ldo + col, d.out_dtype);
    if (d.k > 0)
      cpu_sgemm(d.a.trans, d.b.trans, d.m, d.n, d.k, d.alpha, a.data(), a_cols, b.data(), b_cols, d.beta, c.data(),
                d.n);
    else
      for (float& v : c) v *= d.beta;
    if (d.bias_grad) sum_rows_of_op_a(a, d.a.trans, d.m, d.k, static_cast<float*>(d.bias_grad));
    const int64_t mask_ld = relu_mask_ld(d.n);
    for (int64_t r = 0; r < d.m; ++r)
      for (int64_t col = 0; col < d.n; ++col) {
        float v = c[r * d.n + col];
        if (d.bias) v += load(d.bias, col, d.out_dtype);
        const int64_t bit = r * mask_ld + col;
        if (d.relu_mask_out) set_bit(d.relu_mask_out, bit, v > 0.0f);
        if (d.relu_mask_in && !get_bit(d.relu_mask_in, bit)) v = 0.0f;
        if (d.relu) v = v > 0.0f ? v : 0.0f;
        store(d.out, i * d.out_batch_stride + r * d.ldo + col, d.out_dtype, v);
      }
  }
}

}  // namespace

void gemm(Device device, const GemmDesc& d) {
  HEED_CHECK(d.a.dtype == d.b.dtype, "gemm: operands of different types ({} and {})", dtype_name(d.a.dtype),
             dtype_name(d.b.dtype));
  for (DType t : {d.a.dtype, d.out_dtype})
    HEED_CHECK(t == DType::F32 || t == DType::BF16 || t == DType::F16, "gemm: {} is not a floating-point type",
               dtype_name(t));
  HEED_CHECK(!d.relu || d.bias, "gemm: the ReLU epilogue needs a bias");
  HEED_CHECK(!d.bias_grad || (d.batch == 1 && !d.bias && d.out_dtype == DType::F32),
             "gemm: the bias-gradient epilogue needs batch 1, no bias and an F32 output");
  HEED_CHECK(!d.relu_mask_out || (d.relu && d.batch == 1), "gemm: a ReLU mask comes from a ReLU epilogue, batch 1");
  HEED_CHECK(!d.relu_mask_in || (d.batch == 1 && !d.bias && !d.relu && !d.bias_grad && d.beta == 0.0f),
             "gemm: the ReLU-derivative epilogue needs batch 1, beta 0 and no other epilogue");
  HEED_CHECK(d.m >= 0 && d.n >= 0 && d.k >= 0 && d.batch >= 1, "gemm: bad sizes m={} n={} k={} batch={}", d.m, d.n,
             d.k, d.batch);
  if (d.m == 0 || d.n == 0) return;
  if (device.is_sim()) {
    cuda_sim::count_gemm({.m = d.m, .n = d.n, .k = d.k, .batch = d.batch, .input_bytes = static_cast<int>(dtype_size(d.a.dtype)),
                          .output_bytes = static_cast<int>(dtype_size(d.out_dtype)), .bias = d.bias != nullptr,
                          .bias_grad = d.bias_grad != nullptr, .accumulates = d.beta != 0.0f,
                          .relu_mask = d.relu_mask_out != nullptr || d.relu_mask_in != nullptr});
    return gemm_sim(d);
  }
#ifdef HEED_WITH_CUDA
  if (device.is_cuda()) return cuda::gemm_cublaslt(device.index, d);
#endif
  HEED_CHECK(false, "gemm: no GPU GEMM for {}", device.str());
}

namespace {

// Runs one oneDNN GEMM (which reports only invalid arguments, excluded by the callers' checks) on the
// calling thread alone, with SIGINT and SIGTERM held back until it returns (core/gemm.h says why).
template <typename Call>
void call_onednn_alone(Call call) {
  sigset_t stop, saved;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, &saved);
  // oneDNN threads a product over omp_get_max_threads() unless it is called inside a parallel region.
  const bool outside_parallel = !omp_in_parallel();
  const int threads = omp_get_max_threads();
  if (outside_parallel) omp_set_num_threads(1);
  call();
  if (outside_parallel) omp_set_num_threads(threads);
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
}

}  // namespace

void cpu_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
               int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  call_onednn_alone(
      [&] { dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); });
}

void cpu_gemm_bf16(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const uint16_t* a,
                   int64_t lda, const uint16_t* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  call_onednn_alone([&] {
    dnnl_gemm_bf16bf16f32(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  });
}

}  // namespace heed

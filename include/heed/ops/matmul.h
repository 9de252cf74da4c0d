// Matrix products through oneDNN's sgemm on the CPU.
#pragma once

#include <string>

#include "heed/core/tensor.h"

namespace heed::ops {

// out = alpha * op(a) . op(b) + beta * out, where op transposes the last two dimensions when asked.
// a: [..., M, K] (or [..., K, M] with trans_a), b: [..., K, N] (or [..., N, K] with trans_b).
// Leading (batch) dimensions must be equal, or b may be 2-d and shared by every batch of a.
// Inputs may be any layout whose last or second-to-last stride is 1; out must be contiguous.
void matmul_into(const Tensor& a, const Tensor& b, Tensor& out, bool trans_a = false, bool trans_b = false,
                 float alpha = 1.0f, float beta = 0.0f);
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false, float alpha = 1.0f);
// A Linear layer's forward: x [N, in] . weight [out, in]^T + bias [out], the bias added in the GEMM's own
// pass over the output (the beta = 1 accumulation on the CPU, cuBLASLt's bias epilogue on a GPU). bias has
// the output's dtype. With `relu`, max(0, .) is applied in the same pass (cuBLASLt's RELU_BIAS epilogue),
// for the feed-forward layer's first product.
Tensor linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, bool relu = false);
// The same with relu, also giving the ReLU's mask for linear_backward_input: U8 [N, relu_mask_bytes(out)],
// one bit an element (1 where the output is positive), from the GEMM's epilogue on a GPU.
Tensor linear_relu_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor* relu_mask);
int64_t relu_mask_bytes(int64_t features);
// A Linear layer's parameter gradients from its output gradient dy [N, out] and input x [N, in]:
// dw = dy^T . x + beta * dw (dw [out, in], fp32), and, with db, db = the sum of dy's rows (fp32 [out],
// written, not added to). On a GPU db comes from the same GEMM (cuBLASLt's BGRADB epilogue): no launch and
// no read of dy of its own.
void linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, float beta, Tensor* db);
// Its input gradient: dx = dy . weight (+ prior, the input's gradient so far: undefined for none, or dx
// itself), one GEMM whose beta = 1 reads prior apart from where it writes, so a gradient of several
// contributions takes no addition of its own. dx [N, in] contiguous, of dy's type; prior like dx.
void linear_backward_input(const Tensor& dy, const Tensor& weight, Tensor& dx, const Tensor& prior);
// dx = (dy . weight) * relu'(x), relu' read from the mask linear_relu_forward gave for x: the input gradient
// of a layer whose input is a ReLU's output, taken through the ReLU in the same GEMM (cuBLASLt's DRELU
// epilogue on a GPU), where a separate pass would read dx and the ReLU's output and write dx again.
void linear_backward_input_relu(const Tensor& dy, const Tensor& weight, Tensor& dx, const Tensor& relu_mask);

// --- Which GEMM kernels the CPU runs.
//
// oneDNN generates its GEMM kernels when a process starts, for the newest instruction set it finds in the
// CPU's feature flags. It reads no table of CPU models, which is how Debian's OpenBLAS 0.3.21 sent Intel
// Xeons with AVX-512 that it did not know to its SSE3 kernels. `heed train` logs the library and its
// instruction set once, and warns when the set is older than the CPU (ONEDNN_MAX_CPU_ISA set lower, or a
// CPU that oneDNN does not understand).

// The x86-64 vector extensions that a CPU has, or that a library's kernels use.
enum class VectorLevel { Unknown, BeforeAvx2, Avx2, Avx512 };
const char* vector_level_name(VectorLevel level);

// One of oneDNN's instruction sets (dnnl_cpu_isa_t): its name in oneDNN's logs, its level (Unknown for a
// value this table does not hold), and whether it has AVX512_BF16's dot products (cpu_has_bf16_gemm).
struct OnednnIsa {
  const char* name;
  VectorLevel level;
  bool bf16 = false;
};
OnednnIsa onednn_isa(int isa);

struct CpuGemmLibrary {
  std::string description;  // e.g. "oneDNN 2.6.3, avx512_core_bf16 kernels (AVX-512), OpenMP threads"
  std::string kernel_name;  // oneDNN's name for its instruction set, e.g. "avx512_core_bf16"
  VectorLevel kernels = VectorLevel::Unknown;
  VectorLevel cpu = VectorLevel::Unknown;  // what this CPU supports
  // Kernels of a lower level than the CPU's: the products run slower than the CPU allows.
  bool falls_back() const { return kernels != VectorLevel::Unknown && cpu != VectorLevel::Unknown && kernels < cpu; }
};
CpuGemmLibrary cpu_gemm_library();

// --- bf16 products on the CPU (training.precision: bf16 on the CPU).
//
// While a CpuBf16GemmScope lives, the CPU's matrix products round their fp32 inputs to bf16 (to nearest
// even) and multiply them with fp32 accumulation into an fp32 result, as torch.autocast does for a CPU
// Linear layer and cuBLASLt does with 16-bit inputs. Everything else stays fp32: activations, softmax,
// LayerNorm, attention, weights, gradients and Adam. The scope is process-wide (every thread's products),
// as one training run wants; scopes nest.

// Whether oneDNN's kernels here have AVX512_BF16 (avx512_core_bf16 or above, AMX included). Below it oneDNN
// would emulate the bf16 dot products in many instructions, slower than fp32, or has no bf16 GEMM at all.
bool cpu_has_bf16_gemm();
// Refuses, with an error that starts with `what` (e.g. "training.precision bf16"), a CPU without them.
void require_cpu_bf16_gemm(const std::string& what);
// Whether a CpuBf16GemmScope lives.
bool cpu_bf16_gemm_on();

class CpuBf16GemmScope {
 public:
  // Refuses as require_cpu_bf16_gemm(what) does.
  explicit CpuBf16GemmScope(const std::string& what);
  ~CpuBf16GemmScope();
  CpuBf16GemmScope(const CpuBf16GemmScope&) = delete;
  CpuBf16GemmScope& operator=(const CpuBf16GemmScope&) = delete;
};

}  // namespace heed::ops

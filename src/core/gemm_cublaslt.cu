// GemmDesc on cuBLASLt. Heed's matrices are row-major and cuBLAS's column-major, so the product is
// computed transposed: out^T = op(b)^T . op(a)^T, where a row-major matrix read as column-major is already
// its transpose. The bias epilogue then adds along out^T's rows, which are out's columns, as wanted.
//
// Descriptors and the heuristic's choice are cached per distinct problem (training repeats a few dozen
// shapes), so the steady state makes one cublasLtMatmul call per GEMM. Each device gets a handle and a
// 32 MiB workspace from the caching allocator once (PerDevice). Only finding or making a plan takes the
// device's lock; GEMMs run unlocked. They all go to the device's compute stream (cuda_runtime.h), so on
// one device they run one after another and share the workspace.
#include <cublasLt.h>

#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "kernels/common/cuda_check.h"
#include "core/cuda_runtime.h"
#include "core/gemm.h"
#include "core/per_device.h"
#include "heed/core/allocator.h"

namespace heed::cuda {

namespace {

constexpr size_t kWorkspaceBytes = 32u << 20;

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::BF16: return CUDA_R_16BF;
    case DType::F16: return CUDA_R_16F;
    default: return CUDA_R_32F;
  }
}

struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  // The bias pointer (the bias, or where the bias gradient goes) and the ReLU mask's are attributes of
  // `op`: a GEMM with one sets it and runs under this lock, so that two threads cannot swap each other's
  // pointers in between. GEMMs without one share the plan unlocked.
  std::mutex pointers_mutex;
};

using PlanKey = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int, bool, bool, int64_t, int64_t, int64_t,
                           int64_t, int64_t, int64_t, bool, bool, bool, bool, bool>;

struct DeviceState {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::mutex plans_mutex;  // guards finding and inserting plans; a plan, once made, is never moved
  std::map<PlanKey, std::unique_ptr<Plan>> plans;
};

cublasLtMatrixLayout_t layout(DType dtype, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                              int64_t batch_stride) {
  cublasLtMatrixLayout_t l = nullptr;
  HEED_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, cuda_type(dtype), rows, cols, ld));
  if (batch > 1) {
    int count = static_cast<int>(batch);
    HEED_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
    HEED_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &batch_stride,
                                                       sizeof(batch_stride)));
  }
  return l;
}

std::unique_ptr<Plan> make_plan(DeviceState& state, const GemmDesc& d) {
  auto plan = std::make_unique<Plan>();
  Plan& p = *plan;
  HEED_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  // Column-major: A' = b, B' = a.
  cublasOperation_t ta = d.b.trans ? CUBLAS_OP_T : CUBLAS_OP_N, tb = d.a.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  HEED_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  HEED_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  // BGRADB reduces cuBLAS's B' = a over k: one sum per column of out^T, i.e. per row of out, as wanted.
  // A ReLU mask is cuBLASLt's aux bitmask: one bit an element of out^T's columns, relu_mask_ld(n) a column.
  if (d.bias || d.bias_grad || d.relu_mask_in) {
    cublasLtEpilogue_t epilogue = d.bias_grad       ? CUBLASLT_EPILOGUE_BGRADB
                                  : d.relu_mask_in  ? CUBLASLT_EPILOGUE_DRELU
                                  : d.relu_mask_out ? CUBLASLT_EPILOGUE_RELU_AUX_BIAS
                                  : d.relu          ? CUBLASLT_EPILOGUE_RELU_BIAS
                                                    : CUBLASLT_EPILOGUE_BIAS;
    HEED_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
  }
  if (d.relu_mask_in || d.relu_mask_out) {
    const int64_t ld = relu_mask_ld(d.n);
    HEED_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof(ld)));
  }
  // Stored shapes in column-major terms: a row-major r x c matrix is a column-major c x r one.
  p.a = layout(d.b.dtype, d.b.trans ? d.k : d.n, d.b.trans ? d.n : d.k, d.b.ld, d.batch, d.b.batch_stride);
  p.b = layout(d.a.dtype, d.a.trans ? d.m : d.k, d.a.trans ? d.k : d.m, d.a.ld, d.batch, d.a.batch_stride);
  p.c = layout(d.out_dtype, d.n, d.m, d.ldo, d.batch, d.out_batch_stride);

  cublasLtMatmulPreference_t pref = nullptr;
  HEED_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  size_t workspace = kWorkspaceBytes;
  HEED_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                         sizeof(workspace)));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  HEED_CUBLAS_CHECK(
      cublasLtMatmulAlgoGetHeuristic(state.handle, p.op, p.a, p.b, p.c, p.c, pref, 1, &result, &found));
  HEED_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
  HEED_CHECK(found > 0, "cuBLASLt has no algorithm for a {}x{}x{} GEMM (batch {}) of {} into {}", d.m, d.n, d.k,
             d.batch, dtype_name(d.a.dtype), dtype_name(d.out_dtype));
  p.algo = result.algo;
  return plan;
}

DeviceState& state_for(int device) {
  static auto& states = *new PerDevice<DeviceState>([](int index) {
    auto state = std::make_unique<DeviceState>();
    HEED_CUDA_CHECK(cudaSetDevice(index));
    HEED_CUBLAS_CHECK(cublasLtCreate(&state->handle));
    state->workspace = allocator_for(Device::cuda(index)).allocate(kWorkspaceBytes);
    return state;
  });
  return states.get(device);
}

Plan& plan_for(DeviceState& state, const GemmDesc& d) {
  const PlanKey key{static_cast<int>(d.a.dtype), d.m, d.n, d.k, d.batch, static_cast<int>(d.out_dtype), d.a.trans,
                    d.b.trans, d.a.ld, d.b.ld, d.ldo, d.a.batch_stride, d.b.batch_stride, d.out_batch_stride,
                    d.bias != nullptr, d.relu, d.bias_grad != nullptr, d.relu_mask_out != nullptr,
                    d.relu_mask_in != nullptr};
  std::lock_guard lock(state.plans_mutex);
  std::unique_ptr<Plan>& plan = state.plans[key];
  if (!plan) plan = make_plan(state, d);
  return *plan;
}

}  // namespace

void gemm_cublaslt(int device, const GemmDesc& d) {
  DeviceState& state = state_for(device);
  HEED_CUDA_CHECK(cudaSetDevice(device));
  Plan& p = plan_for(state, d);
  std::unique_lock<std::mutex> pointers_lock;  // held only by a GEMM that sets the plan's pointers
  const void* bias = d.bias_grad ? d.bias_grad : d.bias;
  const void* mask = d.relu_mask_out ? d.relu_mask_out : d.relu_mask_in;
  if (bias || mask) pointers_lock = std::unique_lock<std::mutex>(p.pointers_mutex);
  if (bias)
    HEED_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  if (mask)
    HEED_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &mask, sizeof(mask)));
  HEED_CUBLAS_CHECK(cublasLtMatmul(state.handle, p.op, &d.alpha, d.b.data, p.a, d.a.data, p.b, &d.beta,
                                   d.c ? d.c : d.out, p.c, d.out, p.c, &p.algo, state.workspace, kWorkspaceBytes,
                                   static_cast<cudaStream_t>(compute_stream(device))));
}

}  // namespace heed::cuda

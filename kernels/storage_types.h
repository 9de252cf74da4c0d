// The activation storage types of the fused training kernels (layer_norm, cross_entropy, activation_dropout,
// embedding): fp32, bf16 or fp16 in memory, always fp32 in registers.
//
// Kernels are templates on the storage type T, so each instantiation converts with one instruction and
// the dtype never reaches the inner loops; the host entry point picks the instantiation once with
// with_storage_type().
#pragma once

#include "common/device.h"
#include "heed/core/dtype.h"
#include "heed/core/error.h"

namespace heed::kernels::HEED_BACKEND {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

// Round to nearest even, as every conversion in Heed does.
template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}

// Calls body(T{}) with T the storage type of `dtype` (F32, BF16 or F16); `op` names the kernel in the
// error for any other dtype.
template <typename Body>
void with_storage_type(DType dtype, const char* op, Body&& body) {
  switch (dtype) {
    case DType::F32: body(float{}); return;
    case DType::BF16: body(__nv_bfloat16{}); return;
    case DType::F16: body(__half{}); return;
    default: HEED_CHECK(false, "{}: activations must be F32, BF16 or F16, got {}", op, dtype_name(dtype));
  }
}

}  // namespace heed::kernels::HEED_BACKEND

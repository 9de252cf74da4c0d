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

// Whether every pointer is 16-byte aligned, so that 16-byte packs of its elements may be moved whole.
template <typename... P>
__device__ __forceinline__ bool aligned_16(const P*... pointers) {
  return ((reinterpret_cast<uintptr_t>(pointers) % 16 == 0) && ...);
}

// kN consecutive elements at p (16-byte aligned) into fp32, in 16-byte loads: one instruction per 8
// bf16 or fp16 or 4 fp32, so a warp's request covers 512 contiguous bytes, where one element a lane
// covers 64 or 128 (llm.c's Packed128).
template <int kN, typename T>
__device__ __forceinline__ void load_floats(const T* p, float (&out)[kN]) {
  constexpr int kPack = 16 / sizeof(T);
  static_assert(kN % kPack == 0, "whole 16-byte packs");
#pragma unroll
  for (int k = 0; k < kN; k += kPack) {
    alignas(16) T pack[kPack];
    *reinterpret_cast<uint4*>(pack) = load_16(p + k);
#pragma unroll
    for (int j = 0; j < kPack; ++j) out[k + j] = to_float(pack[j]);
  }
}

// kN fp32 values, rounded to T, to p (16-byte aligned) in 16-byte stores.
template <int kN, typename T>
__device__ __forceinline__ void store_floats(T* p, const float (&in)[kN]) {
  constexpr int kPack = 16 / sizeof(T);
  static_assert(kN % kPack == 0, "whole 16-byte packs");
#pragma unroll
  for (int k = 0; k < kN; k += kPack) {
    alignas(16) T pack[kPack];
#pragma unroll
    for (int j = 0; j < kPack; ++j) pack[j] = from_float<T>(in[k + j]);
    store_16(p + k, *reinterpret_cast<const uint4*>(pack));
  }
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

// Reading and writing one element of a TensorLayout in device code, in any of Heed's dtypes, and the
// index arithmetic that maps a flat index of a shape to an offset under strides.
#pragma once

#include "common/device.h"
#include "tensor_layout.h"

namespace heed::kernels::HEED_BACKEND {

// Offset of the element with row-major flat index `flat` of `sizes`, under `strides`.
__device__ __forceinline__ int64_t strided_offset(int64_t flat, int dims, const int64_t* sizes,
                                                  const int64_t* strides) {
  int64_t offset = 0;
  for (int d = dims - 1; d >= 0; --d) {
    offset += (flat % sizes[d]) * strides[d];
    flat /= sizes[d];
  }
  return offset;
}

// Floating types convert through fp32 (round to nearest even on the way down), integer types by value.
__device__ __forceinline__ float load_element(const void* base, int64_t i, DType dtype) {
  switch (dtype) {
    case DType::F32: return static_cast<const float*>(base)[i];
    case DType::BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[i]);
    case DType::F16: return __half2float(static_cast<const __half*>(base)[i]);
    case DType::I32: return static_cast<float>(static_cast<const int32_t*>(base)[i]);
    case DType::I64: return static_cast<float>(static_cast<const int64_t*>(base)[i]);
    case DType::U8: return static_cast<float>(static_cast<const uint8_t*>(base)[i]);
  }
  return 0.0f;
}

__device__ __forceinline__ void store_element(void* base, int64_t i, DType dtype, float v) {
  switch (dtype) {
    case DType::F32: static_cast<float*>(base)[i] = v; break;
    case DType::BF16: static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16(v); break;
    case DType::F16: static_cast<__half*>(base)[i] = __float2half(v); break;
    case DType::I32: static_cast<int32_t*>(base)[i] = static_cast<int32_t>(v); break;
    case DType::I64: static_cast<int64_t*>(base)[i] = static_cast<int64_t>(v); break;
    case DType::U8: static_cast<uint8_t*>(base)[i] = static_cast<uint8_t>(v); break;
  }
}

}  // namespace heed::kernels::HEED_BACKEND

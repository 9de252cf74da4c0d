// How the generic kernels (elementwise.cu, reduce.cu) see a tensor: a pointer, a dtype, and up to
// kMaxDims sizes and strides, so views (transposes, narrows, stride-0 broadcasts) go in without a copy.
#pragma once

#include <cstdint>

#include "heed/core/dtype.h"

namespace heed::kernels {

inline constexpr int kMaxDims = 8;

struct TensorLayout {
  void* data = nullptr;
  DType dtype = DType::F32;
  int dims = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};  // in elements; 0 for a broadcast dimension
};

}  // namespace heed::kernels

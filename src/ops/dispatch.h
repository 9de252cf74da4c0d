// Device dispatch for ops: one macro at the boundary between an op's checks and its backends.
//
// Each op X has src/ops/X.cc (argument checks, shapes, dispatch), X_kernels.h (the backend entry points,
// declared once), X_cpu.cc, and X_gpu.cu once the op has a CUDA implementation. HEED_DISPATCH(device,
// "X", fn(args...)) calls cpu::fn or cuda::fn; a device without an implementation is an error that names
// the op, never a silent copy to another device.
#pragma once

#include "heed/core/device.h"
#include "heed/core/error.h"
#include "heed/core/tensor.h"

#define HEED_DISPATCH(device, op_name, call)                                                          \
  do {                                                                                                \
    if ((device).is_cpu()) return cpu::call;                                                          \
    HEED_CHECK(false, "op {} has no implementation for {} in this build", op_name, (device).str()); \
  } while (0)

namespace heed::ops {

// The checks every fp32 op input goes through.
inline void check_f32(const Tensor& t, const char* op, const char* what) {
  HEED_CHECK(t.defined(), "{}: {} is undefined", op, what);
  HEED_CHECK(t.dtype() == DType::F32, "{}: {} must be F32, got {}", op, what, dtype_name(t.dtype()));
}

}  // namespace heed::ops

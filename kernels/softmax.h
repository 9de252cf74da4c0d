// Softmax over the last dimension of contiguous rows (softmax.cu): the GPU path of ops::softmax_forward
// and _backward, and the middle step of the unfused attention that bench/ compares the fused kernel with;
// and log-softmax, the GPU path of ops::log_softmax.
#pragma once

#include <cstdint>

#include "common/backend.h"
#include "heed/core/dtype.h"

namespace heed::kernels {

struct SoftmaxArgs {
  int64_t rows = 0, cols = 0;
  DType dtype = DType::F32;  // of x, y, dy and dx: F32, BF16 or F16; the math is fp32
  const void* x = nullptr;   // forward and log_softmax input
  const void* y = nullptr;   // backward: the forward output
  const void* dy = nullptr;  // backward: its gradient
  void* out = nullptr;       // forward: y; backward: dx = y * (dy - sum(dy * y)); log_softmax: log(y)
  Stream stream = nullptr;
};

template <Backend B>
void softmax_forward(const SoftmaxArgs& args);
template <Backend B>
void softmax_backward(const SoftmaxArgs& args);
// out = (x - max) - log(sum(e^(x - max))) per row, without forming y.
template <Backend B>
void log_softmax(const SoftmaxArgs& args);

}  // namespace heed::kernels

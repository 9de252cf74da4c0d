// Generic pointwise kernels over strided tensors of any dtype: the copies, conversions, fills and
// broadcasting arithmetic that the GPU path of the tensor and elementwise ops runs (elementwise.cu).
#pragma once

#include "common/backend.h"
#include "tensor_layout.h"

namespace heed::kernels {

enum class PointwiseOp {
  Copy,  // out = a, converted to out's dtype (same-dtype copies move bits, so 64-bit ids stay exact)
  Fill,  // out = value
  Add,   // out = alpha * a + beta * b
  Mul,   // out = alpha * a * b
};

// Every layout has out's sizes; a broadcast operand has stride 0 in its stretched dimensions.
struct PointwiseArgs {
  PointwiseOp op = PointwiseOp::Copy;
  TensorLayout out, a, b;
  float alpha = 1.0f, beta = 1.0f, value = 0.0f;
  Stream stream = nullptr;
};

template <Backend B>
void pointwise(const PointwiseArgs& args);

}  // namespace heed::kernels

// The epilogue of a Transformer's linear layers, fused (bias_act_dropout.cu):
//   y = residual + dropout(act(x + bias))
// where x is a GEMM's output without its bias. It computes the same function as the CPU modules compose
// from ops: autograd::linear's bias add, ops::activation_forward (ReLU, GELU in its exact erf form, SiLU),
// ops::dropout_forward (element (i, j) of the [rows, cols] tensor kept when Philox's uniform number at flat
// index i * cols + j is >= p, and scaled by 1 / (1 - p), as ops::dropout_keep defines it) and the residual
// add: a feed-forward block's fc1 is act + dropout without residual, an attention or fc2 output is
// bias + dropout + residual with no activation.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/backend.h"
#include "heed/core/dtype.h"
#include "heed/core/philox.h"

namespace heed::kernels {

enum class BiasActivation { None, ReLU, GELU, SiLU };

struct BiasActDropoutArgs {
  int64_t rows = 0, cols = 0;  // every tensor but bias is [rows, cols], contiguous
  DType dtype = DType::BF16;   // of x, residual, y, dy and dx: F32, BF16 or F16; the math is fp32
  const void* x = nullptr;
  const float* bias = nullptr;  // [cols], the fp32 parameter; optional
  BiasActivation act = BiasActivation::None;
  float dropout_p = 0.0f;  // 0: no dropout (and no random numbers drawn); else in (0, 1)
  RandomKey dropout_key;
  const void* residual = nullptr;  // optional
  void* y = nullptr;               // forward output

  // Backward: dx = dy * dropout mask * act'(x + bias), the gradient of both x and the pre-bias GEMM
  // output; dbias = the column sums of dx in fp32 (optional). The residual's gradient is dy itself.
  const void* dy = nullptr;
  void* dx = nullptr;
  float* dbias = nullptr;
  void* workspace = nullptr;  // bias_act_dropout_backward_workspace_bytes(args) bytes when dbias is wanted

  Stream stream = nullptr;
};

template <Backend B>
void bias_act_dropout_forward(const BiasActDropoutArgs& args);

template <Backend B>
size_t bias_act_dropout_backward_workspace_bytes(const BiasActDropoutArgs& args);
template <Backend B>
void bias_act_dropout_backward(const BiasActDropoutArgs& args);

}  // namespace heed::kernels

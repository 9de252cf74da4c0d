// The activation and dropout ops' GPU kernels (activation_dropout.cu): y = dropout(act(x)) over a
// contiguous tensor, and its backward. They compute the same function as the CPU ops:
// ops::activation_forward (ReLU, GELU in its exact erf form, SiLU) and ops::dropout_forward (flat element i
// kept when Philox's uniform number at index i is >= p, and scaled by 1 / (1 - p), as ops::dropout_keep
// defines it). The activation op runs them without dropout, the dropout op without an activation, and
// with a residual to add.
#pragma once

#include <cstdint>

#include "common/backend.h"
#include "heed/core/dtype.h"
#include "heed/core/philox.h"

namespace heed::kernels {

enum class Activation { None, ReLU, GELU, SiLU };

struct ActivationDropoutArgs {
  int64_t n = 0;              // elements of every tensor, contiguous
  DType dtype = DType::BF16;  // of x, y, dy and dx: F32, BF16 or F16; the math is fp32
  const void* x = nullptr;
  Activation act = Activation::None;
  float dropout_p = 0.0f;  // 0: no dropout (and no random numbers drawn); else in (0, 1)
  RandomKey dropout_key;
  void* y = nullptr;  // forward output
  // Forward, optional: y = residual + dropout(act(x)), a sublayer's output joining the residual stream in
  // the same pass (one rounding to the type), where a dropout and an add would take two.
  const void* residual = nullptr;

  // Backward: dx = dy * dropout mask * act'(x).
  const void* dy = nullptr;
  void* dx = nullptr;

  Stream stream = nullptr;
};

template <Backend B>
void activation_dropout_forward(const ActivationDropoutArgs& args);
template <Backend B>
void activation_dropout_backward(const ActivationDropoutArgs& args);

}  // namespace heed::kernels

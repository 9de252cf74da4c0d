// Backend entry points of the activation op; src/ops/activation.cc checks arguments and dispatches here.
#pragma once

#include "heed/core/philox.h"
#include "heed/core/tensor.h"
#include "heed/ops/activation.h"

namespace heed::ops::cpu {

// x, dy: contiguous fp32; y and dx: fresh contiguous tensors of the same shape. The backward applies the
// dropout mask after the slope when dropout_p > 0.
void activation_forward(const Tensor& x, Tensor& y, Activation act);
void activation_backward(const Tensor& dy, const Tensor& x, Tensor& dx, Activation act, float dropout_p,
                         const RandomKey& dropout_key);

}  // namespace heed::ops::cpu

namespace heed::ops::gpu {

// As on the CPU; the tensors may also be bf16 or fp16 (kernels/activation_dropout.cu: the forward
// without dropout, the backward with it when asked, in the same pass).
void activation_forward(const Tensor& x, Tensor& y, Activation act);
void activation_backward(const Tensor& dy, const Tensor& x, Tensor& dx, Activation act, float dropout_p,
                         const RandomKey& dropout_key);

}  // namespace heed::ops::gpu

// Backend entry points of softmax; src/ops/softmax.cc checks shapes and dispatches here.
#pragma once

#include "heed/core/tensor.h"

namespace heed::ops::cpu {

// Rows of the last dimension; all tensors contiguous and of one shape, outputs fresh.
void softmax_forward(const Tensor& x, Tensor& y);
void softmax_backward(const Tensor& dy, const Tensor& y, Tensor& dx);

}  // namespace heed::ops::cpu

namespace heed::ops::gpu {

void softmax_forward(const Tensor& x, Tensor& y);
void softmax_backward(const Tensor& dy, const Tensor& y, Tensor& dx);

}  // namespace heed::ops::gpu

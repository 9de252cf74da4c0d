// Softmax over the last dimension.
#pragma once

#include "heed/core/tensor.h"

namespace heed::ops {

Tensor softmax_forward(const Tensor& x);
// dx = y * (dy - sum(dy * y)) per row.
Tensor softmax_backward(const Tensor& dy, const Tensor& y);

}  // namespace heed::ops

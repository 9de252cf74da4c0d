// Backend entry points of log_softmax; src/ops/log_softmax.cc checks the argument and dispatches here.
#pragma once

#include "heed/core/tensor.h"

namespace heed::ops::cpu {

// Rows of the last dimension; x contiguous, y fresh and of x's shape.
void log_softmax(const Tensor& x, Tensor& y);

}  // namespace heed::ops::cpu

namespace heed::ops::gpu {

void log_softmax(const Tensor& x, Tensor& y);

}  // namespace heed::ops::gpu

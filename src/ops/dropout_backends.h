// Backend entry points of dropout; src/ops/dropout.cc checks arguments and dispatches here.
#pragma once

#include "heed/core/philox.h"
#include "heed/core/tensor.h"

namespace heed::ops::cpu {

// y = x * keep(i) / (1 - p) for 0 < p < 1; x contiguous, y a fresh tensor of x's shape. The backward pass
// is the same map applied to dy. With a residual (contiguous, x's shape and type), y = residual + that.
void dropout_apply(const Tensor& x, const Tensor& residual, Tensor& y, float p, const RandomKey& key);

}  // namespace heed::ops::cpu

namespace heed::ops::gpu {

// As on the CPU, with the same mask; x and y may also be bf16 or fp16.
void dropout_apply(const Tensor& x, const Tensor& residual, Tensor& y, float p, const RandomKey& key);

}  // namespace heed::ops::gpu

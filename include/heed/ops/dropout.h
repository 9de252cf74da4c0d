// Inverted dropout with masks drawn from Philox-4x32-10, keyed by (seed, step, tensor id).
//
// Element i of the tensor is kept when uniform(key, i) >= p, and kept elements are scaled by 1/(1-p).
// The mask is never stored: the backward pass draws it again from the same key, and the CUDA kernels
// draw the very same mask.
#pragma once

#include "heed/core/philox.h"
#include "heed/core/tensor.h"

namespace heed::ops {

Tensor dropout_forward(const Tensor& x, float p, const RandomKey& key);
Tensor dropout_backward(const Tensor& dy, float p, const RandomKey& key);
// residual + dropout_forward(x, p, key) in one pass (0 < p < 1; residual of x's shape and type): a sublayer
// joining the residual stream. Its backward is dy for the residual and dropout_backward(dy) for x.
Tensor dropout_add_forward(const Tensor& residual, const Tensor& x, float p, const RandomKey& key);

// The keep decision for flat element index i; the one definition every implementation follows.
inline bool dropout_keep(const RandomKey& key, uint64_t i, float p) {
  float u[4];
  philox_uniform4(key, i / 4, u);
  return u[i % 4] >= p;
}

}  // namespace heed::ops

// LayerNorm over the last dimension, with fp32 (on the CPU, double-accumulated) statistics.
#pragma once

#include "heed/core/tensor.h"

namespace heed::ops {

struct LayerNormResult {
  Tensor y;     // same shape as x
  Tensor mean;  // [rows]
  Tensor rstd;  // [rows], 1 / sqrt(var + eps), with the biased variance as PyTorch uses
};
struct LayerNormGrads {
  Tensor dx, dgamma, dbeta;
};

// x: [..., D], gamma and beta: [D].
LayerNormResult layer_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);
LayerNormGrads layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                   const Tensor& rstd);

}  // namespace heed::ops

// CPU entry points of LayerNorm; src/ops/layer_norm.cc checks shapes and dispatches here.
#pragma once

#include "heed/core/tensor.h"

namespace heed::ops::cpu {

// x: contiguous [rows, D] (viewed flat); gamma, beta: contiguous [D]; y, mean, rstd: fresh.
void layer_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps, Tensor& y,
                        Tensor& mean, Tensor& rstd);
// dx, dgamma, dbeta: fresh, fully written here.
void layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                         const Tensor& rstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta);

}  // namespace heed::ops::cpu

// Backend entry points of LayerNorm; src/ops/layer_norm.cc checks shapes and dispatches here.
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

namespace heed::ops::gpu {

// As on the CPU; x, y, dy and dx may also be bf16 or fp16 (gamma, beta, the statistics and the parameter
// gradients stay fp32).
void layer_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps, Tensor& y,
                        Tensor& mean, Tensor& rstd);
void layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                         const Tensor& rstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta);

}  // namespace heed::ops::gpu

// LayerNorm over the last dimension of contiguous rows (layer_norm.cu), forward and backward: the GPU
// path of heed/ops/layer_norm.h, with the same math and conventions (biased variance, rstd =
// 1 / sqrt(var + eps), the fp32 mean and rstd saved for the backward pass). Activations are fp32, bf16 or
// fp16; gamma, beta, the statistics and the parameter gradients are fp32; compute is fp32.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/backend.h"
#include "heed/core/dtype.h"

namespace heed::kernels {

struct LayerNormArgs {
  int64_t rows = 0, cols = 0;  // x is [rows, cols], cols = D
  DType dtype = DType::BF16;   // of x, y, dy and dx: F32, BF16 or F16
  float eps = 1e-5f;
  const void* x = nullptr;
  const float* gamma = nullptr;  // [D]
  const float* beta = nullptr;   // [D], forward only
  void* y = nullptr;             // forward output
  float* mean = nullptr;         // [rows]: written by the forward pass, read by the backward pass
  float* rstd = nullptr;         // [rows]: likewise

  // Backward only: dx and the parameter gradients are overwritten, not accumulated.
  const void* dy = nullptr;
  void* dx = nullptr;
  float* param_grads = nullptr;  // [2, D]: dgamma, then dbeta (one launch sums both)
  void* workspace = nullptr;  // layer_norm_backward_workspace_bytes(args) bytes of device memory

  Stream stream = nullptr;
};

template <Backend B>
void layer_norm_forward(const LayerNormArgs& args);

template <Backend B>
size_t layer_norm_backward_workspace_bytes(const LayerNormArgs& args);
template <Backend B>
void layer_norm_backward(const LayerNormArgs& args);

}  // namespace heed::kernels

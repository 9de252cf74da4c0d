// Backend entry points of the fused cross-entropy; src/ops/cross_entropy.cc validates targets and
// dispatches here.
#pragma once

#include "heed/core/tensor.h"

namespace heed::ops::cpu {

// logits: contiguous [N, V] fp32; targets: contiguous int32 [N], checked to lie in [0, V) or equal
// ignore_index; lse: fresh fp32 [N], written for every row (0 for ignored rows); loss_sum, nll_sum: fresh
// fp32 0-d tensors, the smoothed loss and -log p_target summed over the counted rows (in double).
void cross_entropy_forward(const Tensor& logits, const Tensor& targets, int64_t ignore_index, float smoothing,
                           Tensor& lse, Tensor& loss_sum, Tensor& nll_sum);
// dlogits: fresh, logits' shape and dtype, fully written (zero rows for ignored targets).
void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, int64_t ignore_index,
                            float smoothing, float grad_scale, const Tensor& dloss, Tensor& dlogits);

}  // namespace heed::ops::cpu

namespace heed::ops::gpu {

// As on the CPU; logits and dlogits may also be bf16 or fp16.
void cross_entropy_forward(const Tensor& logits, const Tensor& targets, int64_t ignore_index, float smoothing,
                           Tensor& lse, Tensor& loss_sum, Tensor& nll_sum);
void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, int64_t ignore_index,
                            float smoothing, float grad_scale, const Tensor& dloss, Tensor& dlogits);

}  // namespace heed::ops::gpu

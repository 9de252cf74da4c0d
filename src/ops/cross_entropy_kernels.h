// Backend entry points of the fused cross-entropy; src/ops/cross_entropy.cc validates targets and
// dispatches here.
#pragma once

#include "heed/core/tensor.h"

// The same entry points for each backend.
// logits: contiguous [N, V] (fp32 on the CPU; also bf16 or fp16 on the GPU path); targets: contiguous int32
// [N], checked to lie in [0, V) or equal ignore_index; lse: fresh fp32 [N], written for every row (0 for
// ignored rows); loss_sum, nll_sum: fresh fp32 0-d tensors, the smoothed loss and -log p_target summed
// over the counted rows (in double). dlogits: fresh, logits' shape and dtype, fully written (zero rows for
// ignored targets).
#define HEED_CROSS_ENTROPY_ENTRY_POINTS                                                                     \
  void cross_entropy_forward(const Tensor& logits, const Tensor& targets, int64_t ignore_index, float smoothing, \
                             Tensor& lse, Tensor& loss_sum, Tensor& nll_sum);                               \
  void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,                 \
                              int64_t ignore_index, float smoothing, float grad_scale, Tensor& dlogits);

namespace heed::ops::cpu {
HEED_CROSS_ENTROPY_ENTRY_POINTS
}  // namespace heed::ops::cpu

namespace heed::ops::gpu {
HEED_CROSS_ENTROPY_ENTRY_POINTS
}  // namespace heed::ops::gpu

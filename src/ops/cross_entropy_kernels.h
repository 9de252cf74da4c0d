// CPU entry points of the fused cross-entropy; src/ops/cross_entropy.cc validates targets and dispatches here.
#pragma once

#include "heed/core/tensor.h"

namespace heed::ops::cpu {

struct CrossEntropySums {
  double loss = 0;  // smoothed loss over counted rows
  double nll = 0;   // -log p_target over counted rows
};

// logits: contiguous [N, V]; targets: contiguous int32 [N], checked to lie in [0, V) or equal ignore_index;
// lse: fresh [N], written for every row (0 for ignored rows).
CrossEntropySums cross_entropy_forward(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                                       float smoothing, Tensor& lse);
// dlogits: fresh [N, V], fully written (zero rows for ignored targets).
void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, int64_t ignore_index,
                            float smoothing, float grad_scale, Tensor& dlogits);

}  // namespace heed::ops::cpu

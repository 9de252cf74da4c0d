// Label-smoothed softmax cross-entropy, fused over the vocabulary.
//
// For a row with target t and smoothing eps over V classes, the loss is
//   (1 - eps) * -log p_t + eps * mean_v(-log p_v),
// the definition of torch.nn.functional.cross_entropy(label_smoothing=eps). Rows whose target equals
// ignore_index contribute nothing and are not counted. No probability tensor is kept: the backward pass
// recomputes p from the logits and the saved per-row logsumexp.
#pragma once

#include <cstdint>

#include "heed/core/tensor.h"

namespace heed::ops {

struct CrossEntropyResult {
  Tensor loss_sum;  // 0-d: the smoothed loss summed over counted rows
  Tensor nll_sum;   // 0-d: -log p_t summed over counted rows (for perplexity)
  int64_t count = 0;  // rows whose target is not ignore_index
  Tensor lse;       // [N] logsumexp per row
};

// logits: [N, V] fp32, targets: [N] int32 with values in [0, V) or equal to ignore_index.
CrossEntropyResult cross_entropy_forward(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                                         float smoothing);
// Gradient of grad_scale * loss_sum with respect to the logits, times `dloss` (a 0-d fp32 tensor beside the
// logits: the gradient that reached the loss, read where it is) when that is defined.
Tensor cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                              int64_t ignore_index, float smoothing, float grad_scale, const Tensor& dloss = {});

}  // namespace heed::ops

// Beam search's selection step: for each row of logits, the k best continuations by
// prefix + log_softmax(logits), best first.
//
// Scores are fp32, computed as (x - max) - log(sum(e^(x - max))) and then prefix + that, in that order on
// both backends. Candidates rank by score, higher first, and equal scores by token, lower first (the order
// of Hugging Face's flattened scores), so the result never depends on how the work is split. Non-finite
// scores (-inf or NaN) are never returned; rows with fewer than k finite candidates fill the rest with
// score -inf and token -1.
#pragma once

#include <vector>

#include "heed/core/tensor.h"

namespace heed::ops {

struct TopK {
  Tensor scores;  // [rows, k] F32, on the CPU
  Tensor tokens;  // [rows, k] I32, on the CPU
};

// logits: [rows, vocab] on any device (F32 on the CPU; F32, BF16 or F16 on the GPU path); prefix: one
// score per row; `exclude` is a token never returned (e.g. the pad id), or -1. Only rows x k values come
// back from a GPU.
TopK log_softmax_top_k(const Tensor& logits, const std::vector<float>& prefix, int64_t k, int64_t exclude = -1);

}  // namespace heed::ops

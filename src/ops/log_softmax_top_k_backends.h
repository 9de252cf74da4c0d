// Backend entry points of log_softmax_top_k; src/ops/log_softmax_top_k.cc checks the arguments and
// dispatches here. Outputs are [rows, k] tensors on the logits' device.
#pragma once

#include "heed/core/tensor.h"

namespace heed::ops::cpu {
void log_softmax_top_k(const Tensor& logits, const Tensor& prefix, int64_t exclude, Tensor& scores, Tensor& tokens);
}  // namespace heed::ops::cpu

namespace heed::ops::gpu {
void log_softmax_top_k(const Tensor& logits, const Tensor& prefix, int64_t exclude, Tensor& scores, Tensor& tokens);
}  // namespace heed::ops::gpu

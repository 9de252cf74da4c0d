// Backend entry points of log_softmax_top_k; src/ops/log_softmax_top_k.cc checks the arguments and
// dispatches here. `logits` holds 1 to kMaxTopKModels contiguous [rows, vocab] tensors of one dtype on one
// device, `weights` one positive weight each; outputs are [rows, k] tensors on the logits' device.
#pragma once

#include <vector>

#include "heed/core/tensor.h"

namespace heed::ops::cpu {
void log_softmax_top_k(const std::vector<Tensor>& logits, const std::vector<double>& weights, const Tensor& prefix,
                       int64_t exclude, Tensor& scores, Tensor& tokens);
}  // namespace heed::ops::cpu

namespace heed::ops::gpu {
void log_softmax_top_k(const std::vector<Tensor>& logits, const std::vector<double>& weights, const Tensor& prefix,
                       int64_t exclude, Tensor& scores, Tensor& tokens);
}  // namespace heed::ops::gpu

// Backend entry points of the embedding op; src/ops/embedding.cc validates ids and dispatches here.
#pragma once

#include "heed/core/tensor.h"

namespace heed::ops::cpu {

// ids: contiguous int32, already checked to lie in [0, V); weight: contiguous [V, D]; out: fresh
// [ids.numel(), D] (viewed flat).
void embedding_forward(const Tensor& ids, const Tensor& weight, Tensor& out, float scale);
// dy: contiguous, ids.numel() rows of D; dweight: [V, D], fully written here, or with `accumulate` added
// to in the rows of ids present. pad_id < 0: no pad.
void embedding_backward(const Tensor& dy, const Tensor& ids, Tensor& dweight, bool accumulate, int64_t pad_id,
                        float scale);

}  // namespace heed::ops::cpu

namespace heed::ops::gpu {

// As on the CPU; weight and out may also be bf16 or fp16. The backward pass is deterministic: the
// positions are grouped by id on the host, and each vocabulary row adds its own in order.
void embedding_forward(const Tensor& ids, const Tensor& weight, Tensor& out, float scale);
void embedding_backward(const Tensor& dy, const Tensor& ids, Tensor& dweight, bool accumulate, int64_t pad_id,
                        float scale);

}  // namespace heed::ops::gpu

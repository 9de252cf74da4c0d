// Backend entry points of the fused attention op. attention.cc has checked the arguments (fp32 on the
// CPU, bf16 or fp16 on the GPU path; shapes [B,H,Lq,D] and [B,H,Lk,D], unit last-dimension stride, U8
// [B,Lk] contiguous key padding, dropout in [0, 1)); a backend allocates the forward's results in the
// layout heed/ops/attention.h promises, and writes the backward's into the tensors it is given (checked the
// same way).
#pragma once

#include "heed/ops/attention.h"

namespace heed::ops::cpu {

AttentionResult attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& opt);
void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                        const AttentionResult& fwd, const AttentionOptions& opt, const AttentionGrads& grads);
// lse: contiguous fp32 [B, H, Lq] on q's device.
Tensor attention_probabilities(const Tensor& q, const Tensor& k, const Tensor& lse, const AttentionOptions& opt);

}  // namespace heed::ops::cpu

namespace heed::ops::gpu {

// q, k, v, dout: bf16 or fp16 with 16-byte aligned rows (the kernels copy rows in 16-byte pieces).
AttentionResult attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& opt);
void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                        const AttentionResult& fwd, const AttentionOptions& opt, const AttentionGrads& grads);
// lse: contiguous fp32 [B, H, Lq] on q's device.
Tensor attention_probabilities(const Tensor& q, const Tensor& k, const Tensor& lse, const AttentionOptions& opt);

}  // namespace heed::ops::gpu

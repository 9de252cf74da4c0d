// Log-softmax over the last dimension: y = (x - max) - log(sum(e^(x - max))) per row, the subtraction in
// that order as torch computes it, so no term overflows. Decoding's per-token log-probabilities.
#pragma once

#include "heed/core/tensor.h"

namespace heed::ops {

// x: fp32 on the CPU; fp32, bf16 or fp16 on the GPU path (computed in fp32, stored in x's type). A -inf
// entry (a masked token) comes out as -inf.
Tensor log_softmax(const Tensor& x);

}  // namespace heed::ops

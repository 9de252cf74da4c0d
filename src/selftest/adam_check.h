// Checks of the multi-tensor Adam kernel (kernels/adam.cu) against the CPU op, heed::ops::adam_update:
// one launch updates several tensors (their sizes, and which of them also get a 16-bit copy of the new
// weights, are the case's), AdamW or Adam with coupled decay, at a given step and grad_scale. Every input
// is random and non-zero: weights and gradients in [-1, 1], m in [-0.1, 0.1], v in (0, 0.01].
//
// Tolerances. The kernel's arithmetic is the CPU op's, operation for operation, except that nvcc may fuse
// a multiply and an add (one rounding instead of two); each result is a few such operations from its
// inputs, so it is within 4 u of the sum of the magnitudes of the terms that form it (u = 2^-24):
// m within 4 u (|beta1 m| + |(1 - beta1) g|), v likewise, and the new weight within 8 u (|p decay| +
// |step|), the step's quotient carrying the relative errors of m and v (about 2 u each) on top of its own.
// Each element is held to its own bound. The simulator computes with the host's fp32 arithmetic, so there
// it matches the CPU exactly whenever the host compiler does not contract either. The 16-bit copy must be
// exactly the kernel's own new fp32 weight rounded to nearest even.
//
// With `clip=C` the scale comes from the device, as a trainer's does: grad_squares sums the squares of all
// gradients (checked against a double sum on the host: each thread adds at most 16 squares in fp32, the
// block 8 levels of partial sums and the chunks are added in double, so the sum is within 25 u of the
// exact one, all terms being positive), and the update clips from that sum with loss scale 1/S (so S is
// still the factor when nothing is clipped). With `nan` as well, one gradient is NaN: the update must
// then leave every param, m and v exactly as they were, on both paths.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "selftest/check.h"

namespace heed::selftest {

struct AdamCase {
  std::vector<int64_t> sizes;   // the tensors of one launch, in order (0 is an empty tensor)
  std::vector<bool> half_copy;  // for each, whether it also writes a 16-bit copy of its new weights
  int64_t step = 1;
  bool decoupled = true;  // AdamW with lr 3e-3 and weight decay 0.1; else Adam with coupled decay 0.01
  float grad_scale = 1.0f;
  kernels::Half half = kernels::Half::BF16;  // of the copies
  float clip_norm = -1;   // >= 0: clip from the device's sum of squares (0: no clipping, the sum is used)
  bool nan_grad = false;  // with clip_norm: one gradient is NaN, and nothing may change
  std::string str() const;
};

// "SIZES,STEP[,adamw|adam][,bf16|fp16][,scale=S][,clip=C[,nan]]", SIZES as N[h]/N[h]/... with h marking a tensor that
// also writes a 16-bit copy; nullopt (and *error set) when the text does not parse.
std::optional<AdamCase> parse_adam_case(const std::string& text, std::string* error);

CheckResult check_adam(kernels::Backend backend, const AdamCase& c, uint64_t seed);

}  // namespace heed::selftest

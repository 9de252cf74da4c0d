// Checks of the fused label-smoothed cross-entropy kernels (kernels/cross_entropy.cu) against the CPU op,
// heed::ops::cross_entropy_forward and _backward, in fp32 on the logits rounded to the kernel's storage
// type. Logits span [-6, 6], so that the row maximum moves often during the online logsumexp; targets
// cycle through the classes from V - 1 down (so class 0 and V - 1 both occur), and every fourth row's
// target, or every row's, is ignore_index. Outputs start as NaN.
//
// Tolerances. The kernel and the CPU op compute lse from the same rounded logits in fp32 with different
// summation orders (the kernel: V / 256 terms a thread, then 8 + 5 merge levels; the CPU op: blocks of 512
// in vector lanes, then V / 512 blocks) and different exponentials (expf: 1-2 ulps; the CPU's exp_approx:
// 1.5e-7 relative). The sum of e^(x - max) is within (V / 128 + 64) u relative (u = 2^-24, the summation
// bound n u with n the larger of the two orders' depths, doubled), and so lse within that much absolutely
// plus 4 ulps of |lse|, row by row. A row's loss adds the smoothing term's mean of the logits, whose fp32
// sum is within (V / 256 + 16) u sum|x| / V. The per-row bounds are summed for loss_sum and nll_sum, which
// the CPU adds in double. A wrong maximum, a lost rescale or a wrong smoothing weight moves a loss by 1e-3
// or more. An ignored row's lse, loss and nll must be exactly 0. dlogits = grad_scale (p - eps / V - ...),
// with grad_scale given as 2 on the host times grad_scale / 2 in device memory (dloss):
// the error of p is p times the lse error plus expf's 2 ulps, so fp32 outputs are within
// |grad_scale| (lse bound + 4 u); 16-bit outputs within twice the error of a plain 16-bit gradient (the
// fp32 reference rounded once) plus that. docs/cuda.md lists how close the kernel comes to these bounds.
#pragma once

#include <optional>
#include <string>

#include "selftest/check.h"

namespace heed::selftest {

struct CrossEntropyCase {
  int64_t rows = 1, classes = 1;  // logits are [rows, classes]
  DType dtype = DType::BF16;      // of logits and dlogits
  float smoothing = 0.1f;
  bool ignore_all = false;  // every row's target is ignore_index (else every fourth row's)
  std::string str() const;
};

// "ROWS,CLASSES[,bf16|fp16|fp32][,smoothing=S][,ignoreall]"; nullopt (and *error set) when the text does
// not parse.
std::optional<CrossEntropyCase> parse_cross_entropy_case(const std::string& text, std::string* error);

// The forward pass (per-row lse, loss and nll), then the backward pass from the reference lse, so that it
// is checked on its own, with grad_scale = 1 / (counted rows).
CheckResult check_cross_entropy(kernels::Backend backend, const CrossEntropyCase& c, uint64_t seed);

}  // namespace heed::selftest

// Checks of the activation + dropout kernels (kernels/activation_dropout.cu) against the CPU ops they
// compute, composed as the modules compose them: ops::activation_forward and ops::dropout_forward forward;
// ops::dropout_backward and ops::activation_backward backward. Inputs are rounded to the kernel's storage
// type first, so input rounding is not counted as error; x spans [-3, 3] so that every activation's
// regions are exercised. A dropout mask that differs from the CPU's in a single element moves that element
// by O(1), far outside any tolerance below. Outputs start as NaN.
//
// Tolerances (u = 2^-24), element by element. The kernel uses erff and expf where the CPU op uses its
// polynomial normal CDF (1.5e-7 absolute) and exp (1.5e-7 relative), a few u either way, on an input of
// magnitude |v| <= 3: the activation differs by at most 16 u (1 + |v|) (relative to its input scale), and
// the result after the dropout scale s by 16 u (s (1 + |v|) + |y|). The slope likewise: dx within
// 16 u s |dy| (1 + |v|). 16-bit outputs may in addition be off by twice the error of a plain 16-bit
// computation (the fp32 reference rounded once, over the whole tensor). With a residual r, the kernel adds
// it in fp32 before its one rounding, as the CPU adds it in fp32: u |r| more.
#pragma once

#include <optional>
#include <string>

#include "kernels/activation_dropout.h"
#include "selftest/check.h"

namespace heed::selftest {

struct ActivationDropoutCase {
  int64_t rows = 1, cols = 1;
  kernels::Activation act = kernels::Activation::None;
  float dropout = 0.0f;
  DType dtype = DType::BF16;  // of x, y, dy and dx
  bool unaligned = false;     // every tensor one element into its allocation: no 16-byte aligned pointer
  bool residual = false;      // forward: y = r + dropout(act(x)), a residual r added in the same pass
  std::string str() const;
};

// "ROWS,COLS,none|relu|gelu|silu[,dropout=P][,bf16|fp16|fp32][,unaligned][,residual]"; nullopt (and *error set) when the text
// does not parse.
std::optional<ActivationDropoutCase> parse_activation_dropout_case(const std::string& text, std::string* error);

// The forward pass (y), then the backward pass (dx).
CheckResult check_activation_dropout(kernels::Backend backend, const ActivationDropoutCase& c, uint64_t seed);

}  // namespace heed::selftest

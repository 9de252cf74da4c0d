// Checks of the fused bias + activation + dropout + residual kernels (kernels/bias_act_dropout.cu) against
// the CPU ops they fuse, composed as the modules compose them: ops::add_bias, ops::activation_forward,
// ops::dropout_forward and ops::add forward; ops::dropout_backward, ops::activation_backward and
// ops::sum_rows (the bias gradient) backward. Inputs are rounded to the kernel's storage type first, so
// input rounding is not counted as error; x spans [-3, 3] so that every activation's regions are
// exercised. A dropout mask that differs from the CPU's in a single element moves that element by O(1),
// far outside any tolerance below. Outputs start as NaN.
//
// Tolerances (u = 2^-24), element by element. The kernel uses erff and expf where the CPU op uses its
// polynomial normal CDF (1.5e-7 absolute) and exp (1.5e-7 relative), a few u either way, on a
// pre-activation of magnitude |v| <= 4: the activation differs by at most 16 u (1 + |v|) (relative to its
// input scale), and the result after the dropout scale s and the residual add by 16 u (s (1 + |v|) + |y|).
// The slope likewise: dx within 16 u s |dy| (1 + |v|). 16-bit outputs may in addition be off by twice the
// error of a plain 16-bit computation (the fp32 reference rounded once, over the whole tensor). dbias
// (fp32) sums dx over rows in another order than sum_rows: per column, 64 u times the sum of |dx| (both
// sides add at most 64 terms in fp32 before the next level) plus the sum of the elements' own allowances.
// Measured on the simulator (the kernel test's cases, seeds 1-8): fp32 y and dx within 0.13 of their
// bounds, 16-bit ones 0.50 (the plain rounding error itself), dbias 0.03.
#pragma once

#include <optional>
#include <string>

#include "heed/selftest/check.h"
#include "kernels/bias_act_dropout.h"

namespace heed::selftest {

struct BiasActCase {
  int64_t rows = 1, cols = 1;
  kernels::BiasActivation act = kernels::BiasActivation::None;
  float dropout = 0.0f;
  bool residual = false, bias = false;
  DType dtype = DType::BF16;  // of x, the residual, y, dy and dx; the bias and its gradient are fp32
  std::string str() const;
};

// "ROWS,COLS,none|relu|gelu|silu[,bias][,residual][,dropout=P][,bf16|fp16|fp32]"; nullopt (and *error
// set) when the text does not parse.
std::optional<BiasActCase> parse_bias_act_case(const std::string& text, std::string* error);

// The forward pass (y), then the backward pass (dx, and dbias with a bias).
CheckResult check_bias_act_dropout(kernels::Backend backend, const BiasActCase& c, uint64_t seed);

}  // namespace heed::selftest

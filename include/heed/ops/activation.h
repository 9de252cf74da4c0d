// Pointwise activations of the feed-forward block: ReLU, GELU (the exact, erf form) and SiLU/swish.
#pragma once

#include <string>

#include "heed/core/philox.h"
#include "heed/core/tensor.h"

namespace heed::ops {

enum class Activation { ReLU, GELU, SiLU };

// "relu", "gelu", "swish" or "silu"; throws heed::Error naming the choices otherwise.
Activation parse_activation(const std::string& name);
std::string activation_name(Activation act);

Tensor activation_forward(const Tensor& x, Activation act);
// dx = dy * act'(x); with dropout_p > 0, times the dropout mask of `dropout_key` and 1 / (1 - p) as well:
// the backward of dropout(act(x)) in one pass (the GPU's one kernel), where the two backwards take two.
Tensor activation_backward(const Tensor& dy, const Tensor& x, Activation act, float dropout_p = 0.0f,
                           const RandomKey& dropout_key = {});

}  // namespace heed::ops

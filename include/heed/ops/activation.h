// Pointwise activations of the feed-forward block: ReLU, GELU (the exact, erf form) and SiLU/swish.
#pragma once

#include <string>

#include "heed/core/tensor.h"

namespace heed::ops {

enum class Activation { ReLU, GELU, SiLU };

// "relu", "gelu", "swish" or "silu"; throws heed::Error naming the choices otherwise.
Activation parse_activation(const std::string& name);
std::string activation_name(Activation act);

Tensor activation_forward(const Tensor& x, Activation act);
// dx = dy * act'(x).
Tensor activation_backward(const Tensor& dy, const Tensor& x, Activation act);

}  // namespace heed::ops

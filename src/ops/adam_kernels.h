// CPU entry point of the Adam update; src/ops/adam.cc checks the slots, folds the step's scalars and
// dispatches here, one call per tensor.
#pragma once

#include "heed/core/tensor.h"

namespace heed::ops::cpu {

// The per-step scalars of one Adam update, folded on the host.
struct AdamStep {
  float beta1, beta2, eps;
  float decay;            // AdamW: parameters are multiplied by (1 - lr * weight_decay); 1 otherwise
  float coupled_decay;    // Adam: weight_decay * param is added to the gradient; 0 otherwise
  float step_size;        // lr / (1 - beta1^step)
  float bias2_sqrt;       // sqrt(1 - beta2^step)
  float grad_scale;
};

// Updates param, m and v in place (all contiguous fp32 of one shape) from grad.
void adam_update(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const AdamStep& s);

}  // namespace heed::ops::cpu

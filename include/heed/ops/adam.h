// Adam and AdamW (Kingma & Ba; Loshchilov & Hutter), with bias correction, over many tensors at once.
#pragma once

#include <vector>

#include "heed/core/tensor.h"

namespace heed::ops {

struct AdamHyper {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  bool decoupled = true;  // AdamW: decay the weights directly; Adam: add weight_decay * w to the gradient
};

struct AdamSlot {
  Tensor param, grad, m, v;  // same shape, fp32, contiguous
};

// One update of every slot; `step` counts from 1 and drives the bias correction. `grad_scale` multiplies
// every gradient first (for clipping and normalisation without another pass over memory).
void adam_update(const std::vector<AdamSlot>& slots, const AdamHyper& hyper, int64_t step, float grad_scale = 1.0f);

}  // namespace heed::ops

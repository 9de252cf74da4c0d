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

// How adam_update scales every gradient first (for clipping and normalisation without another pass over
// memory): by `factor`, and, when `squares` is defined, also by what kernels::clip_gradients makes of it.
// `squares` is grad_squares' result for the same (loss-scaled) gradients; when their norm is not finite
// the update changes nothing. Neither needs the host: the GPU path reads `squares` in the kernel.
struct GradScaling {
  float factor = 1.0f;
  Tensor squares = {};
  float clip_norm = 0.0f;  // 0: no clipping
  float loss_scale = 1.0f;
};

// One update of every slot; `step` counts from 1 and drives the bias correction.
void adam_update(const std::vector<AdamSlot>& slots, const AdamHyper& hyper, int64_t step,
                 const GradScaling& scaling = {});

// The sum of the squares of every element of `grads` (fp32, contiguous, on one device): a 0-d fp32 tensor
// on their device, the square of the global norm that clipping needs, made without a host round trip (on
// the GPU path, two launches of kernels/adam.cu for all the tensors).
Tensor grad_squares(const std::vector<Tensor>& grads);

// copies[i] = params[i] rounded to nearest even to copies[i]'s dtype (BF16 or F16; contiguous, params'
// shapes, one device): the 16-bit weights a 16-bit forward pass reads, one launch for all of them on the
// GPU path (autograd::ParameterCopies).
void half_copies(const std::vector<Tensor>& params, const std::vector<Tensor>& copies);

// homes[i] = grads[i], or zeros where grads[i] is undefined (fp32, contiguous, homes' shapes, one device):
// what autograd::settle_grads does to move gradients into their slices of a GradientBuffer, one launch for
// all of them on the GPU path. Nothing to copy: no launch.
void copy_grads(const std::vector<Tensor>& grads, const std::vector<Tensor>& homes);

}  // namespace heed::ops

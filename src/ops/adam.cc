// Checks, per-step constants and dispatch for Adam/AdamW and the sum of squares that clipping needs; the
// element loops are in adam_cpu.cc and, on the GPU path, kernels/adam.cu (one launch for every tensor).
//
// The update is that of torch.optim.AdamW and torch.optim.Adam (no amsgrad, no maximize), in the same
// order of operations, so a run can be compared with PyTorch's step by step (torch forms m with lerp,
// which agrees with the form below up to rounding):
//   g = grad_scale * grad (+ weight_decay * p for Adam)
//   p *= 1 - lr * weight_decay (AdamW)
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// The bias corrections are computed once per step in double.
#include "heed/ops/adam.h"

#include <cmath>

#include "ops/adam_backends.h"
#include "ops/dispatch.h"

namespace heed::ops {

void adam_update(const std::vector<AdamSlot>& slots, const AdamHyper& hyper, int64_t step, const GradScaling& scaling) {
  HEED_CHECK(step >= 1, "adam: step counts from 1, got {}", step);
  HEED_CHECK(hyper.lr >= 0.0f, "adam: lr must be non-negative, got {}", hyper.lr);
  HEED_CHECK(hyper.beta1 >= 0.0f && hyper.beta1 < 1.0f, "adam: beta1 must be in [0, 1), got {}", hyper.beta1);
  HEED_CHECK(hyper.beta2 >= 0.0f && hyper.beta2 < 1.0f, "adam: beta2 must be in [0, 1), got {}", hyper.beta2);
  HEED_CHECK(hyper.eps >= 0.0f, "adam: eps must be non-negative, got {}", hyper.eps);
  HEED_CHECK(hyper.weight_decay >= 0.0f, "adam: weight_decay must be non-negative, got {}", hyper.weight_decay);

  for (size_t i = 0; i < slots.size(); ++i) {
    const AdamSlot& slot = slots[i];
    for (const auto& [tensor, what] : {std::pair{&slot.param, "param"}, std::pair{&slot.grad, "grad"},
                                       std::pair{&slot.m, "m"}, std::pair{&slot.v, "v"}}) {
      HEED_CHECK(tensor->defined() && tensor->dtype() == DType::F32, "adam: slot {}: {} must be a defined F32 tensor",
                 i, what);
      HEED_CHECK(tensor->shape() == slot.param.shape(), "adam: slot {}: {} has shape {}, expected the parameter's {}",
                 i, what, shape_str(tensor->shape()), shape_str(slot.param.shape()));
      HEED_CHECK(tensor->is_contiguous(), "adam: slot {}: {} must be contiguous", i, what);
      HEED_CHECK(tensor->device() == slot.param.device(), "adam: slot {}: {} on {}, parameter on {}", i, what,
                 tensor->device().str(), slot.param.device().str());
    }
    HEED_CHECK(slot.param.device() == slots[0].param.device(), "adam: slot {} on {}, slot 0 on {}", i,
               slot.param.device().str(), slots[0].param.device().str());
  }
  HEED_CHECK(scaling.clip_norm >= 0.0f, "adam: clip_norm must be non-negative, got {}", scaling.clip_norm);
  HEED_CHECK(scaling.loss_scale > 0.0f, "adam: loss_scale must be positive, got {}", scaling.loss_scale);
  if (slots.empty()) return;
  if (scaling.squares.defined()) {
    HEED_CHECK(scaling.squares.dtype() == DType::F32 && scaling.squares.numel() == 1,
               "adam: squares must be one F32 value, got {} of shape {}", dtype_name(scaling.squares.dtype()),
               shape_str(scaling.squares.shape()));
    HEED_CHECK(scaling.squares.device() == slots[0].param.device(), "adam: squares on {}, parameters on {}",
               scaling.squares.device().str(), slots[0].param.device().str());
  }
  const kernels::AdamStepScalars s = adam_step_scalars(hyper, step, scaling.factor);
  HEED_DISPATCH(slots[0].param.device(), "adam", adam_update(slots, s, scaling));
}

Tensor grad_squares(const std::vector<Tensor>& grads) {
  HEED_CHECK(!grads.empty(), "grad_squares: no gradients given");
  for (size_t i = 0; i < grads.size(); ++i) {
    HEED_CHECK(grads[i].defined() && grads[i].dtype() == DType::F32 && grads[i].is_contiguous(),
               "grad_squares: gradient {} must be a defined, contiguous F32 tensor", i);
    HEED_CHECK(grads[i].device() == grads[0].device(), "grad_squares: gradient {} on {}, gradient 0 on {}", i,
               grads[i].device().str(), grads[0].device().str());
  }
  Tensor sum = Tensor::empty({}, DType::F32, grads[0].device());
  HEED_DISPATCH(grads[0].device(), "grad_squares", grad_squares(grads, sum));
  return sum;
}

void half_copies(const std::vector<Tensor>& params, const std::vector<Tensor>& copies) {
  HEED_CHECK(params.size() == copies.size(), "half_copies: {} parameters, {} copies", params.size(), copies.size());
  if (params.empty()) return;
  const DType half = copies[0].dtype();
  HEED_CHECK(half == DType::BF16 || half == DType::F16, "half_copies: copies must be BF16 or F16, got {}",
             dtype_name(half));
  for (size_t i = 0; i < params.size(); ++i) {
    HEED_CHECK(params[i].defined() && params[i].dtype() == DType::F32 && params[i].is_contiguous(),
               "half_copies: parameter {} must be a defined, contiguous F32 tensor", i);
    HEED_CHECK(copies[i].defined() && copies[i].dtype() == half && copies[i].is_contiguous() &&
                   copies[i].shape() == params[i].shape(),
               "half_copies: copy {} must be a contiguous {} tensor of shape {}", i, dtype_name(half),
               shape_str(params[i].shape()));
    HEED_CHECK(params[i].device() == params[0].device() && copies[i].device() == params[0].device(),
               "half_copies: parameter {} and its copy must be on {}", i, params[0].device().str());
  }
  HEED_DISPATCH(params[0].device(), "half_copies", half_copies(params, copies));
}

void copy_grads(const std::vector<Tensor>& grads, const std::vector<Tensor>& homes) {
  HEED_CHECK(grads.size() == homes.size(), "copy_grads: {} gradients, {} homes", grads.size(), homes.size());
  if (homes.empty()) return;
  for (size_t i = 0; i < homes.size(); ++i) {
    HEED_CHECK(homes[i].defined() && homes[i].dtype() == DType::F32 && homes[i].is_contiguous() &&
                   homes[i].device() == homes[0].device(),
               "copy_grads: home {} must be a contiguous F32 tensor on {}", i, homes[0].device().str());
    HEED_CHECK(!grads[i].defined() || (grads[i].dtype() == DType::F32 && grads[i].is_contiguous() &&
                                       grads[i].shape() == homes[i].shape() && grads[i].device() == homes[0].device()),
               "copy_grads: gradient {} must be a contiguous F32 tensor of shape {} on {}", i,
               shape_str(homes[i].shape()), homes[0].device().str());
  }
  HEED_DISPATCH(homes[0].device(), "copy_grads", copy_grads(grads, homes));
}

kernels::AdamStepScalars adam_step_scalars(const AdamHyper& hyper, int64_t step, float grad_scale) {
  const double t = static_cast<double>(step);
  kernels::AdamStepScalars s;
  s.beta1 = hyper.beta1;
  s.beta2 = hyper.beta2;
  s.eps = hyper.eps;
  s.decay = hyper.decoupled ? static_cast<float>(1.0 - double(hyper.lr) * hyper.weight_decay) : 1.0f;
  s.coupled_decay = hyper.decoupled ? 0.0f : hyper.weight_decay;
  s.step_size = static_cast<float>(hyper.lr / (1.0 - std::pow(double(hyper.beta1), t)));
  s.bias2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(double(hyper.beta2), t)));
  s.grad_scale = grad_scale;
  return s;
}

}  // namespace heed::ops

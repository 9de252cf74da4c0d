// Backend entry points of the Adam update; src/ops/adam.cc checks the slots, folds the step's scalars
// (kernels/adam.h's AdamStepScalars, one definition for both backends) and dispatches here.
#pragma once

#include <vector>

#include "heed/ops/adam.h"
#include "kernels/adam.h"

namespace heed::ops {

// The step's scalars, folded on the host in double: the bias corrections and the decay.
kernels::AdamStepScalars adam_step_scalars(const AdamHyper& hyper, int64_t step, float grad_scale);

}  // namespace heed::ops

// Updates every slot's param, m and v in place (contiguous fp32 of one shape per slot) from its grad,
// scaled by s.grad_scale and by what `scaling.squares`, when defined, says (kernels::clip_gradients). The
// CPU makes one pass per tensor; the GPU path one launch for all of them. grad_squares writes the sum of
// squares of all grads into the 0-d `sum`; half_copies rounds each param into its 16-bit copy; copy_grads
// copies each grad (zeros where undefined) into its home.
namespace heed::ops::cpu {
void adam_update(const std::vector<AdamSlot>& slots, const kernels::AdamStepScalars& s, const GradScaling& scaling);
void grad_squares(const std::vector<Tensor>& grads, Tensor& sum);
void half_copies(const std::vector<Tensor>& params, const std::vector<Tensor>& copies);
void copy_grads(const std::vector<Tensor>& grads, const std::vector<Tensor>& homes);
}  // namespace heed::ops::cpu

namespace heed::ops::gpu {
void adam_update(const std::vector<AdamSlot>& slots, const kernels::AdamStepScalars& s, const GradScaling& scaling);
void grad_squares(const std::vector<Tensor>& grads, Tensor& sum);
void half_copies(const std::vector<Tensor>& params, const std::vector<Tensor>& copies);
void copy_grads(const std::vector<Tensor>& grads, const std::vector<Tensor>& homes);
}  // namespace heed::ops::gpu

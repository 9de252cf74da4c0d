// Adam/AdamW over the trainable parameters of a store, with its moment buffers.
#pragma once

#include <string>
#include <vector>

#include "heed/io/safetensors.h"
#include "heed/nn/parameters.h"
#include "heed/ops/adam.h"

namespace heed::train {

class AdamOptimizer {
 public:
  // Parameters with requires_grad off (frozen) get no slot and are never updated.
  AdamOptimizer(const nn::ParameterStore& params, ops::AdamHyper hyper);

  // One update from the parameters' current gradients (each multiplied by grad_scale first); parameters
  // without a gradient are left alone. Advances the step count used for bias correction.
  void step(float grad_scale = 1.0f);
  int64_t steps() const { return step_; }
  ops::AdamHyper& hyper() { return hyper_; }

  // The moments as "exp_avg.<name>" and "exp_avg_sq.<name>", for checkpoints.
  io::TensorMap state() const;
  // Restores moments and the step count; a missing or mis-shaped moment is an error naming it.
  void load_state(const io::TensorMap& state, int64_t steps, const std::string& source);

 private:
  struct Slot {
    std::string name;
    nn::Variable param;
    Tensor m, v;
  };
  std::vector<Slot> slots_;
  ops::AdamHyper hyper_;
  int64_t step_ = 0;
};

}  // namespace heed::train

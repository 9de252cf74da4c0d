// Adam/AdamW over every parameter of a store, with its moment buffers.
#pragma once

#include <vector>

#include "heed/nn/parameters.h"
#include "heed/ops/adam.h"

namespace heed::train {

class AdamOptimizer {
 public:
  AdamOptimizer(const nn::ParameterStore& params, ops::AdamHyper hyper);

  // One update from the parameters' current gradients (each multiplied by grad_scale first); parameters
  // without a gradient are left alone. Advances the step count used for bias correction.
  void step(float grad_scale = 1.0f);
  int64_t steps() const { return step_; }
  ops::AdamHyper& hyper() { return hyper_; }

 private:
  struct Slot {
    nn::Variable param;
    Tensor m, v;
  };
  std::vector<Slot> slots_;
  ops::AdamHyper hyper_;
  int64_t step_ = 0;
};

}  // namespace heed::train

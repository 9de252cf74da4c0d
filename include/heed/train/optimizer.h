// Adam/AdamW over the trainable parameters of a store, with its moment buffers.
//
// With a communicator of several ranks it shards its state as ZeRO stage 1 does (Marian's --sharding):
// the trainable parameters are laid end to end, each rank owns one contiguous 1/world of that range and
// keeps the moments of that range only. Gradients are reduce-scattered into the owned range, each rank
// updates its range, and an all-gather brings every rank the whole updated parameters. Checkpoints hold the
// whole moments (gathered), so they do not depend on the number of ranks.
#pragma once

#include <string>
#include <vector>

#include "heed/dist/communicator.h"
#include "heed/io/safetensors.h"
#include "heed/nn/parameters.h"
#include "heed/ops/adam.h"

namespace heed::train {

class AdamOptimizer {
 public:
  // Parameters with requires_grad off (frozen) get no slot and are never updated. `shards`: shard the state
  // over its ranks (see above); null or a single rank keeps everything here.
  AdamOptimizer(const nn::ParameterStore& params, ops::AdamHyper hyper, dist::Communicator* shards = nullptr);

  bool sharded() const { return shards_ != nullptr; }
  // Sharded only: sums the gradients over the ranks into this rank's range and returns the sum of squares
  // of all of them, a 0-d tensor on their device (read on the host first: the ranks' sums are added there).
  Tensor reduce_gradients();
  // Not sharded: the sum of squares of the gradients, a 0-d tensor on their device (ops::grad_squares).
  Tensor grad_squares() const;
  // One update from the gradients, scaled as `scaling` says (ops::GradScaling: a factor from the host, or
  // clipping from grad_squares() on the device); parameters without a gradient are left alone. Advances the
  // step count used for bias correction. Sharded: a collective.
  void step(const ops::GradScaling& scaling = {});
  int64_t steps() const { return step_; }
  ops::AdamHyper& hyper() { return hyper_; }

  // The whole moments as "exp_avg.<name>" and "exp_avg_sq.<name>", for checkpoints. Sharded: a collective.
  io::TensorMap state() const;
  // Restores moments and the step count; a missing or mis-shaped moment is an error naming it.
  void load_state(const io::TensorMap& state, int64_t steps, const std::string& source);

 private:
  struct Slot {
    std::string name;
    nn::Variable param;
    Tensor m, v;     // unsharded only
    int64_t offset;  // in the flattened parameters
  };
  // The flattened, padded layout of `pick(slot)` for every slot; zeros where `pick` gives no tensor.
  Tensor flatten(const std::function<Tensor(const Slot&)>& pick) const;

  std::vector<Slot> slots_;
  ops::AdamHyper hyper_;
  int64_t step_ = 0;
  dist::Communicator* shards_ = nullptr;
  int64_t shard_ = 0;    // floats per rank; world * shard_ covers all parameters, padded
  Tensor m_, v_, grad_;  // sharded: this rank's range
};

}  // namespace heed::train

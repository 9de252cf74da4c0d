// The exponential moving average of the weights (optimizer.ema_decay; fairseq's --ema-decay, Marian's
// --exponential-smoothing, which is 1 - decay): after every applied update,
//
//   average = decay * average + (1 - decay) * weights,
//
// computed as average += (1 - decay) * (weights - average), in fp32 on the weights' device. The two are
// the same sum, but decay and 1 - decay rounded to fp32 do not add up to one (2^-24 off at most), and the
// first form would settle the average of a constant weight that error / (1 - decay) away from it: 1.7e-4
// relative for decay 0.9999. The difference form has no such bias: an unchanged weight keeps an average
// equal to it, bit for bit.
//
// The average starts from the weights training starts from (the initial or --init-from weights), as
// fairseq's does. Frozen parameters (training.freeze) never change, so they have no average: the weights
// themselves stand in for it. With several ranks, every rank keeps the whole average (it is not sharded
// with optimizer.shard_state) and updates it from the same weights, which every rank holds after the
// optimizer step: all ranks hold the same average, bit for bit, and rank 0 saves it whole.
#pragma once

#include <string>
#include <vector>

#include "heed/io/safetensors.h"
#include "heed/nn/parameters.h"

namespace heed::train {

class ExponentialMovingAverage {
 public:
  // decay 0: off; every call below then does nothing, and values() gives the weights.
  ExponentialMovingAverage(const nn::ParameterStore& store, double decay);

  bool enabled() const { return !slots_.empty(); }
  // Moves the average towards the current weights; called after every applied update.
  void update();

  // The weights a checkpoint's model file holds: the average of every trainable parameter, the weights of
  // the others (all of them when off). Tensors on the weights' device.
  io::TensorMap values() const;
  // Restores the average from `averaged` (by parameter name, e.g. a checkpoint's model file); a missing or
  // mis-shaped entry is an error naming it and `source`.
  void load(const io::TensorMap& averaged, const std::string& source);

  // While a SwappedIn lives, the model's parameters hold the average and the average holds the training
  // weights; its end swaps them back, by exception too. Swapping exchanges tensor handles: nothing is
  // copied, so the training weights come back exactly.
  class SwappedIn {
   public:
    explicit SwappedIn(ExponentialMovingAverage& average) : average_(average) { average_.swap(); }
    ~SwappedIn() { average_.swap(); }
    SwappedIn(const SwappedIn&) = delete;
    SwappedIn& operator=(const SwappedIn&) = delete;

   private:
    ExponentialMovingAverage& average_;
  };
  // Validation scores the averaged weights: `const auto averaged = average.swap_in();`
  [[nodiscard]] SwappedIn swap_in() { return SwappedIn(*this); }

 private:
  struct Slot {
    std::string name;
    nn::Variable param;
    Tensor average;
  };
  void swap();

  const nn::ParameterStore& store_;
  float complement_ = 0;  // 1 - decay
  std::vector<Slot> slots_;
};

}  // namespace heed::train

// One update of training (Marian's GraphGroup::update): forward and backward over optimizer.update_freq
// batches, the gradients summed over the ranks, fp16 loss scaling, clipping, the learning rate of the step,
// the optimizer step and the moving average of the weights.
#pragma once

#include <cstdint>

#include "heed/autograd/functions.h"
#include "heed/data/batcher.h"
#include "heed/dist/communicator.h"
#include "heed/nn/modules.h"
#include "heed/nn/parameters.h"
#include "heed/nn/transformer.h"
#include "heed/train/checkpoint.h"
#include "heed/train/ema.h"
#include "heed/train/gradient_sync.h"
#include "heed/train/loss_scaler.h"
#include "heed/train/optimizer.h"
#include "heed/train/train_config.h"

namespace heed::train {

// What an update did. Its sums stay on the device, unread and this rank's own, until a log line needs them
// (Reporter::settle reads them and adds them up over the ranks), so that a step never waits for the host.
struct Update {
  bool applied = false;      // false: the fp16 gradients overflowed and the update was skipped
  bool stop = false;         // some rank asked to stop: every rank stops after this update
  double tokens = 0;         // target tokens, of all ranks
  Tensor loss;               // 0-d: this rank's share of the update's loss per target token (of all ranks)
  Tensor nll_sum;            // 0-d: this rank's summed negative log-likelihood
  double lr = 0;             // the learning rate of the step
  int64_t step = 0;          // the step it made, when applied
  DType compute = DType::F32;
  // The sum of squares of the loss-scaled gradients, a 0-d tensor where they are (on the device, unread
  // until a log line needs it), and the loss scale.
  Tensor grad_squares;
  double loss_scale = 1;

  // The norm of the gradients before clipping; reads grad_squares. A non-finite norm is an error that names
  // the step (Adam applied no update from it).
  double grad_norm() const;
};

class UpdateStep {
 public:
  // `context`: what every batch's forward pass starts from (compute type, attention backend, seed); the
  // step, which keys dropout, is set per batch.
  UpdateStep(const TrainConfig& config, const nn::Transformer& model, nn::ParameterStore& store,
             AdamOptimizer& optimizer, ExponentialMovingAverage& average, LossScaler& scaler,
             dist::Communicator& comm, nn::ForwardContext context);

  // Runs update state.step + 1 on the next batches of `batcher`. An applied update advances state.step, a
  // skipped one state.skipped_updates. `stop_requested`, this rank's vote, rides along with the loss sums.
  Update run(data::Batcher& batcher, TrainState& state, bool stop_requested);
  // The same on batches already loaded (optimizer.update_freq of them): what bench_train_step times.
  Update run(std::vector<data::LoadedBatch>& batches, TrainState& state, bool stop_requested);

 private:
  // The losses of the update's batches, backward into the gradients, which end up summed over the ranks.
  void forward_backward(std::vector<data::LoadedBatch>& batches, int64_t step, Update& update);
  // Clips, sets the learning rate, steps the optimizer and the average; false when the loss scaler rejects the
  // gradients.
  bool apply(TrainState& state, Update& update);

  const TrainConfig& config_;
  const nn::Transformer& model_;
  nn::ParameterStore& store_;
  AdamOptimizer& optimizer_;
  ExponentialMovingAverage& average_;
  LossScaler& scaler_;
  dist::Communicator& comm_;
  nn::ForwardContext context_;
  GradientSync gradient_sync_;
  // In a 16-bit step, the 16-bit weights every forward pass reads, made in one launch as it starts.
  autograd::ParameterCopies weight_copies_;
};

}  // namespace heed::train

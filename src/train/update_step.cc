#include "heed/train/update_step.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <optional>

#include "heed/autograd/functions.h"
#include "heed/core/error.h"
#include "heed/ops/elementwise.h"
#include "heed/train/schedule.h"

namespace heed::train {

UpdateStep::UpdateStep(const TrainConfig& config, const nn::Transformer& model, nn::ParameterStore& store,
                       AdamOptimizer& optimizer, ExponentialMovingAverage& average, LossScaler& scaler,
                       dist::Communicator& comm, nn::ForwardContext context)
    : config_(config),
      model_(model),
      store_(store),
      optimizer_(optimizer),
      average_(average),
      scaler_(scaler),
      comm_(comm),
      context_(context),
      gradient_sync_(store, comm, static_cast<int64_t>(config.training.bucket_mb * (1 << 20))) {
  if (context.compute == DType::F32) return;
  std::vector<autograd::Variable> params;
  for (const auto& [name, p] : store.all()) params.push_back(p);
  weight_copies_ = autograd::ParameterCopies(std::move(params), context.compute);
}

Update UpdateStep::run(data::Batcher& batcher, TrainState& state, bool stop_requested) {
  std::vector<data::LoadedBatch> batches(static_cast<size_t>(config_.optimizer.update_freq));
  for (auto& b : batches) batcher.next(b);
  return run(batches, state, stop_requested);
}

Update UpdateStep::run(std::vector<data::LoadedBatch>& batches, TrainState& state, bool stop_requested) {
  int64_t tokens = 0;
  for (const auto& b : batches) tokens += b.tgt_tokens;
  // The loss is normalised by the target tokens of the whole update on every rank, as fairseq and Marian
  // do, so N ranks with batch b train the model that one process with batch N*b trains.
  std::vector<double> global{static_cast<double>(tokens)};
  comm_.all_reduce(global, dist::ReduceOp::Sum);
  Update update;
  update.tokens = global[0];
  forward_backward(batches, state.step, update);
  // Every rank stops after the same update.
  std::vector<double> stop_votes{stop_requested ? 1.0 : 0.0};
  comm_.all_reduce(stop_votes, dist::ReduceOp::Sum);
  update.stop = stop_votes[0] > 0;
  update.applied = apply(state, update);
  return update;
}

void UpdateStep::forward_backward(std::vector<data::LoadedBatch>& batches, int64_t step, Update& update) {
  const int64_t accumulate = static_cast<int64_t>(batches.size());
  store_.zero_grads();
  // The weights do not change within an update: their 16-bit copies serve all of its batches.
  std::optional<autograd::CastParametersScope> weights;
  if (context_.compute != DType::F32) weights.emplace(weight_copies_);
  for (int64_t i = 0; i < accumulate; ++i) {
    nn::ForwardContext ctx = context_;
    ctx.training = true;
    // Batch k of the update has the same dropout key whichever rank runs it.
    ctx.step = static_cast<uint64_t>((step * accumulate + i) * comm_.world() + comm_.rank());
    const nn::LossResult l = model_.loss(batches[static_cast<size_t>(i)].batch, ctx, update.tokens);
    update.loss = update.loss.defined() ? ops::add(update.loss, l.loss.value()) : l.loss.value();
    update.nll_sum = update.nll_sum.defined() ? ops::add(update.nll_sum, l.nll_sum) : l.nll_sum;
    // Only the last batch of an update communicates; the others only accumulate. A sharded optimizer
    // reduce-scatters the gradients itself.
    if (i + 1 < accumulate || optimizer_.sharded())
      autograd::backward(l.loss, scaler_.scale());
    else
      gradient_sync_.backward_and_reduce(l.loss, scaler_.scale());
  }
}

bool UpdateStep::apply(TrainState& state, Update& update) {
  const double loss_scale = scaler_.scale();
  update.loss_scale = loss_scale;
  // Unsharded, the norm stays on the device: Adam clips from it there and skips a non-finite one, and the
  // reporter reads it when a log line is due. Only the fp16 loss scaler decides on the host, every step.
  update.grad_squares = optimizer_.sharded() ? optimizer_.reduce_gradients() : optimizer_.grad_squares();
  if (scaler_.enabled() &&
      !scaler_.update(std::sqrt(static_cast<double>(update.grad_squares.to(Device::cpu()).item())))) {
    ++state.skipped_updates;
    spdlog::warn("step {}: fp16 gradients overflowed at loss scale {}; update skipped ({} so far), scale now {}",
                 state.step + 1, loss_scale, state.skipped_updates, scaler_.scale());
    return false;
  }
  update.step = ++state.step;
  update.compute = context_.compute;
  if (optimizer_.sharded()) update.grad_norm();  // on the host already: a non-finite norm stops training here
  update.lr = learning_rate(config_.schedule, config_.optimizer.lr, state.step, config_.training.max_steps);
  optimizer_.hyper().lr = static_cast<float>(update.lr);
  optimizer_.step({.squares = update.grad_squares,
                   .clip_norm = static_cast<float>(config_.optimizer.clip_norm),
                   .loss_scale = static_cast<float>(loss_scale)});
  average_.update();
  return true;
}

double Update::grad_norm() const {
  const double norm = std::sqrt(static_cast<double>(grad_squares.to(Device::cpu()).item())) / loss_scale;
  HEED_CHECK(std::isfinite(norm), "step {}: the gradient norm is {} in {}: training diverged (try a lower "
             "optimizer.lr or optimizer.clip_norm); no update from a non-finite norm was applied", step, norm,
             dtype_name(compute));
  return norm;
}

}  // namespace heed::train

// When the training loop logs, validates, saves and stops (Marian's Scheduler): decisions from the config
// and the run's state alone, so they are tested without a model (tests/test_train_scheduler.cc).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "heed/train/checkpoint.h"
#include "heed/train/train_config.h"

namespace heed::train {

// Whether a larger value of a validation metric is better (bleu, chrf) or a smaller one (loss).
bool higher_is_better(const std::string& metric);

class Scheduler {
 public:
  // `validates`: whether the run has validation data. `resumed`: whether state.step's checkpoint exists
  // already, as for a run that continues from it.
  Scheduler(const TrainConfig& config, TrainState& state, bool validates, bool resumed);

  // Whether another update may run: below training.max_steps, and no stop or early stop.
  bool keep_going() const;
  // Whether `epochs` completed data epochs reach training.max_epochs.
  bool epochs_done(int64_t epochs) const;
  // A signal on some rank: training stops after the current update.
  void stop() { stopped_ = true; }
  bool stopped() const { return stopped_; }

  // After update state.step:
  bool log_due() const;
  bool validate_due() const;
  // Takes a validation's metrics: the new bests go into the state, and the early-stopping metric's patience
  // count moves on, and training stops early once it runs out of validation.patience. Returns the metrics
  // that improved (ppl is never one: loss ranks the same).
  std::vector<std::string> record_validation(const std::map<std::string, double>& metrics);
  bool early_stopped() const { return early_stopped_; }
  bool save_due() const;
  // A checkpoint of state.step exists now.
  void saved() { saved_step_ = state_.step; }
  // Whether training that ends here still owes its checkpoint.
  bool final_save_due() const;

 private:
  bool last_step() const { return state_.step == config_.training.max_steps; }

  const TrainConfig& config_;
  TrainState& state_;
  bool validates_;
  int64_t saved_step_;  // -1: none in this run
  bool stopped_ = false, early_stopped_ = false;
};

}  // namespace heed::train

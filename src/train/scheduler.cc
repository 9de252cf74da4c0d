#include "heed/train/scheduler.h"

#include <algorithm>

namespace heed::train {

bool higher_is_better(const std::string& metric) { return metric == "bleu" || metric == "chrf"; }

Scheduler::Scheduler(const TrainConfig& config, TrainState& state, bool validates, bool resumed)
    : config_(config), state_(state), validates_(validates), saved_step_(resumed ? state.step : -1) {}

bool Scheduler::keep_going() const {
  return state_.step < config_.training.max_steps && !stopped_ && !early_stopped_;
}

bool Scheduler::epochs_done(int64_t epochs) const {
  return config_.training.max_epochs > 0 && epochs >= config_.training.max_epochs;
}

bool Scheduler::log_due() const { return state_.step % config_.logging.every == 0 || last_step(); }

bool Scheduler::validate_due() const {
  const int64_t every = config_.validation.every;
  return validates_ && ((every > 0 && state_.step % every == 0) || last_step());
}

std::vector<std::string> Scheduler::record_validation(const std::map<std::string, double>& metrics) {
  std::vector<std::string> improved;
  for (const auto& [name, value] : metrics) {
    if (name == "ppl") continue;
    auto it = state_.best.find(name);
    const bool better = it == state_.best.end() || (higher_is_better(name) ? value > it->second : value < it->second);
    if (better) {
      state_.best[name] = value;
      improved.push_back(name);
    }
  }
  const std::string& key = config_.validation.early_stopping_metric;
  const bool key_improved = std::find(improved.begin(), improved.end(), key) != improved.end();
  state_.bad_validations = key_improved ? 0 : state_.bad_validations + 1;
  const int64_t patience = config_.validation.patience;
  early_stopped_ = patience > 0 && state_.bad_validations >= patience;
  return improved;
}

bool Scheduler::save_due() const {
  return saved_step_ != state_.step && (state_.step % config_.checkpoints.every == 0 || last_step() || early_stopped_);
}

bool Scheduler::final_save_due() const { return saved_step_ != state_.step && state_.step > 0; }

}  // namespace heed::train

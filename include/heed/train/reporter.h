// What training tells the person watching it: the log lines of the logging window and of validations,
// metrics.jsonl (one JSON record per line, as plot.h reads it), the progress bar, and train.log.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "heed/train/checkpoint.h"
#include "heed/train/train_config.h"
#include "heed/train/update_step.h"
#include "heed/train/validator.h"

namespace heed::train {

// train.log: every line of the default logger goes into it for as long as a TrainLog lives, and no longer,
// whether its scope ends normally or by an exception.
class TrainLog {
 public:
  explicit TrainLog(const std::filesystem::path& path);
  ~TrainLog();
  TrainLog(const TrainLog&) = delete;
  TrainLog& operator=(const TrainLog&) = delete;

  // Throws when a line could not be written: a full disk stops training at once, not after a torn log.
  void check() const;
  // Writes an error line into train.log only, as one that ends training is reported elsewhere too.
  void error(const std::string& message) const;

 private:
  class Sink;
  std::shared_ptr<Sink> sink_;
};

class Reporter {
 public:
  // `metrics_path`: where metrics.jsonl goes, or empty on the ranks that do not write it. `resumed`: the
  // run continues from the checkpoint of state.step. The clock starts now, from state.elapsed_s.
  Reporter(const TrainConfig& config, TrainState& state, const std::filesystem::path& metrics_path, bool resumed);
  ~Reporter();

  // Training time, this process's and that of the runs it continues.
  double elapsed() const;
  // Adds an applied update to the logging window and redraws the progress bar. What the update left on the
  // device (its gradient norm) is read later, by settle().
  void add(const Update& update);
  // Reads what the window's updates left on the device (losses, gradient norms) into the state, the losses
  // summed over the ranks: a collective, before a log line and before the state is saved. Throws when a
  // gradient norm was not finite (training diverged).
  void settle(dist::Communicator& comm);
  // The window's averages, logged and recorded; then a new window starts. A collective (settle).
  void log_window(int64_t epoch, dist::Communicator& comm);
  void validation(const ValidationResult& result);
  // `signal`: the one this process received; 0 when another rank was signalled.
  void stopping(int signal);
  void finished();

 private:
  class MetricsFile;

  const TrainConfig& config_;
  TrainState& state_;
  std::unique_ptr<MetricsFile> metrics_;
  const bool progress_bar_;
  const std::chrono::steady_clock::time_point start_;
  const int64_t first_step_;
  double window_start_;
  double lr_ = 0;  // of the last update
  std::vector<Update> unsettled_;  // added since the last settle()
};

}  // namespace heed::train

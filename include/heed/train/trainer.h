// The training loop of `heed train`: vocabulary, data, model, optimizer and schedule from a TrainConfig;
// updates with gradient accumulation and clipping; logging, validation, checkpoints, early stopping, and a
// clean save-and-exit on SIGINT/SIGTERM. The loop's parts have headers of their own: scheduler.h decides when
// to log, validate, save and stop; update_step.h trains; validator.h and reporter.h measure and tell;
// stop_signal.h catches the signals.
//
// A run is a pure function of its config and seed, so a run that is interrupted and resumed from a
// checkpoint logs the same losses, bit for bit, as one that never stopped (same thread count): batches
// come from the epoch plan at the saved position, dropout masks are keyed by (seed, micro-batch), the
// schedule is a function of the step, and the open logging window is part of the checkpoint.
#pragma once

#include <string>

#include "heed/train/train_config.h"

namespace heed::train {

struct RunOptions {
  std::string resume;     // a run directory (its latest checkpoint) or a checkpoint directory
  std::string init_from;  // weights only: a Heed checkpoint/model directory or a Hugging Face MarianMT directory
  // Train into a run directory that holds another run (checkpoints or metrics.jsonl), which is otherwise
  // refused: first remove what training wrote there (checkpoints/, config.yaml, metrics.jsonl, train.log,
  // the vocabulary files); other files stay.
  bool overwrite = false;
};

// The run directory that --resume continues: the run of a checkpoint directory, else the path itself.
std::string resumed_run_dir(const std::string& resume);

// Trains until max_steps, max_epochs, early stopping or a signal. After SIGINT/SIGTERM it writes a
// checkpoint and returns normally, so the process exits 0, as cluster pre-emption expects.
void train(TrainConfig config, const RunOptions& options);

}  // namespace heed::train

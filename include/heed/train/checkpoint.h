// Checkpoints: a model directory (model.yaml + model.safetensors, so `heed translate` and export-hf take
// it as it is) plus everything an exact resume needs.
//
//   checkpoints/step-00001000/
//     model.yaml, model.safetensors   the model, by Heed's parameter names: with optimizer.ema_decay,
//                                     the averaged weights (what translate and export-hf deploy)
//     training_weights.safetensors    with optimizer.ema_decay only: the raw weights, which resume
//                                     continues from
//     optimizer.safetensors           Adam's moments
//     state.json                      step, data position, logging window, best metrics, patience
//     config.yaml, vocab*.model       the training config and the SentencePiece models of the run
//     manifest.json                   size and CRC-32 of every file above, written last
//
// A checkpoint is assembled in a hidden temporary directory, every file fsynced, then renamed into place
// and the parent directory synced: a crash at any moment leaves the previous checkpoints intact and at most
// a stray temporary directory, which is ignored and removed when training starts again. A save that fails
// (a full disk) removes its temporary directory itself. Loading verifies the manifest first, so a truncated or
// corrupted checkpoint is refused with the name of the damaged file (nn::verify_checkpoint).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "heed/data/batcher.h"
#include "heed/io/safetensors.h"
#include "heed/nn/model_dir.h"

namespace heed::train {

// The trainer's progress, beyond the weights and the optimizer moments.
struct TrainState {
  int64_t step = 0;              // updates done
  int64_t optimizer_steps = 0;   // Adam's bias-correction count
  data::BatchPosition data;      // the next batch
  double elapsed_s = 0;          // training time before this run
  // The open logging window, so that a resumed run logs the same averages as an uninterrupted one.
  double window_loss = 0, window_nll = 0, window_grad_norm = 0;
  int64_t window_tokens = 0, window_steps = 0;
  std::map<std::string, double> best;  // best value per validation metric
  int64_t bad_validations = 0;         // validations since the early-stopping metric last improved
  int64_t world_size = 1;
  // fp16 loss scaling (loss_scaler.h); older checkpoints have none and resume with the configured scale.
  double loss_scale = 0;  // 0: none saved
  int64_t loss_scale_good_steps = 0;
  int64_t skipped_updates = 0;  // updates skipped because their fp16 gradients overflowed
};

struct CheckpointContents {
  nn::ModelConfig model;
  io::TensorMap weights;
  io::TensorMap optimizer;
  TrainState state;
  std::vector<std::string> files;  // copied in by their file names: config.yaml, vocabularies
  io::TensorMap training_weights;  // when `weights` are averaged: the weights training continues from
};

void save_checkpoint(const std::string& dir, const CheckpointContents& contents);
// Installs a copy of a verified checkpoint under a new name (best-bleu, ...), with the same atomicity.
void copy_checkpoint(const std::string& from, const std::string& to);
// Removes the temporary directories (.step-*.tmp.*, .best-*.old.*) of saves that a crash or a kill cut
// short; only the process that trains into the run may call it.
void remove_abandoned_saves(const std::string& run_dir);
TrainState load_train_state(const std::string& dir);
io::TensorMap load_optimizer_state(const std::string& dir);

// Removes all but the newest `keep` step checkpoints.
void prune_checkpoints(const std::string& run_dir, int64_t keep);

}  // namespace heed::train

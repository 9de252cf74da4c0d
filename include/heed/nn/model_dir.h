// A model directory: model.yaml (the ModelConfig) and model.safetensors (the weights by Heed's names).
// Training writes its checkpoints in this form, with more files beside these (heed/train/checkpoint.h), and
// a manifest of every file's size and CRC-32. The weights carry the CRC-32 of their data
// (io::kDataCrc32Key), checked on load, so a model directory without a checkpoint manifest (one copied out
// of a run, one from import-hf) is still verified.
//
// Here too: checking a checkpoint against its manifest, and finding the model directory in a run directory.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "heed/io/safetensors.h"
#include "heed/nn/model_config.h"
#include "heed/nn/parameters.h"

namespace heed::nn {

struct ModelDir {
  ModelConfig config;
  io::TensorMap weights;
};

ModelDir load_model_dir(const std::string& dir);
void save_model_dir(const std::string& dir, const ModelConfig& config, const io::TensorMap& weights);

// A checkpoint of a run with optimizer.ema_decay holds two sets of weights: model.safetensors, the moving
// average (what translate and export-hf deploy), and this file, the raw weights training continues from.
inline constexpr const char* kTrainingWeightsFile = "training_weights.safetensors";
// The raw training weights of the model directory `dir`: kTrainingWeightsFile where it has one, else its
// model's weights, `model` (loaded from `dir`), which are then the training weights themselves.
io::TensorMap training_weights(const std::string& dir, const ModelDir& model);

// A checkpoint's list of its files with their sizes and CRC-32s, written last.
inline constexpr const char* kCheckpointManifest = "manifest.json";
// Writes the manifest of every file in `dir`; the last file written, so that its presence means the rest is.
void write_checkpoint_manifest(const std::string& dir);
// Checks every file against the manifest; throws naming the checkpoint and the damaged file.
void verify_checkpoint(const std::string& dir);

// "step-00001000" for step 1000; the step directories sort by name.
std::string step_checkpoint_name(int64_t step);
// The step checkpoints of a run, newest first.
std::vector<std::filesystem::path> step_checkpoints(const std::string& run_dir);
// The newest step checkpoint of a run that verifies (damaged ones are skipped with a warning); "" if none.
std::string latest_checkpoint(const std::string& run_dir);
// What resolve_model_dir's `metric` may name: a validation metric with best-<metric> checkpoints, or latest.
inline const std::vector<std::string> kCheckpointMetrics = {"bleu", "chrf", "loss", "latest"};
// A model directory for translation: `path` itself when it holds model.yaml, else in a run directory the
// best checkpoint for `metric` (best-<metric>), any best-*, then the latest step checkpoint; for "latest",
// the latest step checkpoint.
std::string resolve_model_dir(const std::string& path, const std::string& metric = "bleu");

}  // namespace heed::nn

// Checkpoint averaging, as fairseq's scripts/average_checkpoints.py does it: the element-wise mean of every
// weight over several checkpoints of one run (usually the last few step checkpoints), which often scores a
// little better than any one of them. The result is a model directory like a checkpoint's, which
// `heed translate` and `heed export-hf` take as they take a checkpoint.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "heed/nn/model_dir.h"

namespace heed::nn {

// The file of an averaged model directory that names the checkpoints it averages.
inline constexpr const char* kAverageRecord = "averaged.json";

// Which weights of each checkpoint are averaged. They differ only in checkpoints of a run with
// optimizer.ema_decay: kModel takes its model.safetensors, the moving average; kTraining the raw weights
// (kTrainingWeightsFile), which is what fairseq averages (its EMA lives apart from the model's weights).
enum class AveragedWeights { kModel, kTraining };
inline const std::map<std::string, AveragedWeights> kAveragedWeightsNames = {{"model", AveragedWeights::kModel},
                                                                              {"training", AveragedWeights::kTraining}};

// The mean of the weights `which` of the model directories `dirs`, with the first one's config; each
// directory that has a checkpoint manifest is verified against it first. Refused, naming the difference, when
// two differ in architecture (the model.yaml key and both values), in vocabulary (the file), or in a tensor's
// name, shape or dtype.
ModelDir average_model_dirs(const std::vector<std::string>& dirs, AveragedWeights which = AveragedWeights::kModel);

// Writes the average of `dirs` as the new directory `out`: model.yaml, model.safetensors (fp32), the first
// directory's vocabularies and training config (config.yaml), kAverageRecord, and a manifest, so that
// verify_checkpoint takes it. Written atomically (temporary directory and rename); an existing `out` is
// refused, never overwritten.
void save_average(const std::vector<std::string>& dirs, const std::string& out,
                  AveragedWeights which = AveragedWeights::kModel);

// The newest `count` step checkpoints of the run directory `run_dir`, newest first (by step). Refused when
// the run has fewer, saying how many it has, or when one of them lacks its manifest (an incomplete save).
std::vector<std::string> last_step_checkpoints(const std::string& run_dir, int64_t count);

}  // namespace heed::nn

// A model directory: model.yaml (the ModelConfig) and model.safetensors (the weights by Heed's names).
// Training writes its checkpoints in this form, with more files beside these. The weights carry the CRC-32
// of their data (io::kDataCrc32Key), checked on load, so a model directory without a checkpoint manifest
// (one copied out of a run, one from import-hf) is still verified.
#pragma once

#include <string>

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

}  // namespace heed::nn

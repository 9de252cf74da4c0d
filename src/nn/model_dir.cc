#include "heed/nn/model_dir.h"

#include <filesystem>

namespace heed::nn {

ModelDir load_model_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  HEED_CHECK(fs::is_directory(dir), "model directory {} does not exist", dir);
  const fs::path weights = fs::path(dir) / "model.safetensors";
  HEED_CHECK(fs::exists(weights), "model directory {} has no model.safetensors", dir);
  return {load_model_config((fs::path(dir) / "model.yaml").string()), io::load_safetensors(weights.string())};
}

void save_model_dir(const std::string& dir, const ModelConfig& config, const io::TensorMap& weights) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  save_model_config(config, (fs::path(dir) / "model.yaml").string());
  io::save_safetensors((fs::path(dir) / "model.safetensors").string(), weights, {}, /*data_checksum=*/true);
}

}  // namespace heed::nn

#include "heed/nn/model_dir.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "heed/core/error.h"
#include "heed/io/atomic_file.h"

namespace heed::nn {

ModelDir load_model_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  HEED_CHECK(fs::is_directory(dir), "model directory {} does not exist", dir);
  const fs::path weights = fs::path(dir) / "model.safetensors";
  HEED_CHECK(fs::exists(weights), "model directory {} has no model.safetensors", dir);
  return {load_model_config((fs::path(dir) / "model.yaml").string()), io::load_safetensors(weights.string())};
}

io::TensorMap training_weights(const std::string& dir, const ModelDir& model) {
  const std::filesystem::path path = std::filesystem::path(dir) / kTrainingWeightsFile;
  return std::filesystem::exists(path) ? io::load_safetensors(path.string()) : model.weights;
}

void save_model_dir(const std::string& dir, const ModelConfig& config, const io::TensorMap& weights) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  save_model_config(config, (fs::path(dir) / "model.yaml").string());
  io::save_safetensors((fs::path(dir) / "model.safetensors").string(), weights, {}, /*data_checksum=*/true);
}

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

int64_t step_of(const fs::path& dir) {
  const std::string name = dir.filename().string();
  if (name.rfind("step-", 0) != 0) return -1;
  try {
    return std::stoll(name.substr(5));
  } catch (const std::exception&) {
    return -1;
  }
}

}  // namespace

void write_checkpoint_manifest(const std::string& dir) {
  json manifest = json::object();
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    manifest[name] = {{"bytes", fs::file_size(entry.path())}, {"crc32", io::file_crc32(entry.path().string())}};
  }
  io::write_file_atomic((fs::path(dir) / kCheckpointManifest).string(), manifest.dump(2) + "\n");
}

void verify_checkpoint(const std::string& dir) {
  const fs::path manifest_path = fs::path(dir) / kCheckpointManifest;
  HEED_CHECK(fs::is_regular_file(manifest_path), "checkpoint {} has no {}: it is incomplete or not a checkpoint", dir,
             kCheckpointManifest);
  json manifest;
  try {
    manifest = json::parse(std::ifstream(manifest_path));
  } catch (const json::exception& e) {
    HEED_CHECK(false, "checkpoint {}: {} is corrupt: {}", dir, kCheckpointManifest, e.what());
  }
  for (const auto& [name, entry] : manifest.items()) {
    const fs::path file = fs::path(dir) / name;
    HEED_CHECK(fs::is_regular_file(file), "checkpoint {} is damaged: {} is missing", dir, name);
    const uint64_t bytes = entry.at("bytes"), size = fs::file_size(file);
    HEED_CHECK(size == bytes, "checkpoint {} is damaged: {} has {} bytes, the manifest says {} (truncated?)", dir,
               name, size, bytes);
    const uint32_t crc = entry.at("crc32"), actual = io::file_crc32(file.string());
    HEED_CHECK(crc == actual, "checkpoint {} is damaged: {} fails its checksum (CRC-32 {:08x}, expected {:08x})", dir,
               name, actual, crc);
  }
}

std::string step_checkpoint_name(int64_t step) { return fmt::format("step-{:08d}", step); }

std::vector<fs::path> step_checkpoints(const std::string& run_dir) {
  std::vector<fs::path> dirs;
  const fs::path root = fs::path(run_dir) / "checkpoints";
  if (!fs::is_directory(root)) return dirs;
  for (const auto& entry : fs::directory_iterator(root))
    if (entry.is_directory() && step_of(entry.path()) >= 0) dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end(), [](const fs::path& a, const fs::path& b) { return step_of(a) > step_of(b); });
  return dirs;
}

std::string latest_checkpoint(const std::string& run_dir) {
  for (const fs::path& dir : step_checkpoints(run_dir)) {
    try {
      verify_checkpoint(dir.string());
      return dir.string();
    } catch (const Error& e) {
      spdlog::warn("skipping {}", e.what());
    }
  }
  return "";
}

std::string resolve_model_dir(const std::string& path, const std::string& metric) {
  HEED_CHECK(std::find(kCheckpointMetrics.begin(), kCheckpointMetrics.end(), metric) != kCheckpointMetrics.end(),
             "no checkpoint is chosen by the metric '{}': use one of {}", metric, fmt::join(kCheckpointMetrics, ", "));
  const fs::path p(path);
  HEED_CHECK(fs::is_directory(p), "model directory {} does not exist", path);
  if (fs::exists(p / "model.yaml")) return path;
  const fs::path root = p / "checkpoints";
  HEED_CHECK(fs::is_directory(root), "{} is neither a model directory (model.yaml) nor a run directory (checkpoints/)",
             path);
  if (metric != "latest") {
    if (fs::exists(root / ("best-" + metric) / "model.yaml")) return (root / ("best-" + metric)).string();
    for (const auto& entry : fs::directory_iterator(root))
      if (entry.path().filename().string().rfind("best-", 0) == 0 && fs::exists(entry.path() / "model.yaml"))
        return entry.path().string();
  }
  const std::string latest = latest_checkpoint(path);
  HEED_CHECK(!latest.empty(), "run directory {} has no usable checkpoint yet", path);
  return latest;
}

}  // namespace heed::nn

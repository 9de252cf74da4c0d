#include "heed/train/checkpoint.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "heed/core/error.h"
#include "heed/io/atomic_file.h"
#include "heed/nn/model_dir.h"

namespace heed::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kManifest = "manifest.json";

json state_to_json(const TrainState& s) {
  return {{"step", s.step},
          {"optimizer_steps", s.optimizer_steps},
          {"data", {{"epoch", s.data.epoch}, {"index", s.data.index}}},
          {"elapsed_s", s.elapsed_s},
          {"window", {{"loss", s.window_loss}, {"nll", s.window_nll}, {"grad_norm", s.window_grad_norm},
                      {"tokens", s.window_tokens}, {"steps", s.window_steps}}},
          {"best", s.best},
          {"bad_validations", s.bad_validations},
          {"world_size", s.world_size},
          {"loss_scale", {{"scale", s.loss_scale}, {"good_steps", s.loss_scale_good_steps},
                          {"skipped_updates", s.skipped_updates}}}};
}

TrainState state_from_json(const json& j) {
  TrainState s;
  s.step = j.at("step");
  s.optimizer_steps = j.at("optimizer_steps");
  s.data.epoch = j.at("data").at("epoch");
  s.data.index = j.at("data").at("index");
  s.elapsed_s = j.at("elapsed_s");
  const json& w = j.at("window");
  s.window_loss = w.at("loss");
  s.window_nll = w.at("nll");
  s.window_grad_norm = w.at("grad_norm");
  s.window_tokens = w.at("tokens");
  s.window_steps = w.at("steps");
  s.best = j.at("best").get<std::map<std::string, double>>();
  s.bad_validations = j.at("bad_validations");
  s.world_size = j.at("world_size");
  if (j.contains("loss_scale")) {
    const json& l = j.at("loss_scale");
    s.loss_scale = l.at("scale");
    s.loss_scale_good_steps = l.at("good_steps");
    s.skipped_updates = l.at("skipped_updates");
  }
  return s;
}

// Hard links cost nothing and are safe here: checkpoint files are never modified in place, only replaced.
void link_or_copy(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::create_hard_link(from, to, ec);
  if (ec) fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

int64_t step_of(const fs::path& dir) {
  const std::string name = dir.filename().string();
  if (name.rfind("step-", 0) != 0) return -1;
  try {
    return std::stoll(name.substr(5));
  } catch (const std::exception&) {
    return -1;
  }
}

// A fresh hidden directory next to `target`; the leading dot keeps it out of checkpoint listings.
fs::path temp_beside(const fs::path& target) {
  fs::create_directories(target.parent_path());
  const fs::path temp = target.parent_path() / fmt::format(".{}.tmp.{}", target.filename().string(), getpid());
  fs::remove_all(temp);
  fs::create_directories(temp);
  return temp;
}

// Swaps a finished directory into place; an existing one (a re-saved best checkpoint) moves aside first.
void install_directory(const fs::path& temp, const fs::path& target) {
  io::sync_directory(temp.string());
  const fs::path parent = target.parent_path();
  const fs::path old = parent / fmt::format(".{}.old.{}", target.filename().string(), getpid());
  if (fs::exists(target)) fs::rename(target, old);
  fs::rename(temp, target);
  io::sync_directory(parent.string());
  fs::remove_all(old);
}

std::vector<fs::path> step_checkpoints(const std::string& run_dir) {
  std::vector<fs::path> dirs;
  const fs::path root = fs::path(run_dir) / "checkpoints";
  if (!fs::is_directory(root)) return dirs;
  for (const auto& entry : fs::directory_iterator(root))
    if (entry.is_directory() && step_of(entry.path()) >= 0) dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end(), [](const fs::path& a, const fs::path& b) { return step_of(a) > step_of(b); });
  return dirs;
}

// Runs `fill` on a fresh temporary directory beside `target`, then installs it. A failure (a full disk)
// removes the temporary directory before the error goes on, so no half-written checkpoint stays behind.
template <typename Fill>
void assemble(const fs::path& target, const Fill& fill) {
  const fs::path temp = temp_beside(target);
  try {
    fill(temp);
    install_directory(temp, target);
  } catch (...) {
    std::error_code ignored;  // the error to report is the one that stopped the save
    fs::remove_all(temp, ignored);
    throw;
  }
}

}  // namespace

void save_checkpoint(const std::string& dir, const CheckpointContents& c) {
  assemble(fs::path(dir), [&](const fs::path& temp) {
    nn::save_model_dir(temp.string(), c.model, c.weights);
    io::save_safetensors((temp / "optimizer.safetensors").string(), c.optimizer);
    io::write_file_atomic((temp / "state.json").string(), state_to_json(c.state).dump(2) + "\n");
    for (const std::string& file : c.files) {  // small files: the config and the vocabularies
      std::ifstream in(file, std::ios::binary);
      HEED_CHECK(in.good(), "cannot read {} to put it into checkpoint {}", file, dir);
      const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      io::write_file_atomic((temp / fs::path(file).filename()).string(), bytes);
    }
    json manifest = json::object();
    for (const auto& entry : fs::directory_iterator(temp)) {
      const std::string name = entry.path().filename().string();
      manifest[name] = {{"bytes", fs::file_size(entry.path())}, {"crc32", io::file_crc32(entry.path().string())}};
    }
    io::write_file_atomic((temp / kManifest).string(), manifest.dump(2) + "\n");
  });
}

void copy_checkpoint(const std::string& from, const std::string& to) {
  assemble(fs::path(to), [&](const fs::path& temp) {
    for (const auto& entry : fs::directory_iterator(from)) link_or_copy(entry.path(), temp / entry.path().filename());
  });
}

void remove_abandoned_saves(const std::string& run_dir) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  if (!fs::is_directory(root)) return;
  for (const auto& entry : fs::directory_iterator(root)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with(".") && (name.find(".tmp.") != std::string::npos || name.find(".old.") != std::string::npos)) {
      spdlog::info("removing {}, left by a checkpoint save that did not finish", entry.path().string());
      fs::remove_all(entry.path());
    }
  }
}

void verify_checkpoint(const std::string& dir) {
  const fs::path manifest_path = fs::path(dir) / kManifest;
  HEED_CHECK(fs::is_regular_file(manifest_path), "checkpoint {} has no {}: it is incomplete or not a checkpoint", dir,
             kManifest);
  json manifest;
  try {
    manifest = json::parse(std::ifstream(manifest_path));
  } catch (const json::exception& e) {
    HEED_CHECK(false, "checkpoint {}: {} is corrupt: {}", dir, kManifest, e.what());
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

TrainState load_train_state(const std::string& dir) {
  const fs::path path = fs::path(dir) / "state.json";
  try {
    return state_from_json(json::parse(std::ifstream(path)));
  } catch (const json::exception& e) {
    HEED_CHECK(false, "{}: not a valid training state: {}", path.string(), e.what());
  }
}

io::TensorMap load_optimizer_state(const std::string& dir) {
  return io::load_safetensors((fs::path(dir) / "optimizer.safetensors").string());
}

std::string step_checkpoint_name(int64_t step) { return fmt::format("step-{:08d}", step); }

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

void prune_checkpoints(const std::string& run_dir, int64_t keep) {
  const std::vector<fs::path> dirs = step_checkpoints(run_dir);
  for (size_t i = static_cast<size_t>(keep); i < dirs.size(); ++i) fs::remove_all(dirs[i]);
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

}  // namespace heed::train

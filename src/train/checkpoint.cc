#include "heed/train/checkpoint.h"

#include <spdlog/spdlog.h>

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

}  // namespace

void save_checkpoint(const std::string& dir, const CheckpointContents& c) {
  io::write_directory_atomic(fs::path(dir), [&](const fs::path& temp) {
    nn::save_model_dir(temp.string(), c.model, c.weights);
    io::save_safetensors((temp / "optimizer.safetensors").string(), c.optimizer);
    if (!c.training_weights.empty())
      io::save_safetensors((temp / nn::kTrainingWeightsFile).string(), c.training_weights);
    io::write_file_atomic((temp / "state.json").string(), state_to_json(c.state).dump(2) + "\n");
    for (const std::string& file : c.files) {  // small files: the config and the vocabularies
      std::ifstream in(file, std::ios::binary);
      HEED_CHECK(in.good(), "cannot read {} to put it into checkpoint {}", file, dir);
      const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      io::write_file_atomic((temp / fs::path(file).filename()).string(), bytes);
    }
    nn::write_checkpoint_manifest(temp.string());
  }, /*replace=*/true);
}

void copy_checkpoint(const std::string& from, const std::string& to) {
  io::write_directory_atomic(
      fs::path(to),
      [&](const fs::path& temp) {
        for (const auto& entry : fs::directory_iterator(from))
          link_or_copy(entry.path(), temp / entry.path().filename());
      },
      /*replace=*/true);
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

void prune_checkpoints(const std::string& run_dir, int64_t keep) {
  const std::vector<fs::path> dirs = nn::step_checkpoints(run_dir);
  for (size_t i = static_cast<size_t>(keep); i < dirs.size(); ++i) fs::remove_all(dirs[i]);
}

}  // namespace heed::train

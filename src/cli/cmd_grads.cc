// heed grads: the loss and every parameter gradient of one batch, for checks against outside references
// (PyTorch, Hugging Face). Forward and backward run exactly as in a training step, with dropout off.
#include <nlohmann/json.hpp>
#include <omp.h>

#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "heed/core/device.h"
#include "heed/nn/model_dir.h"
#include "heed/nn/transformer.h"

namespace heed::cli {

namespace {

// One field of the batch file: rows of equal length, right-padded, as int32 [rows, length].
Tensor read_id_rows(const nlohmann::json& root, const std::string& key, const std::string& path) {
  HEED_CHECK(root.contains(key), "{}: missing \"{}\" (expected {{\"src\", \"tgt_in\", \"tgt_out\"}})", path, key);
  const nlohmann::json& rows = root[key];
  HEED_CHECK(rows.is_array() && !rows.empty() && rows[0].is_array(), "{}: \"{}\" must be a non-empty list of lists",
             path, key);
  const size_t length = rows[0].size();
  std::vector<int32_t> ids;
  for (size_t r = 0; r < rows.size(); ++r) {
    HEED_CHECK(rows[r].is_array() && rows[r].size() == length,
               "{}: \"{}\" row {} has {} ids but row 0 has {} (rows must be right-padded to one length)", path, key, r,
               rows[r].is_array() ? rows[r].size() : 0, length);
    for (size_t c = 0; c < length; ++c) {
      HEED_CHECK(rows[r][c].is_number_integer(), "{}: \"{}\"[{}][{}] is not an integer", path, key, r, c);
      ids.push_back(rows[r][c].get<int32_t>());
    }
  }
  return Tensor::from_vector(ids, {static_cast<int64_t>(rows.size()), static_cast<int64_t>(length)});
}

data::Batch read_batch(const std::string& path) {
  std::ifstream file(path);
  HEED_CHECK(file.good(), "cannot read batch file {}", path);
  nlohmann::json root;
  try {
    file >> root;
  } catch (const nlohmann::json::exception& e) {
    HEED_CHECK(false, "{}: invalid JSON: {}", path, e.what());
  }
  HEED_CHECK(root.is_object(), "{}: expected an object {{\"src\", \"tgt_in\", \"tgt_out\"}}", path);
  for (const auto& [key, value] : root.items())
    HEED_CHECK(key == "src" || key == "tgt_in" || key == "tgt_out", "{}: unknown key \"{}\"", path, key);
  return {read_id_rows(root, "src", path), read_id_rows(root, "tgt_in", path), read_id_rows(root, "tgt_out", path)};
}

struct GradsOptions {
  std::string model_dir, model_config, weights, save_weights, batch, out;
  uint64_t seed = 1;
  int threads = 0;
};

void run_grads(const GradsOptions& opt) {
  if (opt.threads > 0) omp_set_num_threads(opt.threads);
  cuda_device_count();  // logs which backend is in use
  nn::ModelConfig config;
  io::TensorMap weights;
  if (!opt.model_dir.empty()) {
    nn::ModelDir dir = nn::load_model_dir(opt.model_dir);
    config = dir.config;
    weights = std::move(dir.weights);
  } else {
    config = nn::load_model_config(opt.model_config);
    if (!opt.weights.empty()) weights = io::load_safetensors(opt.weights);
  }
  nn::ParameterStore store(opt.seed);
  nn::Transformer model(config, store);
  if (!weights.empty()) store.load(weights, opt.model_dir.empty() ? opt.weights : opt.model_dir);
  if (!opt.save_weights.empty()) io::save_safetensors(opt.save_weights, store.values());

  const data::Batch batch = read_batch(opt.batch);
  nn::ForwardContext ctx;  // training = false: dropout off
  nn::LossResult result = model.loss(batch, ctx);
  HEED_CHECK(result.tokens > 0, "{}: every target token is padding; the loss is undefined", opt.batch);
  autograd::backward(result.loss);
  io::save_safetensors(opt.out, store.grads());
  std::cout << nlohmann::json{{"loss", result.loss.value().item()}, {"tokens", result.tokens}}.dump() << std::endl;
}

}  // namespace

void add_grads_command(CLI::App& app) {
  auto opt = std::make_shared<GradsOptions>();
  CLI::App* cmd = app.add_subcommand("grads", "Loss and parameter gradients of one batch (dropout off)");
  auto* model = cmd->add_option("--model", opt->model_dir, "Model directory (model.yaml + model.safetensors)");
  auto* config = cmd->add_option("--model-config", opt->model_config, "Model hyper-parameters (YAML)");
  model->excludes(config);
  auto* weights = cmd->add_option("--weights", opt->weights, "Weights (safetensors) for --model-config");
  weights->needs(config);
  cmd->add_option("--seed", opt->seed, "Seed of the initial weights when none are given")->excludes(weights);
  cmd->add_option("--save-weights", opt->save_weights, "Write the weights used (safetensors)");
  cmd->add_option("--batch", opt->batch, "Batch: {\"src\": [[ids]], \"tgt_in\": [[ids]], \"tgt_out\": [[ids]]}")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", opt->out, "Gradients output (safetensors, Heed's parameter names)")->required();
  cmd->add_option("--threads", opt->threads, "CPU threads (default: all cores)");
  cmd->callback([opt, model, config] {
    HEED_CHECK(*model || *config, "heed grads needs --model DIR or --model-config M.yaml");
    run_grads(*opt);
  });
}

}  // namespace heed::cli

// heed import-hf / export-hf: the command-line face of heed/nn/marian_hf.h. The conversions live in the
// library so that training code can export checkpoints too; this file only parses arguments and moves
// files between a Heed model directory (model.yaml + model.safetensors) and a Hugging Face one
// (config.json + model.safetensors).
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "heed/nn/marian_hf.h"

namespace heed::cli {

namespace {

struct ExportOptions {
  std::string in, out;
  bool names_only = false;
  int64_t max_positions = 512;
};

void run_export(const ExportOptions& opt) {
  if (opt.names_only) {
    io::save_safetensors(opt.out, nn::rename_to_hf(io::load_safetensors(opt.in), opt.in));
    spdlog::info("renamed the tensors of {} to MarianMT names in {}", opt.in, opt.out);
    return;
  }
  nn::export_marian_hf(nn::load_model_dir(opt.in), opt.in, opt.out, opt.max_positions);
}

}  // namespace

void add_hf_commands(CLI::App& app) {
  auto import_dirs = std::make_shared<std::pair<std::string, std::string>>();
  CLI::App* import_cmd =
      app.add_subcommand("import-hf", "Convert a Hugging Face MarianMT model (save_pretrained) to a Heed model");
  import_cmd->add_option("HF_DIR", import_dirs->first, "Directory with config.json and model.safetensors")
      ->required()
      ->check(CLI::ExistingDirectory);
  import_cmd->add_option("MODEL_DIR", import_dirs->second, "Heed model directory to write")->required();
  import_cmd->callback([import_dirs] {
    const nn::ModelDir model = nn::import_marian_hf(import_dirs->first);
    nn::save_model_dir(import_dirs->second, model.config, model.weights);
  });

  auto opt = std::make_shared<ExportOptions>();
  CLI::App* export_cmd = app.add_subcommand(
      "export-hf", "Convert a Heed model to Hugging Face MarianMT (from_pretrained), or rename a tensors file");
  export_cmd->add_option("IN", opt->in, "Heed model directory (with --names-only: a safetensors file)")
      ->required()
      ->check(CLI::ExistingPath);
  export_cmd->add_option("OUT", opt->out, "Hugging Face directory to write (with --names-only: a safetensors file)")
      ->required();
  export_cmd->add_flag("--names-only", opt->names_only,
                       "Only rename the tensors of a file with Heed's parameter names (e.g. gradients) to MarianMT's");
  export_cmd->add_option("--max-positions", opt->max_positions,
                         "Rows of the position tables, MarianMT's max_position_embeddings")
      ->capture_default_str();
  export_cmd->callback([opt] { run_export(*opt); });
}

}  // namespace heed::cli

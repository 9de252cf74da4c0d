// heed import-hf / export-hf: the command-line face of heed/nn/marian_hf.h. The conversions live in the
// library so that training code can export checkpoints too; this file parses arguments, finds the model in
// a run directory as `heed translate` does, and gathers what travels with the weights: the tokenizer and
// the validation search (export), or the MarianMT tokenizer (import).
#include <sentencepiece_processor.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "heed/nn/marian_hf.h"
#include "heed/nn/model_dir.h"
#include "heed/train/checkpoint.h"
#include "heed/train/train_config.h"

namespace heed::cli {

namespace {

namespace fs = std::filesystem;

struct ExportOptions {
  std::string in, out, metric = "bleu";
  bool names_only = false;
  int64_t max_positions = 512;
};

// MarianMT's tokenizer files, as OPUS-MT ships them and import-hf / --init-from read them.
const std::vector<std::string> kMarianTokenizer = {"source.spm", "target.spm", "vocab.json"};

bool has_marian_tokenizer(const fs::path& dir) {
  return std::all_of(kMarianTokenizer.begin(), kMarianTokenizer.end(),
                     [&](const std::string& name) { return fs::exists(dir / name); });
}

// The piece of every id of a SentencePiece model, by its own ids.
std::vector<std::string> sentencepiece_pieces(const fs::path& path) {
  sentencepiece::SentencePieceProcessor processor;
  const auto status = processor.Load(path.string());
  HEED_CHECK(status.ok(), "cannot load the SentencePiece model {}: {}", path.string(), status.ToString());
  std::vector<std::string> pieces;
  for (int id = 0; id < processor.GetPieceSize(); ++id) pieces.push_back(processor.IdToPiece(id));
  return pieces;
}

// The piece of every id of a MarianMT vocab.json ({"</s>": 0, ...}).
std::vector<std::string> vocab_json_pieces(const fs::path& path) {
  std::ifstream file(path);
  nlohmann::json map;
  try {
    file >> map;
  } catch (const nlohmann::json::exception& e) {
    HEED_CHECK(false, "{}: invalid JSON: {}", path.string(), e.what());
  }
  std::vector<std::string> pieces(map.size());
  for (const auto& [piece, id] : map.items()) {
    HEED_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<size_t>() < pieces.size(),
               "{}: the id of '{}' must be an integer in [0, {})", path.string(), piece, pieces.size());
    pieces[id.get<size_t>()] = piece;
  }
  return pieces;
}

// The tokenizer of a checkpoint, or nothing when it has one vocabulary per side (MarianTokenizer's
// separate_vocabs, which CTranslate2 and Heed's own MarianMT reader lack) or none.
std::optional<nn::HfTokenizer> checkpoint_tokenizer(const fs::path& dir, const std::string& src_lang,
                                                    const std::string& tgt_lang) {
  if (has_marian_tokenizer(dir))
    return nn::HfTokenizer{(dir / "source.spm").string(), (dir / "target.spm").string(),
                           vocab_json_pieces(dir / "vocab.json"), src_lang, tgt_lang};
  if (fs::exists(dir / "vocab.model")) {
    const std::string spm = (dir / "vocab.model").string();
    return nn::HfTokenizer{spm, spm, sentencepiece_pieces(spm), src_lang, tgt_lang};
  }
  spdlog::warn("{} has {}: the export has no tokenizer (MarianTokenizer needs source.spm, target.spm and one "
               "vocab.json)",
               dir.string(), fs::exists(dir / "vocab.src.model") ? "one vocabulary per side" : "no vocabulary");
  return std::nullopt;
}

void run_export(const ExportOptions& opt) {
  if (opt.names_only) {
    io::save_safetensors(opt.out, nn::rename_to_hf(io::load_safetensors(opt.in), opt.in));
    spdlog::info("renamed the tensors of {} to MarianMT names in {}", opt.in, opt.out);
    return;
  }
  const std::string dir = nn::resolve_model_dir(opt.in, opt.metric);
  if (fs::exists(fs::path(dir) / "manifest.json")) nn::verify_checkpoint(dir);
  // A checkpoint holds its training config: the languages, and the search that validation used.
  nn::HfGeneration generation;
  std::string src_lang = "src", tgt_lang = "tgt";
  if (const fs::path config = fs::path(dir) / "config.yaml"; fs::exists(config)) {
    const train::TrainConfig train_config = train::load_train_config(config.string(), {});
    generation = {train_config.validation.beam_size, train_config.validation.length_penalty};
    src_lang = train_config.data.src_lang;
    tgt_lang = train_config.data.tgt_lang;
  }
  const std::optional<nn::HfTokenizer> tokenizer = checkpoint_tokenizer(dir, src_lang, tgt_lang);
  spdlog::info("exporting {}", dir);
  nn::export_marian_hf(nn::load_model_dir(dir), dir, opt.out, opt.max_positions, tokenizer ? &*tokenizer : nullptr,
                       generation);
}

// import-hf takes MarianMT's tokenizer along, so that `heed translate` reads the imported model directly.
void run_import(const std::string& hf_dir, const std::string& model_dir) {
  const nn::ModelDir model = nn::import_marian_hf(hf_dir);
  nn::save_model_dir(model_dir, model.config, model.weights);
  if (!has_marian_tokenizer(hf_dir)) return;
  for (const std::string& name : kMarianTokenizer)
    fs::copy_file(fs::path(hf_dir) / name, fs::path(model_dir) / name, fs::copy_options::overwrite_existing);
  spdlog::info("copied the tokenizer ({}) to {}", fmt::join(kMarianTokenizer, ", "), model_dir);
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
  import_cmd->callback([import_dirs] { run_import(import_dirs->first, import_dirs->second); });

  auto opt = std::make_shared<ExportOptions>();
  CLI::App* export_cmd = app.add_subcommand(
      "export-hf", "Convert a Heed model to Hugging Face MarianMT (from_pretrained), or rename a tensors file");
  export_cmd->add_option("IN", opt->in,
                         "A checkpoint directory, or a run directory: its best checkpoint for --metric (best-<metric>, "
                         "else any best-*, else the latest) as `heed translate` picks it (with --names-only: a "
                         "safetensors file)")
      ->required()
      ->check(CLI::ExistingPath);
  export_cmd->add_option("OUT", opt->out, "Hugging Face directory to write: weights, config, generation_config.json and the tokenizer (with --names-only: a safetensors file)")
      ->required();
  export_cmd->add_flag("--names-only", opt->names_only,
                       "Only rename the tensors of a file with Heed's parameter names (e.g. gradients) to MarianMT's");
  export_cmd->add_option("--metric", opt->metric,
                         "A run directory's checkpoint: best-<metric> (else any best-*, else the latest), or latest")
      ->capture_default_str();
  export_cmd->add_option("--max-positions", opt->max_positions,
                         "Rows of the position tables, MarianMT's max_position_embeddings")
      ->capture_default_str();
  export_cmd->callback([opt] { run_export(*opt); });
}

}  // namespace heed::cli

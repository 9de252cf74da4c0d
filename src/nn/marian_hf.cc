// Hugging Face MarianMT <-> Heed. Two facts shape this file:
//
// - Names: apart from the tied embeddings, MarianMT's names are Heed's with a "model." prefix
//   (lm_head.weight and final_logits_bias keep theirs), so one rule renames in both directions, and the
//   set of names to expect comes from building the Heed model itself, never from a second list here.
// - Configs: config.json mixes the fields that define the network (sizes, activation, ties, scaling, ids)
//   with generation defaults and bookkeeping, and every transformers release adds some of the latter
//   (5.x writes "dtype" where 4.x wrote "torch_dtype"). The fields that define the network are read here,
//   each mapped onto a ModelConfig field or checked to hold the one value Heed supports; a value Heed
//   cannot build is an error naming the field. Every other field is logged once and ignored, so a new
//   release's bookkeeping does not lock its checkpoints out. docs/model.md lists the fields read.
#include "heed/nn/marian_hf.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>

#include "heed/nn/modules.h"
#include "heed/nn/transformer.h"

namespace heed::nn {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Reads config.json and remembers which keys were consulted, so the rest can be logged as ignored.
class ConfigReader {
 public:
  ConfigReader(json root, std::string path) : root_(std::move(root)), path_(std::move(path)) {}

  // The value of key (possibly null), or nullopt when absent: MarianConfig then uses its default. A null
  // is HF's None, which the typed readers below refuse, since no field they read means anything as None.
  std::optional<json> get(const std::string& key) {
    used_.insert(key);
    auto it = root_.find(key);
    if (it == root_.end()) return std::nullopt;
    return *it;
  }
  int64_t integer(const std::string& key, int64_t fallback) {
    auto v = get(key);
    if (!v) return fallback;
    HEED_CHECK(v->is_number_integer(), "{}: \"{}\" must be an integer, got {}", path_, key, v->dump());
    return v->get<int64_t>();
  }
  double number(const std::string& key, double fallback) {
    auto v = get(key);
    if (!v) return fallback;
    HEED_CHECK(v->is_number(), "{}: \"{}\" must be a number, got {}", path_, key, v->dump());
    return v->get<double>();
  }
  bool boolean(const std::string& key, bool fallback) {
    auto v = get(key);
    if (!v) return fallback;
    HEED_CHECK(v->is_boolean(), "{}: \"{}\" must be true or false, got {}", path_, key, v->dump());
    return v->get<bool>();
  }
  std::string string(const std::string& key, const std::string& fallback) {
    auto v = get(key);
    if (!v) return fallback;
    HEED_CHECK(v->is_string(), "{}: \"{}\" must be a string, got {}", path_, key, v->dump());
    return v->get<std::string>();
  }
  // A key that Heed supports with one value only (the one MarianMT uses by default).
  void require(const std::string& key, const json& expected, const char* why) {
    auto v = get(key);
    HEED_CHECK(!v || *v == expected, "{}: \"{}\": {} is not supported, Heed needs {} ({})", path_, key, v->dump(),
               expected.dump(), why);
  }
  // Every key not consulted: generation defaults, bookkeeping, and whatever later releases add.
  void log_ignored() const {
    std::vector<std::string> ignored;
    for (const auto& [key, value] : root_.items())
      if (!used_.count(key)) ignored.push_back(key);
    if (!ignored.empty())
      spdlog::info("{}: ignoring {} (they do not define the network; docs/model.md lists the fields read)", path_,
                   fmt::join(ignored, ", "));
  }

 private:
  json root_;
  std::string path_;
  std::set<std::string> used_;
};

json read_json(const std::string& path) {
  std::ifstream file(path);
  HEED_CHECK(file.good(), "cannot read {}", path);
  json root;
  try {
    file >> root;
  } catch (const json::exception& e) {
    HEED_CHECK(false, "{}: invalid JSON: {}", path, e.what());
  }
  HEED_CHECK(root.is_object(), "{}: expected a JSON object", path);
  return root;
}

// The fields of MarianConfig (transformers 4.44 and 5.x) and of older Marian/BART configs that select an
// architecture, each of which Heed builds one way only. Legacy fields such as normalize_before are no
// longer read by MarianMTModel, but a checkpoint that sets them was made for a different network.
void check_architecture(ConfigReader& c) {
  c.require("model_type", "marian", "this converter reads MarianMT checkpoints only");
  c.require("is_encoder_decoder", true, "MarianMTModel is an encoder-decoder");
  c.require("is_decoder", false, "MarianMTModel is an encoder-decoder");
  c.require("add_cross_attention", false, "MarianMTModel always has cross-attention in the decoder only");
  c.require("tie_encoder_decoder", false, "Heed does not share weights between encoder and decoder layers");
  c.require("pruned_heads", json::object(), "Heed has no pruned attention heads");
  c.require("normalize_before", false, "MarianMT is post-norm");
  c.require("normalize_embedding", false, "Heed has no layer norm on the embeddings");
  c.require("add_final_layer_norm", false, "MarianMT has no final layer norm");
  c.require("add_bias_logits", false, "the output bias is final_logits_bias");
  c.require("static_position_embeddings", true, "Heed's positions are Marian's fixed sinusoid");
}

// What config.json says: the Heed model, and the rows of MarianMT's position tables.
struct HfConfig {
  ModelConfig model;
  int64_t max_positions;
};

// HfConfig from a MarianConfig. Defaults are those of transformers' MarianConfig (4.44, unchanged in
// 5.x), because an absent key means the default to from_pretrained too.
HfConfig config_from_hf(const std::string& path) {
  ConfigReader c(read_json(path), path);
  check_architecture(c);
  for (const char* key : {"encoder_layerdrop", "decoder_layerdrop"})
    if (c.number(key, 0.0) != 0.0) spdlog::warn("{}: ignoring {} (Heed has no LayerDrop)", path, key);

  ModelConfig m;
  m.vocab_size = c.integer("vocab_size", 58101);
  // MarianConfig reads a null decoder_vocab_size as vocab_size.
  const std::optional<json> decoder_vocab_field = c.get("decoder_vocab_size");
  const int64_t decoder_vocab = decoder_vocab_field && decoder_vocab_field->is_null()
                                    ? m.vocab_size
                                    : c.integer("decoder_vocab_size", m.vocab_size);
  HEED_CHECK(decoder_vocab == m.vocab_size,
             "{}: decoder_vocab_size {} differs from vocab_size {}; Heed has one vocabulary for both sides", path,
             decoder_vocab, m.vocab_size);
  m.d_model = c.integer("d_model", 1024);
  m.encoder_layers = c.integer("encoder_layers", 12);
  m.decoder_layers = c.integer("decoder_layers", 12);
  m.heads = c.integer("encoder_attention_heads", 16);
  const int64_t decoder_heads = c.integer("decoder_attention_heads", 16);
  HEED_CHECK(decoder_heads == m.heads,
             "{}: encoder_attention_heads {} and decoder_attention_heads {} differ; Heed needs them equal", path,
             m.heads, decoder_heads);
  m.ffn_dim = c.integer("encoder_ffn_dim", 4096);
  const int64_t decoder_ffn = c.integer("decoder_ffn_dim", 4096);
  HEED_CHECK(decoder_ffn == m.ffn_dim, "{}: encoder_ffn_dim {} and decoder_ffn_dim {} differ; Heed needs them equal",
             path, m.ffn_dim, decoder_ffn);
  // Heed's sinusoid is defined at every position, so it agrees with MarianMT on every input MarianMT accepts.
  const int64_t max_positions = c.integer("max_position_embeddings", 1024);
  HEED_CHECK(max_positions > 0, "{}: max_position_embeddings must be positive, got {}", path, max_positions);

  const std::string act = c.string("activation_function", "gelu");
  HEED_CHECK(act == "relu" || act == "gelu" || act == "swish" || act == "silu",
             "{}: activation_function \"{}\" is not supported (Heed has relu, gelu, swish/silu)", path, act);
  m.activation = act == "silu" ? "swish" : act;
  m.scale_embedding = c.boolean("scale_embedding", false);

  const bool share = c.boolean("share_encoder_decoder_embeddings", true);
  const bool tie = c.boolean("tie_word_embeddings", true);
  HEED_CHECK(!share || tie,
             "{}: share_encoder_decoder_embeddings = true with tie_word_embeddings = false (one input embedding, a "
             "separate output matrix) is not supported; Heed ties all three, the decoder's two, or none",
             path);
  m.tie_embeddings = share ? "all" : tie ? "target" : "none";

  m.pad_id = c.integer("pad_token_id", 58100);
  m.eos_id = c.integer("eos_token_id", 0);
  m.decoder_start_id = c.integer("decoder_start_token_id", 58100);
  m.dropout = static_cast<float>(c.number("dropout", 0.1));
  m.attention_dropout = static_cast<float>(c.number("attention_dropout", 0.0));
  m.activation_dropout = static_cast<float>(c.number("activation_dropout", 0.0));
  m.layer_norm_eps = 1e-5f;  // torch.nn.LayerNorm's default, which MarianMT uses
  m.label_smoothing = 0.0f;  // a training setting, not part of the checkpoint
  c.log_ignored();
  try {
    m.validate();
  } catch (const Error& e) {
    HEED_CHECK(false, "{}: {}", path, e.what());
  }
  return {m, max_positions};
}

// MarianMT name of a Heed parameter: "model." + name, except the two that live outside MarianModel.
std::string hf_name(const std::string& name) {
  return name == "lm_head.weight" || name == "final_logits_bias" ? name : "model." + name;
}

// Every name the table of docs/model.md allows, whatever the model's configuration.
bool is_heed_name(const std::string& name) {
  static const std::regex pattern(
      R"((shared|encoder\.embed_tokens|decoder\.embed_tokens|lm_head)\.weight|final_logits_bias|)"
      R"((encoder|decoder)\.layer_norm\.(weight|bias)|)"
      R"((encoder|decoder)\.layers\.\d+\.(self_attn\.(q|k|v|out)_proj|self_attn_layer_norm|fc1|fc2|final_layer_norm)\.(weight|bias)|)"
      R"(decoder\.layers\.\d+\.(encoder_attn\.(q|k|v|out)_proj|encoder_attn_layer_norm)\.(weight|bias))");
  return std::regex_match(name, pattern);
}

// The Heed parameter that an HF token-embedding tensor holds under the given tie mode, if any.
std::optional<std::string> embedding_target(const std::string& hf, const std::string& tie) {
  if (tie == "all") {
    if (hf == "model.shared.weight" || hf == "model.encoder.embed_tokens.weight" ||
        hf == "model.decoder.embed_tokens.weight" || hf == "lm_head.weight")
      return "shared.weight";
    return std::nullopt;
  }
  if (hf == "model.encoder.embed_tokens.weight") return "encoder.embed_tokens.weight";
  if (hf == "model.decoder.embed_tokens.weight") return "decoder.embed_tokens.weight";
  if (hf == "lm_head.weight") return tie == "target" ? "decoder.embed_tokens.weight" : "lm_head.weight";
  return std::nullopt;
}

bool same_values(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

// `stored` is the file's dtype: a table saved in 16 bits carries that type's rounding (values are in
// [-1, 1], so at most 2^-12 for F16 and 2^-9 for BF16); fp32 tables must match to 1e-5.
float position_tolerance(DType stored) { return stored == DType::F32 ? 1e-5f : stored == DType::F16 ? 5e-4f : 4e-3f; }

// Rows from `first_row` on; the decoder's row 0 may hold a folded start embedding (export_marian_hf).
void check_positions(const Tensor& table, DType stored, const std::string& name, const HfConfig& config,
                     const std::string& path, int64_t first_row) {
  const float tolerance = position_tolerance(stored);
  const int64_t d_model = config.model.d_model;
  HEED_CHECK(table.dim() == 2 && table.size(0) == config.max_positions && table.size(1) == d_model,
             "{}: {} has shape {}, expected [{}, {}] (max_position_embeddings, d_model)", path, name,
             shape_str(table.shape()), config.max_positions, d_model);
  const Tensor expected = sinusoidal_positions(table.size(0), d_model);
  const float* got = table.data<float>();
  const float* want = expected.data<float>();
  for (int64_t i = first_row * d_model; i < table.numel(); ++i)
    HEED_CHECK(std::abs(got[i] - want[i]) <= tolerance,
               "{}: {} differs from Marian's sinusoidal table (docs/model.md) at position {}, column {}: {} instead "
               "of {}; Heed supports static sinusoidal positions only",
               path, name, i / d_model, i % d_model, got[i], want[i]);
}

// Token embeddings and output matrix of a Heed model under HF's names, with every tied copy.
std::vector<std::pair<std::string, std::string>> embedding_copies(const std::string& tie) {
  if (tie == "all")
    return {{"shared.weight", "model.shared.weight"},
            {"shared.weight", "model.encoder.embed_tokens.weight"},
            {"shared.weight", "model.decoder.embed_tokens.weight"},
            {"shared.weight", "lm_head.weight"}};
  std::vector<std::pair<std::string, std::string>> copies = {
      {"encoder.embed_tokens.weight", "model.encoder.embed_tokens.weight"},
      {"decoder.embed_tokens.weight", "model.decoder.embed_tokens.weight"}};
  copies.emplace_back(tie == "target" ? "decoder.embed_tokens.weight" : "lm_head.weight", "lm_head.weight");
  return copies;
}

// The double that prints as the float's shortest decimal form: 0.1f becomes 0.1, not 0.10000000149011612.
double shortest(float f) { return std::stod(fmt::format("{}", f)); }

void write_text(const std::string& path, const std::string& text) {
  std::ofstream file(path);
  HEED_CHECK(file.good(), "cannot write {}", path);
  file << text;
  file.close();
  HEED_CHECK(file.good(), "error writing {}", path);
}

float embedding_scale(const ModelConfig& c) {
  return c.scale_embedding ? std::sqrt(static_cast<float>(c.d_model)) : 1.0f;
}

// The Heed parameter whose rows embed the decoder's input tokens.
std::string decoder_table(const ModelConfig& c) {
  return c.tie_embeddings == "all" ? "shared.weight" : "decoder.embed_tokens.weight";
}

// Undoes export_marian_hf's fold: row 0 of the decoder's position table minus the sinusoid, unscaled, is
// the start token's embedding, whose own row the export zeroed. A table that is the sinusoid there too
// (OPUS-MT's, Heed's earlier exports) changes nothing.
void unfold_start_embedding(const Tensor& positions, DType stored, const ModelConfig& c, io::TensorMap& weights,
                            const std::string& path) {
  const Tensor sinusoid = sinusoidal_positions(1, c.d_model);
  const float* row0 = positions.data<float>();
  const float* want = sinusoid.data<float>();
  bool folded = false;
  for (int64_t j = 0; j < c.d_model; ++j) folded |= !(std::abs(row0[j] - want[j]) <= position_tolerance(stored));
  if (!folded) return;
  Tensor& table = weights.at(decoder_table(c));
  float* start = table.data<float>() + c.decoder_start_id * c.d_model;
  HEED_CHECK(std::all_of(start, start + c.d_model, [](float v) { return v == 0.0f; }),
             "{}: row 0 of model.decoder.embed_positions.weight differs from Marian's sinusoid, but the decoder "
             "start token {} has an embedding of its own: only a zero start row can take a start embedding folded "
             "into the positions (docs/model.md)",
             path, c.decoder_start_id);
  const float scale = embedding_scale(c);
  for (int64_t j = 0; j < c.d_model; ++j) start[j] = (row0[j] - want[j]) / scale;
  spdlog::info("{}: moved the decoder start embedding from row 0 of the decoder's positions back to token {}", path,
               c.decoder_start_id);
}

// Rows of a [V, ...] tensor in the export's order: row i of the result is row order[i] of t.
Tensor permute_rows(const Tensor& t, const std::vector<int64_t>& order) {
  Tensor out = t.clone();
  const int64_t row = t.numel() / t.size(0);
  for (size_t i = 0; i < order.size(); ++i)
    std::memcpy(out.data<float>() + i * row, t.data<float>() + order[i] * row, row * sizeof(float));
  return out;
}

// vocab.json, tokenizer_config.json and the SentencePiece models: what MarianTokenizer reads.
void write_tokenizer(const HfTokenizer& tokenizer, const ModelConfig& c, const std::vector<int64_t>& order,
                     const std::string& source, const fs::path& dir) {
  HEED_CHECK(static_cast<int64_t>(tokenizer.pieces.size()) == c.vocab_size,
             "{}: the vocabulary has {} pieces but the model {} ids", source, tokenizer.pieces.size(), c.vocab_size);
  for (const auto& [id, piece] : {std::pair{c.eos_id, "</s>"}, {c.pad_id, "<pad>"}})
    HEED_CHECK(tokenizer.pieces[id] == piece, "{}: id {} is '{}' in the vocabulary, but MarianTokenizer needs '{}' there",
               source, id, tokenizer.pieces[id], piece);
  HEED_CHECK(std::count(tokenizer.pieces.begin(), tokenizer.pieces.end(), "<unk>") == 1,
             "{}: the vocabulary has no <unk> piece, which MarianTokenizer needs", source);
  json vocab = json::object();
  for (size_t i = 0; i < order.size(); ++i) vocab[tokenizer.pieces[order[i]]] = i;
  HEED_CHECK(vocab.size() == order.size(), "{}: the vocabulary holds a piece twice", source);
  fs::copy_file(tokenizer.source_spm, dir / "source.spm", fs::copy_options::overwrite_existing);
  fs::copy_file(tokenizer.target_spm, dir / "target.spm", fs::copy_options::overwrite_existing);
  write_text((dir / "vocab.json").string(), vocab.dump(2, ' ', false) + "\n");
  const json config = {{"tokenizer_class", "MarianTokenizer"}, {"source_lang", tokenizer.source_lang},
                       {"target_lang", tokenizer.target_lang}, {"separate_vocabs", false},
                       {"eos_token", "</s>"}, {"unk_token", "<unk>"}, {"pad_token", "<pad>"},
                       {"model_max_length", 512}};
  write_text((dir / "tokenizer_config.json").string(), config.dump(2) + "\n");
}

}  // namespace

std::vector<int64_t> opus_order(const ModelConfig& c) {
  std::vector<int64_t> order = {c.eos_id};
  for (int64_t id = 0; id < c.vocab_size; ++id)
    if (id != c.eos_id && id != c.pad_id) order.push_back(id);
  order.push_back(c.pad_id);
  return order;
}

ModelDir import_marian_hf(const std::string& hf_dir) {
  const std::string config_path = (fs::path(hf_dir) / "config.json").string();
  const std::string weights_path = (fs::path(hf_dir) / "model.safetensors").string();
  HEED_CHECK(fs::is_directory(hf_dir), "Hugging Face model directory {} does not exist", hf_dir);
  HEED_CHECK(fs::exists(weights_path),
             "{} has no model.safetensors (sharded checkpoints and pytorch_model.bin are not supported: "
             "save_pretrained(..., safe_serialization=True) writes one)",
             hf_dir);
  const HfConfig hf_config = config_from_hf(config_path);
  ModelConfig config = hf_config.model;
  io::TensorMap hf = io::load_safetensors(weights_path);
  // MarianMT always has the bias, as a buffer that training never changes. When it is all zeros (as in
  // the OPUS-MT conversions, or absent) the Heed model has none: the same function, and nothing to train
  // that HF would keep fixed. Otherwise it becomes Heed's trainable final_logits_bias.
  if (auto it = hf.find("final_logits_bias"); it != hf.end()) {
    const std::vector<float> bias = it->second.to(DType::F32).to_vector<float>();
    config.final_logits_bias = std::any_of(bias.begin(), bias.end(), [](float b) { return b != 0.0f; });
    if (!config.final_logits_bias) hf.erase(it);
  }

  // The names and shapes to fill, from the model itself.
  ParameterStore store;
  Transformer model(config, store);
  std::map<std::string, Shape> expected;
  for (const auto& [name, v] : store.all()) expected[name] = v.shape();

  io::TensorMap weights;
  std::map<std::string, std::string> source_of;  // Heed name -> the HF tensor it came from
  std::vector<std::string> unknown, problems;
  std::optional<std::pair<Tensor, DType>> decoder_positions;
  for (auto& [name, tensor] : hf) {
    const DType dt = tensor.dtype();
    if (dt != DType::F32 && dt != DType::F16 && dt != DType::BF16) {
      problems.push_back(fmt::format("{} is {}, expected a floating-point type", name, dtype_name(dt)));
      continue;
    }
    Tensor t = tensor.to(DType::F32);
    if (name == "model.encoder.embed_positions.weight") {
      check_positions(t, dt, name, hf_config, weights_path, 0);
      continue;
    }
    if (name == "model.decoder.embed_positions.weight") {
      check_positions(t, dt, name, hf_config, weights_path, 1);
      decoder_positions = {t, dt};
      continue;
    }
    std::string target;
    if (auto e = embedding_target(name, config.tie_embeddings)) {
      target = *e;
    } else if (name == "final_logits_bias") {
      HEED_CHECK(t.dim() == 2 && t.size(0) == 1, "{}: final_logits_bias has shape {}, expected [1, {}]", weights_path,
                 shape_str(t.shape()), config.vocab_size);
      target = name;
      t = t.view({t.size(1)});
    } else if (name.starts_with("model.") && expected.count(name.substr(6)) && hf_name(name.substr(6)) == name) {
      target = name.substr(6);
    } else {
      unknown.push_back(name);
      continue;
    }
    if (t.shape() != expected.at(target)) {
      problems.push_back(fmt::format("{} has shape {}, expected {}", name, shape_str(t.shape()),
                                     shape_str(target == "final_logits_bias" ? Shape{1, config.vocab_size}
                                                                             : expected.at(target))));
      continue;
    }
    auto [it, inserted] = weights.emplace(target, t);
    if (!inserted && !same_values(it->second, t))
      problems.push_back(fmt::format("{} and {} should be tied copies (tie_embeddings: {}) but hold different values",
                                     source_of[target], name, config.tie_embeddings));
    source_of.emplace(target, name);
  }
  HEED_CHECK(unknown.empty(), "{}: tensors that Heed does not understand (tie_embeddings: {}): {}", weights_path,
             config.tie_embeddings, fmt::join(unknown, ", "));
  for (const auto& [name, shape] : expected)
    if (!weights.count(name)) problems.push_back(fmt::format("{} is missing", hf_name(name)));
  HEED_CHECK(problems.empty(), "{}: {}", weights_path, fmt::join(problems, "; "));
  if (decoder_positions) unfold_start_embedding(decoder_positions->first, decoder_positions->second, config, weights,
                                                weights_path);
  spdlog::info("imported {}: {} tensors, d_model {}, {}+{} layers, tie_embeddings {}, final_logits_bias {}", hf_dir,
               hf.size(), config.d_model, config.encoder_layers, config.decoder_layers, config.tie_embeddings,
               config.final_logits_bias);
  return {config, std::move(weights)};
}

void export_marian_hf(const ModelDir& model, const std::string& source, const std::string& hf_dir,
                      int64_t max_positions, const HfTokenizer* tokenizer, const HfGeneration& generation) {
  const ModelConfig& c = model.config;
  HEED_CHECK(c.norm == "post",
             "{}: a pre-norm model (norm: pre) cannot be represented in MarianMT, which is post-norm and has no final "
             "encoder/decoder layer_norm",
             source);
  HEED_CHECK(c.layer_norm_eps == 1e-5f, "{}: layer_norm_eps {} cannot be represented in MarianMT, which uses 1e-5",
             source, c.layer_norm_eps);
  HEED_CHECK(max_positions > 0, "max_positions must be positive, got {}", max_positions);

  // Validates names and shapes against the configuration (missing, unexpected, mis-shaped are listed).
  ParameterStore store;
  Transformer transformer(c, store);
  store.load(model.weights, source);
  io::TensorMap values = store.values();

  // Every tensor indexed by token id, in the export's numbering.
  const std::vector<int64_t> order = opus_order(c);
  std::vector<int64_t> new_id(order.size());
  for (size_t i = 0; i < order.size(); ++i) new_id[order[i]] = static_cast<int64_t>(i);
  for (auto& [name, t] : values)
    if (name == "final_logits_bias" || name.ends_with("embed_tokens.weight") || name == "shared.weight" ||
        name == "lm_head.weight")
      t = permute_rows(t, order);

  Tensor decoder_positions = sinusoidal_positions(max_positions, c.d_model);
  if (c.decoder_start_id == c.pad_id) {
    float* start = values.at(decoder_table(c)).data<float>() + new_id[c.decoder_start_id] * c.d_model;
    float* row0 = decoder_positions.data<float>();
    const float scale = embedding_scale(c);
    for (int64_t j = 0; j < c.d_model; ++j) {
      row0[j] += scale * start[j];
      start[j] = 0.0f;
    }
  } else {
    spdlog::warn("{}: the decoder starts from token {}, not pad ({}): CTranslate2 and Marian, which start from a zero "
                 "vector, will not compute this model's function",
                 source, c.decoder_start_id, c.pad_id);
  }

  io::TensorMap hf;
  for (const auto& [name, t] : values)
    if (name != "final_logits_bias" && !name.ends_with("embed_tokens.weight") && name != "shared.weight" &&
        name != "lm_head.weight")
      hf[hf_name(name)] = t;
  for (const auto& [heed, name] : embedding_copies(c.tie_embeddings)) hf[name] = values.at(heed);
  hf["final_logits_bias"] = c.final_logits_bias ? values.at("final_logits_bias").view({1, c.vocab_size})
                                                 : Tensor::zeros({1, c.vocab_size});
  hf["model.encoder.embed_positions.weight"] = sinusoidal_positions(max_positions, c.d_model);
  hf["model.decoder.embed_positions.weight"] = decoder_positions;

  const int64_t pad = new_id[c.pad_id], eos = new_id[c.eos_id], start = new_id[c.decoder_start_id];
  const json config = {
      {"model_type", "marian"},
      {"architectures", {"MarianMTModel"}},
      {"vocab_size", c.vocab_size},
      {"decoder_vocab_size", c.vocab_size},
      {"max_position_embeddings", max_positions},
      {"d_model", c.d_model},
      {"encoder_layers", c.encoder_layers},
      {"decoder_layers", c.decoder_layers},
      {"num_hidden_layers", c.encoder_layers},
      {"encoder_attention_heads", c.heads},
      {"decoder_attention_heads", c.heads},
      {"encoder_ffn_dim", c.ffn_dim},
      {"decoder_ffn_dim", c.ffn_dim},
      {"activation_function", c.activation},
      {"scale_embedding", c.scale_embedding},
      {"share_encoder_decoder_embeddings", c.tie_embeddings == "all"},
      {"tie_word_embeddings", c.tie_embeddings != "none"},
      {"pad_token_id", pad},
      {"eos_token_id", eos},
      {"forced_eos_token_id", eos},
      {"decoder_start_token_id", start},
      {"dropout", shortest(c.dropout)},
      {"attention_dropout", shortest(c.attention_dropout)},
      {"activation_dropout", shortest(c.activation_dropout)},
      {"encoder_layerdrop", 0.0},
      {"decoder_layerdrop", 0.0},
      {"is_encoder_decoder", true},
      {"torch_dtype", "float32"},
  };
  // As in OPUS-MT's: Heed never generates pad, so neither does generate().
  const json generation_config = {{"bad_words_ids", {{pad}}},  {"decoder_start_token_id", start},
                                  {"eos_token_id", eos},       {"forced_eos_token_id", eos},
                                  {"pad_token_id", pad},       {"max_length", max_positions},
                                  {"num_beams", generation.beam_size},
                                  {"length_penalty", generation.length_penalty}};
  const fs::path dir(hf_dir);
  fs::create_directories(dir);
  io::save_safetensors((dir / "model.safetensors").string(), hf, {{"format", "pt"}});
  write_text((dir / "config.json").string(), config.dump(2) + "\n");
  write_text((dir / "generation_config.json").string(), generation_config.dump(2) + "\n");
  if (tokenizer) write_tokenizer(*tokenizer, c, order, source, dir);
  spdlog::info("exported {} to {}: {} tensors, tie_embeddings {}, {}", source, hf_dir, hf.size(), c.tie_embeddings,
               tokenizer ? "with its tokenizer" : "without a tokenizer");
}

io::TensorMap rename_to_hf(const io::TensorMap& tensors, const std::string& source) {
  std::vector<std::string> unknown;
  for (const auto& [name, t] : tensors)
    if (!is_heed_name(name)) unknown.push_back(name);
  HEED_CHECK(unknown.empty(), "{}: names that are not Heed parameter names (docs/model.md): {}", source,
             fmt::join(unknown, ", "));
  io::TensorMap out;
  for (const auto& [name, t] : tensors) {
    if (name == "final_logits_bias") {
      HEED_CHECK(t.dim() == 1, "{}: final_logits_bias has shape {}, expected [vocab]", source, shape_str(t.shape()));
      out[name] = t.reshape({1, t.size(0)});
    } else {
      out[hf_name(name)] = t;
    }
  }
  return out;
}

}  // namespace heed::nn

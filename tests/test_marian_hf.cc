// MarianMT conversion without Python: export then import must give back the same model, the HF names
// must be the documented ones, and configs the converter cannot represent must fail with messages that
// name the culprits. (tests/python/test_parity_hf.py checks the same files against transformers itself.)
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "heed/nn/marian_hf.h"
#include "heed/nn/transformer.h"
#include "temp_dir.h"

using namespace heed;
namespace fs = std::filesystem;

namespace {

using testing::TempDir;

nn::ModelConfig tiny_config(const std::string& tie, bool bias) {
  nn::ModelConfig c;
  c.vocab_size = 24;
  c.d_model = 8;
  c.heads = 2;
  c.ffn_dim = 12;
  c.encoder_layers = 1;
  c.decoder_layers = 2;
  c.pad_id = 3;
  c.decoder_start_id = 3;
  c.activation = "gelu";
  c.tie_embeddings = tie;
  c.final_logits_bias = bias;
  return c;
}

// A random model of the given configuration, with a non-zero final_logits_bias when it has one.
nn::ModelDir random_model(const nn::ModelConfig& config, uint64_t seed) {
  nn::ParameterStore store(seed);
  nn::Transformer model(config, store);
  io::TensorMap weights = store.values();
  if (config.final_logits_bias) {
    float* b = weights.at("final_logits_bias").data<float>();
    for (int64_t v = 0; v < config.vocab_size; ++v) b[v] = 0.01f * static_cast<float>(v % 7) - 0.02f;
  }
  return {config, weights};
}

bool same(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && a.to_vector<float>() == b.to_vector<float>();
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

void write_json(const std::string& path, const nlohmann::json& j) { std::ofstream(path) << j.dump(); }

}  // namespace

TEST_CASE("export-hf writes MarianMT's names and import-hf reads them back unchanged", "[io][hf]") {
  for (const auto& [tie, bias] : {std::pair{"all", true}, {"target", false}, {"none", true}}) {
    INFO("tie_embeddings " << tie << ", final_logits_bias " << bias);
    TempDir dir;
    const nn::ModelDir model = random_model(tiny_config(tie, bias), 5);
    nn::export_marian_hf(model, "test model", dir.file("hf"), 32);

    const io::TensorMap hf = io::load_safetensors(dir.file("hf/model.safetensors"));
    const int64_t layer_tensors = 16 + 2 * 26;  // encoder layer: 4 proj x 2 + 2 LN x 2 + 2 FF x 2; decoder adds 10
    const size_t copies = std::string(tie) == "all" ? 4 : 3;
    CHECK(hf.size() == layer_tensors + copies + 1 + 2);  // + final_logits_bias + two position tables
    CHECK(hf.at("final_logits_bias").shape() == Shape{1, 24});
    CHECK(hf.at("model.encoder.embed_positions.weight").shape() == Shape{32, 8});
    CHECK(hf.count("model.decoder.layers.1.encoder_attn.k_proj.bias") == 1);
    CHECK(hf.count("model.shared.weight") == (std::string(tie) == "all" ? 1u : 0u));
    const std::string out_source = std::string(tie) == "none" ? "lm_head.weight" : std::string(tie) == "all"
                                                                                        ? "shared.weight"
                                                                                        : "decoder.embed_tokens.weight";
    // The output matrix in OPUS-MT's order: row i is the model's row order[i]; the pad row is zero where it is
    // also the decoder's input table (its embedding moved into the positions, below).
    const std::vector<int64_t> order = nn::opus_order(model.config);
    {
      const std::vector<float> out = hf.at("lm_head.weight").to_vector<float>();
      const std::vector<float> original = model.weights.at(out_source).to_vector<float>();
      for (int64_t i = 0; i < 24; ++i)
        for (int64_t j = 0; j < 8; ++j) {
          const float want = i == 23 && std::string(tie) != "none" ? 0.0f : original[order[i] * 8 + j];
          CHECK(out[i * 8 + j] == want);
        }
    }

    const nlohmann::json config = read_json(dir.file("hf/config.json"));
    CHECK(config["model_type"] == "marian");
    CHECK(config["share_encoder_decoder_embeddings"] == (std::string(tie) == "all"));
    CHECK(config["tie_word_embeddings"] == (std::string(tie) != "none"));
    CHECK(config["dropout"].dump() == "0.1");
    CHECK(config["max_position_embeddings"] == 32);

    // OPUS-MT's numbering: eos (2) first, pad (3) last, the rest in order.
    CHECK(order.front() == 2);
    CHECK(order[1] == 0);
    CHECK(order[2] == 1);
    CHECK(order[3] == 4);
    CHECK(order.back() == 3);
    CHECK(config["pad_token_id"] == 23);
    CHECK(config["eos_token_id"] == 0);
    CHECK(config["decoder_start_token_id"] == 23);
    const std::string decoder_table = std::string(tie) == "all" ? "shared.weight" : "decoder.embed_tokens.weight";
    // The start token's embedding moved into row 0 of the decoder's positions; the encoder's are the sinusoid.
    const std::vector<float> start = model.weights.at(decoder_table).narrow(0, 3, 1).to_vector<float>();
    const std::vector<float> sinusoid = nn::sinusoidal_positions(1, 8).to_vector<float>();
    const std::vector<float> row0 = hf.at("model.decoder.embed_positions.weight").narrow(0, 0, 1).to_vector<float>();
    const std::vector<float> exported_start = hf.at("model.decoder.embed_tokens.weight").narrow(0, 23, 1).to_vector<float>();
    float worst = 0;
    for (int j = 0; j < 8; ++j) {
      const float e = std::abs(row0[j] - (sinusoid[j] + std::sqrt(8.0f) * start[j]));
      if (!(e <= worst)) worst = e;
      CHECK(exported_start[j] == 0.0f);
    }
    CHECK(worst <= 1e-6f);
    CHECK(same(hf.at("model.encoder.embed_positions.weight"), nn::sinusoidal_positions(32, 8)));

    const nn::ModelDir back = nn::import_marian_hf(dir.file("hf"));
    CHECK(back.config.tie_embeddings == tie);
    CHECK(back.config.final_logits_bias == bias);
    CHECK(back.config.activation == "gelu");
    CHECK(back.config.pad_id == 23);
    CHECK(back.config.eos_id == 0);
    CHECK(back.config.decoder_start_id == 23);
    CHECK(back.config.heads == 2);
    REQUIRE(back.weights.size() == model.weights.size());
    for (const auto& [name, t] : model.weights) {
      INFO(name);
      REQUIRE(back.weights.count(name) == 1);
      const Tensor& got = back.weights.at(name);
      const bool by_token = name == "final_logits_bias" || name.ends_with("embed_tokens.weight") ||
                            name == "shared.weight" || name == "lm_head.weight";
      if (!by_token) {
        CHECK(same(got, t));
        continue;
      }
      // Row i of the import is row order[i] of the model: exactly, but for the start row, which went through
      // (position + scale * start - position) / scale in float.
      const int64_t row = t.numel() / t.size(0);
      const std::vector<float> want = t.to_vector<float>(), have = got.to_vector<float>();
      REQUIRE(got.shape() == t.shape());
      float start_error = 0;
      for (int64_t i = 0; i < t.size(0); ++i)
        for (int64_t j = 0; j < row; ++j) {
          const float a = have[i * row + j], b = want[order[i] * row + j];
          if (name == decoder_table && i == 23) {
            if (!(std::abs(a - b) <= start_error)) start_error = std::abs(a - b);
          } else {
            CHECK(a == b);
          }
        }
      CHECK(start_error <= 1e-6f);
    }
  }
}

TEST_CASE("import-hf reads Heed's earlier exports: pad 0, positions the sinusoid", "[io][hf]") {
  TempDir dir;
  nn::ModelConfig config = tiny_config("all", false);
  config.pad_id = 0;
  config.eos_id = 2;
  config.decoder_start_id = 0;
  const nn::ModelDir model = random_model(config, 9);
  nn::export_marian_hf(model, "test model", dir.file("hf"), 32);
  // Rewrite the export as the earlier export-hf wrote it: the model's own ids, the plain sinusoid.
  io::TensorMap hf = io::load_safetensors(dir.file("hf/model.safetensors"));
  for (const char* name : {"model.shared.weight", "model.encoder.embed_tokens.weight",
                           "model.decoder.embed_tokens.weight", "lm_head.weight"})
    hf[name] = model.weights.at("shared.weight");
  hf["model.decoder.embed_positions.weight"] = nn::sinusoidal_positions(32, 8);
  io::save_safetensors(dir.file("hf/model.safetensors"), hf);
  nlohmann::json hf_config = read_json(dir.file("hf/config.json"));
  hf_config["pad_token_id"] = 0;
  hf_config["decoder_start_token_id"] = 0;
  hf_config["eos_token_id"] = 2;
  write_json(dir.file("hf/config.json"), hf_config);

  const nn::ModelDir back = nn::import_marian_hf(dir.file("hf"));
  CHECK(back.config.pad_id == 0);
  CHECK(back.config.eos_id == 2);
  for (const auto& [name, t] : model.weights) {
    INFO(name);
    CHECK(same(back.weights.at(name), t));
  }
  // A folded start embedding needs a zero start row to go back to.
  hf["model.decoder.embed_positions.weight"] = nn::sinusoidal_positions(32, 8).clone();
  hf["model.decoder.embed_positions.weight"].data<float>()[0] += 0.5f;
  io::save_safetensors(dir.file("hf/model.safetensors"), hf);
  CHECK_THROWS_WITH(nn::import_marian_hf(dir.file("hf")),
                    Catch::Contains("row 0 of model.decoder.embed_positions.weight differs from Marian's sinusoid, but "
                                    "the decoder start token 0 has an embedding of its own"));
}

TEST_CASE("export-hf --names-only renames Heed names and rejects others", "[io][hf]") {
  io::TensorMap grads = {{"shared.weight", Tensor::zeros({4, 2})},
                         {"final_logits_bias", Tensor::zeros({4})},
                         {"decoder.layers.0.encoder_attn.out_proj.weight", Tensor::zeros({2, 2})},
                         {"encoder.layer_norm.bias", Tensor::zeros({2})}};
  const io::TensorMap hf = nn::rename_to_hf(grads, "g.safetensors");
  CHECK(hf.size() == 4);
  CHECK(hf.count("model.shared.weight") == 1);
  CHECK(hf.at("final_logits_bias").shape() == Shape{1, 4});
  CHECK(hf.count("model.decoder.layers.0.encoder_attn.out_proj.weight") == 1);
  CHECK(hf.count("model.encoder.layer_norm.bias") == 1);

  grads["model.shared.weight"] = Tensor::zeros({4, 2});
  grads["encoder.layers.0.encoder_attn.q_proj.bias"] = Tensor::zeros({2});  // encoders have no cross-attention
  CHECK_THROWS_WITH(nn::rename_to_hf(grads, "g.safetensors"),
                    Catch::Contains("g.safetensors: names that are not Heed parameter names (docs/model.md): "
                                    "encoder.layers.0.encoder_attn.q_proj.bias, model.shared.weight"));
}

TEST_CASE("import-hf rejects configs it cannot represent, naming the fields", "[io][hf]") {
  TempDir dir;
  nn::export_marian_hf(random_model(tiny_config("all", false), 1), "test model", dir.file("hf"));
  const std::string path = dir.file("hf/config.json");
  const nlohmann::json good = read_json(path);
  auto import_with = [&](const nlohmann::json& config) {
    write_json(path, config);
    return nn::import_marian_hf(dir.file("hf"));
  };
  auto with = [&](const nlohmann::json& patch) {
    nlohmann::json c = good;
    c.merge_patch(patch);
    return c;
  };
  using nlohmann::json;

  // Generation and bookkeeping fields are ignored.
  CHECK_NOTHROW(import_with(
      with({{"num_beams", 4}, {"bad_words_ids", json::array({json::array({23})})}, {"_name_or_path", "x"}})));
  // So is any field this converter does not read, such as transformers 5's dtype (docs/model.md).
  CHECK_NOTHROW(import_with(with({{"foo", 1}, {"dtype", "float32"}})));
  CHECK_THROWS_WITH(import_with(with({{"tie_word_embeddings", false}})),
                    Catch::Contains("share_encoder_decoder_embeddings = true with tie_word_embeddings = false"));
  CHECK_THROWS_WITH(import_with(with({{"decoder_attention_heads", 4}})),
                    Catch::Contains("encoder_attention_heads 2 and decoder_attention_heads 4 differ"));
  CHECK_THROWS_WITH(import_with(with({{"decoder_ffn_dim", 4}})),
                    Catch::Contains("encoder_ffn_dim 12 and decoder_ffn_dim 4 differ"));
  CHECK_THROWS_WITH(import_with(with({{"activation_function", "gelu_new"}})),
                    Catch::Contains("activation_function \"gelu_new\" is not supported"));
  CHECK_THROWS_WITH(import_with(with({{"normalize_before", true}})),
                    Catch::Contains("\"normalize_before\": true is not supported"));
  CHECK_THROWS_WITH(import_with(with({{"model_type", "bart"}})), Catch::Contains("\"model_type\": \"bart\" is not supported"));
  CHECK_THROWS_WITH(import_with(with({{"d_model", "8"}})), Catch::Contains("\"d_model\" must be an integer, got \"8\""));
  CHECK(import_with(with({{"activation_function", "silu"}})).config.activation == "swish");
}

TEST_CASE("export-hf refuses models MarianMT cannot represent", "[io][hf]") {
  TempDir dir;
  nn::ModelConfig pre = tiny_config("all", false);
  pre.norm = "pre";
  CHECK_THROWS_WITH(nn::export_marian_hf(random_model(pre, 1), "m", dir.file("hf")),
                    Catch::Contains("m: a pre-norm model (norm: pre) cannot be represented in MarianMT"));
  nn::ModelConfig eps = tiny_config("all", false);
  eps.layer_norm_eps = 1e-6f;
  CHECK_THROWS_WITH(nn::export_marian_hf(random_model(eps, 1), "m", dir.file("hf")),
                    Catch::Contains("layer_norm_eps 1e-06 cannot be represented in MarianMT"));
  nn::ModelDir missing = random_model(tiny_config("none", false), 1);
  missing.weights.erase("lm_head.weight");
  CHECK_THROWS_WITH(nn::export_marian_hf(missing, "m", dir.file("hf")), Catch::Contains("missing parameters: lm_head.weight"));
}

// MarianMT conversion without Python: export then import must give back the same model, the HF names
// must be the documented ones, and configs the converter cannot represent must fail with messages that
// name the culprits. (tests/python/test_parity_hf.py checks the same files against transformers itself.)
#include <catch2/catch.hpp>

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
    CHECK(same(hf.at("lm_head.weight"), model.weights.at(out_source)));

    const nlohmann::json config = read_json(dir.file("hf/config.json"));
    CHECK(config["model_type"] == "marian");
    CHECK(config["share_encoder_decoder_embeddings"] == (std::string(tie) == "all"));
    CHECK(config["tie_word_embeddings"] == (std::string(tie) != "none"));
    CHECK(config["dropout"].dump() == "0.1");
    CHECK(config["max_position_embeddings"] == 32);

    const nn::ModelDir back = nn::import_marian_hf(dir.file("hf"));
    CHECK(back.config.tie_embeddings == tie);
    CHECK(back.config.final_logits_bias == bias);
    CHECK(back.config.activation == "gelu");
    CHECK(back.config.pad_id == 3);
    CHECK(back.config.decoder_start_id == 3);
    CHECK(back.config.heads == 2);
    REQUIRE(back.weights.size() == model.weights.size());
    for (const auto& [name, t] : model.weights) {
      INFO(name);
      REQUIRE(back.weights.count(name) == 1);
      CHECK(same(back.weights.at(name), t));
    }
  }
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

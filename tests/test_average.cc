// Checkpoint averaging (heed/nn/average.h): the result is the per-tensor mean of the checkpoints, written as
// a checkpoint that verifies and opens, and checkpoints that do not belong together are refused by name.
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "heed/nn/average.h"
#include "heed/nn/open_model.h"
#include "heed/nn/transformer.h"
#include "heed/train/checkpoint.h"
#include "temp_dir.h"
#include "worst.h"

using namespace heed;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

using testing::TempDir;

nn::ModelConfig tiny_config() {
  nn::ModelConfig c;
  c.vocab_size = 24;
  c.d_model = 8;
  c.heads = 2;
  c.ffn_dim = 12;
  c.encoder_layers = 1;
  c.decoder_layers = 1;
  return c;
}

void write_text(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Step checkpoint `step` of `run`, as training writes it, with the random weights of `seed` (each seed gives
// other weights) and a stand-in vocabulary file: averaging compares its bytes, it never parses them.
// `training_weights`, when given, are the raw weights of a run with optimizer.ema_decay, and `weights` then
// stand for the moving average.
std::string save_step(const fs::path& run, int64_t step, io::TensorMap weights,
                      const nn::ModelConfig& config = tiny_config(), const std::string& vocabulary = "pieces A",
                      io::TensorMap training_weights = {}) {
  fs::create_directories(run);
  write_text(run / "vocab.model", vocabulary);
  write_text(run / "config.yaml", "run_dir: " + run.string() + "\n");
  const std::string dir = (run / "checkpoints" / nn::step_checkpoint_name(step)).string();
  train::TrainState state;
  state.step = step;
  train::save_checkpoint(
      dir, {config, std::move(weights), {}, state, {(run / "vocab.model").string(), (run / "config.yaml").string()},
            std::move(training_weights)});
  return dir;
}

io::TensorMap random_weights(uint64_t seed, const nn::ModelConfig& config = tiny_config()) {
  nn::ParameterStore store(seed);
  nn::Transformer model(config, store);
  return store.values();
}

bool no_temporary_left(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().find(".tmp.") != std::string::npos) return false;
  return true;
}

}  // namespace

TEST_CASE("heed average: the result is the per-tensor mean of three checkpoints", "[average]") {
  TempDir tmp;
  std::vector<io::TensorMap> inputs = {random_weights(1), random_weights(2), random_weights(3)};
  // One element where only a double sum is right: in fp32, 1e8 + 1 rounds back to 1e8, and the mean is 0.
  const std::string probe = "encoder.layers.0.fc1.weight";
  REQUIRE(inputs[0].count(probe));
  inputs[0].at(probe).data<float>()[0] = 1e8f;
  inputs[1].at(probe).data<float>()[0] = 1.0f;
  inputs[2].at(probe).data<float>()[0] = -1e8f;
  std::vector<std::string> dirs;
  for (size_t k = 0; k < inputs.size(); ++k)
    dirs.push_back(save_step(tmp.path / "run", 100 * static_cast<int64_t>(k + 1), inputs[k]));

  const fs::path out = tmp.path / "averaged";
  nn::save_average(dirs, out.string());

  REQUIRE_NOTHROW(nn::verify_checkpoint(out.string()));  // the manifest covers every file
  const nn::ModelDir averaged = nn::load_model_dir(out.string());
  CHECK(nn::architecture_differences(averaged.config, tiny_config()).empty());
  REQUIRE(averaged.weights.size() == inputs[0].size());
  // Tolerance, in fp32 ulps of the largest addend (FLT_EPSILON * max |w|, at least the mean's own ulp): the
  // mean rounded once to fp32 is within half of one; the double sum adds about 3 * 2^-53 of the addends'
  // magnitudes, 2^-29 of one, hence 0.5 + 1e-6. An fp32 running sum exceeds it (0.73 here), and a wrong
  // divisor (N - 1) misses by half the mean, millions of ulps.
  double worst = 0;
  std::string worst_at;
  for (const auto& [name, mean] : averaged.weights) {
    REQUIRE(inputs[0].count(name));
    REQUIRE(mean.dtype() == DType::F32);
    REQUIRE(mean.shape() == inputs[0].at(name).shape());
    const float* got = mean.data<float>();
    for (int64_t i = 0; i < mean.numel(); ++i) {
      long double sum = 0, largest = 0;
      for (const io::TensorMap& w : inputs) {
        const float x = w.at(name).data<float>()[i];
        sum += x;
        largest = std::max(largest, std::fabs(static_cast<long double>(x)));
      }
      const double error = static_cast<double>(std::fabs(got[i] - sum / 3) / (FLT_EPSILON * largest + FLT_MIN));
      if (testing::raise_worst(worst, error)) worst_at = fmt::format("{}[{}]", name, i);
    }
  }
  INFO("worst error " << worst << " fp32 ulps of the largest addend, at " << worst_at);
  CHECK(worst <= 0.5 + 1e-6);
  CHECK(averaged.weights.at(probe).data<float>()[0] == static_cast<float>(1.0L / 3));

  // A checkpoint for translation: the vocabulary and the training config come along, and it opens.
  CHECK(read_text(out / "vocab.model") == "pieces A");
  CHECK(fs::exists(out / "config.yaml"));
  CHECK_NOTHROW(nn::open_model(out.string(), Device::cpu(), "fp32", "--precision"));
  const nlohmann::json record = nlohmann::json::parse(read_text(out / nn::kAverageRecord));
  REQUIRE(record.at("averaged").size() == 3);
  for (size_t k = 0; k < dirs.size(); ++k) CHECK(record.at("averaged")[k] == fs::weakly_canonical(dirs[k]).string());
  CHECK(no_temporary_left(tmp.path));
}

TEST_CASE("heed average --last N takes the newest N step checkpoints by step", "[average]") {
  TempDir tmp;
  const fs::path run = tmp.path / "run";
  for (int64_t step : {900, 1000, 80, 10000}) save_step(run, step, random_weights(static_cast<uint64_t>(step)));
  const fs::path root = run / "checkpoints";
  CHECK(nn::last_step_checkpoints(run.string(), 3) ==
        std::vector<std::string>{(root / "step-00010000").string(), (root / "step-00001000").string(),
                                 (root / "step-00000900").string()});
  CHECK_THROWS_WITH(nn::last_step_checkpoints(run.string(), 5),
                    Contains("has 4 step checkpoint(s), fewer than the 5 to average"));
  CHECK_THROWS_WITH(nn::last_step_checkpoints(tmp.path.string(), 1), Contains("is not a run directory"));
  fs::remove(root / "step-00001000" / nn::kCheckpointManifest);
  CHECK_THROWS_WITH(nn::last_step_checkpoints(run.string(), 2), Contains("step-00001000 has no manifest.json"));
}

// The mean of one weight, element 0, over `inputs`, as average_model_dirs computes it (a double sum).
float mean_of_first(const std::vector<io::TensorMap>& inputs, const std::string& name) {
  double sum = 0;
  for (const io::TensorMap& w : inputs) sum += w.at(name).data<float>()[0];
  return static_cast<float>(sum / static_cast<double>(inputs.size()));
}

TEST_CASE("heed average --weights training averages the raw weights of a run with EMA", "[average]") {
  TempDir tmp;
  const fs::path run = tmp.path / "run";
  // Two checkpoints with a moving average beside their raw weights, one without (the run before EMA was on,
  // or --init-from's): its model weights are its training weights.
  const std::vector<io::TensorMap> averages = {random_weights(1), random_weights(2)};
  const std::vector<io::TensorMap> raw = {random_weights(3), random_weights(4), random_weights(5)};
  const std::vector<std::string> dirs = {save_step(run, 100, averages[0], tiny_config(), "pieces A", raw[0]),
                                         save_step(run, 200, averages[1], tiny_config(), "pieces A", raw[1]),
                                         save_step(run, 300, raw[2])};
  const std::string probe = "decoder.layers.0.fc2.weight";
  REQUIRE(raw[0].count(probe));

  const nn::ModelDir trained = nn::average_model_dirs(dirs, nn::AveragedWeights::kTraining);
  CHECK(trained.weights.at(probe).data<float>()[0] == mean_of_first(raw, probe));
  const nn::ModelDir deployed = nn::average_model_dirs(dirs, nn::AveragedWeights::kModel);
  CHECK(deployed.weights.at(probe).data<float>()[0] == mean_of_first({averages[0], averages[1], raw[2]}, probe));

  const fs::path out = tmp.path / "averaged";
  nn::save_average(dirs, out.string(), nn::AveragedWeights::kTraining);
  CHECK(nn::load_model_dir(out.string()).weights.at(probe).data<float>()[0] == mean_of_first(raw, probe));
  CHECK(nlohmann::json::parse(read_text(out / nn::kAverageRecord)).at("weights") == "training");
}

TEST_CASE("heed average refuses checkpoints that do not belong together, naming the difference", "[average]") {
  TempDir tmp;
  const std::string a = save_step(tmp.path / "a", 1, random_weights(1));
  const fs::path out = tmp.path / "out";
  auto refused = [&](const std::vector<std::string>& dirs) {
    try {
      nn::save_average(dirs, out.string());
    } catch (const Error& e) {
      CHECK(!fs::exists(out));
      CHECK(no_temporary_left(tmp.path));
      return std::string(e.what());
    }
    return std::string("(not refused)");
  };

  SECTION("another architecture: the key and both values") {
    nn::ModelConfig wider = tiny_config();
    wider.ffn_dim = 16;
    const std::string b = save_step(tmp.path / "b", 1, random_weights(2, wider), wider);
    const std::string message = refused({a, b});
    CHECK_THAT(message, Contains("the architecture differs") && Contains("ffn_dim: 12 in " + a) &&
                            Contains("but 16 in " + b));
  }
  SECTION("another dropout is no other architecture: only training reads it") {
    nn::ModelConfig other = tiny_config();
    other.dropout = 0.3f;
    const std::string b = save_step(tmp.path / "b", 1, random_weights(2), other);
    CHECK_NOTHROW(nn::save_average({a, b}, out.string()));
  }
  SECTION("another vocabulary: the file") {
    const std::string b = save_step(tmp.path / "b", 1, random_weights(2), tiny_config(), "pieces B");
    CHECK_THAT(refused({a, b}), Contains("the vocabulary differs: their vocab.model files differ"));
  }
  SECTION("a missing tensor, another shape, another dtype: the tensor") {
    io::TensorMap weights = random_weights(2);
    const std::string name = "decoder.layers.0.fc2.bias";
    REQUIRE(weights.count(name));
    io::TensorMap missing = weights, reshaped = weights, retyped = weights;
    missing.erase(name);
    reshaped[name] = Tensor::zeros({1, weights.at(name).numel()});
    retyped[name] = weights.at(name).to(DType::BF16);
    CHECK_THAT(refused({a, save_step(tmp.path / "b", 1, missing)}),
               Contains("tensor '" + name + "' is in " + a + " but not in"));
    CHECK_THAT(refused({a, save_step(tmp.path / "c", 1, reshaped)}),
               Contains("tensor '" + name + "' has shape [8] in " + a + " but [1, 8] in"));
    CHECK_THAT(refused({a, save_step(tmp.path / "d", 1, retyped)}),
               Contains("tensor '" + name + "' is F32 in " + a + " but BF16 in"));
  }
  SECTION("an output directory that exists: left as it was") {
    const std::string b = save_step(tmp.path / "b", 1, random_weights(2));
    fs::create_directories(out);
    write_text(out / "keep.txt", "mine");
    CHECK_THROWS_WITH(nn::save_average({a, b}, out.string()), Contains(out.string() + " exists already"));
    CHECK(read_text(out / "keep.txt") == "mine");
    CHECK(std::distance(fs::directory_iterator(out), fs::directory_iterator()) == 1);
  }
  SECTION("a damaged checkpoint: the file") {
    const std::string b = save_step(tmp.path / "b", 1, random_weights(2));
    write_text(fs::path(b) / "vocab.model", "pieces a");  // same size, other bytes
    CHECK_THAT(refused({a, b}), Contains("is damaged: vocab.model fails its checksum"));
  }
  SECTION("one checkpoint twice") {
    CHECK_THAT(refused({a, (fs::path(a) / ".").string()}), Contains("is given twice"));
  }
}

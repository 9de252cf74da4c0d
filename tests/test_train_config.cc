// The config schema (io/options), the learning-rate schedules and the checkpoint manifest.
#include <catch2/catch.hpp>

#include <fstream>

#include "heed/core/error.h"
#include "heed/io/atomic_file.h"
#include "heed/nn/model_dir.h"
#include "heed/train/checkpoint.h"
#include "heed/train/schedule.h"
#include "heed/train/train_config.h"
#include "temp_dir.h"

using namespace heed;
using Catch::Matchers::Contains;
using Catch::Matchers::Equals;

namespace {

std::string write(const testing::TempDir& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir.file(name)) << text;
  return dir.file(name);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("config: YAML groups, defaults and --set overrides", "[config]") {
  testing::TempDir dir;
  const std::string path = write(dir, "c.yaml",
                                 "data:\n  train_src: a.en\n  train_tgt: a.es\nmodel:\n  d_model: 128\n"
                                 "validation:\n  metrics: [loss, chrf]\n  early_stopping_metric: loss\n");
  const train::TrainConfig c = train::load_train_config(path, {"optimizer.lr=3e-4", "training.freeze=encoder.*,shared.weight"});
  CHECK(c.model.d_model == 128);
  CHECK(c.model.heads == train::TrainConfig().model.heads);  // untouched keys keep their defaults
  CHECK(c.optimizer.lr == 3e-4);
  CHECK(c.validation.metrics == std::vector<std::string>{"loss", "chrf"});
  CHECK(c.training.freeze == std::vector<std::string>{"encoder.*", "shared.weight"});
  // The dump is itself a valid config that reproduces the same values.
  const std::string dumped = write(dir, "dump.yaml", train::train_options().dump(c));
  CHECK(train::train_options().dump(train::load_train_config(dumped, {})) == train::train_options().dump(c));
}

TEST_CASE("config: errors name the file, line and key", "[config]") {
  testing::TempDir dir;
  auto load = [&](const std::string& text) {
    return error_of([&] { train::load_train_config(write(dir, "c.yaml", text), {}); });
  };
  CHECK_THAT(load("data:\n  train_src: a\n  max_tokns: 5\n"),
             Equals(dir.file("c.yaml") + ":3: unknown config key 'data.max_tokns'; did you mean 'data.max_tokens'? "
                                         "(heed train --help-config lists them all)"));
  CHECK_THAT(load("optimizer:\n  lr: -1\n"), Contains("c.yaml:2: optimizer.lr must be > 0, got -1"));
  CHECK_THAT(load("training:\n  max_steps: 1.5\n"), Contains("c.yaml:2: training.max_steps expects an integer, got '1.5'"));
  CHECK_THAT(load("model: 3\n"), Contains("c.yaml:1: 'model' is a group of options and needs a mapping under it"));
  CHECK_THAT(load("optimizer:\n  lr: [1, 2]\n"), Contains("optimizer.lr expects a single float, got a list"));
  CHECK_THAT(load("data:\n  train_src: [\n"), Contains("invalid YAML"));
  CHECK_THAT(load("totally_unknown: 1\n"), Contains("c.yaml:1: unknown config key 'totally_unknown'"));
  CHECK_THAT(load("model:\n  heads: 3\ndata:\n  train_src: a\n  train_tgt: b\n"),
             Contains("model.d_model (256) must be divisible by model.heads (3)"));
}

TEST_CASE("config: every option has a help line and a default that passes its own checks", "[config]") {
  const auto& specs = train::train_options().specs();
  REQUIRE(specs.size() > 40);
  const train::TrainConfig defaults;
  for (const io::OptionSpec& s : specs) {
    INFO(s.key);
    CHECK(!s.help.empty());
    const std::string shown = s.get(&defaults);
    train::TrainConfig copy;
    if (s.type != "list" && shown != "\"\"") CHECK_NOTHROW(train::train_options().set(copy, s.key + "=" + shown));
  }
}

TEST_CASE("schedule: warm-up, then inverse square root, linear, cosine or constant", "[config]") {
  train::ScheduleConfig s;
  s.warmup_steps = 100;
  s.min_lr = 0.1;
  s.type = "inverse_sqrt";
  CHECK(train::learning_rate(s, 1.0, 50, 1000) == Approx(0.5));
  CHECK(train::learning_rate(s, 1.0, 100, 1000) == Approx(1.0));
  CHECK(train::learning_rate(s, 1.0, 400, 1000) == Approx(0.5));  // sqrt(100 / 400)
  s.type = "linear";
  CHECK(train::learning_rate(s, 1.0, 550, 1000) == Approx(0.55));  // halfway from 1.0 to 0.1
  CHECK(train::learning_rate(s, 1.0, 1000, 1000) == Approx(0.1));
  s.type = "cosine";
  CHECK(train::learning_rate(s, 1.0, 550, 1000) == Approx(0.55));
  CHECK(train::learning_rate(s, 1.0, 325, 1000) == Approx(0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.25))));
  s.type = "constant";
  CHECK(train::learning_rate(s, 1.0, 5000, 1000) == Approx(1.0));
}

TEST_CASE("checkpoint: the manifest catches truncation and corruption", "[config]") {
  testing::TempDir dir;
  train::CheckpointContents c;
  c.model.vocab_size = 16;
  c.model.d_model = 8;
  c.model.heads = 2;
  c.weights["w"] = Tensor::from_vector(std::vector<float>{1, 2, 3, 4}, {2, 2});
  c.state.step = 7;
  c.state.data = {2, 5};
  c.state.best["bleu"] = 12.5;
  const std::string ckpt = (dir.path / "checkpoints" / nn::step_checkpoint_name(7)).string();
  train::save_checkpoint(ckpt, c);
  CHECK_NOTHROW(nn::verify_checkpoint(ckpt));
  const train::TrainState s = train::load_train_state(ckpt);
  CHECK(s.step == 7);
  CHECK(s.data == data::BatchPosition{2, 5});
  CHECK(s.best.at("bleu") == 12.5);
  CHECK(nn::latest_checkpoint(dir.path.string()) == ckpt);

  const std::string weights = ckpt + "/model.safetensors";
  {  // one flipped byte, same size
    std::fstream f(weights, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-1, std::ios::end);
    f.put('\x7f');
  }
  CHECK_THAT(error_of([&] { nn::verify_checkpoint(ckpt); }),
             Contains("is damaged: model.safetensors fails its checksum"));
  CHECK(nn::latest_checkpoint(dir.path.string()).empty());  // the only checkpoint is skipped
  std::filesystem::resize_file(weights, 10);
  CHECK_THAT(error_of([&] { nn::verify_checkpoint(ckpt); }), Contains("model.safetensors has 10 bytes"));
}

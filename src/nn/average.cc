#include "heed/nn/average.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "heed/core/error.h"
#include "heed/data/vocab_dir.h"
#include "heed/io/atomic_file.h"

namespace heed::nn {

namespace {

namespace fs = std::filesystem;

// Every file name a model directory's tokenizer may have (heed/data/vocab_dir.h).
std::vector<std::string> vocabulary_files() {
  std::vector<std::string> names = data::vocab_names(true);
  for (const std::string& name : data::vocab_names(false)) names.push_back(name);
  names.insert(names.end(), data::kMarianVocab.begin(), data::kMarianVocab.end());
  return names;
}

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  HEED_CHECK(in.good(), "cannot read {}", path.string());
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void check_same_architecture(const std::string& first_dir, const ModelConfig& first, const std::string& dir,
                             const ModelConfig& config) {
  std::vector<std::string> lines;
  for (const ConfigDifference& d : architecture_differences(first, config))
    lines.push_back(fmt::format("{}: {} in {} but {} in {}", d.key, d.first, first_dir, d.second, dir));
  HEED_CHECK(lines.empty(), "cannot average {} with {}: the architecture differs:\n  {}", dir, first_dir,
             fmt::join(lines, "\n  "));
}

// Same ids must mean the same pieces, or the mean mixes the embeddings of different pieces.
void check_same_vocabulary(const std::string& first_dir, const std::string& dir) {
  for (const std::string& name : vocabulary_files()) {
    const fs::path a = fs::path(first_dir) / name, b = fs::path(dir) / name;
    const bool in_first = fs::exists(a), in_this = fs::exists(b);
    HEED_CHECK(in_first == in_this, "cannot average {} with {}: the vocabulary differs: {} is only in {}", dir,
               first_dir, name, in_first ? first_dir : dir);
    HEED_CHECK(!in_first || file_bytes(a) == file_bytes(b),
               "cannot average {} with {}: the vocabulary differs: their {} files differ", dir, first_dir, name);
  }
}

// The running sum of one weight over the checkpoints, and what every checkpoint must agree on.
struct Sum {
  Shape shape;
  DType dtype;
  std::vector<double> values;
};

// The first checkpoint's weights start the sums and name the tensors every other one must have.
std::map<std::string, Sum> start_sums(const io::TensorMap& weights, const std::string& dir) {
  std::map<std::string, Sum> sums;
  for (const auto& [name, t] : weights) {
    HEED_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16 || t.dtype() == DType::F16,
               "cannot average {}: tensor '{}' is {}, and only floating-point weights are averaged", dir, name,
               dtype_name(t.dtype()));
    sums[name] = {t.shape(), t.dtype(), std::vector<double>(static_cast<size_t>(t.numel()), 0.0)};
  }
  return sums;
}

void check_same_tensors(const std::map<std::string, Sum>& sums, const io::TensorMap& weights,
                        const std::string& first_dir, const std::string& dir) {
  for (const auto& [name, sum] : sums)
    HEED_CHECK(weights.count(name), "cannot average {} with {}: tensor '{}' is in {} but not in {}", dir, first_dir,
               name, first_dir, dir);
  for (const auto& [name, t] : weights) {
    const auto it = sums.find(name);
    HEED_CHECK(it != sums.end(), "cannot average {} with {}: tensor '{}' is in {} but not in {}", dir, first_dir,
               name, dir, first_dir);
    HEED_CHECK(t.shape() == it->second.shape, "cannot average {} with {}: tensor '{}' has shape {} in {} but {} in {}",
               dir, first_dir, name, shape_str(it->second.shape), first_dir, shape_str(t.shape()), dir);
    HEED_CHECK(t.dtype() == it->second.dtype, "cannot average {} with {}: tensor '{}' is {} in {} but {} in {}", dir,
               first_dir, name, dtype_name(it->second.dtype), first_dir, dtype_name(t.dtype()), dir);
  }
}

// Why double: every fp32 (or bf16, fp16) weight is exact in double, and a double sum of N of them is off by
// at most about N * 2^-53 of the sum of their magnitudes, some 2^29 / N times less than fp32's own rounding
// step; so the only rounding that shows is the last one, of the mean to fp32. An fp32 running sum would
// round at each of the N additions instead, and drop a small weight beside a large one outright.
void add_to_sums(std::map<std::string, Sum>& sums, const io::TensorMap& weights) {
  for (const auto& [name, t] : weights) {
    const Tensor value = t.to(DType::F32).contiguous();
    const float* p = value.data<float>();
    std::vector<double>& sum = sums.at(name).values;
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += p[i];
  }
}

// Written as fp32, which Heed's weights are (ParameterStore holds them in fp32): a mean of bf16 or fp16
// weights is kept at fp32's precision rather than rounded again.
io::TensorMap means(const std::map<std::string, Sum>& sums, size_t count) {
  io::TensorMap weights;
  for (const auto& [name, sum] : sums) {
    Tensor mean = Tensor::empty(sum.shape, DType::F32);
    float* p = mean.data<float>();
    for (size_t i = 0; i < sum.values.size(); ++i) p[i] = static_cast<float>(sum.values[i] / count);
    weights.emplace(name, std::move(mean));
  }
  return weights;
}

}  // namespace

ModelDir average_model_dirs(const std::vector<std::string>& dirs, AveragedWeights which) {
  HEED_CHECK(!dirs.empty(), "no checkpoints to average");
  ModelConfig config;
  std::map<std::string, Sum> sums;
  for (size_t i = 0; i < dirs.size(); ++i) {
    const std::string& dir = dirs[i];
    for (size_t j = 0; j < i; ++j)
      HEED_CHECK(fs::weakly_canonical(dirs[j]) != fs::weakly_canonical(dir),
                 "checkpoint {} is given twice: each is averaged once", dir);
    if (fs::exists(fs::path(dir) / kCheckpointManifest)) verify_checkpoint(dir);
    ModelDir model = load_model_dir(dir);
    if (which == AveragedWeights::kTraining) model.weights = training_weights(dir, model);
    if (i == 0) {
      config = model.config;
      sums = start_sums(model.weights, dir);
    } else {
      check_same_architecture(dirs[0], config, dir, model.config);
      check_same_vocabulary(dirs[0], dir);
      check_same_tensors(sums, model.weights, dirs[0], dir);
    }
    add_to_sums(sums, model.weights);
    spdlog::info("added {} ({} of {})", dir, i + 1, dirs.size());
  }
  return {config, means(sums, dirs.size())};
}

void save_average(const std::vector<std::string>& dirs, const std::string& out, AveragedWeights which) {
  io::write_directory_atomic(
      fs::path(out),
      [&](const fs::path& temp) {
        const ModelDir average = average_model_dirs(dirs, which);
        save_model_dir(temp.string(), average.config, average.weights);
        // What translation and export-hf read besides the weights: the tokenizer, and the training config
        // (languages, the validation search), all the same in every checkpoint of a run.
        std::vector<std::string> copied = vocabulary_files();
        copied.push_back("config.yaml");
        for (const std::string& name : copied) {
          const fs::path from = fs::path(dirs.front()) / name;
          if (fs::exists(from)) io::write_file_atomic((temp / name).string(), file_bytes(from));
        }
        nlohmann::json record = {{"averaged", nlohmann::json::array()},
                                 {"weights", which == AveragedWeights::kModel ? "model" : "training"}};
        for (const std::string& dir : dirs) record["averaged"].push_back(fs::weakly_canonical(dir).string());
        io::write_file_atomic((temp / kAverageRecord).string(), record.dump(2) + "\n");
        write_checkpoint_manifest(temp.string());
      },
      /*replace=*/false);
  spdlog::info("wrote the average of {} checkpoints to {}", dirs.size(), out);
}

std::vector<std::string> last_step_checkpoints(const std::string& run_dir, int64_t count) {
  HEED_CHECK(count >= 1, "the number of checkpoints to average must be at least 1, got {}", count);
  HEED_CHECK(fs::is_directory(fs::path(run_dir) / "checkpoints"), "{} is not a run directory: it has no checkpoints/",
             run_dir);
  const std::vector<fs::path> steps = step_checkpoints(run_dir);
  HEED_CHECK(static_cast<int64_t>(steps.size()) >= count,
             "{} has {} step checkpoint(s), fewer than the {} to average (a run keeps its last "
             "checkpoints.keep_last)",
             run_dir, steps.size(), count);
  std::vector<std::string> newest;
  for (int64_t i = 0; i < count; ++i) {
    const fs::path& dir = steps[static_cast<size_t>(i)];
    HEED_CHECK(fs::exists(dir / kCheckpointManifest), "checkpoint {} has no {}: it is incomplete", dir.string(),
               kCheckpointManifest);
    newest.push_back(dir.string());
  }
  return newest;
}

}  // namespace heed::nn

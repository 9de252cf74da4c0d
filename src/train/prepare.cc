#include "heed/train/prepare.h"

#include <omp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "heed/core/error.h"
#include "heed/io/atomic_file.h"

namespace heed::train {

namespace fs = std::filesystem;

namespace {

using data::kMarianVocab;
using data::vocab_names;

bool has_all(const fs::path& dir, const std::vector<std::string>& names) {
  return std::all_of(names.begin(), names.end(), [&](const std::string& n) { return fs::exists(dir / n); });
}

// Copies a vocabulary file into the run directory under `name`, unless it is already there.
std::string adopt(const std::string& from, const fs::path& run_dir, const std::string& name) {
  const fs::path to = run_dir / name;
  HEED_CHECK(fs::is_regular_file(from), "vocabulary {} does not exist", from);
  if (fs::weakly_canonical(from) != fs::weakly_canonical(to)) {
    std::ifstream in(from, std::ios::binary);
    io::write_file_atomic(to.string(),
                          std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
  }
  return to.string();
}

TrainingCorpus parse_corpus_entry(const std::string& entry, size_t number) {
  const auto fail = [&](const std::string& why) {
    HEED_CHECK(false, "data.train entry {} ('{}'): {}; expected 'SRC TGT [weight=W] [tag=NAME]'", number, entry, why);
  };
  std::istringstream in(entry);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  if (words.size() < 2) fail("it names no source and target file");
  TrainingCorpus corpus;
  corpus.files.src = words[0];
  corpus.files.tgt = words[1];
  for (size_t k = 2; k < words.size(); ++k) {
    const std::string& w = words[k];
    if (w.starts_with("weight=")) {
      char* end = nullptr;
      corpus.weight = std::strtod(w.c_str() + 7, &end);
      if (w.size() == 7 || *end != '\0' || !std::isfinite(corpus.weight) || corpus.weight < 0)
        fail(fmt::format("'{}' is not a weight >= 0", w));
      corpus.weighted = true;
    } else if (w.starts_with("tag=") && w.size() > 4) {
      corpus.files.tag = w.substr(4);
    } else {
      fail(fmt::format("'{}' is neither weight= nor tag=", w));
    }
  }
  return corpus;
}

}  // namespace

std::vector<TrainingCorpus> training_corpora(const DataConfig& d) {
  if (d.train.empty()) return {TrainingCorpus{{d.train_src, d.train_tgt, ""}, 1, false}};
  std::vector<TrainingCorpus> corpora;
  for (size_t i = 0; i < d.train.size(); ++i) corpora.push_back(parse_corpus_entry(d.train[i], i + 1));
  return corpora;
}

void prepare_vocab_files(const TrainConfig& c, const fs::path& run_dir, const std::string& from_checkpoint) {
  const bool joint = c.data.joint_vocab;
  const std::vector<std::string> names = vocab_names(joint);
  if (!c.data.src_vocab.empty()) {
    HEED_CHECK(joint || !c.data.tgt_vocab.empty(), "data.tgt_vocab must be set when data.joint_vocab is false");
    adopt(c.data.src_vocab, run_dir, names[0]);
    if (!joint) adopt(c.data.tgt_vocab, run_dir, names[1]);
  } else if (!from_checkpoint.empty() && (has_all(from_checkpoint, names) || has_all(from_checkpoint, kMarianVocab))) {
    for (const std::string& name : has_all(from_checkpoint, names) ? names : kMarianVocab)
      adopt((fs::path(from_checkpoint) / name).string(), run_dir, name);
  } else {
    data::VocabOptions options;
    options.type = c.data.vocab_type;
    options.size = c.data.vocab_size;
    options.seed = static_cast<uint64_t>(c.training.seed);
    options.max_sentences = c.data.vocab_sample;
    std::vector<std::string> src_files, tgt_files;
    for (const TrainingCorpus& corpus : training_corpora(c.data)) {
      src_files.push_back(corpus.files.src);
      tgt_files.push_back(corpus.files.tgt);
    }
    std::vector<std::vector<std::string>> inputs = {src_files, tgt_files};
    if (joint) {  // each corpus's pair of files in turn, as a single corpus always had them
      inputs = {{}};
      for (size_t i = 0; i < src_files.size(); ++i) inputs[0].insert(inputs[0].end(), {src_files[i], tgt_files[i]});
    }
    for (size_t i = 0; i < names.size(); ++i) {
      const fs::path path = run_dir / names[i];
      if (fs::exists(path)) continue;
      spdlog::info("training a {} SentencePiece vocabulary of {} pieces: {}", options.type, options.size,
                   path.string());
      data::Vocab::train(inputs[i], path.string(), options);
    }
  }
}

data::Vocabularies load_vocabs(const TrainConfig& c, const fs::path& run_dir) {
  if (c.data.src_vocab.empty() && has_all(run_dir, kMarianVocab)) return data::load_vocabularies(run_dir.string());
  std::vector<std::string> files;
  for (const std::string& name : vocab_names(c.data.joint_vocab)) files.push_back((run_dir / name).string());
  return {data::Vocab::load(files.front()), data::Vocab::load(files.back()), files};
}

std::string store_dir(const TrainConfig& c) {
  return c.data.store.empty() ? (fs::path(c.run_dir) / "store").string() : c.data.store;
}

data::StoreSettings store_settings(const TrainConfig& c, const data::Vocabularies& v) {
  data::StoreSettings settings;
  for (const TrainingCorpus& corpus : training_corpora(c.data)) settings.corpora.push_back(corpus.files);
  settings.vocab_fingerprint = data::vocab_fingerprint(v.src, v.tgt);
  settings.max_length = c.data.max_length;
  return settings;
}

void prepare_store(const TrainConfig& c, const data::Vocabularies& v, bool verify_ids) {
  const std::string dir = store_dir(c);
  const data::StoreSettings settings = store_settings(c, v);
  const data::StoreStatus status = data::check_store(dir, settings, verify_ids);
  if (status.usable) {
    spdlog::info("corpus store {} is up to date", dir);
    return;
  }
  spdlog::info("preparing the corpus store {}: {}", dir, status.reason);
  data::build_store(dir, settings, v.src, v.tgt);
}

std::vector<double> corpus_weights(const TrainConfig& c, const data::CorpusStore& store) {
  const std::vector<TrainingCorpus> corpora = training_corpora(c.data);
  const bool weighted = std::any_of(corpora.begin(), corpora.end(), [](const auto& k) { return k.weighted; });
  if (!weighted && c.data.sampling_temperature == 0) return {};
  const std::vector<data::CorpusRange> ranges = store.corpora();
  std::vector<double> weights;
  for (size_t k = 0; k < corpora.size(); ++k) {
    const double size = static_cast<double>(ranges[k].size());
    const double t = c.data.sampling_temperature;
    weights.push_back(corpora[k].weight * (t > 0 ? std::pow(size, 1.0 / t) : 1.0));
  }
  double sum = 0;
  for (double w : weights) sum += w;
  for (size_t k = 0; k < corpora.size(); ++k)
    spdlog::info("corpus {}: {} pairs, {:.1f}% of each epoch", corpora[k].files.tag.empty() ? corpora[k].files.src
                                                                                             : corpora[k].files.tag,
                 ranges[k].size(), sum > 0 ? 100 * weights[k] / sum : 0.0);
  return weights;
}

void prepare(const TrainConfig& c) {
  if (c.training.threads > 0) omp_set_num_threads(static_cast<int>(c.training.threads));
  const fs::path run_dir(c.run_dir);
  fs::create_directories(run_dir);
  prepare_vocab_files(c, run_dir, "");
  prepare_store(c, load_vocabs(c, run_dir), /*verify_ids=*/true);
}

}  // namespace heed::train

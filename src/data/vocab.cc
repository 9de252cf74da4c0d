// SentencePiece behind Heed's conventions. Training reads the text with Heed's checked line reader, draws
// the max_sentences sample itself (SentencePiece's own sampler has a fixed seed), hands its distinct lines
// with their counts to the trainer's key=value interface and gets the model's bytes back, to write them
// atomically. SentencePiece reports failures as util::Status; each becomes a HEED_CHECK that names the files
// involved.
#include "heed/data/vocab.h"

#include <fmt/ranges.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <thread>
#include <unordered_map>

#include "heed/core/error.h"
#include "heed/data/shuffle.h"
#include "heed/data/text.h"
#include "heed/io/atomic_file.h"

namespace heed::data {

namespace fs = std::filesystem;

namespace {

// Hands SentencePiece each distinct line once with its count, in its tsv input format ("line<TAB>count").
// Its trainer weighs a line by its count wherever it counts (characters, words, pieces), but builds the
// suffix array of its seed pieces over the lines it is handed: over a 2M-line sample with repeats
// (back-translation, crawled text, a corpus repeated) that array is what took gigabytes. A tab inside a line
// becomes a space, which is what SentencePiece's normalisation makes of it anyway.
class CountedLineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit CountedLineIterator(const std::vector<std::pair<std::string, int64_t>>& counts) : counts_(counts) { load(); }
  bool done() const override { return next_ >= counts_.size(); }
  void Next() override {
    ++next_;
    load();
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  void load() {
    if (done()) return;
    const auto& [line, count] = counts_[next_];
    value_ = line;
    std::replace(value_.begin(), value_.end(), '\t', ' ');
    value_ += '\t';
    value_ += std::to_string(count);
  }

  const std::vector<std::pair<std::string, int64_t>>& counts_;
  size_t next_ = 0;
  std::string value_;
};

}  // namespace

void Vocab::train(const std::vector<std::string>& text_files, const std::string& model_path,
                  const VocabOptions& options) {
  HEED_CHECK(!text_files.empty(), "no text files given to train the vocabulary {} on", model_path);
  HEED_CHECK(options.type == "unigram" || options.type == "bpe", "vocabulary type must be unigram or bpe, got '{}'",
             options.type);
  HEED_CHECK(options.size > 3, "vocabulary size must be larger than the 3 special pieces, got {}", options.size);
  HEED_CHECK(options.character_coverage > 0 && options.character_coverage <= 1,
             "vocabulary character_coverage must be in (0, 1], got {}", options.character_coverage);
  HEED_CHECK(options.max_sentences > 0, "vocabulary max_sentences must be positive, got {}", options.max_sentences);

  // Drawn while streaming, so the text may be far larger than memory: the sample is what is held.
  std::vector<std::string> sample = sample_lines(text_files, options.max_sentences, options.seed);
  const size_t sampled = sample.size();
  const std::vector<std::pair<std::string, int64_t>> counts = count_distinct_lines(std::move(sample));
  // SentencePiece would fail on an internal assertion instead.
  HEED_CHECK(std::any_of(counts.begin(), counts.end(),
                         [](const auto& c) { return c.first.find_first_not_of(" \t") != std::string::npos; }),
             "cannot train the vocabulary {}: {} hold no text", model_path, fmt::join(text_files, ", "));
  CountedLineIterator line_iterator(counts);

  const std::unordered_map<std::string, std::string> args = {
      {"model_type", options.type},
      {"input_format", "tsv"},
      {"vocab_size", std::to_string(options.size)},
      {"character_coverage", fmt::format("{}", options.character_coverage)},
      {"pad_id", std::to_string(kPadId)},
      {"unk_id", std::to_string(kUnkId)},
      {"eos_id", std::to_string(kEosId)},
      {"bos_id", "-1"},
      {"num_threads", std::to_string(std::clamp(std::thread::hardware_concurrency(), 1u, 1024u))},  // its range
      // SentencePiece logs every training phase at INFO; keep that for Heed's debug level only.
      {"minloglevel", spdlog::get_level() <= spdlog::level::debug ? "0" : "1"},
  };
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &line_iterator, &model);
  HEED_CHECK(status.ok(), "cannot train a {} vocabulary of size {} on {}: {}", options.type, options.size,
             fmt::join(text_files, ", "), status.ToString());
  io::write_file_atomic(model_path, model);
  spdlog::info("trained a {} vocabulary of {} pieces on {} lines ({} distinct) of {}: {}", options.type, options.size,
               sampled, counts.size(), fmt::join(text_files, ", "), model_path);
}

Vocab Vocab::load_processor(const std::string& model_path) {
  HEED_CHECK(fs::is_regular_file(model_path), "cannot read the vocabulary {}: no such file", model_path);
  auto processor = std::make_shared<sentencepiece::SentencePieceProcessor>();
  const auto status = processor->Load(model_path);
  HEED_CHECK(status.ok(), "{} is not a SentencePiece model: {}", model_path, status.ToString());
  Vocab vocab;
  vocab.serialized_ = processor->serialized_model_proto();
  vocab.path_ = model_path;
  vocab.processor_ = std::move(processor);
  return vocab;
}

Vocab Vocab::load(const std::string& model_path) {
  Vocab vocab = load_processor(model_path);
  vocab.pad_id_ = vocab.processor_->pad_id();
  vocab.unk_id_ = vocab.processor_->unk_id();
  vocab.eos_id_ = vocab.processor_->eos_id();
  HEED_CHECK(vocab.pad_id_ >= 0 && vocab.eos_id_ >= 0,
             "{}: the vocabulary has no {} piece; Heed needs pad and eos (its own vocabularies have pad=0, unk=1, "
             "eos=2)",
             model_path, vocab.pad_id_ < 0 ? "pad" : "eos");
  return vocab;
}

Vocab Vocab::load_marian(const std::string& spm_path, const std::string& vocab_json) {
  Vocab vocab = load_processor(spm_path);
  std::ifstream in(vocab_json);
  HEED_CHECK(in.good(), "cannot read the vocabulary {}: no such file", vocab_json);
  nlohmann::json map;
  try {
    in >> map;
  } catch (const nlohmann::json::exception& e) {
    HEED_CHECK(false, "{}: invalid JSON: {}", vocab_json, e.what());
  }
  HEED_CHECK(map.is_object() && !map.empty(), "{}: expected an object mapping pieces to ids", vocab_json);
  auto ids = std::make_shared<std::unordered_map<std::string, int32_t>>();
  auto pieces = std::make_shared<std::vector<std::string>>(map.size());
  for (const auto& [piece, id] : map.items()) {
    HEED_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < static_cast<int64_t>(map.size()),
               "{}: the id of '{}' must be an integer in [0, {})", vocab_json, piece, map.size());
    (*ids)[piece] = id.get<int32_t>();
    (*pieces)[id.get<size_t>()] = piece;
  }
  auto special = [&](const char* piece) {
    auto it = ids->find(piece);
    HEED_CHECK(it != ids->end(), "{}: no '{}' piece; MarianMT vocabularies have <pad>, </s> and <unk>", vocab_json,
               piece);
    return it->second;
  };
  vocab.pad_id_ = special("<pad>");
  vocab.eos_id_ = special("</s>");
  vocab.unk_id_ = special("<unk>");
  vocab.serialized_ += map.dump();  // both files decide the ids
  vocab.piece_ids_ = std::move(ids);
  vocab.pieces_ = std::move(pieces);
  return vocab;
}

bool Vocab::encode_into(std::string_view text, std::vector<int32_t>& out) const {
  if (!piece_ids_) {
    std::vector<int> ids;
    if (!processor_->Encode(text, &ids).ok()) return false;
    out.assign(ids.begin(), ids.end());
    return true;
  }
  std::vector<std::string> pieces;
  if (!processor_->Encode(text, &pieces).ok()) return false;
  out.clear();
  for (const std::string& piece : pieces) {
    auto it = piece_ids_->find(piece);
    out.push_back(it == piece_ids_->end() ? unk_id_ : it->second);
  }
  return true;
}

std::vector<int32_t> Vocab::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  HEED_CHECK(encode_into(text, ids), "cannot encode '{}' with the vocabulary {}", text, path_);
  return ids;
}

std::vector<std::vector<int32_t>> Vocab::encode_lines(const std::vector<std::string>& lines) const {
  const auto n = static_cast<int64_t>(lines.size());
  std::vector<std::vector<int32_t>> result(lines.size());
  // Exceptions must not leave an OpenMP region: remember a failing line and let encode() report it after.
  std::atomic<int64_t> failed{-1};
#pragma omp parallel for schedule(dynamic, 64)
  for (int64_t i = 0; i < n; ++i) {
    if (!encode_into(lines[i], result[i])) failed = i;
  }
  if (failed >= 0) encode(lines[failed]);
  return result;
}

std::string Vocab::decode(const std::vector<int32_t>& ids) const {
  std::vector<int> spm_ids;
  std::vector<std::string> pieces;
  for (int32_t id : ids) {
    if (id == eos_id_) break;
    if (id == pad_id_) continue;
    HEED_CHECK(id >= 0 && id < size(), "token id {} is outside the vocabulary {} of {} pieces", id, path_, size());
    if (pieces_)
      pieces.push_back((*pieces_)[static_cast<size_t>(id)]);
    else
      spm_ids.push_back(id);
  }
  std::string text;
  const auto status = pieces_ ? processor_->Decode(pieces, &text) : processor_->Decode(spm_ids, &text);
  HEED_CHECK(status.ok(), "cannot decode with the vocabulary {}: {}", path_, status.ToString());
  return text;
}

int64_t Vocab::size() const {
  return pieces_ ? static_cast<int64_t>(pieces_->size()) : processor_->GetPieceSize();
}

std::string Vocab::piece(int32_t id) const {
  HEED_CHECK(id >= 0 && id < size(), "token id {} is outside the vocabulary {} of {} pieces", id, path_, size());
  return pieces_ ? (*pieces_)[static_cast<size_t>(id)] : processor_->IdToPiece(id);
}

}  // namespace heed::data

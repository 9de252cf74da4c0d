// Parallel corpus loading. Both files are read and checked before anything is encoded, so a mismatch
// costs no encoding time; encoding runs in parallel over lines. Pairs are filtered after encoding because
// emptiness and length are properties of the token ids (SentencePiece drops surrounding whitespace).
#include "heed/data/corpus.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "heed/core/error.h"
#include "heed/data/text.h"

namespace heed::data {

std::string FilterReport::summary() const {
  return fmt::format("kept {} of {} sentence pairs; dropped {} with an empty side and {} with a side longer than {} "
                     "tokens",
                     kept, lines, empty, too_long, max_length);
}

bool keep_pair(std::span<const int32_t> src, std::span<const int32_t> tgt, FilterReport& report) {
  ++report.lines;
  const auto fits = [&](std::span<const int32_t> ids) {
    return static_cast<int64_t>(ids.size()) + 1 <= report.max_length;
  };
  if (src.empty() || tgt.empty()) {
    ++report.empty;
  } else if (!fits(src) || !fits(tgt)) {
    ++report.too_long;
  } else {
    ++report.kept;
    return true;
  }
  return false;
}

std::string ParallelCorpus::origin(int64_t i) const {
  const int64_t line = line_index.empty() ? i + 1 : line_index[static_cast<size_t>(i)] + 1;
  return src_path.empty() ? fmt::format("line {}", line) : fmt::format("line {} of {}", line, src_path);
}

ParallelCorpus load_parallel_corpus(const std::string& src_path, const std::string& tgt_path, const Vocab& src_vocab,
                                    const Vocab& tgt_vocab, const CorpusOptions& options) {
  HEED_CHECK(options.max_length >= 2, "max_length must be at least 2 (one token and eos), got {}",
             options.max_length);
  const std::vector<std::string> src_lines = read_lines(src_path);
  const std::vector<std::string> tgt_lines = read_lines(tgt_path);
  HEED_CHECK(src_lines.size() == tgt_lines.size(), "{} has {} lines but {} has {}: a parallel corpus needs one line "
             "per sentence in both files", src_path, src_lines.size(), tgt_path, tgt_lines.size());
  std::vector<std::vector<int32_t>> src_ids = src_vocab.encode_lines(src_lines);
  std::vector<std::vector<int32_t>> tgt_ids = tgt_vocab.encode_lines(tgt_lines);

  ParallelCorpus corpus;
  corpus.src_path = src_path;
  corpus.report.max_length = options.max_length;
  for (size_t i = 0; i < src_lines.size(); ++i) {
    if (!keep_pair(src_ids[i], tgt_ids[i], corpus.report)) continue;
    corpus.src_ids.push_back(std::move(src_ids[i]));
    corpus.tgt_ids.push_back(std::move(tgt_ids[i]));
    corpus.line_index.push_back(static_cast<int64_t>(i));
  }
  spdlog::info("{} / {}: {}", src_path, tgt_path, corpus.report.summary());
  return corpus;
}

}  // namespace heed::data

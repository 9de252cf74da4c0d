// A parallel corpus in memory: the two sides of a pair of line-aligned text files as token ids.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "heed/data/token_pairs.h"
#include "heed/data/vocab.h"

namespace heed::data {

struct CorpusOptions {
  int64_t max_length = 128;  // tokens per side, counting the eos the batcher appends
};

// What became of the lines: every dropped pair is counted under its reason.
struct FilterReport {
  int64_t lines = 0;     // pairs in the files
  int64_t kept = 0;
  int64_t empty = 0;     // a side had no tokens
  int64_t too_long = 0;  // a side had more than max_length tokens
  int64_t max_length = 0;
  std::string summary() const;
};

// Whether a pair of encoded sentences (without eos) passes the filter; counts it in `report` either way.
bool keep_pair(std::span<const int32_t> src, std::span<const int32_t> tgt, FilterReport& report);

struct ParallelCorpus : TokenPairs {
  std::vector<std::vector<int32_t>> src_ids, tgt_ids;  // src_ids[i] translates to tgt_ids[i]
  std::vector<int64_t> line_index;                     // the 0-based line of pair i in the files
  std::string src_path;                                // the source file, for messages; may be empty
  FilterReport report;

  int64_t size() const override { return static_cast<int64_t>(src_ids.size()); }
  std::span<const int32_t> src(int64_t i) const override { return src_ids[static_cast<size_t>(i)]; }
  std::span<const int32_t> tgt(int64_t i) const override { return tgt_ids[static_cast<size_t>(i)]; }
  std::string origin(int64_t i) const override;
};

// Reads, checks (same line count, valid UTF-8), encodes and filters; logs the filter report.
ParallelCorpus load_parallel_corpus(const std::string& src_path, const std::string& tgt_path, const Vocab& src_vocab,
                                    const Vocab& tgt_vocab, const CorpusOptions& options);

}  // namespace heed::data

// A parallel corpus in memory: the two sides of a pair of line-aligned text files as token ids.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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

struct ParallelCorpus {
  std::vector<std::vector<int32_t>> src, tgt;  // token ids without eos; src[i] translates to tgt[i]
  std::vector<int64_t> line_index;             // the 0-based line of pair i in the files
  FilterReport report;
  int64_t size() const { return static_cast<int64_t>(src.size()); }
};

// Reads, checks (same line count, valid UTF-8), encodes and filters; logs the filter report.
ParallelCorpus load_parallel_corpus(const std::string& src_path, const std::string& tgt_path, const Vocab& src_vocab,
                                    const Vocab& tgt_vocab, const CorpusOptions& options);

}  // namespace heed::data

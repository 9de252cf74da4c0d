// Sentence pairs as token ids, wherever they are kept: in memory (ParallelCorpus) or in a memory-mapped
// store (CorpusStore). The batcher reads pairs through this interface only, so a batch touches the ids of
// its own pairs and nothing else.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace heed::data {

// The pairs [begin, end) of one corpus among several, for mixing them by weight.
struct CorpusRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

class TokenPairs {
 public:
  virtual ~TokenPairs() = default;
  virtual int64_t size() const = 0;
  // The ids of pair i, without eos; src(i) translates to tgt(i).
  virtual std::span<const int32_t> src(int64_t i) const = 0;
  virtual std::span<const int32_t> tgt(int64_t i) const = 0;
  // Where pair i came from, for error messages: "line 7 of a.en".
  virtual std::string origin(int64_t i) const = 0;
  // The corpora the pairs come from, in order, covering [0, size()).
  virtual std::vector<CorpusRange> corpora() const { return {{0, size()}}; }
};

}  // namespace heed::data

// Token-based batching of a parallel corpus, with batches prepared ahead on a background thread.
//
// Each epoch's batches are a pure function of (corpus, options, epoch): the epoch's pairs (every pair once,
// or, with corpus weights, a seeded resample of each corpus to its share), with shuffle a seeded
// permutation of them, a stable sort by length (so a batch holds pairs of similar length and little
// padding), greedy packing under the token budget, then a seeded permutation of the batch order; without
// shuffle, corpus order sorted by length and a fixed batch order. A batch's cost is
// sentences × max(longest source, longest target), eos counted, as in fairseq; it never exceeds
// max_tokens. The permutations come from heed/data/shuffle.h, so the batches are the same with every
// standard library.
//
// With world > 1, rank r takes batches r, r + world, ... of the epoch. When the batch count is not a
// multiple of world, the last round is padded by wrapping around to the epoch's first batches: every rank
// runs the same number of steps, every pair is seen at least once per epoch, and the pairs of the wrapped
// batches (fewer than world batches) twice.
//
// Only pair lengths are held (8 bytes a pair): the ids are read when a batch is assembled, so with a
// memory-mapped store a rank touches the ids of its own batches only.
//
// Because an epoch's batches can be recomputed at will, resuming at a BatchPosition computes that epoch's
// batch list and skips to the position: nothing earlier is replayed. A position counts the epoch's batches
// that all ranks together have consumed, so it does not depend on the number of ranks: a run saved by 2
// ranks continues on 1 or 4 with the same next batches (rank r then takes batches p + r, p + r + world, ...).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "heed/data/batch.h"
#include "heed/data/corpus.h"

namespace heed::data {

struct BatcherOptions {
  int64_t max_tokens = 4096;  // budget per batch: sentences × longest side, eos included
  int64_t max_sentences = 0;  // 0: no limit
  bool shuffle = true;
  uint64_t seed = 1;
  bool repeat = true;  // false: next() stops at the end of the epoch it started in (validation)
  int32_t pad_id = 0, eos_id = 2, decoder_start_id = 0;
  int rank = 0, world = 1;
  int prefetch = 4;  // batches prepared ahead
  // One weight per corpus of the pairs (TokenPairs::corpora): each epoch holds as many pairs as the corpora
  // together, weight_c / sum(weights) of them drawn from corpus c (all of its pairs as often as they fit,
  // the rest a seeded sample without repeats). Empty: every pair once per epoch.
  std::vector<double> corpus_weights;
};

// Where an iteration stands: the epoch, and how many of its batches all ranks together have consumed.
struct BatchPosition {
  int64_t epoch = 0;
  int64_t index = 0;
  bool operator==(const BatchPosition&) const = default;
};

struct LoadedBatch {
  Batch batch;  // src = ids + eos; tgt_in = decoder start + ids; tgt_out = ids + eos; right-padded
  std::vector<int64_t> pairs;  // the corpus index of each row
  int64_t sentences = 0;
  int64_t src_tokens = 0, tgt_tokens = 0;  // real tokens, eos included, padding not
  BatchPosition position;                  // where this batch was in the iteration
  int64_t epoch_batches = 0;               // all ranks' batches in its epoch
};

// One thread consumes the batches (next, seek); position() may be read from any thread.
class Batcher {
 public:
  // Starts preparing batches from `start`. A pair longer than max_tokens is an error.
  Batcher(std::shared_ptr<const TokenPairs> pairs, const BatcherOptions& options, BatchPosition start = {});
  Batcher(ParallelCorpus corpus, const BatcherOptions& options, BatchPosition start = {});
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Moves the next batch into `out`. With repeat, always true (epochs follow each other forever);
  // without, false once the epoch is over.
  bool next(LoadedBatch& out);
  // Continues from `position` as if the iteration had just delivered the batch before it.
  void seek(BatchPosition position);
  // The position of the next batch next() delivers (batches prepared ahead do not count).
  BatchPosition position() const;

  // This rank's batches per epoch; the same in every epoch, since packing sees only the sorted lengths
  // (with corpus weights, each epoch's resample packs a little differently: the first epoch's count).
  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  // The corpus indices of each of this rank's batches of `epoch`, in delivery order.
  std::vector<std::vector<int64_t>> epoch_plan(int64_t epoch) const;
  const TokenPairs& pairs() const { return *pairs_; }

 private:
  // The pairs of `epoch` before shuffling: each once, or the corpora resampled to their weights.
  std::vector<int64_t> epoch_pairs(int64_t epoch) const;
  // Every batch of `epoch`, in delivery order over all ranks.
  std::vector<std::vector<int64_t>> all_batches(int64_t epoch) const;
  // This rank's share of an epoch's `batches` once `offset` of them have been consumed by all ranks.
  std::vector<std::vector<int64_t>> rank_plan(std::vector<std::vector<int64_t>> batches, int64_t offset) const;
  LoadedBatch assemble(const std::vector<int64_t>& pairs) const;
  void produce(BatchPosition from);
  void stop();

  std::shared_ptr<const TokenPairs> pairs_;
  BatcherOptions options_;
  std::vector<uint32_t> cost_length_;  // per pair: the longer side, eos counted
  std::vector<uint32_t> src_length_;   // per pair, without eos: the second sort key
  int64_t batches_per_epoch_ = 0;  // this rank's
  int64_t epoch_batches_ = 0;      // all ranks', in the first epoch

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<LoadedBatch> ready_;
  BatchPosition delivered_;  // position() of the caller
  bool stopping_ = false, producer_done_ = false;
  std::exception_ptr producer_error_;
  std::thread producer_;
};

}  // namespace heed::data

// The batcher: epoch plans computed from scratch (cheap: a permutation and a sort of the pair lengths)
// and a producer thread that turns plan entries into padded tensors, at most `prefetch` ahead of the
// caller. The queue, the caller's position and the producer's state share one mutex and one condition
// variable; there is a single producer and a single consumer, so waking both on every change is cheap.
#include "heed/data/batcher.h"

#include <algorithm>
#include <numeric>
#include <tuple>

#include "heed/core/error.h"
#include "heed/data/shuffle.h"

namespace heed::data {

Batcher::Batcher(ParallelCorpus corpus, const BatcherOptions& options, BatchPosition start)
    : corpus_(std::move(corpus)), options_(options) {
  HEED_CHECK(corpus_.src.size() == corpus_.tgt.size(), "corpus has {} source sentences but {} target sentences",
             corpus_.src.size(), corpus_.tgt.size());
  HEED_CHECK(options_.max_tokens > 0, "max_tokens must be positive, got {}", options_.max_tokens);
  HEED_CHECK(options_.max_sentences >= 0, "max_sentences must be 0 (no limit) or positive, got {}",
             options_.max_sentences);
  HEED_CHECK(options_.world >= 1 && options_.rank >= 0 && options_.rank < options_.world,
             "rank must be in [0, world), got rank {} of world {}", options_.rank, options_.world);
  HEED_CHECK(options_.prefetch >= 1, "prefetch must be at least 1 batch, got {}", options_.prefetch);
  HEED_CHECK(!options_.repeat || corpus_.size() > 0, "the corpus has no sentence pairs to train on");

  cost_length_.resize(corpus_.src.size());
  for (int64_t i = 0; i < corpus_.size(); ++i) {
    cost_length_[i] = static_cast<int64_t>(std::max(corpus_.src[i].size(), corpus_.tgt[i].size())) + 1;
    HEED_CHECK(cost_length_[i] <= options_.max_tokens,
               "sentence pair {} (line {}) has {} tokens on its longer side, eos included, more than max_tokens {}; "
               "raise max_tokens or lower max_length",
               i, corpus_.line_index.empty() ? i + 1 : corpus_.line_index[i] + 1, cost_length_[i],
               options_.max_tokens);
  }
  epoch_batches_ = static_cast<int64_t>(all_batches(0).size());
  batches_per_epoch_ = static_cast<int64_t>(rank_plan(0, 0).size());
  seek(start);
}

Batcher::~Batcher() { stop(); }

std::vector<std::vector<int64_t>> Batcher::epoch_plan(int64_t epoch) const { return rank_plan(epoch, 0); }

std::vector<std::vector<int64_t>> Batcher::all_batches(int64_t epoch) const {
  std::vector<int64_t> order(corpus_.src.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::mt19937_64 rng = seeded_rng(options_.seed, static_cast<uint64_t>(epoch));
  if (options_.shuffle) seeded_shuffle(order, rng);
  // The cost length first, so packing depends only on the sorted lengths; source length next, so pairs of
  // one cost length share source lengths too and pad less.
  const auto sort_key = [&](int64_t i) { return std::tuple(cost_length_[i], corpus_.src[i].size()); };
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return sort_key(a) < sort_key(b); });

  std::vector<std::vector<int64_t>> batches;
  int64_t longest = 0;
  for (int64_t i : order) {
    const int64_t sentences = batches.empty() ? 0 : static_cast<int64_t>(batches.back().size());
    const bool fits = sentences > 0 && (sentences + 1) * std::max(longest, cost_length_[i]) <= options_.max_tokens &&
                      (options_.max_sentences == 0 || sentences + 1 <= options_.max_sentences);
    if (!fits) {
      batches.emplace_back();
      longest = 0;
    }
    batches.back().push_back(i);
    longest = std::max(longest, cost_length_[i]);
  }
  if (options_.shuffle) seeded_shuffle(batches, rng);
  return batches;
}

std::vector<std::vector<int64_t>> Batcher::rank_plan(int64_t epoch, int64_t offset) const {
  std::vector<std::vector<int64_t>> batches = all_batches(epoch);
  const auto total = static_cast<int64_t>(batches.size());
  if (options_.world == 1) return {batches.begin() + offset, batches.end()};
  const int64_t rounds = (total - offset + options_.world - 1) / options_.world;
  std::vector<std::vector<int64_t>> mine;
  for (int64_t k = 0; k < rounds; ++k) mine.push_back(batches[(offset + options_.rank + k * options_.world) % total]);
  return mine;
}

LoadedBatch Batcher::assemble(const std::vector<int64_t>& pairs) const {
  LoadedBatch out;
  out.pairs = pairs;
  out.sentences = static_cast<int64_t>(pairs.size());
  size_t src_len = 0, tgt_len = 0;
  for (int64_t i : pairs) {
    src_len = std::max(src_len, corpus_.src[i].size() + 1);
    tgt_len = std::max(tgt_len, corpus_.tgt[i].size() + 1);
  }
  std::vector<int32_t> src(pairs.size() * src_len, options_.pad_id);
  std::vector<int32_t> tgt_in(pairs.size() * tgt_len, options_.pad_id), tgt_out = tgt_in;
  for (size_t row = 0; row < pairs.size(); ++row) {
    const std::vector<int32_t>& s = corpus_.src[pairs[row]];
    const std::vector<int32_t>& t = corpus_.tgt[pairs[row]];
    std::copy(s.begin(), s.end(), src.begin() + row * src_len);
    src[row * src_len + s.size()] = options_.eos_id;
    tgt_in[row * tgt_len] = options_.decoder_start_id;
    std::copy(t.begin(), t.end(), tgt_in.begin() + row * tgt_len + 1);
    std::copy(t.begin(), t.end(), tgt_out.begin() + row * tgt_len);
    tgt_out[row * tgt_len + t.size()] = options_.eos_id;
    out.src_tokens += static_cast<int64_t>(s.size()) + 1;
    out.tgt_tokens += static_cast<int64_t>(t.size()) + 1;
  }
  const auto rows = static_cast<int64_t>(pairs.size());
  out.batch.src = Tensor::from_vector(src, {rows, static_cast<int64_t>(src_len)});
  out.batch.tgt_in = Tensor::from_vector(tgt_in, {rows, static_cast<int64_t>(tgt_len)});
  out.batch.tgt_out = Tensor::from_vector(tgt_out, {rows, static_cast<int64_t>(tgt_len)});
  return out;
}

void Batcher::produce(BatchPosition from) {
  try {
    for (int64_t epoch = from.epoch;; ++epoch) {
      const int64_t offset = epoch == from.epoch ? from.index : 0;
      const auto plan = rank_plan(epoch, offset);
      for (size_t k = 0; k < plan.size(); ++k) {
        LoadedBatch batch = assemble(plan[k]);
        batch.position = {epoch, offset + static_cast<int64_t>(k) * options_.world};
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || static_cast<int>(ready_.size()) < options_.prefetch; });
        if (stopping_) return;
        ready_.push_back(std::move(batch));
        changed_.notify_all();
      }
      if (!options_.repeat) break;
    }
  } catch (...) {
    std::lock_guard lock(mutex_);
    producer_error_ = std::current_exception();
  }
  std::lock_guard lock(mutex_);
  producer_done_ = true;
  changed_.notify_all();
}

bool Batcher::next(LoadedBatch& out) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return !ready_.empty() || producer_done_; });
  if (ready_.empty()) {
    if (producer_error_) std::rethrow_exception(producer_error_);
    return false;
  }
  out = std::move(ready_.front());
  ready_.pop_front();
  const int64_t consumed = out.position.index + options_.world;  // by all ranks together
  delivered_ = consumed >= epoch_batches_ ? BatchPosition{out.position.epoch + 1, 0}
                                          : BatchPosition{out.position.epoch, consumed};
  changed_.notify_all();
  return true;
}

void Batcher::seek(BatchPosition position) {
  HEED_CHECK(position.epoch >= 0 && position.index >= 0 && position.index <= epoch_batches_,
             "cannot continue at batch {} of epoch {}: an epoch has {} batches here (did the corpus or the batching "
             "options change since the position was saved?)",
             position.index, position.epoch, epoch_batches_);
  if (position.index == epoch_batches_ && epoch_batches_ > 0) position = {position.epoch + 1, 0};
  stop();
  {
    std::lock_guard lock(mutex_);
    ready_.clear();
    delivered_ = position;
    stopping_ = producer_done_ = false;
    producer_error_ = nullptr;
  }
  producer_ = std::thread([this, position] { produce(position); });
}

BatchPosition Batcher::position() const {
  std::lock_guard lock(mutex_);
  return delivered_;
}

void Batcher::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (producer_.joinable()) producer_.join();
}

}  // namespace heed::data

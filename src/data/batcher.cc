// The batcher: epoch plans computed from scratch (cheap: a permutation and a counting sort of the pair
// lengths, linear in the pairs) and a producer thread that turns plan entries into padded tensors, at most
// `prefetch` ahead of the caller. The queue, the caller's position and the producer's state share one mutex
// and one condition variable; there is a single producer and a single consumer, so waking both on every
// change is cheap.
#include "heed/data/batcher.h"

#include <algorithm>
#include <numeric>

#include "heed/core/error.h"
#include "heed/data/shuffle.h"

namespace heed::data {

namespace {

// The random stream of an epoch's resampling, apart from the streams of its shuffles (numbered by epoch).
constexpr uint64_t kResampleStream = uint64_t{1} << 63;

// Sorts `order` stably by key[i], keys below `bound`: a counting sort, linear where a comparison sort of
// millions of pairs would take seconds at every start.
void stable_sort_by(std::vector<int64_t>& order, const std::vector<uint32_t>& key, uint32_t bound) {
  std::vector<int64_t> start(static_cast<size_t>(bound) + 1, 0);
  for (int64_t i : order) ++start[key[i] + 1];
  std::partial_sum(start.begin(), start.end(), start.begin());
  std::vector<int64_t> sorted(order.size());
  for (int64_t i : order) sorted[start[key[i]]++] = i;
  order.swap(sorted);
}

}  // namespace

Batcher::Batcher(ParallelCorpus corpus, const BatcherOptions& options, BatchPosition start)
    : Batcher(std::make_shared<const ParallelCorpus>(std::move(corpus)), options, start) {}

Batcher::Batcher(std::shared_ptr<const TokenPairs> pairs, const BatcherOptions& options, BatchPosition start)
    : pairs_(std::move(pairs)), options_(options) {
  HEED_CHECK(options_.max_tokens > 0, "max_tokens must be positive, got {}", options_.max_tokens);
  HEED_CHECK(options_.max_sentences >= 0, "max_sentences must be 0 (no limit) or positive, got {}",
             options_.max_sentences);
  HEED_CHECK(options_.world >= 1 && options_.rank >= 0 && options_.rank < options_.world,
             "rank must be in [0, world), got rank {} of world {}", options_.rank, options_.world);
  HEED_CHECK(options_.prefetch >= 1, "prefetch must be at least 1 batch, got {}", options_.prefetch);
  HEED_CHECK(!options_.repeat || pairs_->size() > 0, "the corpus has no sentence pairs to train on");
  const std::vector<double>& weights = options_.corpus_weights;
  if (!weights.empty()) {
    const std::vector<CorpusRange> corpora = pairs_->corpora();
    HEED_CHECK(weights.size() == corpora.size(), "{} corpus weights for {} corpora", weights.size(), corpora.size());
    for (size_t c = 0; c < corpora.size(); ++c)
      HEED_CHECK(weights[c] >= 0 && (weights[c] == 0 || corpora[c].size() > 0),
                 "corpus {} has weight {} and {} sentence pairs: a weight must be >= 0, and positive only for a "
                 "corpus with pairs", c + 1, weights[c], corpora[c].size());
    HEED_CHECK(std::accumulate(weights.begin(), weights.end(), 0.0) > 0, "the corpus weights are all 0");
  }

  const int64_t n = pairs_->size();
  cost_length_.resize(static_cast<size_t>(n));
  src_length_.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const size_t src = pairs_->src(i).size(), tgt = pairs_->tgt(i).size();
    const auto cost = static_cast<int64_t>(std::max(src, tgt)) + 1;
    HEED_CHECK(cost <= options_.max_tokens,
               "sentence pair {} ({}) has {} tokens on its longer side, eos included, more than max_tokens {}; "
               "raise max_tokens or lower max_length",
               i, pairs_->origin(i), cost, options_.max_tokens);
    cost_length_[i] = static_cast<uint32_t>(cost);
    src_length_[i] = static_cast<uint32_t>(src);
  }
  const int64_t total = static_cast<int64_t>(all_batches(0).size());
  epoch_batches_ = total;
  batches_per_epoch_ = options_.world == 1 ? total : (total + options_.world - 1) / options_.world;
  seek(start);
}

Batcher::~Batcher() { stop(); }

std::vector<std::vector<int64_t>> Batcher::epoch_plan(int64_t epoch) const { return rank_plan(all_batches(epoch), 0); }

std::vector<int64_t> Batcher::epoch_pairs(int64_t epoch) const {
  const int64_t total = pairs_->size();
  std::vector<int64_t> order;
  if (options_.corpus_weights.empty()) {
    order.resize(static_cast<size_t>(total));
    std::iota(order.begin(), order.end(), int64_t{0});
    return order;
  }
  // Each corpus's share of the epoch, rounded by largest remainder so that the shares add up to `total`.
  const std::vector<CorpusRange> corpora = pairs_->corpora();
  const std::vector<double>& weights = options_.corpus_weights;
  const double sum = std::accumulate(weights.begin(), weights.end(), 0.0);
  std::vector<int64_t> count(corpora.size());
  std::vector<std::pair<double, size_t>> remainders;
  int64_t assigned = 0;
  for (size_t c = 0; c < corpora.size(); ++c) {
    const double exact = weights[c] / sum * static_cast<double>(total);
    count[c] = static_cast<int64_t>(exact);
    assigned += count[c];
    remainders.emplace_back(exact - static_cast<double>(count[c]), c);
  }
  std::stable_sort(remainders.begin(), remainders.end(), [](auto a, auto b) { return a.first > b.first; });
  for (size_t k = 0; assigned < total; ++k, ++assigned) ++count[remainders[k % remainders.size()].second];

  std::mt19937_64 rng = seeded_rng(options_.seed, kResampleStream | static_cast<uint64_t>(epoch));
  order.reserve(static_cast<size_t>(total));
  for (size_t c = 0; c < corpora.size(); ++c) {
    const CorpusRange range = corpora[c];
    if (count[c] == 0) continue;
    for (int64_t copy = 0; copy < count[c] / range.size(); ++copy)
      for (int64_t i = range.begin; i < range.end; ++i) order.push_back(i);
    // The rest: the first `rest` of a seeded permutation, a different sample each epoch.
    const int64_t rest = count[c] % range.size();
    std::vector<int64_t> sample(static_cast<size_t>(range.size()));
    std::iota(sample.begin(), sample.end(), range.begin);
    for (int64_t k = 0; k < rest; ++k)
      std::swap(sample[k], sample[k + static_cast<int64_t>(draw_below(rng, static_cast<uint64_t>(range.size() - k)))]);
    order.insert(order.end(), sample.begin(), sample.begin() + rest);
  }
  return order;
}

std::vector<std::vector<int64_t>> Batcher::all_batches(int64_t epoch) const {
  std::vector<int64_t> order = epoch_pairs(epoch);
  std::mt19937_64 rng = seeded_rng(options_.seed, static_cast<uint64_t>(epoch));
  if (options_.shuffle) seeded_shuffle(order, rng);
  // By cost length, and among equal cost lengths by source length, so pairs of one cost length share
  // source lengths too and pad less; packing then depends only on the sorted lengths. Stable: ties keep
  // the shuffled order. Sorting by the minor key first and then stably by the major one does both.
  const auto bound = [](const std::vector<uint32_t>& v) { return v.empty() ? 1u : *std::max_element(v.begin(), v.end()) + 1; };
  stable_sort_by(order, src_length_, bound(src_length_));
  stable_sort_by(order, cost_length_, bound(cost_length_));

  std::vector<std::vector<int64_t>> batches;
  int64_t longest = 0;
  for (int64_t i : order) {
    const int64_t sentences = batches.empty() ? 0 : static_cast<int64_t>(batches.back().size());
    const int64_t cost = cost_length_[i];
    const bool fits = sentences > 0 && (sentences + 1) * std::max(longest, cost) <= options_.max_tokens &&
                      (options_.max_sentences == 0 || sentences + 1 <= options_.max_sentences);
    if (!fits) {
      batches.emplace_back();
      longest = 0;
    }
    batches.back().push_back(i);
    longest = std::max(longest, cost);
  }
  if (options_.shuffle) seeded_shuffle(batches, rng);
  return batches;
}
std::vector<std::vector<int64_t>> Batcher::rank_plan(std::vector<std::vector<int64_t>> batches,
                                                     int64_t offset) const {
  const auto total = static_cast<int64_t>(batches.size());
  if (options_.world == 1) {  // the epoch's batches from `offset` on, moved: one copy of the plan is enough
    batches.erase(batches.begin(), batches.begin() + offset);
    return batches;
  }
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
    src_len = std::max(src_len, pairs_->src(i).size() + 1);
    tgt_len = std::max(tgt_len, pairs_->tgt(i).size() + 1);
  }
  std::vector<int32_t> src(pairs.size() * src_len, options_.pad_id);
  std::vector<int32_t> tgt_in(pairs.size() * tgt_len, options_.pad_id), tgt_out = tgt_in;
  for (size_t row = 0; row < pairs.size(); ++row) {
    const std::span<const int32_t> s = pairs_->src(pairs[row]);
    const std::span<const int32_t> t = pairs_->tgt(pairs[row]);
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
      std::vector<std::vector<int64_t>> all = all_batches(epoch);
      const auto epoch_batches = static_cast<int64_t>(all.size());
      const auto plan = rank_plan(std::move(all), offset);
      for (size_t k = 0; k < plan.size(); ++k) {
        LoadedBatch batch = assemble(plan[k]);
        batch.position = {epoch, offset + static_cast<int64_t>(k) * options_.world};
        batch.epoch_batches = epoch_batches;
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
  delivered_ = consumed >= out.epoch_batches ? BatchPosition{out.position.epoch + 1, 0}
                                          : BatchPosition{out.position.epoch, consumed};
  changed_.notify_all();
  return true;
}

void Batcher::seek(BatchPosition position) {
  HEED_CHECK(position.epoch >= 0, "cannot continue in epoch {}", position.epoch);
  // Resampled epochs differ in their batch count; otherwise every epoch has epoch_batches_.
  const int64_t batches = options_.corpus_weights.empty() ? epoch_batches_
                                                          : static_cast<int64_t>(all_batches(position.epoch).size());
  HEED_CHECK(position.index >= 0 && position.index <= batches,
             "cannot continue at batch {} of epoch {}: an epoch has {} batches here (did the corpus or the batching "
             "options change since the position was saved?)",
             position.index, position.epoch, batches);
  if (position.index == batches && batches > 0) position = {position.epoch + 1, 0};
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

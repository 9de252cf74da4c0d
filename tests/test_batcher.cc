// The batcher: exact tensor layout, every pair once per epoch, the token budget, determinism from the
// seed (pinned, so a standard library cannot change it), rank splitting, and resuming mid-epoch with the
// same batches an uninterrupted run gets.
#include <catch2/catch.hpp>

#include <numeric>
#include <set>

#include "heed/data/batcher.h"

using namespace heed;
using data::BatchPosition;
using data::Batcher;
using data::BatcherOptions;
using data::LoadedBatch;
using Catch::Contains;

namespace {

// `pairs` pairs of 1 to 40 tokens per side; the ids of pair i are all 3 + i % 97, so a row tells its pair.
data::ParallelCorpus synthetic_corpus(int pairs) {
  data::ParallelCorpus corpus;
  uint32_t state = 7;
  const auto length = [&] { return 1 + ((state = state * 1664525u + 1013904223u) >> 8) % 40; };
  for (int i = 0; i < pairs; ++i) {
    const int32_t id = 3 + i % 97;
    corpus.src_ids.emplace_back(length(), id);
    corpus.tgt_ids.emplace_back(length(), id);
  }
  return corpus;
}

int64_t cost_length(const data::ParallelCorpus& corpus, int64_t i) {
  return static_cast<int64_t>(std::max(corpus.src_ids[i].size(), corpus.tgt_ids[i].size())) + 1;
}

std::vector<LoadedBatch> take(Batcher& batcher, int64_t count) {
  std::vector<LoadedBatch> batches(count);
  for (LoadedBatch& batch : batches) REQUIRE(batcher.next(batch));
  return batches;
}

std::vector<std::vector<int64_t>> pairs_of(const std::vector<LoadedBatch>& batches) {
  std::vector<std::vector<int64_t>> pairs;
  for (const LoadedBatch& b : batches) pairs.push_back(b.pairs);
  return pairs;
}

// Row r of a [B, L] int32 tensor.
std::vector<int32_t> row(const Tensor& t, int64_t r) {
  const std::vector<int32_t> all = t.to_vector<int32_t>();
  return {all.begin() + r * t.size(1), all.begin() + (r + 1) * t.size(1)};
}

}  // namespace

TEST_CASE("batcher: one batch laid out exactly (eos, decoder start, right padding, counts)", "[data][batcher]") {
  data::ParallelCorpus corpus;
  corpus.src_ids = {{5, 6, 7}, {9}};
  corpus.tgt_ids = {{8}, {10, 11}};
  BatcherOptions options;
  options.shuffle = false;
  options.pad_id = 0;
  options.eos_id = 2;
  options.decoder_start_id = 3;
  Batcher batcher(corpus, options);
  LoadedBatch b;
  REQUIRE(batcher.next(b));
  CHECK(b.pairs == std::vector<int64_t>{1, 0});  // shorter pair first
  CHECK(b.batch.src.dtype() == DType::I32);
  CHECK(b.batch.src.shape() == Shape{2, 4});
  CHECK(b.batch.src.to_vector<int32_t>() == std::vector<int32_t>{9, 2, 0, 0, /**/ 5, 6, 7, 2});
  CHECK(b.batch.tgt_in.shape() == Shape{2, 3});
  CHECK(b.batch.tgt_in.to_vector<int32_t>() == std::vector<int32_t>{3, 10, 11, /**/ 3, 8, 0});
  CHECK(b.batch.tgt_out.to_vector<int32_t>() == std::vector<int32_t>{10, 11, 2, /**/ 8, 2, 0});
  CHECK(b.sentences == 2);
  CHECK(b.src_tokens == 6);
  CHECK(b.tgt_tokens == 5);
  CHECK(b.position == BatchPosition{0, 0});
  CHECK(batcher.position() == BatchPosition{1, 0});
}

TEST_CASE("batcher: every pair once per epoch, within the token and sentence budgets", "[data][batcher]") {
  const data::ParallelCorpus corpus = synthetic_corpus(500);
  BatcherOptions options;
  options.shuffle = GENERATE(true, false);
  options.max_sentences = GENERATE(0, 7);
  options.max_tokens = 300;
  Batcher batcher(corpus, options);
  const int64_t n = batcher.batches_per_epoch();
  INFO("shuffle " << options.shuffle << ", max_sentences " << options.max_sentences << ", " << n << " batches");

  std::vector<std::vector<std::vector<int64_t>>> epochs;
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    std::vector<int64_t> seen;
    const std::vector<LoadedBatch> batches = take(batcher, n);
    for (int64_t k = 0; k < n; ++k) {
      const LoadedBatch& b = batches[k];
      CHECK(b.position == BatchPosition{epoch, k});
      int64_t longest = 0, src_tokens = 0;
      for (size_t r = 0; r < b.pairs.size(); ++r) {
        const int64_t i = b.pairs[r];
        longest = std::max(longest, cost_length(corpus, i));
        src_tokens += static_cast<int64_t>(corpus.src_ids[i].size()) + 1;
        // The row holds pair i: its ids, eos, then padding.
        std::vector<int32_t> expected = corpus.src_ids[i];
        expected.push_back(options.eos_id);
        expected.resize(b.batch.src.size(1), options.pad_id);
        CHECK(row(b.batch.src, static_cast<int64_t>(r)) == expected);
      }
      CHECK(b.batch.src.size(0) == b.sentences);
      CHECK(b.sentences == static_cast<int64_t>(b.pairs.size()));
      CHECK(b.src_tokens == src_tokens);
      CHECK(b.sentences * longest <= options.max_tokens);
      if (options.max_sentences > 0) CHECK(b.sentences <= options.max_sentences);
      seen.insert(seen.end(), b.pairs.begin(), b.pairs.end());
    }
    std::sort(seen.begin(), seen.end());
    std::vector<int64_t> all(corpus.size());
    std::iota(all.begin(), all.end(), int64_t{0});
    CHECK(seen == all);
    CHECK(batcher.position() == BatchPosition{epoch + 1, 0});
    epochs.push_back(pairs_of(batches));
  }
  // Packing is greedy: without shuffle the batches follow the length order, and the next batch's first
  // pair would not have fitted into the batch before it.
  if (!options.shuffle) {
    for (int64_t k = 0; k + 1 < n; ++k) {
      int64_t longest = cost_length(corpus, epochs[0][k + 1][0]);
      for (int64_t i : epochs[0][k]) longest = std::max(longest, cost_length(corpus, i));
      const auto sentences = static_cast<int64_t>(epochs[0][k].size()) + 1;
      CHECK((sentences * longest > options.max_tokens ||
             (options.max_sentences > 0 && sentences > options.max_sentences)));
    }
  }
  CHECK((epochs[0] != epochs[1]) == options.shuffle);
}

TEST_CASE("batcher: batches follow from the seed and are the same on every standard library", "[data][batcher]") {
  const data::ParallelCorpus corpus = synthetic_corpus(300);
  BatcherOptions options;
  options.max_tokens = 200;
  options.seed = 11;
  Batcher a(corpus, options), b(corpus, options);
  CHECK(pairs_of(take(a, 30)) == pairs_of(take(b, 30)));
  options.seed = 12;
  Batcher c(corpus, options);
  CHECK(c.epoch_plan(0) != a.epoch_plan(0));

  // Pinned: equal lengths and one pair per batch leave only the two seeded permutations to see.
  data::ParallelCorpus flat;
  flat.src_ids.assign(10, {4, 4});
  flat.tgt_ids.assign(10, {5});
  BatcherOptions one;
  one.max_sentences = 1;
  one.seed = 42;
  Batcher pinned(flat, one);
  std::vector<int64_t> order;
  for (const auto& batch : pinned.epoch_plan(3)) order.push_back(batch.at(0));
  CHECK(order == std::vector<int64_t>{3, 6, 0, 5, 4, 9, 8, 1, 2, 7});
}

TEST_CASE("batcher: resuming at a position continues with the uninterrupted run's batches", "[data][batcher]") {
  const data::ParallelCorpus corpus = synthetic_corpus(400);
  BatcherOptions options;
  options.max_tokens = 250;
  options.prefetch = 3;
  Batcher full(corpus, options);
  const int64_t n = full.batches_per_epoch();
  REQUIRE(n > 4);
  std::vector<LoadedBatch> reference;
  std::vector<BatchPosition> after;  // position() after each next()
  for (int64_t k = 0; k < 3 * n; ++k) {
    reference.emplace_back();
    REQUIRE(full.next(reference.back()));
    after.push_back(full.position());
  }
  const auto expected_position = [&](int64_t k) { return BatchPosition{k / n, k % n}; };
  for (int64_t k = 0; k < 3 * n; ++k) CHECK(after[k] == expected_position(k + 1));

  for (const int64_t resume_at : {n + n / 2, n, int64_t{1}}) {
    INFO("resume at batch " << resume_at);
    Batcher resumed(corpus, options, after[resume_at - 1]);
    CHECK(resumed.position() == after[resume_at - 1]);
    for (int64_t k = resume_at; k < 3 * n; ++k) {
      LoadedBatch b;
      REQUIRE(resumed.next(b));
      CHECK(b.pairs == reference[k].pairs);
      CHECK(b.position == expected_position(k));
      CHECK(b.batch.tgt_out.to_vector<int32_t>() == reference[k].batch.tgt_out.to_vector<int32_t>());
    }
  }
  // Seeking an existing batcher back in time, and the end of an epoch written as {epoch, n}.
  full.seek({1, 2});
  CHECK(pairs_of(take(full, 3)) == pairs_of({reference.begin() + n + 2, reference.begin() + n + 5}));
  full.seek({0, n});
  CHECK(full.position() == BatchPosition{1, 0});
  CHECK_THROWS_WITH(full.seek({0, n + 1}), Contains(fmt::format("cannot continue at batch {} of epoch 0", n + 1)) &&
                                               Contains(fmt::format("an epoch has {} batches", n)));
}

TEST_CASE("batcher: ranks share an epoch's batches, padding the last round", "[data][batcher]") {
  const data::ParallelCorpus corpus = synthetic_corpus(300);
  BatcherOptions options;
  options.max_tokens = 220;
  const std::vector<std::vector<int64_t>> whole = Batcher(corpus, options).epoch_plan(2);
  const auto total = static_cast<int64_t>(whole.size());
  REQUIRE(total % 2 == 1);  // so the last round needs padding
  options.world = 2;
  std::multiset<int64_t> seen;
  for (int rank = 0; rank < 2; ++rank) {
    options.rank = rank;
    Batcher batcher(corpus, options);
    CHECK(batcher.batches_per_epoch() == (total + 1) / 2);
    const auto mine = batcher.epoch_plan(2);
    for (size_t k = 0; k < mine.size(); ++k) {
      CHECK(mine[k] == whole[(rank + 2 * k) % total]);
      seen.insert(mine[k].begin(), mine[k].end());
    }
  }
  // Every pair at least once; only the first batch, repeated to pad the last round, twice.
  for (int64_t i = 0; i < corpus.size(); ++i) {
    const bool wrapped = std::count(whole[0].begin(), whole[0].end(), i) > 0;
    CHECK(seen.count(i) == (wrapped ? 2u : 1u));
  }
}

TEST_CASE("batcher: positions count all ranks' batches, so a run continues on another number of ranks",
          "[data][batcher]") {
  const data::ParallelCorpus corpus = synthetic_corpus(300);
  BatcherOptions options;
  options.max_tokens = 220;
  Batcher one(corpus, options);
  const std::vector<std::vector<int64_t>> whole = one.epoch_plan(0);
  options.world = 2;
  options.rank = 1;
  Batcher two(corpus, options);
  take(two, 3);
  REQUIRE(two.position() == BatchPosition{0, 6});  // 3 batches on each of 2 ranks
  // One process continues with batch 6; three ranks with batches 6 + rank, 9 + rank, ...
  one.seek(two.position());
  CHECK(pairs_of(take(one, 2)) == std::vector<std::vector<int64_t>>{whole[6], whole[7]});
  options.world = 3;
  options.rank = 2;
  Batcher three(corpus, options, two.position());
  CHECK(pairs_of(take(three, 2)) == std::vector<std::vector<int64_t>>{whole[8], whole[11]});
  CHECK(three.position() == BatchPosition{0, 12});
}

TEST_CASE("batcher: without repeat, one epoch then the end, and seek starts it again", "[data][batcher]") {
  const data::ParallelCorpus corpus = synthetic_corpus(100);
  BatcherOptions options;
  options.shuffle = false;
  options.repeat = false;
  options.max_tokens = 200;
  Batcher batcher(corpus, options);
  const auto first = pairs_of(take(batcher, batcher.batches_per_epoch()));
  LoadedBatch extra;
  CHECK_FALSE(batcher.next(extra));
  CHECK_FALSE(batcher.next(extra));
  batcher.seek({});
  CHECK(pairs_of(take(batcher, batcher.batches_per_epoch())) == first);
  CHECK_FALSE(batcher.next(extra));

  data::ParallelCorpus empty;
  Batcher nothing(empty, options);
  CHECK(nothing.batches_per_epoch() == 0);
  CHECK_FALSE(nothing.next(extra));
}

TEST_CASE("batcher: errors name the option at fault", "[data][batcher]") {
  data::ParallelCorpus corpus = synthetic_corpus(10);
  corpus.src_ids[4].assign(60, 3);
  BatcherOptions options;
  options.max_tokens = 50;
  CHECK_THROWS_WITH(Batcher(corpus, options),
                    Contains("sentence pair 4 (line 5) has 61 tokens") && Contains("more than max_tokens 50"));
  options.max_tokens = 100;
  options.rank = 2;
  options.world = 2;
  CHECK_THROWS_WITH(Batcher(corpus, options), Contains("rank must be in [0, world), got rank 2 of world 2"));
  options.rank = 0;
  options.repeat = true;
  CHECK_THROWS_WITH(Batcher(data::ParallelCorpus{}, options), Contains("no sentence pairs"));
}

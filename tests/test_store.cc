// The corpus store: the same pairs as the in-memory corpus, stale stores found (text, vocabulary, filter),
// damaged ones refused naming the file, an interrupted preparation leaving nothing that looks complete, bad
// text named by file and line; the batcher over the store: the same batches as over the in-memory corpus,
// resumed mid-epoch bit for bit, and corpora mixed by weight in the proportions asked for.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>

#include "heed/data/batcher.h"
#include "heed/data/corpus.h"
#include "heed/data/store.h"
#include "heed/data/text.h"
#include "temp_dir.h"

using namespace heed;
using Catch::Contains;
using testing::TempDir;
using namespace std::string_literals;
namespace fs = std::filesystem;

namespace {

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

const std::vector<std::string> kWords = {"uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve",
                                         "diez"};

data::Vocab small_vocab(const TempDir& dir, const std::string& name, int64_t size) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += "uno dos tres cuatro cinco seis siete ocho nueve diez\n";
  write_bytes(dir.file(name + ".txt"), text);
  data::VocabOptions options;
  options.size = size;
  data::Vocab::train({dir.file(name + ".txt")}, dir.file(name + ".model"), options);
  return data::Vocab::load(dir.file(name + ".model"));
}

// `lines` lines of 0 to 7 words (an empty one now and then, long ones past a small max_length).
std::string text_of(int lines, uint32_t seed) {
  std::string text;
  for (int i = 0; i < lines; ++i) {
    const int words = static_cast<int>((seed = seed * 1664525u + 1013904223u) >> 8) % 8;
    for (int w = 0; w < words; ++w) text += (w ? " " : "") + kWords[((seed = seed * 1664525u + 1013904223u) >> 8) % 10];
    text += "\n";
  }
  return text;
}

struct Fixture {
  TempDir dir;
  data::Vocab vocab = small_vocab(dir, "vocab", 20);
  data::StoreSettings settings;
  Fixture() {
    write_bytes(dir.file("a.src"), text_of(300, 1));
    write_bytes(dir.file("a.tgt"), text_of(300, 2));
    settings.corpora = {{dir.file("a.src"), dir.file("a.tgt"), ""}};
    settings.vocab_fingerprint = data::vocab_fingerprint(vocab, vocab);
    settings.max_length = 32;
  }
  std::string store() const { return dir.file("store"); }
  void build() const { data::build_store(store(), settings, vocab, vocab); }
};

std::vector<int32_t> ids(std::span<const int32_t> s) { return {s.begin(), s.end()}; }

}  // namespace

TEST_CASE("store: holds the pairs, lines and filter counts of the in-memory corpus", "[data][store]") {
  Fixture f;
  f.build();
  REQUIRE(data::check_store(f.store(), f.settings, true).usable);
  const auto store = data::CorpusStore::open(f.store(), f.settings);
  data::CorpusOptions options;
  options.max_length = f.settings.max_length;
  const data::ParallelCorpus corpus =
      data::load_parallel_corpus(f.dir.file("a.src"), f.dir.file("a.tgt"), f.vocab, f.vocab, options);
  REQUIRE(store->size() == corpus.size());
  REQUIRE(corpus.report.empty > 0);
  REQUIRE(corpus.report.too_long > 0);
  for (int64_t i = 0; i < corpus.size(); ++i) {
    CHECK(ids(store->src(i)) == corpus.src_ids[i]);
    CHECK(ids(store->tgt(i)) == corpus.tgt_ids[i]);
    CHECK(store->origin(i) == corpus.origin(i));
  }
  REQUIRE(store->reports().size() == 1);
  CHECK(store->reports()[0].summary() == corpus.report.summary());
}

TEST_CASE("store: stale when the text, the vocabulary or the filter changed", "[data][store]") {
  Fixture f;
  CHECK_FALSE(data::check_store(f.store(), f.settings).usable);  // missing
  f.build();
  CHECK(data::check_store(f.store(), f.settings).usable);

  // Touched but unchanged: the modification time differs, the CRC-32 does not.
  fs::last_write_time(f.dir.file("a.tgt"), fs::last_write_time(f.dir.file("a.tgt")) + std::chrono::seconds(5));
  CHECK(data::check_store(f.store(), f.settings).usable);
  // The same size, one byte different.
  std::string text = text_of(300, 2);
  text[text.find("dos")] = 'D';
  write_bytes(f.dir.file("a.tgt"), text);
  fs::last_write_time(f.dir.file("a.tgt"), fs::last_write_time(f.dir.file("a.tgt")) + std::chrono::seconds(10));
  data::StoreStatus status = data::check_store(f.store(), f.settings);
  CHECK_FALSE(status.usable);
  CHECK(status.reason == f.dir.file("a.tgt") + " changed since it was prepared");
  f.build();
  CHECK(data::check_store(f.store(), f.settings).usable);

  data::StoreSettings other = f.settings;
  other.max_length = 33;
  status = data::check_store(f.store(), other);
  CHECK_FALSE(status.usable);
  CHECK(status.reason == "data.max_length changed from 32 to 33");

  const data::Vocab bigger = small_vocab(f.dir, "bigger", 22);
  other = f.settings;
  other.vocab_fingerprint = data::vocab_fingerprint(bigger, bigger);
  CHECK(other.vocab_fingerprint != f.settings.vocab_fingerprint);
  CHECK(data::check_store(f.store(), other).reason == "the vocabulary changed");
  CHECK_THROWS_WITH(data::CorpusStore::open(f.store(), other), Contains("the vocabulary changed"));

  other = f.settings;
  other.corpora[0].src = f.dir.file("a.tgt");
  CHECK_THROWS_WITH(data::CorpusStore::open(f.store(), other), Contains("corpus 1 is " + f.dir.file("a.tgt")));
}

TEST_CASE("store: a truncated or corrupted file is refused, naming it", "[data][store]") {
  Fixture f;
  f.build();
  const fs::path store(f.store());
  SECTION("truncated ids") {
    fs::resize_file(store / "tgt.ids", fs::file_size(store / "tgt.ids") - 4);
    CHECK_THROWS_WITH(data::check_store(f.store(), f.settings),
                      Contains((store / "tgt.ids").string() + ":") && Contains("truncated or damaged"));
    CHECK_THROWS_WITH(data::CorpusStore::open(f.store(), f.settings), Contains((store / "tgt.ids").string()));
  }
  SECTION("corrupted offsets") {
    std::fstream file(store / "src.offsets", std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(16);
    file.put('\x7f');
    file.close();
    CHECK_THROWS_WITH(data::CorpusStore::open(f.store(), f.settings),
                      Contains((store / "src.offsets").string() + ": CRC-32 differs"));
  }
  SECTION("corrupted ids: found by verification") {
    std::fstream file(store / "src.ids", std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(4);
    file.put('\x7f');
    file.close();
    CHECK(data::check_store(f.store(), f.settings).usable);  // not read at open: a start stays cheap
    CHECK_THROWS_WITH(data::check_store(f.store(), f.settings, true),
                      Contains((store / "src.ids").string() + ": CRC-32 differs"));
  }
  SECTION("a missing file, a damaged manifest") {
    fs::remove(store / "lines");
    CHECK_THROWS_WITH(data::check_store(f.store(), f.settings), Contains((store / "lines").string() + ": missing"));
    write_bytes((store / "manifest.json").string(), "{\"format\": \"heed-store\", \"vers");
    CHECK_THROWS_WITH(data::check_store(f.store(), f.settings),
                      Contains((store / "manifest.json").string() + ": damaged store manifest"));
  }
}

TEST_CASE("store: an interrupted preparation leaves nothing that looks complete", "[data][store]") {
  Fixture f;
  f.build();
  const std::string before = data::vocab_fingerprint(f.vocab, f.vocab);
  // A second corpus whose files end at different lines fails half-way through the preparation.
  write_bytes(f.dir.file("b.src"), "uno\ndos\ntres\n");
  write_bytes(f.dir.file("b.tgt"), "uno\ndos\n");
  data::StoreSettings two = f.settings;
  two.corpora.push_back({f.dir.file("b.src"), f.dir.file("b.tgt"), ""});
  CHECK_THROWS_WITH(data::build_store(f.store(), two, f.vocab, f.vocab),
                    Contains(f.dir.file("b.src") + ":3: this line has no counterpart"));
  // The store that was there is intact and still serves its settings; nothing else is left beside it.
  CHECK(data::check_store(f.store(), f.settings, true).usable);
  CHECK_FALSE(data::check_store(f.store(), two).usable);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(f.dir.path)) names.push_back(entry.path().filename().string());
  CHECK(std::count_if(names.begin(), names.end(), [](const std::string& n) { return n.find("store") != std::string::npos; }) == 1);

  // A preparation killed outright leaves its hidden directory, complete manifest and all: it is not the
  // store, and the next preparation removes it.
  fs::remove_all(f.store());
  const fs::path killed = f.dir.path / ".store.tmp.999999999";
  fs::create_directories(killed);
  write_bytes((killed / "manifest.json").string(), "{}");
  CHECK_FALSE(data::check_store(f.store(), f.settings).usable);
  f.build();
  CHECK_FALSE(fs::exists(killed));
  CHECK(data::check_store(f.store(), f.settings, true).usable);
}

TEST_CASE("store: bad text is an error naming the file and line", "[data][store]") {
  Fixture f;
  write_bytes(f.dir.file("bad.src"), "uno\ndos\ntres \xC3\x28 cuatro\n");
  write_bytes(f.dir.file("nul.src"), "uno\ndos\ntres\ncua\0tro\n"s);
  write_bytes(f.dir.file("four.tgt"), "uno\ndos\ntres\ncuatro\n");
  write_bytes(f.dir.file("five.tgt"), "uno\ndos\ntres\ncuatro\ncinco\n");
  const auto build = [&](const std::string& src, const std::string& tgt) {
    data::StoreSettings s = f.settings;
    s.corpora = {{f.dir.file(src), f.dir.file(tgt), ""}};
    data::build_store(f.store(), s, f.vocab, f.vocab);
  };
  CHECK_THROWS_WITH(build("bad.src", "four.tgt"), f.dir.file("bad.src") + ":3: invalid UTF-8 at byte 6 of the line");
  CHECK_THROWS_WITH(build("nul.src", "four.tgt"), Contains(f.dir.file("nul.src") + ":4: NUL byte at byte 4"));
  CHECK_THROWS_WITH(build("four.tgt", "five.tgt"),
                    f.dir.file("five.tgt") + ":5: this line has no counterpart: " + f.dir.file("four.tgt") +
                        " has 4 lines but " + f.dir.file("five.tgt") +
                        " has 5; a parallel corpus needs one line per sentence in both files");
  CHECK_FALSE(fs::exists(f.store()));
}

TEST_CASE("batcher over the store: the in-memory corpus's batches, resumed mid-epoch bit for bit", "[data][store]") {
  Fixture f;
  f.build();
  const auto store = data::CorpusStore::open(f.store(), f.settings);
  data::CorpusOptions corpus_options;
  corpus_options.max_length = f.settings.max_length;
  data::BatcherOptions options;
  options.max_tokens = 40;
  options.seed = 5;
  data::Batcher from_store(store, options);
  data::Batcher in_memory(
      data::load_parallel_corpus(f.dir.file("a.src"), f.dir.file("a.tgt"), f.vocab, f.vocab, corpus_options), options);
  const int64_t n = from_store.batches_per_epoch();
  REQUIRE(n == in_memory.batches_per_epoch());
  REQUIRE(n > 4);
  std::vector<data::LoadedBatch> whole(2 * n);
  for (auto& b : whole) {
    data::LoadedBatch m;
    REQUIRE(from_store.next(b));
    REQUIRE(in_memory.next(m));
    CHECK(b.pairs == m.pairs);
    CHECK(b.batch.src.to_vector<int32_t>() == m.batch.src.to_vector<int32_t>());
    CHECK(b.batch.tgt_in.to_vector<int32_t>() == m.batch.tgt_in.to_vector<int32_t>());
    CHECK(b.batch.tgt_out.to_vector<int32_t>() == m.batch.tgt_out.to_vector<int32_t>());
  }
  // Resumed from a freshly opened store in the middle of the second epoch.
  const int64_t at = n + n / 2;
  data::Batcher resumed(data::CorpusStore::open(f.store(), f.settings), options, whole[at].position);
  for (int64_t k = at; k < 2 * n; ++k) {
    data::LoadedBatch b;
    REQUIRE(resumed.next(b));
    CHECK(b.position == whole[k].position);
    CHECK(b.batch.src.to_vector<int32_t>() == whole[k].batch.src.to_vector<int32_t>());
    CHECK(b.batch.tgt_out.to_vector<int32_t>() == whole[k].batch.tgt_out.to_vector<int32_t>());
  }
}

TEST_CASE("batcher: corpora mixed by weight, every batch from the seed", "[data][store]") {
  Fixture f;
  write_bytes(f.dir.file("b.src"), text_of(900, 3));
  write_bytes(f.dir.file("b.tgt"), text_of(900, 4));
  f.settings.corpora.push_back({f.dir.file("b.src"), f.dir.file("b.tgt"), "b"});
  f.build();
  const auto store = data::CorpusStore::open(f.store(), f.settings);
  const std::vector<data::CorpusRange> corpora = store->corpora();
  REQUIRE(corpora.size() == 2);
  const int64_t a = corpora[0].size(), b = corpora[1].size(), total = a + b;
  REQUIRE(a > 50);
  REQUIRE(b > 2 * a);

  data::BatcherOptions options;
  options.max_tokens = 40;
  options.seed = 3;
  options.corpus_weights = {3, 1};  // three quarters of each epoch from the smaller corpus: it repeats
  data::Batcher batcher(store, options);
  const int64_t a_share = (3 * total + 2) / 4;  // the largest remainder rounds 3/4 of the epoch: exact to a pair
  std::vector<int64_t> b_seen(static_cast<size_t>(b));
  int64_t mixed_batches = 0;
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::vector<int64_t> a_count(static_cast<size_t>(a)), b_count(static_cast<size_t>(b));
    for (const auto& batch : batcher.epoch_plan(epoch)) {
      std::set<bool> corpora_in_batch;
      for (int64_t i : batch) {
        corpora_in_batch.insert(i < corpora[0].end);
        ++(i < corpora[0].end ? a_count[i] : b_count[i - corpora[1].begin]);
      }
      mixed_batches += corpora_in_batch.size() == 2;
    }
    CHECK(std::accumulate(a_count.begin(), a_count.end(), int64_t{0}) == a_share);
    CHECK(std::accumulate(b_count.begin(), b_count.end(), int64_t{0}) == total - a_share);
    // Corpus a, upsampled: every pair as often as its share holds whole copies, some once more.
    for (int64_t k : a_count) CHECK((k == a_share / a || k == a_share / a + 1));
    // Corpus b, downsampled: no pair twice in an epoch.
    CHECK(*std::max_element(b_count.begin(), b_count.end()) == 1);
    for (size_t i = 0; i < b_count.size(); ++i) b_seen[i] += b_count[i];
  }
  CHECK(mixed_batches > 0);
  // Another sample of b each epoch: three epochs see more of its pairs than one.
  CHECK(std::count_if(b_seen.begin(), b_seen.end(), [](int64_t k) { return k > 0; }) > (total - a_share) * 3 / 2);

  // From the seed: the same plan again, another with another seed.
  CHECK(data::Batcher(store, options).epoch_plan(1) == batcher.epoch_plan(1));
  options.seed = 4;
  CHECK(data::Batcher(store, options).epoch_plan(1) != batcher.epoch_plan(1));
  options.corpus_weights = {1};
  CHECK_THROWS_WITH(data::Batcher(store, options), Contains("1 corpus weights for 2 corpora"));
}

TEST_CASE("sample_lines: every line in order when few, a uniform sample when many", "[data][store]") {
  TempDir dir;
  std::string a, b;
  for (int i = 0; i < 600; ++i) a += fmt::format("a{}\n", i);
  for (int i = 0; i < 400; ++i) b += fmt::format("b{}\n", i);
  write_bytes(dir.file("a"), a);
  write_bytes(dir.file("b"), b);
  const std::vector<std::string> all = data::sample_lines({dir.file("a"), dir.file("b")}, 1000, 1);
  REQUIRE(all.size() == 1000);
  CHECK(all.front() == "a0");
  CHECK(all[600] == "b0");
  CHECK(all.back() == "b399");
  // 200 of 1000: each file's share of the sample follows its share of the lines (binomial, sd ~ 6.9 lines:
  // 5 sd either side).
  const std::vector<std::string> some = data::sample_lines({dir.file("a"), dir.file("b")}, 200, 1);
  REQUIRE(some.size() == 200);
  const auto from_a = std::count_if(some.begin(), some.end(), [](const std::string& s) { return s[0] == 'a'; });
  CHECK(std::abs(from_a - 120) <= 35);
  CHECK(std::set<std::string>(some.begin(), some.end()).size() == 200);
  CHECK(data::sample_lines({dir.file("a"), dir.file("b")}, 200, 1) == some);
  CHECK(data::sample_lines({dir.file("a"), dir.file("b")}, 200, 2) != some);
}

TEST_CASE("count_distinct_lines: each line once, sorted, with how often it occurs", "[data][store]") {
  const std::vector<std::pair<std::string, int64_t>> expected = {{"", 1}, {"a", 3}, {"b", 1}, {"c a", 2}};
  CHECK(data::count_distinct_lines({"a", "c a", "", "a", "b", "c a", "a"}) == expected);
  CHECK(data::count_distinct_lines({}).empty());
}

TEST_CASE("LineReader: lines across its read blocks, and a line longer than one", "[data][store]") {
  TempDir dir;
  std::string text = "\xEF\xBB\xBF";
  std::vector<std::string> expected;
  for (int i = 0; i < 120000; ++i) {
    expected.push_back(std::string(static_cast<size_t>(i % 97), static_cast<char>('a' + i % 26)));
    text += expected.back() + (i % 3 ? "\n" : "\r\n");
  }
  expected.push_back(std::string(size_t{9} << 20, 'x'));  // longer than the 4 MiB blocks
  text += expected.back();
  write_bytes(dir.file("big"), text);
  CHECK(data::read_lines(dir.file("big")) == expected);
}

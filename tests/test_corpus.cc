// Reading text and parallel corpora: line handling, strict UTF-8 with file:line errors, line-count
// mismatches, and the filter that drops empty and too-long pairs but always counts them.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <fstream>

#include "heed/data/corpus.h"
#include "heed/data/text.h"
#include "temp_dir.h"

using namespace heed;
using Catch::Contains;

namespace {

using testing::TempDir;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A small vocabulary over the words the corpus tests use.
data::Vocab small_vocab(const TempDir& dir) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += "uno dos tres cuatro cinco seis siete ocho nueve diez\n";
  write_bytes(dir.file("vocab.txt"), text);
  data::VocabOptions options;
  options.size = 20;
  data::Vocab::train({dir.file("vocab.txt")}, dir.file("vocab.model"), options);
  return data::Vocab::load(dir.file("vocab.model"));
}

}  // namespace

TEST_CASE("read_lines: line ends, a final line without newline, empty lines and a byte order mark", "[data][corpus]") {
  TempDir dir;
  write_bytes(dir.file("a.txt"), "\xEF\xBB\xBF" "first\r\n\nthird ñ\r\nlast");
  CHECK(data::read_lines(dir.file("a.txt")) == std::vector<std::string>{"first", "", "third ñ", "last"});
  write_bytes(dir.file("b.txt"), "one\n\n");
  CHECK(data::read_lines(dir.file("b.txt")) == std::vector<std::string>{"one", ""});
  write_bytes(dir.file("empty.txt"), "");
  CHECK(data::read_lines(dir.file("empty.txt")).empty());
  CHECK_THROWS_WITH(data::read_lines(dir.file("missing.txt")),
                    "cannot read " + dir.file("missing.txt") + ": No such file or directory");
  CHECK_THROWS_WITH(data::read_lines(dir.path.string()), "cannot read " + dir.path.string() + ": it is a directory");
}

TEST_CASE("find_invalid_utf8 accepts well-formed UTF-8 only", "[data][corpus]") {
  CHECK(data::find_invalid_utf8("plain ascii") == std::string_view::npos);
  CHECK(data::find_invalid_utf8("ñ € 𝄞 \xF4\x8F\xBF\xBF") == std::string_view::npos);  // 2, 3, 4 bytes, U+10FFFF
  CHECK(data::find_invalid_utf8("ab\x80") == 2);                // stray continuation byte
  CHECK(data::find_invalid_utf8("a\xC0\xAF") == 1);             // overlong "/"
  CHECK(data::find_invalid_utf8("\xE0\x80\xAF") == 0);          // overlong, 3 bytes
  CHECK(data::find_invalid_utf8("x\xED\xA0\x80") == 1);         // UTF-16 surrogate
  CHECK(data::find_invalid_utf8("\xF4\x90\x80\x80") == 0);      // above U+10FFFF
  CHECK(data::find_invalid_utf8("\xF5\x80\x80\x80") == 0);      // lead byte that never occurs
  CHECK(data::find_invalid_utf8("ok\xE2\x82") == 2);            // truncated at the end
  CHECK(data::find_invalid_utf8("\xE2\x28\xA1") == 0);          // bad continuation
}

TEST_CASE("parallel corpus: errors name the files and lines", "[data][corpus]") {
  TempDir dir;
  const data::Vocab vocab = small_vocab(dir);
  const data::CorpusOptions options;
  write_bytes(dir.file("train.en"), "uno\ndos\ntres\n");
  write_bytes(dir.file("train.es"), "uno\ndos\n");
  CHECK_THROWS_WITH(data::load_parallel_corpus(dir.file("train.en"), dir.file("train.es"), vocab, vocab, options),
                    Contains(dir.file("train.en") + " has 3 lines but " + dir.file("train.es") + " has 2"));

  write_bytes(dir.file("bad.es"), "uno\ndos\ntres \xC3\x28 cuatro\n");
  CHECK_THROWS_WITH(data::load_parallel_corpus(dir.file("train.en"), dir.file("bad.es"), vocab, vocab, options),
                    dir.file("bad.es") + ":3: invalid UTF-8 at byte 6 of the line");

  CHECK_THROWS_WITH(data::load_parallel_corpus(dir.file("nope.en"), dir.file("train.es"), vocab, vocab, options),
                    Contains("cannot read " + dir.file("nope.en")));
  data::CorpusOptions tiny;
  tiny.max_length = 1;
  CHECK_THROWS_WITH(data::load_parallel_corpus(dir.file("train.en"), dir.file("train.en"), vocab, vocab, tiny),
                    Contains("max_length must be at least 2"));
}

TEST_CASE("parallel corpus: empty and too-long pairs are dropped and counted", "[data][corpus]") {
  TempDir dir;
  const data::Vocab vocab = small_vocab(dir);
  const std::string longest_kept = "uno dos tres cuatro";
  data::CorpusOptions options;
  options.max_length = static_cast<int64_t>(vocab.encode(longest_kept).size()) + 1;  // eos counts

  const std::vector<std::string> src = {"uno dos", "", longest_kept, "cinco", longest_kept + " cinco", "seis\r",
                                        "siete"};
  const std::vector<std::string> tgt = {"tres", "cuatro", "uno", "  ", "dos", longest_kept, longest_kept + " seis"};
  std::string src_text, tgt_text;
  for (size_t i = 0; i < src.size(); ++i) {
    src_text += src[i] + "\n";
    tgt_text += tgt[i] + "\r\n";
  }
  write_bytes(dir.file("c.src"), src_text);
  write_bytes(dir.file("c.tgt"), tgt_text);
  const data::ParallelCorpus corpus =
      data::load_parallel_corpus(dir.file("c.src"), dir.file("c.tgt"), vocab, vocab, options);

  CHECK(corpus.report.lines == 7);
  CHECK(corpus.report.kept == 3);
  CHECK(corpus.report.empty == 2);     // line 2 (source), line 4 (target is only spaces)
  CHECK(corpus.report.too_long == 2);  // line 5 (source), line 7 (target)
  CHECK(corpus.report.summary() ==
        fmt::format("kept 3 of 7 sentence pairs; dropped 2 with an empty side and 2 with a side longer than {} tokens",
                    options.max_length));
  CHECK(corpus.line_index == std::vector<int64_t>{0, 2, 5});
  REQUIRE(corpus.size() == 3);
  for (int64_t i = 0; i < corpus.size(); ++i) {
    const size_t line = corpus.line_index[i];
    CHECK(corpus.src_ids[i] == vocab.encode(src[line].substr(0, src[line].find('\r'))));
    CHECK(corpus.tgt_ids[i] == vocab.encode(tgt[line]));
  }
}

// SentencePiece vocabularies: Heed's id convention, exact round trips of accented text for both model
// types, reproducible training, atomic writes and the errors a user can run into.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <sentencepiece_processor.h>

#include "heed/data/vocab.h"
#include "temp_dir.h"

using namespace heed;
using data::Vocab;
using data::VocabOptions;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {

using testing::TempDir;

// `lines` sentences of 3 to 10 words from a fixed Spanish word list, with a fixed pseudo-random choice.
void write_spanish(const std::string& path, int lines) {
  static const char* const words[] = {"dónde", "está",    "la",     "estación", "el",    "niño",   "años",
                                      "qué",   "canción", "mañana", "corazón",  "árbol", "música", "café",
                                      "y",     "de",      "una",    "ciudad",   "lejos", "aquí",   "pequeño"};
  std::ofstream out(path);
  uint32_t state = 12345;
  const auto draw = [&](uint32_t n) { return ((state = state * 1664525u + 1013904223u) >> 8) % n; };
  for (int l = 0; l < lines; ++l) {
    const uint32_t count = 3 + draw(8);
    out << "¿";
    for (uint32_t w = 0; w < count; ++w) out << (w ? " " : "") << words[draw(std::size(words))];
    out << "?\n";
  }
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::vector<std::string> files_in(const TempDir& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir.path)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST_CASE("vocab: unigram and bpe models round-trip accented text with Heed's special ids", "[data][vocab]") {
  const std::string type = GENERATE("unigram", "bpe");
  TempDir dir;
  write_spanish(dir.file("text.es"), 400);
  VocabOptions options;
  options.type = type;
  options.size = 60;
  Vocab::train({dir.file("text.es")}, dir.file("spm.model"), options);
  CHECK(files_in(dir) == std::vector<std::string>{"spm.model", "text.es"});  // no temporary files left

  const Vocab vocab = Vocab::load(dir.file("spm.model"));
  CHECK(vocab.size() == 60);
  CHECK(vocab.pad_id() == 0);
  CHECK(vocab.unk_id() == 1);
  CHECK(vocab.eos_id() == 2);
  CHECK(vocab.path() == dir.file("spm.model"));
  CHECK(vocab.serialized() == read_bytes(dir.file("spm.model")));

  const std::vector<std::string> lines = {"¿dónde está la estación?", "el niño y una canción de café",
                                          "¿qué música aquí?"};
  const std::vector<std::vector<int32_t>> encoded = vocab.encode_lines(lines);
  REQUIRE(encoded.size() == lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    INFO(lines[i]);
    const std::vector<int32_t> ids = vocab.encode(lines[i]);
    CHECK(encoded[i] == ids);
    CHECK(ids.size() > 1);
    CHECK(std::find(ids.begin(), ids.end(), vocab.eos_id()) == ids.end());
    CHECK(std::find(ids.begin(), ids.end(), vocab.pad_id()) == ids.end());
    CHECK(vocab.decode(ids) == lines[i]);
  }
  // "D" never occurs in the training text: it becomes unk, which decodes to SentencePiece's ⁇ mark.
  const std::vector<int32_t> with_unk = vocab.encode("¿Dónde?");
  CHECK(std::count(with_unk.begin(), with_unk.end(), vocab.unk_id()) == 1);
  CHECK(vocab.decode(with_unk) == "¿ ⁇ ónde?");

  // Decoding skips pad and stops at the first eos, as model output needs.
  std::vector<int32_t> padded = {vocab.pad_id()};
  padded.insert(padded.end(), encoded[1].begin(), encoded[1].end());
  padded.push_back(vocab.eos_id());
  padded.insert(padded.end(), encoded[2].begin(), encoded[2].end());
  padded.push_back(vocab.pad_id());
  CHECK(vocab.decode(padded) == lines[1]);
  CHECK(vocab.decode({}).empty());
  CHECK_THROWS_WITH(vocab.decode({5, 60}), Contains("token id 60 is outside the vocabulary") && Contains("60 pieces"));
}

TEST_CASE("vocab: a joint vocabulary trains on several files", "[data][vocab]") {
  TempDir dir;
  write_spanish(dir.file("a.es"), 200);
  std::ofstream(dir.file("b.en")) << "where is the station?\nthe child and a song\n";
  VocabOptions options;
  options.size = 70;
  Vocab::train({dir.file("a.es"), dir.file("b.en")}, dir.file("joint.model"), options);
  const Vocab vocab = Vocab::load(dir.file("joint.model"));
  for (const std::string line : {"where is the station?", "¿dónde está la estación?"}) {
    const auto ids = vocab.encode(line);
    CHECK(std::find(ids.begin(), ids.end(), vocab.unk_id()) == ids.end());
    CHECK(vocab.decode(ids) == line);
  }
}

TEST_CASE("vocab: training on a sample is reproducible from the seed", "[data][vocab]") {
  TempDir dir;
  write_spanish(dir.file("text.es"), 2000);
  VocabOptions options;
  options.size = 50;
  options.max_sentences = 300;
  // Into the same path each time, so replacing an existing model is covered too.
  const auto train = [&](uint64_t seed) {
    options.seed = seed;
    Vocab::train({dir.file("text.es")}, dir.file("spm.model"), options);
    return read_bytes(dir.file("spm.model"));
  };
  const std::string first = train(1);
  const bool same_seed_same_model = train(1) == first, other_seed_other_model = train(2) != first;
  CHECK(same_seed_same_model);
  CHECK(other_seed_other_model);
}

TEST_CASE("vocab: a line repeated counts as often as it occurs, and a tab inside a line is a space", "[data][vocab]") {
  TempDir dir;
  write_spanish(dir.file("text.es"), 200);
  {
    std::ofstream out(dir.file("text.es"), std::ios::app);
    for (int i = 0; i < 300; ++i) out << "xyzzy\n";
    out << "plugh\tqux\n";  // SentencePiece's tsv input would take "qux" for the count
  }
  VocabOptions options;
  options.size = 60;
  Vocab::train({dir.file("text.es")}, dir.file("spm.model"), options);
  // Handed once with its count of 300, the line makes "x" more probable than "▁la", the most frequent word
  // of the rest; counted once, "x" would score about 3.4 nats below it.
  sentencepiece::SentencePieceProcessor processor;
  REQUIRE(processor.Load(dir.file("spm.model")).ok());
  CHECK(processor.GetScore(processor.PieceToId("x")) > processor.GetScore(processor.PieceToId("▁la")));
  const Vocab vocab = Vocab::load(dir.file("spm.model"));
  CHECK(vocab.decode(vocab.encode("plugh qux")) == "plugh qux");
}

TEST_CASE("vocab: errors name the file or option at fault and leave no model behind", "[data][vocab]") {
  TempDir dir;
  write_spanish(dir.file("text.es"), 50);
  const std::string model = dir.file("spm.model");
  VocabOptions options;
  options.size = 100000;
  CHECK_THROWS_WITH(Vocab::train({dir.file("text.es")}, model, options),
                    Contains("vocabulary of size 100000") && Contains(dir.file("text.es")) &&
                        Contains("Vocabulary size too high"));
  CHECK(files_in(dir) == std::vector<std::string>{"text.es"});

  options.size = 40;
  CHECK_THROWS_WITH(Vocab::train({dir.file("text.es"), dir.file("missing.en")}, model, options),
                    Contains("cannot read " + dir.file("missing.en")));
  options.type = "wordpiece";
  CHECK_THROWS_WITH(Vocab::train({dir.file("text.es")}, model, options),
                    Contains("vocabulary type must be unigram or bpe, got 'wordpiece'"));
  CHECK(!fs::exists(model));

  CHECK_THROWS_WITH(Vocab::load(dir.file("none.model")),
                    Contains("cannot read the vocabulary " + dir.file("none.model")));
  CHECK_THROWS_WITH(Vocab::load(dir.file("text.es")),
                    Contains(dir.file("text.es") + " is not a SentencePiece model"));
}

TEST_CASE("vocab: a MarianMT vocab.json renumbers the pieces, both ways", "[data][vocab]") {
  TempDir dir;
  write_spanish(dir.file("text.es"), 400);
  VocabOptions options;
  options.size = 60;
  Vocab::train({dir.file("text.es")}, dir.file("source.spm"), options);
  // OPUS-MT's numbering: </s> 0, <unk> 1, the pieces in an order of the model's own, <pad> last.
  sentencepiece::SentencePieceProcessor spm;
  REQUIRE(spm.Load(dir.file("source.spm")).ok());
  std::vector<std::string> pieces;
  for (int id = 0; id < spm.GetPieceSize(); ++id)
    if (!spm.IsControl(id) && !spm.IsUnknown(id)) pieces.push_back(spm.IdToPiece(id));
  std::reverse(pieces.begin(), pieces.end());
  nlohmann::json map = {{"</s>", 0}, {"<unk>", 1}};
  for (const std::string& p : pieces) map[p] = map.size();
  map["<pad>"] = map.size();
  std::ofstream(dir.file("vocab.json")) << map.dump();

  const Vocab marian = Vocab::load_marian(dir.file("source.spm"), dir.file("vocab.json"));
  CHECK(marian.size() == static_cast<int64_t>(map.size()));
  CHECK(marian.eos_id() == 0);
  CHECK(marian.unk_id() == 1);
  CHECK(marian.pad_id() == static_cast<int32_t>(map.size()) - 1);
  const std::string text = "¿dónde está la música?";
  std::vector<std::string> expected_pieces;
  REQUIRE(spm.Encode(text, &expected_pieces).ok());
  std::vector<int32_t> expected;
  for (const std::string& p : expected_pieces) expected.push_back(map.contains(p) ? map[p].get<int32_t>() : 1);
  CHECK(marian.encode(text) == expected);
  CHECK(marian.encode(text) != Vocab::load(dir.file("source.spm")).encode(text));  // the numbering matters
  std::vector<int32_t> with_eos = expected;
  with_eos.push_back(marian.eos_id());
  CHECK(marian.decode(with_eos) == text);

  std::ofstream(dir.file("no_pad.json")) << nlohmann::json{{"</s>", 0}, {"<unk>", 1}}.dump();
  CHECK_THROWS_WITH(Vocab::load_marian(dir.file("source.spm"), dir.file("no_pad.json")),
                    Contains("no '<pad>' piece"));
}

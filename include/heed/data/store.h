// A binarized, memory-mapped corpus store, as fairseq's MMapIndexedDataset and Megatron's indexed datasets:
// the corpora are encoded once, and training maps the ids instead of reading and encoding text at every
// start, on every rank.
//
// A store is a directory:
//   src.ids, tgt.ids          every kept pair's token ids (int32, no eos), pair after pair, corpus after corpus
//   src.offsets, tgt.offsets  int64: pair i's ids are [offsets[i], offsets[i + 1]) of the ids file
//   lines                     int64: the 0-based line of pair i in its corpus's files, for messages
//   manifest.json             the corpora (files, their size, mtime and CRC-32, their pair ranges and filter
//                             counts), the vocabularies' fingerprint, the filter settings (max_length), and
//                             every other file's size and CRC-32
// It is written into a hidden temporary directory beside it and renamed into place once complete, so a
// preparation interrupted half-way leaves nothing at the store's path, and a store that is there is whole.
//
// Opening maps the files (nothing is read but the manifest and the offsets, which batching needs anyway):
// the page cache holds the ids, shared by every process on the machine, and a rank touches the pages of its
// own batches only. The text is compared by size and modification time, and by CRC-32 only when those
// changed; the offsets are checked against their CRC-32 when opened, the ids only by verify (heed prepare),
// since reading them all would cost a start what the store saves.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "heed/data/corpus.h"
#include "heed/data/token_pairs.h"
#include "heed/data/vocab.h"

namespace heed::data {

struct CorpusFiles {
  std::string src, tgt;  // line-aligned UTF-8 text
  std::string tag;       // its name in logs; empty: the source file's name
};

// What a store's contents depend on: the text, the vocabularies and the filter.
struct StoreSettings {
  std::vector<CorpusFiles> corpora;
  std::string vocab_fingerprint;  // of the vocabularies that encode it: vocab_fingerprint()
  int64_t max_length = 128;       // the filter: tokens per side, eos included
};

// A hash of the vocabularies' model bytes: a store encoded with other vocabularies has other ids.
std::string vocab_fingerprint(const Vocab& src, const Vocab& tgt);

// Whether the store at `dir` can serve `settings`: false, with the reason, when it is missing or stale (other
// text, vocabularies or filter; rebuilt by its caller). A store that contradicts its own manifest (a file
// missing, truncated or corrupted) is refused, naming the file. With verify_ids, the ids files' CRC-32 is
// checked too (they are read in full).
struct StoreStatus {
  bool usable = false;
  std::string reason;  // when not usable
};
StoreStatus check_store(const std::string& dir, const StoreSettings& settings, bool verify_ids = false);

// Encodes the corpora, streaming (bounded memory) and in parallel over OpenMP's threads, filters them and
// writes the store at `dir` atomically, replacing one that is there. Line-count mismatches, invalid UTF-8
// and NUL bytes are errors naming the file and line; then nothing is left at `dir` but a store that was
// there before. Leftovers of preparations that were killed are removed first.
void build_store(const std::string& dir, const StoreSettings& settings, const Vocab& src_vocab,
                 const Vocab& tgt_vocab);

class CorpusStore final : public TokenPairs {
 public:
  // Maps the store at `dir`; refuses it, saying why, unless check_store finds it usable for `settings`.
  static std::shared_ptr<const CorpusStore> open(const std::string& dir, const StoreSettings& settings);
  ~CorpusStore() override;
  CorpusStore(const CorpusStore&) = delete;
  CorpusStore& operator=(const CorpusStore&) = delete;

  int64_t size() const override { return pairs_; }
  std::span<const int32_t> src(int64_t i) const override { return {src_ids_ + src_offsets_[i], span_size(src_offsets_, i)}; }
  std::span<const int32_t> tgt(int64_t i) const override { return {tgt_ids_ + tgt_offsets_[i], span_size(tgt_offsets_, i)}; }
  std::string origin(int64_t i) const override;
  std::vector<CorpusRange> corpora() const override { return ranges_; }

  // What preparation kept and dropped, per corpus.
  const std::vector<FilterReport>& reports() const { return reports_; }
  const std::string& dir() const { return dir_; }

 private:
  struct Mapping {
    const void* data = nullptr;
    size_t size = 0;
  };
  CorpusStore() = default;
  static size_t span_size(const int64_t* offsets, int64_t i) { return static_cast<size_t>(offsets[i + 1] - offsets[i]); }
  // Maps a file of the store, which must have `expected_size` bytes; `advice` for madvise: the ids are read
  // at random (readahead would fetch the neighbours of a batch's pairs, which belong to other batches).
  const void* map(const std::string& name, size_t expected_size, int advice = 0);

  std::string dir_;
  int64_t pairs_ = 0;
  const int32_t *src_ids_ = nullptr, *tgt_ids_ = nullptr;
  const int64_t *src_offsets_ = nullptr, *tgt_offsets_ = nullptr, *lines_ = nullptr;
  std::vector<CorpusRange> ranges_;
  std::vector<FilterReport> reports_;
  std::vector<std::string> sources_;  // each corpus's source file, for origin()
  std::vector<Mapping> mappings_;
};

}  // namespace heed::data

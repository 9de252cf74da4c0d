// A subword vocabulary: one SentencePiece model, trained and applied through SentencePiece's C++ API.
//
// The vocabularies Heed trains number their special pieces as the model config expects: pad=0, unk=1,
// eos=2 and no bos (the decoder starts from pad). A Vocab is cheap to copy (the model is shared and
// immutable) and safe to use from many threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace heed::data {

struct VocabOptions {
  std::string type = "unigram";     // or "bpe"
  int64_t size = 8000;              // pieces, the special ones included
  double character_coverage = 1.0;  // share of the characters the pieces must cover; the rest become unk
  int64_t max_sentences = 2'000'000;  // a random sample of this many lines is trained on
  uint64_t seed = 1;                  // for that sample, so a vocabulary can be trained again identically
};

class Vocab {
 public:
  static constexpr int32_t kPadId = 0, kUnkId = 1, kEosId = 2;

  // Trains on the lines of all `text_files` together (pass both languages' files for a joint vocabulary)
  // and writes `model_path` atomically: a crash or a failed training leaves no partial model behind.
  static void train(const std::vector<std::string>& text_files, const std::string& model_path,
                    const VocabOptions& options);
  // A model without pad or eos pieces is an error: batches need both.
  static Vocab load(const std::string& model_path);
  // A MarianMT (OPUS-MT) vocabulary: SentencePiece cuts the text into pieces, and the model's vocab.json
  // maps each piece to the model's id ({"</s>": 0, "<unk>": 1, ..., "<pad>": N - 1}); pieces it lacks
  // become <unk>, as in Hugging Face's MarianTokenizer.
  static Vocab load_marian(const std::string& spm_path, const std::string& vocab_json);

  // Token ids of one line of text, without eos.
  std::vector<int32_t> encode(std::string_view text) const;
  // Many lines at once, in parallel; result i holds the ids of lines[i].
  std::vector<std::vector<int32_t>> encode_lines(const std::vector<std::string>& lines) const;
  // Plain text of the ids up to the first eos; pad ids are skipped.
  std::string decode(const std::vector<int32_t>& ids) const;

  int64_t size() const;
  // The piece numbered `id`, in the numbering encode and decode use.
  std::string piece(int32_t id) const;
  int32_t pad_id() const { return pad_id_; }
  int32_t unk_id() const { return unk_id_; }
  int32_t eos_id() const { return eos_id_; }
  const std::string& path() const { return path_; }
  // The model file's bytes, so a checkpoint can store the vocabulary or check that it is unchanged.
  const std::string& serialized() const { return serialized_; }

 private:
  Vocab() = default;  // only load() makes one, so every Vocab has a model

  // Pieces to ids and back through the model's own numbering (load_marian); SentencePiece's ids otherwise.
  bool encode_into(std::string_view text, std::vector<int32_t>& ids) const;
  static Vocab load_processor(const std::string& model_path);

  std::shared_ptr<const sentencepiece::SentencePieceProcessor> processor_;
  std::shared_ptr<const std::unordered_map<std::string, int32_t>> piece_ids_;
  std::shared_ptr<const std::vector<std::string>> pieces_;
  std::string path_, serialized_;
  int32_t pad_id_ = -1, unk_id_ = -1, eos_id_ = -1;
};

}  // namespace heed::data

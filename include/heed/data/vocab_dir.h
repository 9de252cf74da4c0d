// The tokenizers of a run, checkpoint or model directory, by the names training and save_pretrained give
// their files.
#pragma once

#include <string>
#include <vector>

#include "heed/data/vocab.h"

namespace heed::data {

// A run's own SentencePiece models: vocab.model (joint), else vocab.src.model and vocab.tgt.model.
std::vector<std::string> vocab_names(bool joint);
// A MarianMT (OPUS-MT) model's tokenizer, as save_pretrained writes it.
inline const std::vector<std::string> kMarianVocab = {"source.spm", "target.spm", "vocab.json"};

struct Vocabularies {
  Vocab src, tgt;
  std::vector<std::string> files;
};

// vocab.model (joint), vocab.src.model and vocab.tgt.model, or a MarianMT model's source.spm, target.spm
// and vocab.json. Throws when none is there.
Vocabularies load_vocabularies(const std::string& dir);

// How two directories' vocabularies differ, naming them `a_name` and `b_name`: "the target vocabulary has
// 100 pieces in A but 90 in B", "source id 57 is '▁la' in A but '▁el' in B". Empty when both number the same
// pieces alike, source and target: models trained with them then mean the same thing by every id.
std::string vocabulary_difference(const Vocabularies& a, const std::string& a_name, const Vocabularies& b,
                                  const std::string& b_name);

}  // namespace heed::data

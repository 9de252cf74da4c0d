// Conversion between Heed model directories and Hugging Face MarianMT checkpoints (the section
// "Hugging Face MarianMT names" of docs/model.md).
//
// Import is strict about what defines the network: a config field that changes the function (sizes,
// activation, ties, scaling, ids, a layer norm or position scheme Heed lacks) is read, and a value Heed
// cannot build is an error naming the field, as is a tensor the converter does not understand, because
// silently dropping such a thing would give a model that loads and translates worse for no visible reason.
// All other config fields (generation defaults, bookkeeping such as transformers_version or dtype, and
// whatever later releases add) are logged once and ignored; docs/model.md lists the fields read.
#pragma once

#include <string>
#include <vector>

#include "heed/io/safetensors.h"
#include "heed/nn/model_dir.h"

namespace heed::nn {

// Reads hf_dir/config.json (MarianConfig; absent fields take MarianConfig's defaults, as
// from_pretrained does) and hf_dir/model.safetensors. Tied copies that save_pretrained dropped are
// restored from the one kept; copies that are present must be equal. Position tables, if present, must be
// Marian's sinusoid with max_position_embeddings rows, except that row 0 of the decoder's may hold the
// decoder start token's embedding as export_marian_hf folds it (the start token's own row is then zero);
// it is moved back. A non-zero final_logits_bias becomes Heed's; an all-zero one is dropped. The ids are
// the checkpoint's own: OPUS-MT's (pad last) as well as those of Heed's earlier exports (pad 0).
ModelDir import_marian_hf(const std::string& hf_dir);

// What an export writes besides the weights, so that MarianTokenizer and pipeline("translation") load it.
struct HfTokenizer {
  std::string source_spm, target_spm;  // SentencePiece models, copied as source.spm and target.spm
  std::vector<std::string> pieces;     // the piece of every model id (one vocabulary for both sides)
  std::string source_lang, target_lang;
};

// The search that validation used, written to generation_config.json.
struct HfGeneration {
  int64_t beam_size = 4;
  double length_penalty = 1.0;
};

// The export's numbering, OPUS-MT's: exported id i is the model's id order[i], with eos first, pad last
// and every other id in its order. MarianTokenizer and CTranslate2's converter (which drops the last row
// as <pad>) expect it; Heed's own vocabularies have pad 0, unk 1, eos 2.
std::vector<int64_t> opus_order(const ModelConfig& config);

// Writes hf_dir/config.json, model.safetensors and generation_config.json for MarianMTModel.from_pretrained,
// in OPUS-MT's numbering (opus_order): every tied copy, the position tables (max_positions rows) and
// final_logits_bias [1, V] (zeros when the model has none). MarianMT tools other than transformers
// (CTranslate2, Marian) start the decoder from a zero vector where Heed embeds the start token (pad), so
// that embedding is added to row 0 of the decoder's position table, which only the start token uses, and
// its row is zeroed: every MarianMT runtime then computes Heed's function. With a tokenizer, also
// source.spm, target.spm, vocab.json and tokenizer_config.json. A pre-norm model, or anything else
// MarianMT cannot represent, is an error; `source` names the model in messages.
void export_marian_hf(const ModelDir& model, const std::string& source, const std::string& hf_dir,
                      int64_t max_positions = 512, const HfTokenizer* tokenizer = nullptr,
                      const HfGeneration& generation = {});

// The same tensors under MarianMT's names (final_logits_bias reshaped to [1, V]), for files such as
// gradients that use Heed's parameter names; nothing is added. A name outside the contract is an error
// that lists every such name; `source` names the file in messages.
io::TensorMap rename_to_hf(const io::TensorMap& tensors, const std::string& source);

}  // namespace heed::nn

// Conversion between Heed model directories and Hugging Face MarianMT checkpoints (the section
// "Hugging Face MarianMT names" of docs/model.md).
//
// Import is strict: a config field or tensor that the converter does not understand is an error that
// lists every one of them, because silently dropping something that changes the model's function (a
// layer norm, a different position scheme, a tie mode Heed lacks) would give a model that loads and
// translates worse for no visible reason. Fields that only matter to HF's generation or bookkeeping are
// named in an explicit allow-list and ignored.
#pragma once

#include <string>

#include "heed/io/safetensors.h"
#include "heed/nn/model_dir.h"

namespace heed::nn {

// Reads hf_dir/config.json (MarianConfig; absent fields take MarianConfig's defaults, as
// from_pretrained does) and hf_dir/model.safetensors. Tied copies that save_pretrained dropped are
// restored from the one kept; copies that are present must be equal. Position tables, if present, must be
// Marian's sinusoid. A non-zero final_logits_bias becomes Heed's; an all-zero one is dropped.
ModelDir import_marian_hf(const std::string& hf_dir);

// Writes hf_dir/config.json and hf_dir/model.safetensors for MarianMTModel.from_pretrained: every tied
// copy, the position tables (max_positions rows) and final_logits_bias [1, V] (zeros when the model has
// none). A pre-norm model, or anything else MarianMT cannot represent, is an error; `source` names the model
// in messages.
void export_marian_hf(const ModelDir& model, const std::string& source, const std::string& hf_dir,
                      int64_t max_positions = 512);

// The same tensors under MarianMT's names (final_logits_bias reshaped to [1, V]), for files such as
// gradients that use Heed's parameter names; nothing is added. A name outside the contract is an error
// that lists every such name; `source` names the file in messages.
io::TensorMap rename_to_hf(const io::TensorMap& tensors, const std::string& source);

}  // namespace heed::nn

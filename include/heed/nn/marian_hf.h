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

#include "heed/io/safetensors.h"
#include "heed/nn/model_dir.h"

namespace heed::nn {

// Reads hf_dir/config.json (MarianConfig; absent fields take MarianConfig's defaults, as
// from_pretrained does) and hf_dir/model.safetensors. Tied copies that save_pretrained dropped are
// restored from the one kept; copies that are present must be equal. Position tables, if present, must be
// Marian's sinusoid with max_position_embeddings rows. A non-zero final_logits_bias becomes Heed's; an
// all-zero one is dropped.
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

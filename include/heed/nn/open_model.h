// Opening a trained model for use, one way for every command that needs one: translate, translate-ids,
// and train's --init-from.
#pragma once

#include <memory>
#include <string>

#include "heed/nn/model_config.h"
#include "heed/nn/modules.h"
#include "heed/nn/parameters.h"
#include "heed/nn/transformer.h"

namespace heed::nn {

// A model ready to run: its weights in `store`, on the device asked for.
struct OpenedModel {
  std::string dir;  // where it was read: the model directory a run directory resolved to, or `path` itself
  ModelConfig config;
  std::unique_ptr<ParameterStore> store;
  std::unique_ptr<Transformer> model;
  Precision precision;  // the precision asked for, resolved for the device
};

// Opens the model at `path`: a Hugging Face MarianMT directory (config.json), a model or checkpoint
// directory (a checkpoint is verified against its manifest first), or a run directory (resolve_model_dir
// with `metric`). `precision` is fp32, bf16, fp16 or auto, as resolve_precision reads it, for the option
// named `precision_option`.
OpenedModel open_model(const std::string& path, Device device, const std::string& precision,
                       const std::string& precision_option, const std::string& metric = "bleu");

}  // namespace heed::nn

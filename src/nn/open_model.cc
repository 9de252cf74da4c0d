#include "heed/nn/open_model.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "heed/nn/marian_hf.h"
#include "heed/nn/model_dir.h"
#include "heed/nn/modules.h"

namespace heed::nn {

OpenedModel open_model(const std::string& path, Device device, const std::string& precision,
                       const std::string& precision_option, const std::string& metric) {
  namespace fs = std::filesystem;
  OpenedModel opened;
  ModelDir saved;
  if (fs::exists(fs::path(path) / "config.json")) {
    spdlog::info("opening the Hugging Face MarianMT model {}", path);
    opened.dir = path;
    saved = import_marian_hf(path);
  } else {
    opened.dir = resolve_model_dir(path, metric);
    if (fs::exists(fs::path(opened.dir) / kCheckpointManifest)) verify_checkpoint(opened.dir);
    saved = load_model_dir(opened.dir);
  }
  opened.precision = resolve_precision(precision, device, precision_option);
  opened.config = saved.config;
  opened.store = std::make_unique<ParameterStore>();
  opened.model = std::make_unique<Transformer>(opened.config, *opened.store);
  opened.store->load(saved.weights, opened.dir);
  opened.store->to(device);
  return opened;
}

}  // namespace heed::nn

// Reading and writing the safetensors format (Hugging Face): an 8-byte little-endian header length, a
// JSON header mapping each tensor name to {dtype, shape, data_offsets} (plus an optional
// "__metadata__" map of strings), then the raw little-endian tensor bytes.
#pragma once

#include <map>
#include <string>

#include "heed/core/tensor.h"

namespace heed::io {

using TensorMap = std::map<std::string, Tensor>;
using Metadata = std::map<std::string, std::string>;

// Loads every tensor onto the CPU. A malformed file (truncated, bad header, offsets out of range or
// overlapping, unknown dtype) is an error that names the file and the problem.
TensorMap load_safetensors(const std::string& path, Metadata* metadata = nullptr);

// Writes atomically: a temporary file in the same directory, fsync, then rename over `path`, so a crash
// leaves either the old file or the new one. Tensors may have any layout and device.
void save_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata = {});

}  // namespace heed::io

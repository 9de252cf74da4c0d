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

// The metadata entry with the CRC-32 of the whole data section (8 hex digits), which Heed writes into the
// weights of its model directories: a flipped bit in the tensor data is found on load even where no
// checkpoint manifest covers the file.
inline constexpr const char* kDataCrc32Key = "heed_data_crc32";

// Loads every tensor onto the CPU. A malformed file (truncated, bad header, offsets out of range or
// overlapping, unknown dtype), or one whose data fails its recorded kDataCrc32Key, is an error that names
// the file and the problem.
TensorMap load_safetensors(const std::string& path, Metadata* metadata = nullptr);

// Writes atomically: a temporary file in the same directory, fsync, then rename over `path`, so a crash
// leaves either the old file or the new one. Tensors may have any layout and device. `data_checksum`
// records kDataCrc32Key in the metadata.
void save_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata = {},
                      bool data_checksum = false);

}  // namespace heed::io

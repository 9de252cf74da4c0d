// safetensors I/O. The reader trusts nothing in the file: every header field is checked against the
// file's real size before a byte of tensor data is read, and the data section must be covered exactly
// once (no overlaps, gaps or trailing bytes), which is what the reference implementation (Hugging Face's
// Rust crate) demands too, so a file Heed accepts is one PyTorch accepts. Tensor data is read straight
// into each tensor's storage; nothing holds the whole file in memory.
//
// The writer produces what the reference writer does: keys sorted, the header padded with spaces to a
// multiple of 8 bytes, and the data ordered by element size (largest first, then by name) so every
// tensor starts at an offset aligned to its element size once the file is memory-mapped. It gathers
// strided tensors byte by byte (never through a float conversion, which would round I64 values), and
// commits with temp file + fsync + rename + directory fsync so a crash never leaves a torn checkpoint.
#include "heed/io/safetensors.h"

#include "heed/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

namespace heed::io {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

namespace {

using nlohmann::json;

// One tensor entry of the header, validated.
struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;  // byte offsets into the data section
};

uint64_t read_u64_le(const unsigned char* b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

Entry parse_entry(const std::string& path, const std::string& name, const json& e) {
  HEED_CHECK(e.is_object(), "{}: header entry '{}' is not an object", path, name);
  for (const auto& [key, value] : e.items())
    HEED_CHECK(key == "dtype" || key == "shape" || key == "data_offsets",
               "{}: tensor '{}' has unknown field '{}' (expected dtype, shape, data_offsets)", path, name, key);
  for (const char* key : {"dtype", "shape", "data_offsets"})
    HEED_CHECK(e.contains(key), "{}: tensor '{}' has no '{}'", path, name, key);

  Entry entry{name, DType::F32, {}, 0, 0};
  HEED_CHECK(e["dtype"].is_string(), "{}: tensor '{}': dtype must be a string, got {}", path, name, e["dtype"].dump());
  try {
    entry.dtype = dtype_from_name(e["dtype"].get<std::string>());
  } catch (const Error& err) {
    HEED_CHECK(false, "{}: tensor '{}': {}", path, name, err.what());
  }

  const json& shape = e["shape"];
  HEED_CHECK(shape.is_array(), "{}: tensor '{}': shape must be a list, got {}", path, name, shape.dump());
  for (const json& s : shape) {
    HEED_CHECK(s.is_number_unsigned() && s.get<uint64_t>() <= uint64_t{1} << 62,
               "{}: tensor '{}': shape {} has an entry that is not a non-negative integer", path, name, shape.dump());
    entry.shape.push_back(s.get<int64_t>());
  }

  const json& offsets = e["data_offsets"];
  HEED_CHECK(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
                 offsets[1].is_number_unsigned(),
             "{}: tensor '{}': data_offsets must be two non-negative integers [begin, end], got {}", path, name,
             offsets.dump());
  entry.begin = offsets[0].get<uint64_t>();
  entry.end = offsets[1].get<uint64_t>();
  HEED_CHECK(entry.begin <= entry.end, "{}: tensor '{}': data_offsets [{}, {}] end before they begin", path, name,
             entry.begin, entry.end);

  // numel * element size, guarding against overflow from absurd shapes.
  uint64_t bytes = dtype_size(entry.dtype);
  for (int64_t s : entry.shape) {
    HEED_CHECK(s == 0 || bytes <= UINT64_MAX / static_cast<uint64_t>(s), "{}: tensor '{}': shape {} is too large",
               path, name, shape_str(entry.shape));
    bytes *= static_cast<uint64_t>(s);
  }
  HEED_CHECK(entry.end - entry.begin == bytes,
             "{}: tensor '{}': {} of shape {} needs {} bytes but data_offsets [{}, {}] span {}", path, name,
             dtype_name(entry.dtype), shape_str(entry.shape), bytes, entry.begin, entry.end, entry.end - entry.begin);
  return entry;
}

// Checks that the entries tile [0, data_size) exactly: in bounds, no overlap, no gap.
void check_layout(const std::string& path, std::vector<Entry>& entries, uint64_t data_size) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    HEED_CHECK(e.end <= data_size, "{}: tensor '{}': data_offsets [{}, {}] lie outside the {}-byte data section",
               path, e.name, e.begin, e.end, data_size);
    HEED_CHECK(e.begin >= pos, "{}: tensors '{}' [{}, {}] and '{}' [{}, {}] overlap", path, previous->name,
               previous->begin, previous->end, e.name, e.begin, e.end);
    HEED_CHECK(e.begin == pos, "{}: bytes [{}, {}) of the data section belong to no tensor (before '{}')", path, pos,
               e.begin, e.name);
    pos = e.end;
    previous = &e;
  }
  HEED_CHECK(pos == data_size, "{}: the data section has {} bytes but the tensors cover only {}", path, data_size,
             pos);
}

// Writes a CPU tensor's elements in row-major order, whatever its strides, by copying raw bytes.
void gather_bytes(const Tensor& t, char* out) {
  const size_t es = dtype_size(t.dtype());
  const char* base = static_cast<const char*>(t.raw_data());
  if (t.is_contiguous()) {
    std::memcpy(out, base, t.nbytes());
    return;
  }
  const int nd = t.dim();
  const int64_t inner = t.size(-1), inner_stride = t.stride(-1);
  const int64_t rows = t.numel() / inner;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t offset = 0, rem = r;
    for (int d = nd - 2; d >= 0; --d) {
      offset += (rem % t.size(d)) * t.stride(d);
      rem /= t.size(d);
    }
    for (int64_t i = 0; i < inner; ++i, out += es)
      std::memcpy(out, base + (offset + i * inner_stride) * static_cast<int64_t>(es), es);
  }
}

}  // namespace

TensorMap load_safetensors(const std::string& path, Metadata* metadata) {
  std::ifstream file(path, std::ios::binary);
  HEED_CHECK(file.good(), "cannot open safetensors file {}: {}", path, std::strerror(errno));
  file.seekg(0, std::ios::end);
  const uint64_t file_size = static_cast<uint64_t>(file.tellg());
  file.seekg(0);
  HEED_CHECK(file_size >= 8, "{}: not a safetensors file: {} bytes, shorter than the 8-byte header length", path,
             file_size);
  unsigned char length_bytes[8];
  file.read(reinterpret_cast<char*>(length_bytes), 8);
  const uint64_t header_size = read_u64_le(length_bytes);
  HEED_CHECK(header_size <= file_size - 8, "{}: header length {} runs past the end of the file ({} bytes)", path,
             header_size, file_size);

  std::string header_text(header_size, '\0');
  file.read(header_text.data(), static_cast<std::streamsize>(header_size));
  HEED_CHECK(file.good(), "{}: cannot read the {}-byte header", path, header_size);
  json header;
  try {
    header = json::parse(header_text);
  } catch (const json::exception& e) {
    HEED_CHECK(false, "{}: the header is not valid JSON: {}", path, e.what());
  }
  HEED_CHECK(header.is_object(), "{}: the header must be a JSON object, got {}", path, header.type_name());

  std::vector<Entry> entries;
  Metadata found;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      HEED_CHECK(value.is_object(), "{}: __metadata__ must be an object of strings", path);
      for (const auto& [key, v] : value.items()) {
        HEED_CHECK(v.is_string(), "{}: __metadata__ entry '{}' must be a string, got {}", path, key, v.dump());
        found[key] = v.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, name, value));
  }
  const uint64_t data_start = 8 + header_size;
  check_layout(path, entries, file_size - data_start);

  TensorMap tensors;
  uint32_t crc = 0;  // of the data section: the entries are in file order after check_layout
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    file.seekg(static_cast<std::streamoff>(data_start + e.begin));
    file.read(static_cast<char*>(t.raw_data()), static_cast<std::streamsize>(e.end - e.begin));
    HEED_CHECK(file.good(), "{}: cannot read the data of tensor '{}'", path, e.name);
    crc = crc32(t.raw_data(), e.end - e.begin, crc);
    tensors.emplace(e.name, std::move(t));
  }
  const auto recorded = found.find(kDataCrc32Key);
  if (recorded != found.end()) {
    const std::string expected = fmt::format("{:08x}", crc);
    HEED_CHECK(recorded->second == expected,
               "{}: the tensor data fails its checksum (CRC-32 {}, recorded {}): the file is damaged", path, expected,
               recorded->second);
  }
  if (metadata) metadata->insert(found.begin(), found.end());
  return tensors;
}

void save_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata,
                      bool data_checksum) {
  std::vector<std::pair<const std::string*, Tensor>> order;
  for (const auto& [name, t] : tensors) {
    HEED_CHECK(name != "__metadata__", "{}: '__metadata__' cannot be a tensor name", path);
    HEED_CHECK(t.defined(), "{}: tensor '{}' is undefined", path, name);
    order.emplace_back(&name, t.device().is_cpu() ? t : t.contiguous().to(Device::cpu()));
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return dtype_size(a.second.dtype()) > dtype_size(b.second.dtype());
  });

  Metadata full = metadata;
  std::vector<char> buffer;
  if (data_checksum) {  // gathers the data twice (the header, with the checksum, comes first) to hold none of it
    uint32_t crc = 0;
    for (const auto& [name, t] : order) {
      buffer.resize(t.nbytes());
      if (!buffer.empty()) gather_bytes(t, buffer.data());
      crc = crc32(buffer.data(), buffer.size(), crc);
    }
    full[kDataCrc32Key] = fmt::format("{:08x}", crc);
  }
  json header = json::object();  // std::map underneath: keys come out sorted
  if (!full.empty()) header["__metadata__"] = full;
  uint64_t offset = 0;
  for (const auto& [name, t] : order) {
    header[*name] = {{"dtype", dtype_name(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  unsigned char length_bytes[8];
  for (int i = 0; i < 8; ++i) length_bytes[i] = static_cast<unsigned char>(header_text.size() >> (8 * i));

  AtomicFile out(path);
  out.write(length_bytes, 8);
  out.write(header_text.data(), header_text.size());
  for (const auto& [name, t] : order) {
    buffer.resize(t.nbytes());
    if (!buffer.empty()) gather_bytes(t, buffer.data());
    out.write(buffer.data(), buffer.size());
  }
  out.commit();
}

}  // namespace heed::io

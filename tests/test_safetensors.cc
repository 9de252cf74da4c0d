// safetensors: exact round trips of every dtype and layout, the byte layout the spec prescribes, and one
// rejection test per way a file can be malformed, each matching the message a user would see.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gradcheck.h"
#include "heed/io/safetensors.h"
#include "temp_dir.h"

using namespace heed;
namespace fs = std::filesystem;

namespace {

using testing::TempDir;

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string u64_le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

// A file with the given header text (not padded) and data bytes.
std::string file_bytes(const std::string& header, const std::string& data) {
  return u64_le(header.size()) + header + data;
}

// Row-major bytes of a tensor of any layout, by element index, for comparing round trips exactly.
std::string logical_bytes(const Tensor& t) {
  const size_t es = dtype_size(t.dtype());
  std::string out;
  std::vector<int64_t> index(t.dim(), 0);
  for (int64_t n = 0; n < t.numel(); ++n) {
    int64_t offset = 0;
    for (int d = 0; d < t.dim(); ++d) offset += index[d] * t.stride(d);
    out.append(static_cast<const char*>(t.raw_data()) + offset * static_cast<int64_t>(es), es);
    for (int d = t.dim() - 1; d >= 0 && ++index[d] == t.size(d); --d) index[d] = 0;
  }
  return out;
}

// A tensor of the given dtype whose bytes are a fixed pseudo-random pattern.
Tensor patterned(const Shape& shape, DType dtype, uint8_t seed) {
  Tensor t = Tensor::empty(shape, dtype);
  auto* p = static_cast<uint8_t*>(t.raw_data());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(i * 37 + seed * 101 + 11);
  return t;
}

}  // namespace

TEST_CASE("safetensors round trip keeps every dtype and layout bit-exact", "[io][safetensors]") {
  TempDir dir;
  io::TensorMap tensors;
  tensors["f32"] = testing::random_tensor({3, 5}, 1);
  tensors["bf16"] = patterned({4, 3}, DType::BF16, 2);
  tensors["f16"] = patterned({7}, DType::F16, 3);
  tensors["i32"] = Tensor::from_vector<int32_t>({-1, 0, 2147483647, -2147483647 - 1}, {2, 2});
  // Values above 2^24 and 2^53 would be rounded by any copy through float or double.
  tensors["i64"] = Tensor::from_vector<int64_t>({(int64_t{1} << 53) + 1, -3, 16777217, INT64_MAX, INT64_MIN, 7},
                                                {2, 3});
  tensors["u8"] = patterned({5, 1}, DType::U8, 4);
  tensors["transposed_f32"] = testing::random_tensor({4, 6}, 5).transpose(0, 1);
  tensors["transposed_i64"] = tensors["i64"].transpose(0, 1);
  tensors["strided_bf16"] = patterned({2, 6, 3}, DType::BF16, 6).narrow(1, 1, 4).transpose(0, 2);
  tensors["empty"] = Tensor::empty({0});
  tensors["empty_2d_i32"] = Tensor::empty({3, 0}, DType::I32);
  tensors["scalar"] = Tensor::scalar(2.5f);
  REQUIRE_FALSE(tensors["transposed_f32"].is_contiguous());
  REQUIRE_FALSE(tensors["strided_bf16"].is_contiguous());

  const std::string path = dir.file("all.safetensors");
  io::save_safetensors(path, tensors, {{"format", "pt"}, {"note", "round trip"}});
  io::Metadata metadata;
  io::TensorMap loaded = io::load_safetensors(path, &metadata);

  CHECK(metadata == io::Metadata{{"format", "pt"}, {"note", "round trip"}});
  REQUIRE(loaded.size() == tensors.size());
  for (const auto& [name, original] : tensors) {
    INFO("tensor " << name);
    REQUIRE(loaded.count(name) == 1);
    const Tensor& t = loaded.at(name);
    CHECK(t.dtype() == original.dtype());
    CHECK(t.shape() == original.shape());
    CHECK(t.is_contiguous());
    CHECK(logical_bytes(t) == logical_bytes(original));
  }
  // Only the committed file remains: the temporary file was renamed, not left behind.
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
}

TEST_CASE("safetensors writer follows the spec's byte layout", "[io][safetensors]") {
  TempDir dir;
  const std::string path = dir.file("layout.safetensors");
  io::TensorMap tensors;
  tensors["b"] = patterned({3}, DType::U8, 1);
  tensors["a"] = patterned({2}, DType::F16, 2);
  tensors["c"] = Tensor::from_vector<int64_t>({1, 2}, {2});
  io::save_safetensors(path, tensors);
  const std::string bytes = read_bytes(path);

  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  CHECK(n % 8 == 0);  // the data section starts 8-byte aligned
  REQUIRE(bytes.size() == 8 + n + 3 + 4 + 16);
  const std::string header_text = bytes.substr(8, n);
  CHECK(n - (header_text.find_last_not_of(' ') + 1) < 8);  // padded with at most 7 spaces
  const auto header = nlohmann::json::parse(header_text);
  CHECK_FALSE(header.contains("__metadata__"));  // only written when there is metadata

  // Keys appear in sorted order in the text.
  CHECK(header_text.find("\"a\"") < header_text.find("\"b\""));
  CHECK(header_text.find("\"b\"") < header_text.find("\"c\""));
  // Largest elements first, so each tensor is aligned to its element size: c (I64), a (F16), b (U8).
  CHECK(header["c"]["data_offsets"] == nlohmann::json{0, 16});
  CHECK(header["a"]["data_offsets"] == nlohmann::json{16, 20});
  CHECK(header["b"]["data_offsets"] == nlohmann::json{20, 23});
  CHECK(header["a"]["dtype"] == "F16");
  CHECK(header["b"]["shape"] == nlohmann::json{3});
  CHECK(bytes.substr(8 + n, 16) == logical_bytes(tensors["c"]));
  CHECK(bytes.substr(8 + n + 20, 3) == logical_bytes(tensors["b"]));
}

TEST_CASE("safetensors writer replaces an existing file", "[io][safetensors]") {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  io::save_safetensors(path, {{"x", Tensor::full({2}, 1.0f)}});
  io::save_safetensors(path, {{"y", Tensor::full({3}, 2.0f)}});
  io::TensorMap loaded = io::load_safetensors(path);
  REQUIRE(loaded.size() == 1);
  CHECK(loaded.at("y").to_vector<float>() == std::vector<float>{2, 2, 2});
  CHECK_THROWS_WITH(io::save_safetensors(dir.file("no/such/dir/w.safetensors"), {{"x", Tensor::full({1}, 1.0f)}}),
                    Catch::Contains("cannot create") && Catch::Contains("no/such/dir/w.safetensors"));
}

TEST_CASE("safetensors reader parses a file built by hand from the spec", "[io][safetensors]") {
  TempDir dir;
  const std::string path = dir.file("spec.safetensors");
  // Header length 8 bytes LE, then the JSON (unpadded here, which the spec allows), then the data:
  // "w" = I32 [2, 2] {1, -2, 3, 256}, "h" = BF16 [2] {1.0, -2.0} = bits 0x3f80, 0xc000.
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]},)"
      R"("h":{"dtype":"BF16","shape":[2],"data_offsets":[16,20]}})";
  const std::string data = std::string("\x01\x00\x00\x00\xfe\xff\xff\xff\x03\x00\x00\x00\x00\x01\x00\x00", 16) +
                           std::string("\x80\x3f\x00\xc0", 4);
  write_bytes(path, file_bytes(header, data));

  io::Metadata metadata;
  io::TensorMap t = io::load_safetensors(path, &metadata);
  CHECK(metadata == io::Metadata{{"format", "pt"}});
  REQUIRE(t.size() == 2);
  CHECK(t.at("w").dtype() == DType::I32);
  CHECK(t.at("w").shape() == Shape{2, 2});
  CHECK(t.at("w").to_vector<int32_t>() == std::vector<int32_t>{1, -2, 3, 256});
  CHECK(t.at("h").dtype() == DType::BF16);
  CHECK(t.at("h").to(DType::F32).to_vector<float>() == std::vector<float>{1.0f, -2.0f});
}

TEST_CASE("safetensors reader rejects malformed files with a message naming the file", "[io][safetensors]") {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  const std::string good_entry = R"("x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string eight(8, '\x01');

  struct Case {
    const char* what;
    std::string bytes;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"shorter than 8 bytes", std::string("\x05\x00\x00", 3), "3 bytes, shorter than the 8-byte header length"},
      {"header length beyond the file", u64_le(1000) + "{}", "header length 1000 runs past the end of the file (10 bytes)"},
      {"bad JSON", file_bytes(R"({"x": {"dtype": )", ""), "the header is not valid JSON"},
      {"header not an object", file_bytes("[1, 2]", ""), "the header must be a JSON object, got array"},
      {"missing dtype", file_bytes(R"({"x":{"shape":[2],"data_offsets":[0,8]}})", eight), "tensor 'x' has no 'dtype'"},
      {"missing shape", file_bytes(R"({"x":{"dtype":"F32","data_offsets":[0,8]}})", eight), "tensor 'x' has no 'shape'"},
      {"missing offsets", file_bytes(R"({"x":{"dtype":"F32","shape":[2]}})", eight), "tensor 'x' has no 'data_offsets'"},
      {"unknown field", file_bytes(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"stride":[1]}})", eight),
       "tensor 'x' has unknown field 'stride'"},
      {"entry not an object", file_bytes(R"({"x":[1]})", ""), "header entry 'x' is not an object"},
      {"unknown dtype", file_bytes(R"({"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", eight),
       "tensor 'x': unsupported dtype 'F64'"},
      {"negative dimension", file_bytes(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight),
       "tensor 'x': shape [-2] has an entry that is not a non-negative integer"},
      {"bad offsets", file_bytes(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", eight),
       "data_offsets must be two non-negative integers"},
      {"offsets reversed", file_bytes(R"({"x":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", eight),
       "data_offsets [8, 0] end before they begin"},
      {"shape/offset mismatch", file_bytes(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight),
       "tensor 'x': F32 of shape [3] needs 12 bytes but data_offsets [0, 8] span 8"},
      {"offsets outside the data", file_bytes(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", eight),
       "tensor 'x': data_offsets [0, 16] lie outside the 8-byte data section"},
      {"overlapping tensors",
       file_bytes("{" + good_entry + R"(,"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight),
       "tensors 'x' [0, 8] and 'y' [4, 8] overlap"},
      {"gap between tensors", file_bytes(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight),
       "bytes [0, 4) of the data section belong to no tensor (before 'x')"},
      {"trailing bytes", file_bytes("{" + good_entry + "}", eight + "junk"),
       "the data section has 12 bytes but the tensors cover only 8"},
      {"metadata not strings", file_bytes(R"({"__metadata__":{"epoch":3}})", ""),
       "__metadata__ entry 'epoch' must be a string, got 3"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    write_bytes(path, c.bytes);
    CHECK_THROWS_WITH(io::load_safetensors(path), Catch::StartsWith(path + ": ") && Catch::Contains(c.message));
  }
  CHECK_THROWS_WITH(io::load_safetensors(dir.file("missing.safetensors")),
                    Catch::Contains("cannot open safetensors file") && Catch::Contains("missing.safetensors"));
}

TEST_CASE("safetensors reader rejects a truncated file", "[io][safetensors]") {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  io::save_safetensors(path, {{"w", testing::random_tensor({4, 4}, 9)}});
  const std::string bytes = read_bytes(path);
  write_bytes(path, bytes.substr(0, bytes.size() - 1));
  CHECK_THROWS_WITH(io::load_safetensors(path),
                    Catch::Contains(path) && Catch::Contains("data_offsets [0, 64] lie outside the 63-byte data section"));
  write_bytes(path, bytes.substr(0, 20));
  CHECK_THROWS_WITH(io::load_safetensors(path), Catch::Contains(path) && Catch::Contains("runs past the end of the file"));
}

// Element types. fp32 is what the CPU computes in; bf16 and fp16 are storage types for the CUDA path and
// for checkpoints; integer types carry token ids and masks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace heed {

enum class DType : uint8_t { F32, BF16, F16, I32, I64, U8 };

size_t dtype_size(DType dtype);
// Names as the safetensors format spells them: F32, BF16, F16, I32, I64, U8.
std::string_view dtype_name(DType dtype);
// Inverse of dtype_name; throws heed::Error for a name Heed does not store.
DType dtype_from_name(std::string_view name);

template <typename T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::I64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::U8; }

}  // namespace heed

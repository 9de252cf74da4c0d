// Host conversions between fp32 and the 16-bit storage types, rounding to nearest-even as the GPU does.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace heed {

inline uint16_t float_to_bf16_bits(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if (std::isnan(f)) return static_cast<uint16_t>((u >> 16) | 0x40);  // keep it a quiet NaN
  u += 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}

inline float bf16_bits_to_float(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

inline uint16_t float_to_fp16_bits(float f) { return std::bit_cast<uint16_t>(static_cast<_Float16>(f)); }

inline float fp16_bits_to_float(uint16_t h) { return static_cast<float>(std::bit_cast<_Float16>(h)); }

}  // namespace heed

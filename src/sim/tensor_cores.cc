// The tensor-core instructions of kernels/common/ptx.h, lane by lane as the PTX ISA defines them: each is
// a warp exchange (runtime.cc) whose last lane to arrive computes every lane's registers.
#include <cstring>

#include <fmt/format.h>

#include "heed/core/half.h"
#include "sim/cuda_sim.h"
#include "sim/tsan.h"

namespace heed::cuda_sim {

namespace {

struct MmaOperands {
  uint32_t a[4], b[2];
  float c[4];
};

template <bool kBf16>
float element(uint32_t reg, int half) {
  const auto bits = static_cast<uint16_t>(reg >> (16 * half));
  return kBf16 ? bf16_bits_to_float(bits) : fp16_bits_to_float(bits);
}

// D = A B + C for the whole warp, from each lane's registers, as the PTX ISA lays them out; each product
// of two 16-bit values is exact in double, and the sum is rounded once to fp32.
template <bool kBf16>
void mma_finish(WarpSlots& slots) {
  float a[16][16], b[16][8], c[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    MmaOperands op;
    std::memcpy(&op, slots.in[lane], sizeof(op));
    const int g = lane >> 2, t = lane & 3;
    for (int h = 0; h < 2; ++h) {
      a[g][2 * t + h] = element<kBf16>(op.a[0], h);
      a[g + 8][2 * t + h] = element<kBf16>(op.a[1], h);
      a[g][2 * t + 8 + h] = element<kBf16>(op.a[2], h);
      a[g + 8][2 * t + 8 + h] = element<kBf16>(op.a[3], h);
      b[2 * t + h][g] = element<kBf16>(op.b[0], h);
      b[2 * t + 8 + h][g] = element<kBf16>(op.b[1], h);
      c[g][2 * t + h] = op.c[h];
      c[g + 8][2 * t + h] = op.c[2 + h];
    }
  }
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    float d[4];
    for (int r = 0; r < 4; ++r) {
      const int row = g + (r >= 2 ? 8 : 0), col = 2 * t + (r & 1);
      double sum = c[row][col];
      for (int k = 0; k < 16; ++k) sum += static_cast<double>(a[row][k]) * b[k][col];
      d[r] = static_cast<float>(sum);
    }
    std::memcpy(slots.out[lane], d, sizeof(d));
  }
}

template <bool kBf16>
void mma(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
  MmaOperands op;
  std::memcpy(op.a, a, sizeof(op.a));
  std::memcpy(op.b, b, sizeof(op.b));
  std::memcpy(op.c, c, sizeof(op.c));
  const WarpSlots& slots = warp_exchange(Collective::Mma, 0xffffffffu, &op, sizeof(op), &mma_finish<kBf16>);
  std::memcpy(d, slots.out[lane_id()], 4 * sizeof(float));
}

// Register j of lane l holds row l/4, columns 2(l%4) and 2(l%4)+1 of matrix j, whose row r lane 8j + r
// read; .trans: the same positions of the transposed matrix.
template <int kMatrices, bool kTrans>
void ldmatrix_finish(WarpSlots& slots) {
  auto element = [&](int matrix, int row, int col) {
    uint16_t value;
    std::memcpy(&value, slots.in[8 * matrix + row] + 2 * col, sizeof(value));
    return value;
  };
  for (int lane = 0; lane < 32; ++lane) {
    uint32_t r[4] = {};
    const int row = lane / 4, col = 2 * (lane % 4);
    for (int j = 0; j < kMatrices; ++j) {
      const uint16_t lo = kTrans ? element(j, col, row) : element(j, row, col);
      const uint16_t hi = kTrans ? element(j, col + 1, row) : element(j, row, col + 1);
      r[j] = lo | static_cast<uint32_t>(hi) << 16;
    }
    std::memcpy(slots.out[lane], r, sizeof(r));
  }
}

// Each lane that gives a row address reads its 16-byte row as it arrives, in its own name: a write by
// another lane that no barrier or __syncwarp ordered before the ldmatrix may be missed, as on the GPU,
// and ThreadSanitizer sees the read. Lanes past the last matrix give no address.
template <int kMatrices, bool kTrans>
void ldmatrix(uint32_t* r, const void* row, const void* site) {
  const unsigned lane = lane_id();
  alignas(16) unsigned char row_data[16] = {};
  if (lane < 8u * kMatrices) {
    if (reinterpret_cast<uintptr_t>(row) % 16 != 0)
      misuse(fmt::format("ldmatrix row address {} is not 16-byte aligned", row));
    count_memory_access(row, sizeof(row_data), false, site);
    tsan::reads(row, sizeof(row_data));
    std::memcpy(row_data, row, sizeof(row_data));
  }
  const WarpSlots& slots = warp_exchange(Collective::Ldmatrix, 0xffffffffu, row_data, sizeof(row_data),
                                         &ldmatrix_finish<kMatrices, kTrans>);
  std::memcpy(r, slots.out[lane], kMatrices * sizeof(uint32_t));
}

}  // namespace

void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
  mma<true>(d, a, b, c);
}
void mma_m16n8k16_f16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
  mma<false>(d, a, b, c);
}
void ldmatrix_x4(uint32_t r[4], const void* row) { ldmatrix<4, false>(r, row, __builtin_return_address(0)); }
void ldmatrix_x4_trans(uint32_t r[4], const void* row) { ldmatrix<4, true>(r, row, __builtin_return_address(0)); }
void ldmatrix_x2(uint32_t r[2], const void* row) { ldmatrix<2, false>(r, row, __builtin_return_address(0)); }
void ldmatrix_x2_trans(uint32_t r[2], const void* row) { ldmatrix<2, true>(r, row, __builtin_return_address(0)); }

}  // namespace heed::cuda_sim

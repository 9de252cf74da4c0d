// The FlashAttention-2 kernels against the CPU op, through the checks of selftest/attention_check.h
// (which `heed selftest --attn` runs too; its header explains the tolerances).
//
// The cases cover, without the full cross product (the simulator runs every CUDA thread as a fiber): every
// length 1, 7, 63, 64, 65, 127, 200 at head dim 64, for queries and keys, with Lq != Lk both ways (the
// causal diagonal then starts mid-tile, and with Lq > Lk the first queries see no key); head dims 32 and
// 128 at several shapes; causal and not; key padding, including a batch row whose every key is padding;
// dropout; bf16 and fp16; the backward pass's atomic and deterministic dQ. Lengths past 64 need several
// query and key tiles, so the buffers are refilled between barriers. The [sim] cases run in order and, as
// CTest runs every [sim] case, under the schedules that let one warp run ahead or interleave at random (a
// missing barrier then corrupts results), and under ThreadSanitizer (scripts/test-tsan.sh), which reports
// it even when the result comes out right. Races between blocks (the atomic dQ adds) only the [gpu] cases
// can show in full.
#include <catch2/catch.hpp>

#include "selftest/attention_check.h"
#include "kernel_testing.h"
#include "sim/cuda_sim.h"

using namespace heed;
using heed::kernels::Backend;
using heed::kernels::Half;
using heed::selftest::AttentionCase;
using heed::selftest::KeyPadding;

namespace {

// B, H, Lq, Lk, D, causal, padding, dropout, dtype, deterministic
const AttentionCase kForwardCases[] = {
    {1, 2, 1, 1, 64, false, KeyPadding::None, 0.0f, Half::BF16},
    {1, 2, 7, 7, 64, true, KeyPadding::None, 0.0f, Half::FP16},
    {3, 1, 63, 65, 64, false, KeyPadding::SomeAndFullRow, 0.0f, Half::BF16},
    {1, 2, 64, 64, 64, true, KeyPadding::None, 0.2f, Half::BF16},
    {2, 1, 65, 127, 64, true, KeyPadding::Some, 0.0f, Half::FP16},
    {1, 1, 127, 63, 64, true, KeyPadding::None, 0.0f, Half::BF16},
    {1, 1, 200, 200, 64, false, KeyPadding::None, 0.1f, Half::FP16},
    {2, 1, 200, 7, 64, false, KeyPadding::Some, 0.0f, Half::BF16},
    {3, 1, 1, 200, 64, true, KeyPadding::SomeAndFullRow, 0.3f, Half::FP16},
    {1, 2, 65, 200, 32, false, KeyPadding::Some, 0.0f, Half::FP16},
    {1, 1, 7, 63, 32, true, KeyPadding::None, 0.2f, Half::BF16},
    {2, 1, 127, 65, 128, true, KeyPadding::SomeAndFullRow, 0.1f, Half::BF16},
    {2, 1, 64, 1, 128, false, KeyPadding::None, 0.0f, Half::FP16},
};

const AttentionCase kBackwardCases[] = {
    {1, 2, 1, 1, 64, false, KeyPadding::None, 0.0f, Half::BF16, false},
    {2, 1, 7, 7, 64, true, KeyPadding::None, 0.0f, Half::BF16, true},
    {2, 1, 63, 65, 64, false, KeyPadding::SomeAndFullRow, 0.2f, Half::FP16, false},
    {1, 2, 64, 64, 64, true, KeyPadding::None, 0.2f, Half::BF16, true},
    {2, 1, 65, 127, 64, true, KeyPadding::SomeAndFullRow, 0.0f, Half::FP16, true},
    {1, 1, 127, 63, 64, true, KeyPadding::None, 0.1f, Half::BF16, false},
    {2, 1, 200, 200, 64, false, KeyPadding::Some, 0.0f, Half::BF16, true},
    {1, 1, 65, 200, 32, true, KeyPadding::None, 0.2f, Half::FP16, false},
    {1, 2, 7, 1, 32, false, KeyPadding::None, 0.0f, Half::BF16, true},
    {2, 1, 64, 65, 128, true, KeyPadding::SomeAndFullRow, 0.2f, Half::BF16, true},
    {1, 1, 200, 127, 128, false, KeyPadding::None, 0.0f, Half::FP16, false},
    // Causal with Lq - Lk > 64: the first query tile sees no key, in both dQ kernels.
    {2, 1, 130, 63, 64, true, KeyPadding::Some, 0.0f, Half::FP16, true},
    // Several heads and batch rows, every feature at once.
    {2, 3, 200, 130, 128, true, KeyPadding::SomeAndFullRow, 0.1f, Half::FP16, false},
    {2, 2, 130, 200, 32, false, KeyPadding::Some, 0.1f, Half::BF16, true},
};

void require_ok(const selftest::CheckResult& r) {
  INFO(r.str());
  for (const selftest::Comparison& c : r.comparisons) {
    INFO(c.name << " " << c.error << " vs bound " << c.bound << " " << c.detail);
    CHECK(c.ok());
  }
}

void check_forward_cases(Backend backend) {
  uint64_t seed = 100;
  for (const AttentionCase& c : kForwardCases) require_ok(selftest::check_attention_forward(backend, c, seed += 10));
}

void check_backward_cases(Backend backend) {
  uint64_t seed = 100;
  for (const AttentionCase& c : kBackwardCases) require_ok(selftest::check_attention_backward(backend, c, seed += 10));
}

}  // namespace

TEST_CASE("attention forward kernel matches the CPU op on the simulator", "[kernel][sim][attention]") {
  check_forward_cases(Backend::Sim);
}

TEST_CASE("attention backward kernels match the CPU op on the simulator", "[kernel][sim][attention]") {
  check_backward_cases(Backend::Sim);
}

TEST_CASE("attention kernels match the CPU op on the GPU", "[kernel][attention][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_forward_cases(Backend::Cuda);
  check_backward_cases(Backend::Cuda);
}

// The fused cross-entropy kernels (kernels/cross_entropy.cu) against the CPU op, on the simulator and, when
// there is one, on the GPU, through the check of selftest/cross_entropy_check.h (which `heed selftest
// --xent` runs too; its header explains the inputs and the tolerances).
//
// Vocabulary sizes cover V = 1, V below, at and above the 256 threads of a block (thread tails that see no
// logit, or one logit fewer), and wide rows (5003, and 32003 as a real vocabulary); one case ignores every
// row; smoothing 0 and 0.1; each in every storage type.
#include <catch2/catch.hpp>

#include "selftest/cross_entropy_check.h"
#include "kernel_testing.h"
#include "sim/cuda_sim.h"

using namespace heed;
using heed::kernels::Backend;
using heed::selftest::CrossEntropyCase;

namespace {

void check_all_shapes(Backend backend) {
  // rows, classes, dtype (set below), smoothing, ignore_all
  const CrossEntropyCase cases[] = {
      {5, 1, {}, 0.1f, false},   {13, 37, {}, 0.0f, false},  {13, 37, {}, 0.1f, false}, {6, 255, {}, 0.1f, false},
      {7, 256, {}, 0.0f, false}, {9, 257, {}, 0.1f, false},  {4, 5003, {}, 0.1f, false}, {3, 64, {}, 0.1f, true},
      {33, 1000, {}, 0.0f, false}, {8, 32003, {}, 0.1f, false}};
  uint64_t seed = 500;
  for (DType dtype : {DType::F32, DType::BF16, DType::F16})
    for (CrossEntropyCase c : cases) {
      c.dtype = dtype;
      const selftest::CheckResult r = selftest::check_cross_entropy(backend, c, seed += 10);
      INFO(r.str());
      CHECK(r.ok());
    }
}

}  // namespace

TEST_CASE("cross_entropy kernels match the CPU op on the simulator", "[kernel][sim][cross_entropy]") {
  check_all_shapes(Backend::Sim);
}

TEST_CASE("cross_entropy kernels match the CPU op on the GPU", "[kernel][cross_entropy][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_all_shapes(Backend::Cuda);
}

TEST_CASE("selftest --xent reads its cases and refuses others, saying what it expected", "[selftest]") {
  std::string error;
  const auto c = selftest::parse_cross_entropy_case("3,64,fp16,smoothing=0,ignoreall", &error);
  REQUIRE(c);
  CHECK((c->rows == 3 && c->classes == 64 && c->dtype == DType::F16 && c->smoothing == 0.0f && c->ignore_all));
  CHECK(selftest::parse_cross_entropy_case(c->str(), &error)->str() == c->str());
  CHECK(selftest::parse_cross_entropy_case("3,64", &error)->smoothing == 0.1f);
  CHECK(!selftest::parse_cross_entropy_case("3,x", &error));
  CHECK_THAT(error, Catch::Contains("--xent '3,x'") && Catch::Contains("'x' is not a positive size") &&
                        Catch::Contains("ROWS,CLASSES[,bf16|fp16|fp32][,smoothing=S][,ignoreall]"));
  CHECK(!selftest::parse_cross_entropy_case("3,64,smoothing=abc", &error));
  CHECK_THAT(error, Catch::Contains("'smoothing=abc' is not a number"));
  CHECK(!selftest::parse_cross_entropy_case("3,64,smoothing=2", &error));
  CHECK_THAT(error, Catch::Contains("smoothing must lie in [0, 1]"));
}

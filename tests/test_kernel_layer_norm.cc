// The LayerNorm kernels (kernels/layer_norm.cu) against the CPU op, on the simulator and, when there is
// one, on the GPU, through the check of selftest/layer_norm_check.h (which `heed selftest
// --layernorm` runs too; its header explains the inputs and the tolerances).
//
// Shapes cover one warp's row path (D <= 1024: D = 1, 37, 64) with row counts that are not multiples of
// the 8 rows a block, the packed path (D = 256, 512, 768, 1024, 8 rows a warp and 64 a block: 9, 67 and
// 130 rows leave the last warps partial or idle, which still add their zeros to the block's parameter-
// gradient partial row; 300 rows make 5 such rows), and the block-per-row
// path (D = 1500, 4099), in each storage type; 1200 rows make 10 chunks of 128 for the parameter
// gradients' column sums, so some of their 8 warps add two. Three fp32 cases (one on the packed path)
// have rows with a large mean and a spread of 0.1, where only the residual-mean correction keeps y and dx
// accurate.
//
// The simulator runs blocks one after another, so it cannot show races between blocks; these kernels
// have none (each block writes its own rows, its own chunk's partials, or its own columns).
#include <catch2/catch.hpp>

#include "selftest/layer_norm_check.h"
#include "kernel_testing.h"
#include "sim/cuda_sim.h"

using namespace heed;
using heed::kernels::Backend;
using heed::selftest::LayerNormCase;

namespace {

void check_all_shapes(Backend backend) {
  const LayerNormCase shapes[] = {{7, 1}, {13, 37}, {33, 64}, {9, 1024}, {5, 1500}, {3, 4099}, {300, 48}, {64, 512}, {1200, 40},
                                  {67, 256}, {300, 768}, {130, 1024}};
  uint64_t seed = 100;
  auto check = [&](const LayerNormCase& c) {
    const selftest::CheckResult r = selftest::check_layer_norm(backend, c, seed += 10);
    INFO(r.str());
    CHECK(r.ok());
  };
  for (DType dtype : {DType::F32, DType::BF16, DType::F16})
    for (LayerNormCase c : shapes) {
      c.dtype = dtype;
      check(c);
    }
  for (const LayerNormCase& c : {LayerNormCase{9, 1000, DType::F32, true}, LayerNormCase{4, 3000, DType::F32, true},
                                 LayerNormCase{130, 512, DType::F32, true}})
    check(c);
}

}  // namespace

TEST_CASE("layer_norm kernels match the CPU op on the simulator", "[kernel][sim][layer_norm]") {
  check_all_shapes(Backend::Sim);
}

TEST_CASE("layer_norm kernels match the CPU op on the GPU", "[kernel][layer_norm][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_all_shapes(Backend::Cuda);
}

TEST_CASE("selftest --layernorm reads its cases and refuses others, saying what it expected", "[selftest]") {
  std::string error;
  const auto c = selftest::parse_layer_norm_case("9,1000,fp32,offset", &error);
  REQUIRE(c);
  CHECK((c->rows == 9 && c->cols == 1000 && c->dtype == DType::F32 && c->offset));
  CHECK(selftest::parse_layer_norm_case(c->str(), &error)->str() == c->str());
  CHECK(!selftest::parse_layer_norm_case("9", &error));
  CHECK_THAT(error, Catch::Contains("--layernorm '9'") && Catch::Contains("ROWS,COLS[,bf16|fp16|fp32][,offset]"));
  CHECK(!selftest::parse_layer_norm_case("9,0", &error));
  CHECK_THAT(error, Catch::Contains("'0' is not a positive size"));
  CHECK(!selftest::parse_layer_norm_case("9,64,int8", &error));
  CHECK_THAT(error, Catch::Contains("unknown flag 'int8'"));
  CHECK(!selftest::parse_layer_norm_case("9,64,offset", &error));
  CHECK_THAT(error, Catch::Contains("offset needs fp32"));
}

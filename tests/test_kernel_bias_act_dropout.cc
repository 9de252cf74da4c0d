// The fused bias + activation + dropout + residual kernels (kernels/bias_act_dropout.cu) against the CPU
// ops they fuse, on the simulator and, when there is one, on the GPU, through the check of
// heed/selftest/bias_act_dropout_check.h (which `heed selftest --bias-act` runs too; its header explains
// the reference and the tolerances).
//
// Cases, in each storage type: every activation (none, ReLU, GELU, SiLU) with dropout 0.25, a residual and
// a bias, and without dropout or residual; one case without a bias; column counts 1, 37 (not a multiple of
// the 4 columns a lane or of a warp's 128), 64, 67 and 1027; row counts on both sides of the 128 rows of a
// column-sum chunk (130 and 260 rows: two and three chunks).
#include <catch2/catch.hpp>

#include "heed/selftest/bias_act_dropout_check.h"
#include "kernel_testing.h"
#include "sim/cuda_sim.h"

using namespace heed;
using heed::kernels::Backend;
using heed::kernels::BiasActivation;
using heed::selftest::BiasActCase;

namespace {

void check_all(Backend backend) {
  uint64_t seed = 900;
  auto check = [&](BiasActCase c, DType dtype) {
    c.dtype = dtype;
    const selftest::CheckResult r = selftest::check_bias_act_dropout(backend, c, seed += 10);
    INFO(r.str());
    CHECK(r.ok());
  };
  // rows, cols, activation, dropout, residual, bias
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    for (BiasActivation act :
         {BiasActivation::None, BiasActivation::ReLU, BiasActivation::GELU, BiasActivation::SiLU}) {
      check({130, 37, act, 0.25f, true, true}, dtype);
      check({7, 64, act, 0.0f, false, true}, dtype);
    }
    check({5, 1, BiasActivation::GELU, 0.25f, true, true}, dtype);
    check({3, 1027, BiasActivation::ReLU, 0.5f, true, false}, dtype);
    check({260, 67, BiasActivation::GELU, 0.1f, true, true}, dtype);
  }
}

}  // namespace

TEST_CASE("bias_act_dropout kernels match the CPU ops on the simulator", "[kernel][sim][bias_act_dropout]") {
  check_all(Backend::Sim);
}

TEST_CASE("bias_act_dropout kernels match the CPU ops on the GPU", "[kernel][bias_act_dropout][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_all(Backend::Cuda);
}

TEST_CASE("selftest --bias-act reads its cases and refuses others, saying what it expected", "[selftest]") {
  std::string error;
  const auto c = selftest::parse_bias_act_case("130,37,silu,residual,dropout=0.25,bias,fp16", &error);
  REQUIRE(c);
  CHECK((c->rows == 130 && c->cols == 37 && c->act == BiasActivation::SiLU && c->dropout == 0.25f && c->residual &&
         c->bias && c->dtype == DType::F16));
  CHECK(selftest::parse_bias_act_case(c->str(), &error)->str() == c->str());
  CHECK(!selftest::parse_bias_act_case("130,37", &error));
  CHECK_THAT(error, Catch::Contains("--bias-act '130,37'") &&
                        Catch::Contains("ROWS,COLS,none|relu|gelu|silu[,bias][,residual][,dropout=P]"));
  CHECK(!selftest::parse_bias_act_case("130,37,tanh", &error));
  CHECK_THAT(error, Catch::Contains("unknown activation 'tanh'"));
  CHECK(!selftest::parse_bias_act_case("130,37,relu,dropout=1", &error));
  CHECK_THAT(error, Catch::Contains("dropout must lie in [0, 1)"));
}

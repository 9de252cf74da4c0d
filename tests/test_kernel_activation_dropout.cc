// The activation + dropout kernels (kernels/activation_dropout.cu) against the CPU ops they compute, on
// the simulator and, when there is one, on the GPU, through the check of selftest/activation_dropout_check.h
// (which `heed selftest --act-dropout` runs too; its header explains the reference and the tolerances).
//
// Cases, in each storage type: every activation (none, ReLU, GELU, SiLU) with dropout 0.25 and without;
// element counts that are and are not a multiple of the eight elements a thread owns, or of a block's 2048
// (5 x 1, 3 x 1027, 130 x 37, 260 x 67, 7 x 64), so the last thread and the last block are partial; and
// tensors one element off a 16-byte boundary, which take the kernels' element-at-a-time path; and a
// residual added by the forward kernel, aligned and not.
#include <catch2/catch.hpp>

#include "kernel_testing.h"
#include "selftest/activation_dropout_check.h"
#include "sim/cuda_sim.h"

using namespace heed;
using heed::kernels::Activation;
using heed::kernels::Backend;
using heed::selftest::ActivationDropoutCase;

namespace {

void check_all(Backend backend) {
  uint64_t seed = 900;
  auto check = [&](ActivationDropoutCase c, DType dtype) {
    c.dtype = dtype;
    const selftest::CheckResult r = selftest::check_activation_dropout(backend, c, seed += 10);
    INFO(r.str());
    CHECK(r.ok());
  };
  // rows, cols, activation, dropout
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    for (Activation act : {Activation::None, Activation::ReLU, Activation::GELU, Activation::SiLU}) {
      check({130, 37, act, 0.25f}, dtype);
      check({7, 64, act, 0.0f}, dtype);
    }
    check({5, 1, Activation::GELU, 0.25f}, dtype);
    check({3, 1027, Activation::ReLU, 0.5f}, dtype);
    check({260, 67, Activation::None, 0.1f}, dtype);
    check({130, 37, Activation::SiLU, 0.25f, DType::BF16, true}, dtype);
    check({33, 64, Activation::GELU, 0.0f, DType::BF16, true}, dtype);
    // A sublayer's dropout joining the residual stream (ops::dropout_add_forward).
    check({260, 67, Activation::None, 0.1f, DType::BF16, false, true}, dtype);
    check({130, 37, Activation::None, 0.25f, DType::BF16, true, true}, dtype);
  }
}

}  // namespace

TEST_CASE("activation_dropout kernels match the CPU ops on the simulator", "[kernel][sim][activation_dropout]") {
  check_all(Backend::Sim);
}

TEST_CASE("activation_dropout kernels match the CPU ops on the GPU", "[kernel][activation_dropout][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_all(Backend::Cuda);
}

TEST_CASE("selftest --act-dropout reads its cases and refuses others, saying what it expected", "[selftest]") {
  std::string error;
  const auto c = selftest::parse_activation_dropout_case("130,37,silu,dropout=0.25,fp16", &error);
  REQUIRE(c);
  CHECK((c->rows == 130 && c->cols == 37 && c->act == Activation::SiLU && c->dropout == 0.25f &&
         c->dtype == DType::F16));
  CHECK(selftest::parse_activation_dropout_case(c->str(), &error)->str() == c->str());
  CHECK(selftest::parse_activation_dropout_case("33,64,gelu,unaligned", &error)->unaligned);
  CHECK(selftest::parse_activation_dropout_case("33,64,none,dropout=0.1,residual", &error)->residual);
  CHECK(!selftest::parse_activation_dropout_case("130,37", &error));
  CHECK_THAT(error, Catch::Contains("--act-dropout '130,37'") &&
                        Catch::Contains("ROWS,COLS,none|relu|gelu|silu[,dropout=P]"));
  CHECK(!selftest::parse_activation_dropout_case("130,37,tanh", &error));
  CHECK_THAT(error, Catch::Contains("unknown activation 'tanh'"));
  CHECK(!selftest::parse_activation_dropout_case("130,37,relu,bias", &error));
  CHECK_THAT(error, Catch::Contains("unknown flag 'bias'"));
  CHECK(!selftest::parse_activation_dropout_case("130,37,relu,dropout=1", &error));
  CHECK_THAT(error, Catch::Contains("dropout must lie in [0, 1)"));
}

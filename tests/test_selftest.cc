// The op checks that `heed selftest --op` runs (selftest/op_check.h): every kernel other than
// attention through its op, on the simulator and on a GPU when there is one, at shapes that are and are
// not multiples of a warp or a block, in each storage type. Their failure on a broken kernel was shown by
// hand when they were written (LayerNorm's eps scaled, one extra class in the smoothing, a 1e-4 error in
// the embedding's gradient scale: each check reported EXCEEDS); the kernel tests hold the finer bounds.
#include <catch2/catch.hpp>

#include "selftest/op_check.h"
#include "kernel_testing.h"

using namespace heed;

namespace {

void check_all_ops(kernels::Backend backend) {
  uint64_t seed = 3;
  for (const std::string& op : selftest::op_names())
    for (const DType dtype : {DType::F32, DType::BF16, DType::F16})
      for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{1, 32}, {13, 257}, {40, 1100}}) {
        const selftest::CheckResult r = selftest::check_op(backend, {op, rows, cols, dtype}, ++seed);
        INFO(r.str());
        CHECK(r.ok());
      }
}

}  // namespace

TEST_CASE("selftest op checks pass on the simulator for every kernel", "[selftest][sim]") {
  check_all_ops(kernels::Backend::Sim);
}

TEST_CASE("selftest op checks pass on the GPU for every kernel", "[selftest][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_all_ops(kernels::Backend::Cuda);
}

TEST_CASE("selftest --op refuses text it cannot read, saying what it expected", "[selftest]") {
  std::string error;
  CHECK(!selftest::parse_op_case("layernorm,4", &error));
  CHECK_THAT(error, Catch::Contains("OP,ROWS,COLS[,bf16|fp16|fp32]"));
  CHECK(!selftest::parse_op_case("conv,4,4", &error));
  CHECK_THAT(error, Catch::Contains("unknown op 'conv'"));
  CHECK(!selftest::parse_op_case("xent,4,0", &error));
  CHECK_THAT(error, Catch::Contains("'0' is not a positive size"));
  CHECK(!selftest::parse_op_case("xent,4,8,int8", &error));
  CHECK_THAT(error, Catch::Contains("unknown type 'int8'"));
  const auto c = selftest::parse_op_case("topk,5,300,fp16", &error);
  REQUIRE(c);
  CHECK((c->op == "topk" && c->rows == 5 && c->cols == 300 && c->dtype == DType::F16));
}

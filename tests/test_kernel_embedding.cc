// The embedding kernels (kernels/embedding.cu) against the CPU op, on the simulator and, when there is
// one, on the GPU, through the check of selftest/embedding_check.h (which `heed selftest --embedding`
// runs too; its header explains the inputs and the tolerances).
//
// Ids repeat heavily (vocabularies of 1, 7 and 33 under 50-64 positions) and sparsely (1000 under 300),
// and some cases have a pad id that occurs in the batch; D is 1, 37, 64 and 129 (not a multiple of a
// warp); scale is 1 and sqrt(D); each in every storage type.
#include <catch2/catch.hpp>

#include <cmath>

#include "selftest/embedding_check.h"
#include "kernel_testing.h"
#include "sim/cuda_sim.h"

using namespace heed;
using heed::kernels::Backend;
using heed::selftest::EmbeddingCase;

namespace {

void check_all(Backend backend) {
  // positions, vocab, dim, pad id, scale
  const EmbeddingCase cases[] = {{5, 1, 1, -1, 1.0f},
                                 {50, 7, 37, 3, std::sqrt(37.0f)},
                                 {300, 1000, 64, -1, 8.0f},
                                 {64, 33, 129, 0, 1.0f}};
  uint64_t seed = 1300;
  for (DType dtype : {DType::F32, DType::BF16, DType::F16})
    for (EmbeddingCase c : cases) {
      c.dtype = dtype;
      const selftest::CheckResult r = selftest::check_embedding(backend, c, seed += 10);
      INFO(r.str());
      CHECK(r.ok());
    }
}

}  // namespace

TEST_CASE("embedding kernels match the CPU op on the simulator", "[kernel][sim][embedding]") {
  check_all(Backend::Sim);
}

TEST_CASE("embedding kernels match the CPU op on the GPU", "[kernel][embedding][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_all(Backend::Cuda);
}

TEST_CASE("selftest --embedding reads its cases and refuses others, saying what it expected", "[selftest]") {
  std::string error;
  const auto c = selftest::parse_embedding_case("50,7,37,pad=3,scale=sqrt,fp16", &error);
  REQUIRE(c);
  CHECK((c->positions == 50 && c->vocab == 7 && c->dim == 37 && c->pad_id == 3 && c->scale == std::sqrt(37.0f) &&
         c->dtype == DType::F16));
  CHECK(selftest::parse_embedding_case(c->str(), &error)->str() == c->str());
  CHECK(selftest::parse_embedding_case("50,7,37", &error)->pad_id == -1);
  CHECK(!selftest::parse_embedding_case("50,7", &error));
  CHECK_THAT(error, Catch::Contains("--embedding '50,7'") &&
                        Catch::Contains("POSITIONS,VOCAB,DIM[,pad=ID][,scale=S|sqrt][,bf16|fp16|fp32]"));
  CHECK(!selftest::parse_embedding_case("50,7,37,pad=7", &error));
  CHECK_THAT(error, Catch::Contains("the pad id must be below VOCAB"));
  CHECK(!selftest::parse_embedding_case("50,7,37,scale=big", &error));
  CHECK_THAT(error, Catch::Contains("'scale=big' is not a number"));
}

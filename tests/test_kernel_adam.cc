// The multi-tensor Adam kernel (kernels/adam.cu) against the CPU op, on the simulator and, when there is
// one, on the GPU, through the check of selftest/adam_check.h (which `heed selftest --adam` runs too;
// its header explains the inputs and the tolerances).
//
// One launch updates six tensors: sizes 37, 0 (an empty tensor between others, which the chunk search must
// pass over), exactly one chunk (4096), 1, several chunks with a partial last one (9000), and one element
// past a chunk (4097); four of them also get a 16-bit copy of the new weights. AdamW and Adam (coupled
// decay), at step 1 (the largest bias correction) and step 7, with grad_scale != 1, in bf16 and fp16 copies;
// then clipping from the sum of squares that the kernels leave on the device, and a NaN gradient, which
// must leave everything as it was.
#include <catch2/catch.hpp>

#include "selftest/adam_check.h"
#include "kernel_testing.h"
#include "sim/cuda_sim.h"

using namespace heed;
using heed::kernels::Backend;
using heed::kernels::Half;

namespace {

void check_all(Backend backend) {
  const std::vector<int64_t> sizes = {37, 0, 4096, 1, 9000, 4097};
  const std::vector<bool> copies = {true, true, false, true, false, true};
  // For the sum of squares, 600 chunks more: more partials than half the summing block, so that the first
  // level of its tree reads partials that other warps wrote.
  std::vector<int64_t> sizes_clip = sizes;
  sizes_clip.push_back(600 * 4096);
  std::vector<bool> copies_clip = copies;
  copies_clip.push_back(false);
  // step, decoupled (AdamW), grad_scale, the copies' type, clipping from the device's sum of squares (the
  // gradients' norm is about 900 times grad_scale: clip 1 clips, clip 0 and clip 1000 do not), a NaN gradient
  const selftest::AdamCase cases[] = {{sizes, copies, 1, true, 0.5f, Half::BF16},
                                      {sizes, copies, 7, true, 1.0f, Half::FP16},
                                      {sizes, copies, 1, false, 0.25f, Half::FP16},
                                      {sizes, copies, 7, false, 2.0f, Half::BF16},
                                      {sizes_clip, copies_clip, 3, true, 0.5f, Half::BF16, 1.0f},
                                      {sizes_clip, copies_clip, 3, true, 2.0f, Half::BF16, 0.0f},
                                      {sizes_clip, copies_clip, 3, false, 1.0f, Half::FP16, 1000.0f},
                                      {sizes_clip, copies_clip, 3, true, 1.0f, Half::BF16, 1.0f, true}};
  uint64_t seed = 1;
  for (const selftest::AdamCase& c : cases) {
    const selftest::CheckResult r = selftest::check_adam(backend, c, seed += 10);
    INFO(r.str());
    CHECK(r.ok());
  }
}

}  // namespace

TEST_CASE("adam kernel matches the CPU op on the simulator", "[kernel][sim][adam]") {
  check_all(Backend::Sim);
}

TEST_CASE("adam kernel matches the CPU op on the GPU", "[kernel][adam][gpu]") {
  if (!testing::gpu_or_skip()) return;
  check_all(Backend::Cuda);
}

TEST_CASE("selftest --adam reads its cases and refuses others, saying what it expected", "[selftest]") {
  std::string error;
  const auto c = selftest::parse_adam_case("37h/0h/4096/1h,7,adam,fp16,scale=0.25", &error);
  REQUIRE(c);
  CHECK(c->sizes == std::vector<int64_t>{37, 0, 4096, 1});
  CHECK(c->half_copy == std::vector<bool>{true, true, false, true});
  CHECK((c->step == 7 && !c->decoupled && c->half == Half::FP16 && c->grad_scale == 0.25f));
  CHECK(selftest::parse_adam_case(c->str(), &error)->str() == c->str());
  CHECK(!selftest::parse_adam_case("37", &error));
  CHECK_THAT(error, Catch::Contains("--adam '37'") && Catch::Contains("SIZES,STEP[,adamw|adam][,bf16|fp16][,scale=S]"));
  CHECK(!selftest::parse_adam_case("37/-1,1", &error));
  CHECK_THAT(error, Catch::Contains("'-1' is not a size"));
  CHECK(!selftest::parse_adam_case("37,0", &error));
  CHECK_THAT(error, Catch::Contains("'0' is not a positive size"));
  const auto clipped = selftest::parse_adam_case("37/5,3,clip=1.5,nan", &error);
  REQUIRE(clipped);
  CHECK((clipped->clip_norm == 1.5f && clipped->nan_grad));
  CHECK(selftest::parse_adam_case(clipped->str(), &error)->str() == clipped->str());
  CHECK(!selftest::parse_adam_case("37,1,nan", &error));
  CHECK_THAT(error, Catch::Contains("nan needs clip=C"));
  CHECK(!selftest::parse_adam_case("37,1,fp32", &error));
  CHECK_THAT(error, Catch::Contains("unknown flag 'fp32'"));
}

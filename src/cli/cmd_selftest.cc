// heed selftest: runs the CUDA kernels on the simulator (or a GPU) against their CPU reference ops, at the
// shapes given on the command line, and prints each comparison with its bound. Exits non-zero when a
// kernel's error exceeds its bound, so it serves as a smoke test on a new GPU machine or driver.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "heed/core/device.h"
#include "heed/core/error.h"
#include "heed/selftest/attention_check.h"

namespace heed::cli {

namespace {

struct SelftestOptions {
  std::string device = "sim";
  std::vector<std::string> attention;
  uint64_t seed = 1;
};

// A few shapes that touch every path of the attention kernels when no --attn is given.
const char* const kDefaultAttention[] = {
    "2,2,65,127,64,causal,pad,bf16",
    "1,2,200,130,128,dropout=0.1,fp16",
    "3,1,7,63,32,padrow,bf16,deterministic",
};

int run_selftest(const SelftestOptions& opt) {
  HEED_CHECK(opt.device == "sim" || opt.device == "cuda", "--device '{}': expected sim or cuda", opt.device);
  const kernels::Backend backend = opt.device == "sim" ? kernels::Backend::Sim : kernels::Backend::Gpu;
  if (backend == kernels::Backend::Gpu)
    HEED_CHECK(cuda_device_count() > 0, "--device cuda: no usable CUDA device here (try --device sim)");
  std::vector<std::string> specs = opt.attention;
  if (specs.empty()) specs.assign(std::begin(kDefaultAttention), std::end(kDefaultAttention));
  int failed = 0, total = 0;
  for (const std::string& spec : specs) {
    std::string error;
    const std::optional<selftest::AttentionCase> c = selftest::parse_attention_case(spec, &error);
    HEED_CHECK(c.has_value(), "{}", error);
    for (auto check : {selftest::check_attention_forward, selftest::check_attention_backward}) {
      const selftest::CheckResult result = check(backend, *c, opt.seed);
      std::printf("%s\n", result.str().c_str());
      std::fflush(stdout);
      failed += !result.ok();
      ++total;
    }
  }
  std::printf("%d of %d kernel checks passed on %s\n", total - failed, total, opt.device.c_str());
  return failed == 0 ? 0 : 1;
}

}  // namespace

void add_selftest_command(CLI::App& app) {
  auto opt = std::make_shared<SelftestOptions>();
  CLI::App* cmd = app.add_subcommand(
      "selftest", "Check the CUDA kernels against the CPU reference ops, on the simulator or a GPU");
  cmd->add_option("--device", opt->device, "sim (the CUDA simulator, on the CPU) or cuda (the first GPU)")
      ->capture_default_str();
  cmd->add_option("--attn", opt->attention,
                  "An attention shape, B,H,Lq,Lk,D[,causal][,pad|padrow][,dropout=P][,bf16|fp16][,deterministic]; "
                  "forward and backward are checked. Repeatable; without it, a default set runs");
  cmd->add_option("--seed", opt->seed, "Seed of the random inputs")->capture_default_str();
  cmd->callback([opt] {
    if (const int status = run_selftest(*opt)) std::exit(status);
  });
}

}  // namespace heed::cli

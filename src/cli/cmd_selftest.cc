// heed selftest: runs the CUDA kernels on the simulator (or a GPU) against their CPU reference ops, at the
// shapes given on the command line, and prints each comparison with its bound. Exits non-zero when a
// kernel's error exceeds its bound, so it serves as a smoke test on a new GPU machine or driver. Without
// --attn or --op, a default set touches every kernel.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "heed/core/device.h"
#include "heed/core/error.h"
#include "heed/selftest/attention_check.h"
#include "heed/selftest/op_check.h"

namespace heed::cli {

namespace {

struct SelftestOptions {
  std::string device = "sim";
  std::vector<std::string> attention;
  std::vector<std::string> ops;
  uint64_t seed = 1;
};

// A few shapes that touch every path of the attention kernels when no --attn is given.
const char* const kDefaultAttention[] = {
    "2,2,65,127,64,causal,pad,bf16",
    "1,2,200,130,128,dropout=0.1,fp16",
    "3,1,7,63,32,padrow,bf16,deterministic",
};

// And every other kernel, at shapes that are not multiples of a block or a warp.
const char* const kDefaultOps[] = {
    "layernorm,37,1500,bf16", "layernorm,9,64,fp16", "xent,21,1003,bf16", "xent,7,64,fp32", "act,13,333,fp16",
    "embedding,50,129,bf16",  "adam,3,1000,fp32",    "softmax,11,700,fp16", "topk,5,4099,bf16", "topk,3,300,fp32",
};

int run_selftest(const SelftestOptions& opt) {
  HEED_CHECK(opt.device == "sim" || opt.device == "cuda", "--device '{}': expected sim or cuda", opt.device);
  const kernels::Backend backend = opt.device == "sim" ? kernels::Backend::Sim : kernels::Backend::Gpu;
  if (backend == kernels::Backend::Gpu)
    HEED_CHECK(cuda_device_count() > 0, "--device cuda: no usable CUDA device here (try --device sim)");
  std::vector<std::string> attention = opt.attention, ops = opt.ops;
  if (attention.empty() && ops.empty()) {
    attention.assign(std::begin(kDefaultAttention), std::end(kDefaultAttention));
    ops.assign(std::begin(kDefaultOps), std::end(kDefaultOps));
  }
  int failed = 0, total = 0;
  auto report = [&](const selftest::CheckResult& result) {
    std::printf("%s\n", result.str().c_str());
    std::fflush(stdout);
    failed += !result.ok();
    ++total;
  };
  for (const std::string& spec : attention) {
    std::string error;
    const std::optional<selftest::AttentionCase> c = selftest::parse_attention_case(spec, &error);
    HEED_CHECK(c.has_value(), "{}", error);
    for (auto check : {selftest::check_attention_forward, selftest::check_attention_backward})
      report(check(backend, *c, opt.seed));
  }
  for (const std::string& spec : ops) {
    std::string error;
    const std::optional<selftest::OpCase> c = selftest::parse_op_case(spec, &error);
    HEED_CHECK(c.has_value(), "{}", error);
    report(selftest::check_op(backend, *c, opt.seed));
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
                  "forward and backward are checked. Repeatable");
  cmd->add_option("--op", opt->ops,
                  "Another kernel through its op, OP,ROWS,COLS[,bf16|fp16|fp32] with OP one of layernorm, xent, "
                  "act, embedding, adam, softmax, topk. Repeatable; without --attn or --op, a default set of "
                  "both runs");
  cmd->add_option("--seed", opt->seed, "Seed of the random inputs")->capture_default_str();
  cmd->callback([opt] {
    if (const int status = run_selftest(*opt)) std::exit(status);
  });
}

}  // namespace heed::cli

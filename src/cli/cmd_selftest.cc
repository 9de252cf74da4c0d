// heed selftest: runs the CUDA kernels on the simulator (or a GPU) against their CPU reference ops, at the
// shapes given on the command line, and prints each comparison with its bound. Exits non-zero when a
// kernel's error exceeds its bound, so it serves as a smoke test on a new GPU machine or driver.
//
// Each kernel of kernels/ has an option whose cases run the check its kernel test runs (src/selftest),
// with the same bounds; --op runs an op's whole device path (dispatch, workspaces, layouts) under one
// generic rule, and reaches the kernels that have no option of their own (softmax, beam search's top-k).
// Without any of these options, a default set of each runs.
#include <cstdio>
#include <functional>
#include <map>
#include <memory>

#include "cli/commands.h"
#include "heed/core/device.h"
#include "heed/core/error.h"
#include "selftest/adam_check.h"
#include "selftest/attention_check.h"
#include "selftest/activation_dropout_check.h"
#include "selftest/cross_entropy_check.h"
#include "selftest/embedding_check.h"
#include "selftest/layer_norm_check.h"
#include "selftest/op_check.h"

namespace heed::cli {

namespace {

using Report = std::function<void(const selftest::CheckResult&)>;
using Run = std::function<void(kernels::Backend, uint64_t seed, const Report&)>;

// One option: its cases' format and meaning, the cases it runs when no option is given (shapes that are
// not multiples of a block or a warp, and that touch each path of the kernel), and how a case's text
// becomes its run.
struct CheckKind {
  std::string option, help;
  std::vector<std::string> defaults;
  std::function<Run(const std::string& text)> read;
};

// Parses a case's text (a bad one is an error naming the option and its format) into a run that reports
// each of `checks` on that case.
template <class Case>
auto case_reader(std::optional<Case> (*parse)(const std::string&, std::string*),
                 std::vector<selftest::CheckResult (*)(kernels::Backend, const Case&, uint64_t)> checks) {
  return [parse, checks](const std::string& text) -> Run {
    std::string error;
    const std::optional<Case> c = parse(text, &error);
    HEED_CHECK(c.has_value(), "{}", error);
    return [c = *c, checks](kernels::Backend backend, uint64_t seed, const Report& report) {
      for (const auto check : checks) report(check(backend, c, seed));
    };
  };
}

const std::vector<CheckKind>& check_kinds() {
  static const std::vector<CheckKind> kinds = {
      {"--attn",
       "An attention shape, B,H,Lq,Lk,D[,causal][,pad|padrow][,dropout=P][,bf16|fp16][,deterministic]; forward and "
       "backward are checked",
       {"2,2,65,127,64,causal,pad,bf16", "1,2,200,130,128,dropout=0.1,fp16", "3,1,7,63,32,padrow,bf16,deterministic"},
       case_reader<selftest::AttentionCase>(selftest::parse_attention_case,
                                         {selftest::check_attention_forward, selftest::check_attention_backward})},
      {"--layernorm",
       "LayerNorm forward and backward, ROWS,COLS[,bf16|fp16|fp32][,offset] (offset: rows around 300 with a spread "
       "of 0.1, fp32 only)",
       {"37,1500,bf16", "13,37,fp16", "9,1000,fp32,offset"},
       case_reader<selftest::LayerNormCase>(selftest::parse_layer_norm_case, {selftest::check_layer_norm})},
      {"--xent",
       "Label-smoothed cross-entropy forward and backward, ROWS,CLASSES[,bf16|fp16|fp32][,smoothing=S][,ignoreall] "
       "(smoothing 0.1 unless given; ignoreall: every row's target is ignore_index, else every fourth row's)",
       {"13,257,bf16", "9,37,fp32", "5,1000,fp16,smoothing=0", "3,64,fp16,ignoreall"},
       case_reader<selftest::CrossEntropyCase>(selftest::parse_cross_entropy_case, {selftest::check_cross_entropy})},
      {"--adam",
       "One multi-tensor Adam launch, SIZES,STEP[,adamw|adam][,bf16|fp16][,scale=S] with SIZES as N[h]/N[h]/... "
       "(h: that tensor also writes a 16-bit copy; AdamW unless adam; scale: the gradient scale)",
       {"37h/0h/4096/1h/9000/4097h,1,adamw,bf16,scale=0.5", "5h/4097h,7,adam,fp16"},
       case_reader<selftest::AdamCase>(selftest::parse_adam_case, {selftest::check_adam})},
      {"--act-dropout",
       "Activation + dropout forward and backward, ROWS,COLS,none|relu|gelu|silu[,dropout=P][,bf16|fp16|fp32]"
       "[,unaligned][,residual]",
       {"130,37,gelu,dropout=0.25,bf16", "7,64,silu,fp16", "3,1027,relu,dropout=0.5,fp32",
        "260,67,none,dropout=0.1,fp32", "260,67,none,dropout=0.1,bf16,residual"},
       case_reader<selftest::ActivationDropoutCase>(selftest::parse_activation_dropout_case,
                                                    {selftest::check_activation_dropout})},
      {"--embedding",
       "Embedding lookup and its deterministic and atomic backward, "
       "POSITIONS,VOCAB,DIM[,pad=ID][,scale=S|sqrt][,bf16|fp16|fp32] (sqrt: the square root of DIM)",
       {"50,7,37,pad=3,scale=sqrt,bf16", "300,1000,64,scale=8,fp16", "5,1,1,fp32"},
       case_reader<selftest::EmbeddingCase>(selftest::parse_embedding_case, {selftest::check_embedding})},
      {"--op",
       "An op's whole device path against the CPU op, OP,ROWS,COLS[,bf16|fp16|fp32] with OP one of layernorm, xent, "
       "act, embedding, adam, softmax, topk",
       {"layernorm,37,1500,bf16", "layernorm,9,64,fp16", "xent,21,1003,bf16", "xent,7,64,fp32", "act,13,333,fp16",
        "embedding,50,129,bf16", "adam,3,1000,fp32", "softmax,11,700,fp16", "topk,5,4099,bf16", "topk,3,300,fp32"},
       case_reader<selftest::OpCase>(selftest::parse_op_case, {selftest::check_op})},
  };
  return kinds;
}

struct SelftestOptions {
  std::string device = "sim";
  std::map<std::string, std::vector<std::string>> cases;  // by option
  uint64_t seed = 1;
};

int run_selftest(const SelftestOptions& opt) {
  HEED_CHECK(opt.device == "sim" || opt.device == "cuda", "--device '{}': expected sim or cuda", opt.device);
  const kernels::Backend backend = opt.device == "sim" ? kernels::Backend::Sim : kernels::Backend::Cuda;
  if (backend == kernels::Backend::Cuda)
    HEED_CHECK(cuda_device_count() > 0, "--device cuda: no usable CUDA device here (try --device sim)");
  bool any_given = false;
  for (const auto& [option, texts] : opt.cases) any_given = any_given || !texts.empty();
  // Every text is read before the first check runs, so that a typo does not wait behind long checks.
  std::vector<Run> runs;
  for (const CheckKind& kind : check_kinds())
    for (const std::string& text : any_given ? opt.cases.at(kind.option) : kind.defaults)
      runs.push_back(kind.read(text));
  int failed = 0, total = 0;
  const Report report = [&](const selftest::CheckResult& result) {
    std::printf("%s\n", result.str().c_str());
    std::fflush(stdout);
    failed += !result.ok();
    ++total;
  };
  for (const Run& run : runs) run(backend, opt.seed, report);
  std::printf("%d of %d kernel checks passed on %s\n", total - failed, total, opt.device.c_str());
  return failed == 0 ? 0 : 1;
}

}  // namespace

void add_selftest_command(CLI::App& app) {
  auto opt = std::make_shared<SelftestOptions>();
  CLI::App* cmd = app.add_subcommand(
      "selftest", "Check the CUDA kernels against the CPU reference ops, on the simulator or a GPU");
  cmd->footer(
      "Each case option is repeatable, and its storage type bf16 unless given; with none of them, a default set of "
      "each runs.");
  cmd->add_option("--device", opt->device, "sim (the CUDA simulator, on the CPU) or cuda (the first GPU)")
      ->capture_default_str();
  for (const CheckKind& kind : check_kinds()) cmd->add_option(kind.option, opt->cases[kind.option], kind.help);
  cmd->add_option("--seed", opt->seed, "Seed of the random inputs")->capture_default_str();
  cmd->callback([opt] {
    if (const int status = run_selftest(*opt)) std::exit(status);
  });
}

}  // namespace heed::cli

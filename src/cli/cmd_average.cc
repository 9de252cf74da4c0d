// heed average: the command-line face of heed/nn/average.h, which does the averaging and the writing. This
// file picks the checkpoints: the ones named, or the newest --last N step checkpoints of a run directory.
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "heed/core/error.h"
#include "heed/nn/average.h"

namespace heed::cli {

namespace {

struct AverageOptions {
  std::string out;
  std::vector<std::string> inputs;
  int64_t last = 0;
  std::string weights = "model";
};

void run_average(const AverageOptions& opt) {
  std::vector<std::string> checkpoints = opt.inputs;
  if (opt.last > 0) {
    HEED_CHECK(opt.inputs.size() == 1, "--last {} takes one run directory, got {} paths", opt.last,
               opt.inputs.size());
    checkpoints = nn::last_step_checkpoints(opt.inputs.front(), opt.last);
  }
  spdlog::info("averaging {} checkpoint(s): {}", checkpoints.size(), fmt::join(checkpoints, ", "));
  nn::save_average(checkpoints, opt.out, nn::kAveragedWeightsNames.at(opt.weights));
}

}  // namespace

void add_average_command(CLI::App& app) {
  auto opt = std::make_shared<AverageOptions>();
  CLI::App* cmd = app.add_subcommand(
      "average", "Average the weights of checkpoints of one run into a new model directory (as fairseq does)");
  cmd->add_option("CHECKPOINT", opt->inputs,
                  "Checkpoint or model directories to average; with --last N, one run directory")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--out,-o", opt->out, "Model directory to write; must not exist yet")->required();
  cmd->add_option("--last", opt->last,
                  "Average the newest N step checkpoints (by step) of the run directory given; 0: the checkpoints "
                  "given")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--weights", opt->weights,
                  "Which weights of each checkpoint: model (model.safetensors: the moving average in a run with "
                  "optimizer.ema_decay) or training (the raw weights training continued from, as fairseq "
                  "averages; the same as model in a run without EMA)")
      ->capture_default_str()
      ->check(CLI::IsMember(nn::kAveragedWeightsNames));
  cmd->callback([opt] { run_average(*opt); });
}

}  // namespace heed::cli

// heed train: a translation model from a YAML config (src/train/trainer.cc does the work).
#include <iostream>

#include "cli/commands.h"
#include "heed/core/error.h"
#include "heed/train/trainer.h"

namespace heed::cli {

namespace {

struct TrainCommand {
  std::string config, run_dir;
  std::vector<std::string> overrides;
  train::RunOptions run;
  bool help_config = false, dump_config = false;
};

void run_train(const TrainCommand& cmd) {
  if (cmd.help_config) {
    std::cout << "# Every key of a training config, with its default; `--set group.key=value` overrides one.\n"
              << train::train_options().help();
    return;
  }
  HEED_CHECK(!cmd.config.empty(), "heed train needs a config file (see heed train --help-config)");
  std::vector<std::string> overrides = cmd.overrides;
  std::string run_dir = cmd.run_dir;
  if (run_dir.empty() && !cmd.run.resume.empty()) run_dir = train::resumed_run_dir(cmd.run.resume);
  if (!run_dir.empty()) overrides.push_back("run_dir=" + run_dir);
  const train::TrainConfig config = train::load_train_config(cmd.config, overrides);
  if (cmd.dump_config) {
    std::cout << train::train_options().dump(config);
    return;
  }
  train::train(config, cmd.run);
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto cmd = std::make_shared<TrainCommand>();
  CLI::App* sub = app.add_subcommand("train", "Train a translation model from a YAML config");
  sub->add_option("config", cmd->config, "Training config (YAML)");
  sub->add_option("--run-dir", cmd->run_dir, "Run directory; overrides the config's run_dir");
  sub->add_option("--set", cmd->overrides, "Override a config key: --set optimizer.lr=3e-4 (repeatable)");
  auto* resume = sub->add_option("--resume", cmd->run.resume,
                                 "Continue a run exactly: its run directory (latest checkpoint) or a checkpoint");
  sub->add_option("--init-from", cmd->run.init_from,
                  "Fine-tune: weights only, from a Heed checkpoint/run directory or a Hugging Face MarianMT "
                  "directory; fresh optimizer and schedule")
      ->excludes(resume);
  sub->add_flag("--overwrite", cmd->run.overwrite,
                "Replace the run in the run directory: remove its checkpoints/, config.yaml, metrics.jsonl, "
                "train.log and vocabulary files first (without it, a directory holding a run is refused)")
      ->excludes(resume);
  sub->add_flag("--help-config", cmd->help_config, "Print every config key with its type, default and help");
  sub->add_flag("--dump-config", cmd->dump_config, "Print the effective config and exit");
  sub->callback([cmd] { run_train(*cmd); });
}

}  // namespace heed::cli

// heed prepare: the vocabulary and the corpus store that heed train would prepare itself, ahead of training
// (src/train/prepare.cc does the work).
#include "cli/commands.h"
#include "heed/core/error.h"
#include "heed/train/prepare.h"

namespace heed::cli {

namespace {

struct PrepareCommand {
  std::string config, run_dir;
  std::vector<std::string> overrides;
};

void run_prepare(const PrepareCommand& cmd) {
  HEED_CHECK(!cmd.config.empty(), "heed prepare needs a training config file (see heed train --help-config)");
  std::vector<std::string> overrides = cmd.overrides;
  if (!cmd.run_dir.empty()) overrides.push_back("run_dir=" + cmd.run_dir);
  train::prepare(train::load_train_config(cmd.config, overrides));
}

}  // namespace

void add_prepare_command(CLI::App& app) {
  auto cmd = std::make_shared<PrepareCommand>();
  CLI::App* sub = app.add_subcommand(
      "prepare", "Train or reuse the vocabulary and encode the training corpora into the corpus store (data.store) "
                 "that heed train with the same config opens; a store that is there is verified, and rebuilt if "
                 "stale");
  sub->add_option("config", cmd->config, "Training config (YAML)");
  sub->add_option("--run-dir", cmd->run_dir, "Run directory; overrides the config's run_dir");
  sub->add_option("--set", cmd->overrides, "Override a config key: --set data.max_length=200 (repeatable)");
  sub->callback([cmd] { run_prepare(*cmd); });
}

}  // namespace heed::cli

// The subcommands of the `heed` program; each file in src/cli/ adds its own to the CLI11 app.
#pragma once

#include <CLI/CLI.hpp>

namespace heed::cli {

// heed grads: loss and parameter gradients of one batch (cmd_grads.cc).
void add_grads_command(CLI::App& app);
// heed import-hf / export-hf: Hugging Face MarianMT conversion (cmd_hf.cc).
void add_hf_commands(CLI::App& app);

}  // namespace heed::cli

// The subcommands of the `heed` program; each file in src/cli/ adds its own to the CLI11 app.
#pragma once

#include <CLI/CLI.hpp>

namespace heed::cli {

// heed average: the mean of several checkpoints' weights, as a new model directory (cmd_average.cc).
void add_average_command(CLI::App& app);
// heed grads: loss and parameter gradients of one batch (cmd_grads.cc).
void add_grads_command(CLI::App& app);
// heed import-hf / export-hf: Hugging Face MarianMT conversion (cmd_hf.cc).
void add_hf_commands(CLI::App& app);
// heed prepare: the vocabulary and the corpus store of a training config (cmd_prepare.cc).
void add_prepare_command(CLI::App& app);
// heed train: a model from a YAML config, with resume and fine-tuning (cmd_train.cc).
void add_train_command(CLI::App& app);
// heed translate: text to text with a trained model (cmd_translate.cc).
void add_translate_command(CLI::App& app);
// heed score: corpus BLEU and chrF of a translation file (cmd_score.cc).
void add_score_command(CLI::App& app);
// heed plot: training curves of a run directory as SVG (cmd_plot.cc).
void add_plot_command(CLI::App& app);
// heed selftest: the CUDA kernels against the CPU reference ops, on the simulator or a GPU (cmd_selftest.cc).
void add_selftest_command(CLI::App& app);
// heed translate-ids: beam search over token ids from stdin, for checks without a tokenizer (cmd_translate_ids.cc).
void add_translate_ids_command(CLI::App& app);

}  // namespace heed::cli

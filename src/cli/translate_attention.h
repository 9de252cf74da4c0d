// heed translate's attention outputs: --attention-plots (one SVG heatmap per sentence and an index.html)
// and --alignment (Marian's ` ||| ` alignments), with the options that select the attention they show.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <vector>

#include "heed/data/vocab.h"
#include "heed/decode/translator.h"

namespace heed::cli {

struct AttentionOptions {
  std::string plots_dir;  // --attention-plots
  std::string alignment;  // --alignment: "", "hard" or "soft"
  int64_t layer = -1;     // --attention-layer: 0-based, -1 the last
  std::string head = "mean";
  std::string kind = "cross";

  bool wanted() const { return !plots_dir.empty() || !alignment.empty(); }
};

void add_attention_options(CLI::App& sub, AttentionOptions& options);

// What beam search must record for `options` on a model of `config`, or nothing when no output needs it.
// Checks the options against the model (a layer or head it lacks, alignments of encoder self-attention, an
// existing non-empty plot directory), naming the option.
std::optional<decode::AttentionRecord> attention_record(const AttentionOptions& options, const nn::ModelConfig& config);

// " ||| <alignment>" for one hypothesis of a translation, in options.alignment's format.
std::string alignment_field(const AttentionOptions& options, const decode::Translation& translation,
                            const decode::Hypothesis& hypothesis, const data::Vocab& src_vocab,
                            const data::Vocab& tgt_vocab);

// Writes options.plots_dir atomically: sentence-<i>.svg (1-based, the best hypothesis) and index.html.
void write_attention_plots(const AttentionOptions& options, const decode::AttentionRecord& record,
                           const std::vector<std::string>& lines, const std::vector<decode::Translation>& translations,
                           const data::Vocab& src_vocab, const data::Vocab& tgt_vocab);

}  // namespace heed::cli

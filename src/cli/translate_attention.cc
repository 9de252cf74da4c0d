#include "cli/translate_attention.h"

#include <fmt/format.h>

#include <filesystem>

#include "heed/core/error.h"
#include "heed/decode/alignment.h"
#include "heed/decode/attention_plot.h"
#include "heed/io/atomic_file.h"

namespace heed::cli {

namespace {

namespace fs = std::filesystem;

std::vector<std::string> pieces_of(const std::vector<int32_t>& ids, const data::Vocab& vocab) {
  std::vector<std::string> pieces;
  for (int32_t id : ids) pieces.push_back(vocab.piece(id));
  return pieces;
}

// The source pieces without their eos, and the target pieces of a hypothesis (which never holds eos).
std::vector<std::string> source_words_pieces(const decode::Translation& t, const data::Vocab& vocab) {
  return pieces_of(std::vector<int32_t>(t.source.begin(), t.source.end() - 1), vocab);
}

void check_plot_dir(const std::string& dir) {
  std::error_code ec;
  HEED_CHECK(!fs::exists(dir, ec) || (fs::is_directory(dir, ec) && fs::is_empty(dir, ec)),
             "--attention-plots {}: the directory exists and is not empty; name a new or empty one", dir);
}

}  // namespace

void add_attention_options(CLI::App& sub, AttentionOptions& o) {
  sub.add_option("--attention-plots", o.plots_dir,
                 "Write one SVG heatmap of attention weights per sentence, and an index.html showing them all, into "
                 "this new (or empty) directory");
  sub.add_option("--alignment", o.alignment,
                 "Append word alignments to each output line as Marian does: ' ||| ' then 'hard' (i-j word pairs) or "
                 "'soft' (the weight matrix over pieces)")
      ->check(CLI::IsMember({"hard", "soft"}));
  sub.add_option("--attention-layer", o.layer, "Which layer's attention to show (0-based; -1: the last)")
      ->capture_default_str();
  sub.add_option("--attention-head", o.head, "Which head (0-based), or 'mean' for the average over heads")
      ->capture_default_str();
  sub.add_option("--attention-kind", o.kind,
                 "cross (decoder cross-attention: target pieces against source pieces) or encoder (encoder "
                 "self-attention: source against source); alignments need cross")
      ->capture_default_str()
      ->check(CLI::IsMember({"cross", "encoder"}));
}

std::optional<decode::AttentionRecord> attention_record(const AttentionOptions& o, const nn::ModelConfig& config) {
  if (!o.wanted()) return std::nullopt;
  HEED_CHECK(o.alignment.empty() || o.kind == "cross",
             "--alignment needs cross-attention; it cannot be combined with --attention-kind {}", o.kind);
  if (!o.plots_dir.empty()) check_plot_dir(o.plots_dir);
  decode::AttentionRecord record;
  const bool encoder = o.kind == "encoder";
  record.kind = encoder ? nn::AttentionProbe::Kind::EncoderSelf : nn::AttentionProbe::Kind::DecoderCross;
  const int64_t layers = encoder ? config.encoder_layers : config.decoder_layers;
  HEED_CHECK(o.layer >= -1 && o.layer < layers, "--attention-layer {}: the {} has layers 0 to {} (or -1: the last)",
             o.layer, encoder ? "encoder" : "decoder", layers - 1);
  record.layer = o.layer == -1 ? layers - 1 : o.layer;
  if (o.head != "mean") {
    size_t used = 0;
    int64_t head = -1;
    try {
      head = std::stoll(o.head, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    HEED_CHECK(used == o.head.size() && head >= 0 && head < config.heads,
               "--attention-head {}: expected 'mean' or a head number from 0 to {}", o.head, config.heads - 1);
    record.head = head;
  }
  return record;
}

std::string alignment_field(const AttentionOptions& o, const decode::Translation& t, const decode::Hypothesis& h,
                            const data::Vocab& src_vocab, const data::Vocab& tgt_vocab) {
  if (o.alignment == "soft") return " ||| " + decode::soft_alignment(h.attention);
  return " ||| " +
         decode::hard_alignment(h.attention, source_words_pieces(t, src_vocab), pieces_of(h.tokens, tgt_vocab));
}

void write_attention_plots(const AttentionOptions& o, const decode::AttentionRecord& record,
                           const std::vector<std::string>& lines, const std::vector<decode::Translation>& translations,
                           const data::Vocab& src_vocab, const data::Vocab& tgt_vocab) {
  const bool encoder = record.kind == nn::AttentionProbe::Kind::EncoderSelf;
  const std::string heads = record.head < 0 ? "mean over heads" : fmt::format("head {}", record.head);
  const std::string what = encoder ? fmt::format("encoder self-attention, layer {}, {}", record.layer, heads)
                                   : fmt::format("cross-attention, decoder layer {}, {}", record.layer, heads);
  std::vector<decode::IndexEntry> entries;
  std::vector<std::string> svgs;
  for (size_t i = 0; i < translations.size(); ++i) {
    const decode::Translation& t = translations[i];
    if (t.nbest.empty()) continue;  // stopped early
    const decode::Hypothesis& best = t.nbest.front();
    decode::AttentionPlot plot;
    plot.title = fmt::format("sentence {}: {}", i + 1, what);
    plot.columns = pieces_of(t.source, src_vocab);
    if (encoder) {
      plot.row_axis = "source pieces (queries)";
      plot.column_axis = "source pieces (keys)";
      plot.rows = plot.columns;
    } else {
      plot.row_axis = "target pieces";
      plot.column_axis = "source pieces";
      plot.rows = pieces_of(best.tokens, tgt_vocab);
      // The last row is eos's when the hypothesis ended with it rather than at the length limit.
      if (best.attention.size() > best.tokens.size()) plot.rows.push_back(tgt_vocab.piece(tgt_vocab.eos_id()));
    }
    plot.weights = best.attention;
    const std::string file = fmt::format("sentence-{}.svg", i + 1);
    svgs.push_back(decode::render_attention_svg(plot));
    entries.push_back({file, fmt::format("{}. {}  \u2192  {}", i + 1, lines[i], t.text)});
  }
  const std::string index = decode::render_attention_index("heed translate: " + what, entries);

  // An empty directory (checked before translating) gives way to the atomic write of the new one.
  std::error_code ec;
  if (fs::is_directory(o.plots_dir, ec)) {
    check_plot_dir(o.plots_dir);
    fs::remove(o.plots_dir);
  }
  io::write_directory_atomic(
      o.plots_dir,
      [&](const fs::path& temp) {
        for (size_t i = 0; i < svgs.size(); ++i) io::write_file_atomic((temp / entries[i].file).string(), svgs[i]);
        io::write_file_atomic((temp / "index.html").string(), index);
      },
      false);
}

}  // namespace heed::cli

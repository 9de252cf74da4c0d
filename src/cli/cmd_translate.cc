// heed translate: text in, text out, with the vocabularies of the model's run or checkpoint directory.
// Several --model options decode as an ensemble (decode/ensemble.h): models that share one vocabulary.
#include <omp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "cli/translate_attention.h"
#include "heed/data/text.h"
#include "heed/data/vocab_dir.h"
#include "heed/decode/translator.h"
#include "heed/nn/open_model.h"
#include "heed/ops/matmul.h"

namespace heed::cli {

namespace {

struct TranslateCommand {
  std::vector<std::string> models;
  std::vector<double> weights;  // empty: equal
  std::string input, output, metric = "bleu";
  decode::TranslateOptions options;
  int threads = 0;
  std::string device = "cpu", precision = "auto";
  AttentionOptions attention;
};

std::vector<std::string> read_stdin() {
  std::vector<std::string> lines;
  for (std::string line; std::getline(std::cin, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    data::check_text_line(line, "stdin", lines.size() + 1);
    lines.push_back(std::move(line));
  }
  return lines;
}

// Refuses models whose vocabularies differ from the first one's (`vocab`), naming both and the difference.
void check_one_vocabulary(const std::vector<nn::OpenedModel>& opened, const data::Vocabularies& vocab) {
  for (size_t i = 1; i < opened.size(); ++i) {
    const std::string difference =
        data::vocabulary_difference(vocab, opened.front().dir, data::load_vocabularies(opened[i].dir), opened[i].dir);
    HEED_CHECK(difference.empty(), "cannot ensemble {} and {}: {} (the models must share one vocabulary)",
               opened.front().dir, opened[i].dir, difference);
  }
}

void run_translate(const TranslateCommand& cmd) {
  if (cmd.threads > 0) omp_set_num_threads(cmd.threads);
  const Device device = resolve_device(cmd.device, "--device");
  decode::Ensemble::check_weights(cmd.weights, cmd.models.size(), "--weights");  // before the models load
  std::vector<nn::OpenedModel> opened;
  for (const std::string& path : cmd.models)
    opened.push_back(nn::open_model(path, device, cmd.precision, "--precision", cmd.metric));
  const data::Vocabularies vocab = data::load_vocabularies(opened.front().dir);
  check_one_vocabulary(opened, vocab);
  std::vector<decode::Ensemble::Member> members;
  for (const nn::OpenedModel& m : opened) members.push_back({m.model.get(), m.dir});
  const decode::Ensemble models(members, cmd.weights);
  const data::Vocab &src_vocab = vocab.src, &tgt_vocab = vocab.tgt;
  decode::TranslateOptions options = cmd.options;
  // Each step keeps the beam_size best of beam_size * vocabulary continuations: a beam wider than the
  // vocabulary costs minutes per sentence and finds nothing a beam as wide as the vocabulary misses.
  const int vocabulary = static_cast<int>(models.config().vocab_size);
  if (options.search.beam_size > vocabulary) {
    spdlog::warn("--beam-size {} is larger than the vocabulary ({} pieces): using {}", options.search.beam_size,
                 vocabulary, vocabulary);
    options.search.beam_size = vocabulary;
    options.search.n_best = std::min(options.search.n_best, vocabulary);
  }
  options.search.compute = opened.front().precision.compute;
  std::optional<ops::CpuBf16GemmScope> bf16_products;
  if (opened.front().precision.cpu_bf16_gemm) bf16_products.emplace("--precision bf16");
  // With an ensemble, the attention shown is its first model's, whose layers the options name.
  options.search.attention = attention_record(cmd.attention, opened.front().config);
  for (size_t i = 0; i < opened.size(); ++i)
    spdlog::info("translating with {}{} on {} in {}", opened[i].dir,
                 opened.size() > 1 ? fmt::format(" (weight {:.4g})", models.weights()[i]) : "", device.str(),
                 bf16_products ? "fp32 with bf16 matrix products" : dtype_name(options.search.compute));

  const std::vector<std::string> lines = cmd.input.empty() ? read_stdin() : data::read_lines(cmd.input);
  const std::vector<decode::Translation> out = decode::translate(models, src_vocab, tgt_vocab, lines, options);

  std::ofstream file;
  if (!cmd.output.empty()) {
    file.open(cmd.output);
    HEED_CHECK(file.good(), "cannot write {}", cmd.output);
  }
  std::ostream& os = cmd.output.empty() ? std::cout : file;
  // Marian's --alignment adds " ||| alignment" after the text, in n-best lists before the score.
  const auto alignment = [&](const decode::Translation& t, size_t k) {
    return cmd.attention.alignment.empty() || t.nbest.empty()
               ? std::string()
               : alignment_field(cmd.attention, t, t.nbest[k], src_vocab, tgt_vocab);
  };
  for (size_t i = 0; i < out.size(); ++i) {
    if (options.search.n_best <= 1) {
      os << out[i].text << alignment(out[i], 0) << '\n';
      continue;
    }
    for (size_t k = 0; k < out[i].nbest.size(); ++k)  // Marian's n-best format: id ||| text ||| score
      os << i << " ||| " << out[i].nbest_text[k] << alignment(out[i], k) << " ||| "
         << fmt::format("{:.6f}", out[i].nbest[k].score) << '\n';
  }
  os.flush();
  HEED_CHECK(os.good(), "error writing the translations");
  if (!cmd.attention.plots_dir.empty()) {
    write_attention_plots(cmd.attention, *options.search.attention, lines, out, src_vocab, tgt_vocab);
    spdlog::info("attention plots: {}/index.html", cmd.attention.plots_dir);
  }
}

}  // namespace

void add_translate_command(CLI::App& app) {
  auto cmd = std::make_shared<TranslateCommand>();
  decode::SearchOptions& s = cmd->options.search;
  CLI::App* sub = app.add_subcommand("translate", "Translate text with a trained model (stdin to stdout by default)");
  sub->add_option("--model", cmd->models,
                  "A checkpoint directory, a run directory (its best checkpoint for --metric, else the latest), or a "
                  "Hugging Face MarianMT directory with its tokenizer. Repeat it for an ensemble: models of one "
                  "vocabulary whose log-probabilities are added per step, weighted by --weights")
      ->required();
  sub->add_option("--weights", cmd->weights,
                  "An ensemble's weights, one per --model in their order, comma-separated (default: equal); each "
                  "model's log-probabilities are multiplied by its weight divided by their sum")
      ->delimiter(',');
  sub->add_option("--input", cmd->input, "Source text, one sentence per line (default: stdin)");
  sub->add_option("--output", cmd->output, "Translations (default: stdout)");
  sub->add_option("--beam-size", s.beam_size, "Beam size; 1 is greedy decoding; at most the vocabulary size")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--length-penalty", s.length_penalty, "Score = log-probability / length^penalty")
      ->capture_default_str();
  sub->add_option("--max-length-ratio", s.max_length_ratio, "Longest output as a multiple of the source length")
      ->capture_default_str();
  sub->add_option("--max-length", s.max_length, "Longest output in tokens")->capture_default_str();
  sub->add_option("--n-best", s.n_best, "Print the N best translations: 'line ||| text ||| score'")
      ->capture_default_str();
  sub->add_option("--batch-tokens", cmd->options.batch_tokens, "Source tokens per batch")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--metric", cmd->metric,
                  "A run directory's checkpoint: best-<metric> (else any best-*, else the latest), or latest")
      ->capture_default_str();
  sub->add_option("--threads", cmd->threads, "CPU threads (default 0: all cores)")->check(CLI::NonNegativeNumber);
  sub->add_option("--device", cmd->device, "cpu, cuda, cuda:N, sim (the simulated GPU), or auto")->capture_default_str();
  sub->add_option("--precision", cmd->precision, "fp32, bf16, fp16, or auto (bf16 on a GPU, fp32 on the CPU). On the CPU, bf16 means "
                  "bf16 matrix products with fp32 activations (it needs AVX512_BF16), and fp16 is refused")
      ->capture_default_str();
  add_attention_options(*sub, cmd->attention);
  sub->callback([cmd] { run_translate(*cmd); });
}

}  // namespace heed::cli

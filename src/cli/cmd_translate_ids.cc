// heed translate-ids: beam search over token ids, without a tokenizer. It exists so that outside references
// (Hugging Face generate in tests/python/test_generate_hf.py) can check the search itself: the ids go in
// exactly as the encoder sees them and come out exactly as the search produced them.
//
// stdin: one source sentence per line, space-separated ids including the final eos, as a MarianMT tokenizer
// produces them. stdout: per line the best hypothesis's ids (no start token, no eos); with --n-best, lines
// "i ||| ids ||| score" (i the 0-based input line, score the normalised score), best first per sentence.
#include <fmt/format.h>
#include <omp.h>

#include <iostream>
#include <sstream>
#include <string>

#include "cli/commands.h"
#include "heed/decode/beam_search.h"
#include "heed/nn/open_model.h"

namespace heed::cli {

namespace {

struct TranslateIdsOptions {
  std::string model_dir;
  decode::SearchOptions search;
  bool n_best = false;
  int batch_size = 16;
  int threads = 0;
};

// Source lines of ids inside [0, vocab_size).
std::vector<std::vector<int32_t>> read_id_lines(std::istream& in, int64_t vocab_size) {
  std::vector<std::vector<int32_t>> lines;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::vector<int32_t> ids;
    std::string word;
    while (words >> word) {
      size_t used = 0;
      int64_t id = -1;
      try {
        id = std::stoll(word, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      HEED_CHECK(used == word.size() && id >= 0,
                 "stdin line {}: \"{}\" is not a token id (expected non-negative integers separated by spaces)",
                 lines.size() + 1, word);
      HEED_CHECK(id < vocab_size, "stdin line {}: id {} is outside the model's vocabulary [0, {})", lines.size() + 1,
                 id, vocab_size);
      ids.push_back(static_cast<int32_t>(id));
    }
    HEED_CHECK(!ids.empty(), "stdin line {} is empty: a source needs at least its eos id", lines.size() + 1);
    lines.push_back(std::move(ids));
  }
  return lines;
}

std::string join_ids(const std::vector<int32_t>& ids) {
  std::string text;
  for (size_t i = 0; i < ids.size(); ++i) text += (i ? " " : "") + std::to_string(ids[i]);
  return text;
}

void run_translate_ids(const TranslateIdsOptions& opt) {
  if (opt.threads > 0) omp_set_num_threads(opt.threads);
  const nn::OpenedModel opened = nn::open_model(opt.model_dir, Device::cpu(), "fp32", "--precision");

  const std::vector<std::vector<int32_t>> sources = read_id_lines(std::cin, opened.config.vocab_size);
  for (size_t first = 0; first < sources.size(); first += static_cast<size_t>(opt.batch_size)) {
    const size_t end = std::min(sources.size(), first + static_cast<size_t>(opt.batch_size));
    const std::vector<std::vector<int32_t>> batch(sources.begin() + first, sources.begin() + end);
    const std::vector<std::vector<decode::Hypothesis>> results =
        decode::beam_search(*opened.model, batch, opt.search);
    for (size_t i = 0; i < results.size(); ++i) {
      if (!opt.n_best) {
        std::cout << (results[i].empty() ? "" : join_ids(results[i].front().tokens)) << '\n';
        continue;
      }
      for (const decode::Hypothesis& h : results[i])
        std::cout << first + i << " ||| " << join_ids(h.tokens) << " ||| " << fmt::format("{:.6f}", h.score) << '\n';
    }
  }
  std::cout.flush();
}

}  // namespace

void add_translate_ids_command(CLI::App& app) {
  auto opt = std::make_shared<TranslateIdsOptions>();
  CLI::App* cmd = app.add_subcommand(
      "translate-ids", "Beam search over token ids read from stdin (one sentence per line, eos included)");
  cmd->add_option("--model", opt->model_dir,
                  "A model or checkpoint directory, a run directory (its best checkpoint), or a Hugging Face "
                  "MarianMT directory")
      ->required()
      ->check(CLI::ExistingDirectory);
  decode::SearchOptions& s = opt->search;
  cmd->add_option("--beam-size", s.beam_size, "Beam size; 1 is greedy decoding")->capture_default_str();
  cmd->add_option("--length-penalty", s.length_penalty, "Score = log-prob / length^length_penalty")
      ->capture_default_str();
  cmd->add_option("--max-length", s.max_length, "At most this many generated tokens, eos included")
      ->capture_default_str();
  cmd->add_option("--max-length-ratio", s.max_length_ratio,
                  "At most ratio * source ids + offset generated tokens (also capped by --max-length)")
      ->capture_default_str();
  cmd->add_option("--max-length-offset", s.max_length_offset, "See --max-length-ratio")->capture_default_str();
  auto* n_best = cmd->add_option("--n-best", s.n_best, "Print the N best hypotheses as \"i ||| ids ||| score\"");
  cmd->add_option("--batch-size", opt->batch_size, "Sentences decoded together")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--threads", opt->threads, "CPU threads (default: all cores)");
  cmd->callback([opt, n_best] {
    opt->n_best = n_best->count() > 0;
    run_translate_ids(*opt);
  });
}

}  // namespace heed::cli

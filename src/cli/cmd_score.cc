// heed score: corpus BLEU and chrF of a translation file against a reference file, printed the way the
// sacrebleu command prints them (score width 1, signature attached), so the lines can be pasted next to
// sacreBLEU results; --json gives the same numbers at full precision with BLEU's statistics.
#include <nlohmann/json.hpp>

#include <iostream>

#include "cli/commands.h"
#include "heed/core/error.h"
#include "heed/data/text.h"
#include "heed/decode/metrics.h"

namespace heed::cli {

namespace {

struct ScoreOptions {
  std::string hyp, ref;
  bool json = false;
};

void run_score(const ScoreOptions& opt) {
  const std::vector<std::string> hyps = data::read_lines(opt.hyp);
  const std::vector<std::string> refs = data::read_lines(opt.ref);
  HEED_CHECK(hyps.size() == refs.size(), "{} has {} lines but {} has {}: they must pair up line by line", opt.hyp,
             hyps.size(), opt.ref, refs.size());
  HEED_CHECK(!hyps.empty(), "{} and {} are empty: there is nothing to score", opt.hyp, opt.ref);
  const decode::BleuScore bleu = decode::corpus_bleu(hyps, refs);
  const decode::ChrfScore chrf = decode::corpus_chrf(hyps, refs);
  if (!opt.json) {
    std::cout << bleu.format(1, bleu.signature()) << '\n' << chrf.format(1, chrf.signature()) << std::endl;
    return;
  }
  const nlohmann::json result = {
      {"bleu",
       {{"score", bleu.score},
        {"signature", bleu.signature()},
        {"precisions", bleu.precisions},
        {"counts", bleu.correct},
        {"totals", bleu.total},
        {"bp", bleu.bp},
        {"ratio", bleu.ratio},
        {"sys_len", bleu.sys_len},
        {"ref_len", bleu.ref_len}}},
      {"chrf", {{"score", chrf.score}, {"signature", chrf.signature()}}},
      {"sentences", hyps.size()},
  };
  std::cout << result.dump() << std::endl;
}

}  // namespace

void add_score_command(CLI::App& app) {
  auto opt = std::make_shared<ScoreOptions>();
  CLI::App* cmd = app.add_subcommand("score", "Corpus BLEU and chrF of translations, as sacreBLEU 2.4.3 computes them");
  cmd->add_option("--hyp", opt->hyp, "Translations, UTF-8, one sentence per line")->required();
  cmd->add_option("--ref", opt->ref, "References, UTF-8, one sentence per line")->required();
  cmd->add_flag("--json", opt->json, "Print one JSON object with both scores, signatures and BLEU's statistics");
  cmd->callback([opt] { run_score(*opt); });
}

}  // namespace heed::cli

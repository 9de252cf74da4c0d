// Corpus BLEU and chrF exactly as sacreBLEU 2.4.3 computes them with its defaults, so a score Heed reports
// (in validation or `heed score`) can be put next to any published sacreBLEU score:
//   BLEU: sacrebleu.corpus_bleu(hyps, [refs]): 13a tokenizer, orders 1-4, 'exp' smoothing, mixed case.
//   chrF: sacrebleu.corpus_chrf(hyps, [refs]): chrF2, character orders 1-6, no word n-grams, whitespace
//         removed, statistics summed over the corpus before the F-score, no epsilon smoothing.
// One reference per sentence. Text is UTF-8; sentences that are not valid UTF-8 are an error.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace heed::decode {

// The sacreBLEU release whose algorithms these are. Signatures carry it in their "version" field, which in
// sacreBLEU names sacreBLEU's own version: a Heed signature then reads exactly like the one sacreBLEU 2.4.3
// prints for the same settings, and says which sacreBLEU to run to reproduce the number.
inline constexpr std::string_view kSacrebleuVersion = "2.4.3";

inline constexpr int kBleuMaxOrder = 4;

struct BleuScore {
  double score = 0;                             // 0..100
  std::array<int64_t, kBleuMaxOrder> correct{};  // clipped n-gram matches, orders 1..4
  std::array<int64_t, kBleuMaxOrder> total{};    // hypothesis n-grams, orders 1..4
  std::array<double, kBleuMaxOrder> precisions{};  // percent, after smoothing
  double bp = 0;                                // brevity penalty
  double ratio = 0;                             // sys_len / ref_len (0 when ref_len is 0)
  int64_t sys_len = 0, ref_len = 0;             // tokens in hypotheses / references

  // "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.4.3"
  std::string signature() const;
  // sacreBLEU's Score.format(width, signature=...): "BLEU = 23.45 56.7/30.1/17.2/10.0 (BP = 1.000 ratio =
  // 1.023 hyp_len = 1234 ref_len = 1206)", or "BLEU|<signature> = ..." when a signature is given. sacreBLEU's
  // API formats with width 2, its command line with width 1.
  std::string format(int width = 2, std::string_view signature = {}) const;
};

// Hypothesis n-grams, reference n-grams and their clipped matches for one character n-gram order.
struct ChrfOrderStatistics {
  int64_t hyp = 0, ref = 0, match = 0;
};

inline constexpr int kChrfCharOrder = 6;
inline constexpr int kChrfBeta = 2;

struct ChrfScore {
  double score = 0;  // 0..100
  std::array<ChrfOrderStatistics, kChrfCharOrder> orders{};

  // "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.4.3"
  std::string signature() const;
  // "chrF2 = 45.67", or "chrF2|<signature> = 45.67" when a signature is given.
  std::string format(int width = 2, std::string_view signature = {}) const;
};

// hypotheses[i] is scored against references[i]; the counts must agree. An empty corpus scores 0 (sacreBLEU
// itself raises IndexError there; 0 is what its formulas give for all-zero statistics).
BleuScore corpus_bleu(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references);
ChrfScore corpus_chrf(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references);

// sacreBLEU's 13a (mteval-v13a) tokenization of one sentence, right-stripped first as BLEU does: tokens joined
// by single spaces.
std::string tokenize_13a(std::string_view sentence);

}  // namespace heed::decode

// BLEU and chrF against numbers sacreBLEU 2.4.3 produced (in .venv) for the same text: the 13a tokenizer
// rule by rule, corpus scores with every statistic, the edge cases (empty hypotheses, hypotheses longer than
// the reference, missing 4-gram matches, sentences shorter than the n-gram order, Unicode punctuation and
// whitespace), the printed forms, and the errors a user can hit.
//
// The expected values were computed with
//   .venv/bin/python -c 'from sacrebleu.metrics import BLEU, CHRF; from sacrebleu.utils import sum_of_lists
//     b = BLEU(); s = b.corpus_score(hyps, [refs]); print(s.score, s.counts, s.totals, s.sys_len, s.ref_len,
//       s.bp, s.ratio, s.precisions, s.format(), s.format(1, signature=str(b.get_signature())))
//     c = CHRF(); print(c.corpus_score(hyps, [refs]).score, sum_of_lists(c._extract_corpus_statistics(hyps, [refs])))'
// and the tokenizations with
//   .venv/bin/python -c 'from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
//     print(Tokenizer13a()(s.rstrip()))'
#include <catch2/catch.hpp>


#include "heed/core/error.h"
#include "heed/decode/metrics.h"

using namespace heed;
using decode::corpus_bleu;
using decode::corpus_chrf;

namespace {

struct Expected {
  std::string name;
  std::vector<std::string> hyps, refs;
  double bleu;
  std::array<int64_t, 4> counts, totals;
  int64_t sys_len, ref_len;
  double bp, ratio;
  std::array<double, 4> precisions;
  std::string bleu_line;  // sacreBLEU's BLEUScore.format()
  double chrf;
  std::array<int64_t, 18> chrf_stats;  // [hyp, ref, match] per character order 1..6
};

const std::vector<Expected>& expected_cases() {
  static const std::vector<Expected> cases = {
      {"mixed corpus: ASCII and Unicode punctuation, numbers, entities, an empty hypothesis",
       {"The cat sat on the mat.", "¿Dónde está la biblioteca? Está cerca del «centro».",
        "It costs $1,000.50 -- or so, they said.", "",
        "A “quoted” phrase — with an em dash and &quot;entities&quot;.", "Completely unrelated words here"},
       {"The cat is on the mat.", "¿Dónde está la biblioteca? Está cerca del centro.",
        "It costs $1,000.50, or so they said.", "An empty hypothesis gets no credit.",
        "A \"quoted\" phrase — with an em dash and \"entities\".", "Nothing in common at all"},
       51.66510761257255, {37, 27, 20, 15}, {45, 40, 35, 30}, 45, 54, 0.8187307530779819, 0.8333333333333334,
       {82.22222222222223, 67.5, 57.142857142857146, 50.0},
       "BLEU = 51.67 82.2/67.5/57.1/50.0 (BP = 0.819 ratio = 0.833 hyp_len = 45 ref_len = 54)",
       59.427860464899794,
       {174, 181, 136, 169, 175, 113, 164, 169, 101, 159, 163, 91, 154, 157, 81, 149, 151, 72}},
      {"empty hypothesis",
       {""}, {"some words here"},
       0.0, {0, 0, 0, 0}, {0, 0, 0, 0}, 0, 3, 0.0, 0.0, {0, 0, 0, 0},
       "BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 0.000 ratio = 0.000 hyp_len = 0 ref_len = 3)",
       0.0, {0, 13, 0, 0, 12, 0, 0, 11, 0, 0, 10, 0, 0, 9, 0, 0, 8, 0}},
      {"hypothesis longer than the reference",
       {"the quick brown fox jumps over the lazy dog again and again"},
       {"the quick brown fox jumps over the lazy dog"},
       71.02992180127417, {9, 8, 7, 6}, {12, 11, 10, 9}, 12, 9, 1.0, 1.3333333333333333,
       {75.0, 72.72727272727273, 70.0, 66.66666666666667},
       "BLEU = 71.03 75.0/72.7/70.0/66.7 (BP = 1.000 ratio = 1.333 hyp_len = 12 ref_len = 9)",
       92.57902579511197, {48, 35, 35, 47, 34, 34, 46, 33, 33, 45, 32, 32, 44, 31, 31, 43, 30, 30}},
      {"no 4-gram matches: exp smoothing",
       {"one two three nine four five six"}, {"one two three four five six seven"},
       41.11336169005196, {6, 4, 2, 0}, {7, 6, 5, 4}, 7, 7, 1.0, 1.0,
       {85.71428571428571, 66.66666666666667, 40.0, 12.5},
       "BLEU = 41.11 85.7/66.7/40.0/12.5 (BP = 1.000 ratio = 1.000 hyp_len = 7 ref_len = 7)",
       74.71469016164308, {26, 27, 24, 25, 26, 22, 24, 25, 19, 23, 24, 17, 22, 23, 15, 21, 22, 13}},
      {"sentences shorter than four tokens: no 4-grams at all scores 0",
       {"a b c", "d e"}, {"a b c", "d e"},
       0.0, {5, 3, 1, 0}, {5, 3, 1, 0}, 5, 5, 1.0, 1.0, {100.0, 100.0, 100.0, 0.0},
       "BLEU = 0.00 100.0/100.0/100.0/0.0 (BP = 1.000 ratio = 1.000 hyp_len = 5 ref_len = 5)",
       100.0, {5, 5, 5, 3, 3, 3, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
      {"no matches",
       {"x y z w"}, {"a b c d"},
       0.0, {0, 0, 0, 0}, {4, 3, 2, 1}, 4, 4, 1.0, 1.0, {0, 0, 0, 0},
       "BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 1.000 ratio = 1.000 hyp_len = 4 ref_len = 4)",
       0.0, {4, 4, 0, 3, 3, 0, 2, 2, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0}},
      {"Unicode whitespace (no-break, thin, ideographic space) separates words",
       {"una\u00a0casa\u2009grande está aquí\u3000."}, {"una casa grande está aquí."},
       100.00000000000004, {6, 5, 4, 3}, {6, 5, 4, 3}, 6, 6, 1.0, 1.0, {100.0, 100.0, 100.0, 100.0},
       "BLEU = 100.00 100.0/100.0/100.0/100.0 (BP = 1.000 ratio = 1.000 hyp_len = 6 ref_len = 6)",
       100.0, {22, 22, 22, 21, 21, 21, 20, 20, 20, 19, 19, 19, 18, 18, 18, 17, 17, 17}},
      {"reference shorter than the character order",
       {"abcdefgh"}, {"abc"},
       0.0, {0, 0, 0, 0}, {1, 0, 0, 0}, 1, 1, 1.0, 1.0, {0, 0, 0, 0},
       "BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 1.000 ratio = 1.000 hyp_len = 1 ref_len = 1)",
       65.56603773584906, {8, 3, 3, 7, 2, 2, 6, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
      {"chrF ignores whitespace",
       {"a b  c"}, {"abc"},
       0.0, {0, 0, 0, 0}, {3, 2, 1, 0}, 3, 1, 1.0, 3.0, {0, 0, 0, 0},
       "BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 1.000 ratio = 3.000 hyp_len = 3 ref_len = 1)",
       100.0, {3, 3, 3, 2, 2, 2, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
  };
  return cases;
}

}  // namespace

TEST_CASE("13a tokenization matches sacreBLEU's", "[metrics]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"Hello, world! It's 3.14 and 1,000 -- ok.", "Hello , world ! It's 3.14 and 1,000 -- ok ."},
      // &quot; is replaced before &amp;, so "&amp;quot;" becomes the text "&quot;", which stays.
      {"&quot;quoted&quot; &amp; &lt;tag&gt; &amp;quot;", "\" quoted \" & < tag > & quot ;"},
      // Only ASCII punctuation is split off.
      {"¿Qué tal? ¡Muy bien! «comillas» “curly” — dash…", "¿Qué tal ? ¡Muy bien ! «comillas» “curly” — dash…"},
      {"1-2 a-b 3- -4 (x) [y] {z} a/b a_b a~b a|b a^b a`b 'q'",
       "1 - 2 a-b 3 - -4 ( x ) [ y ] { z } a / b a _ b a ~ b a | b a ^ b a ` b 'q'"},
      {"price: $5.00. Then .5 and 5. or ,5 x,y 1,2,3.",
       "price : $ 5.00 . Then . 5 and 5 . or , 5 x , y 1,2,3 ."},
      {"<skipped> text  trailing   \t ", "text trailing"},
      // Python's whitespace splits (U+00A0, U+2009, U+3000, U+0085, U+202F, U+2028, U+001C, ...); the zero-width
      // space and U+180E (whitespace before Unicode 6.3) do not.
      {"a\u00a0b\u2009c\u3000d\u200be\u0085f\u202fg", "a b c d\u200be f g"},
      {"h\u2028i\x1cj\x0bk\u1680l\u205fm\u180en", "h i j k l m\u180en"},
      {"line-\nbreak and\nnewline", "linebreak and newline"},
      // re.sub's non-overlapping left-to-right matching.
      {"a..b ,,x 9.. ..9", "a . . b , , x 9 . . . .9"},
      {"", ""},
  };
  for (const auto& [text, tokens] : cases) CHECK(decode::tokenize_13a(text) == tokens);
}

TEST_CASE("corpus BLEU and chrF match sacreBLEU statistic by statistic", "[metrics]") {
  for (const Expected& e : expected_cases()) {
    DYNAMIC_SECTION(e.name) {
      const decode::BleuScore bleu = corpus_bleu(e.hyps, e.refs);
      CHECK(bleu.correct == e.counts);
      CHECK(bleu.total == e.totals);
      CHECK(bleu.sys_len == e.sys_len);
      CHECK(bleu.ref_len == e.ref_len);
      CHECK(bleu.bp == Approx(e.bp).margin(1e-9));
      CHECK(bleu.ratio == Approx(e.ratio).margin(1e-9));
      for (int n = 0; n < 4; ++n) CHECK(bleu.precisions[n] == Approx(e.precisions[n]).margin(1e-9));
      CHECK(bleu.score == Approx(e.bleu).margin(1e-6));
      CHECK(bleu.format() == e.bleu_line);

      const decode::ChrfScore chrf = corpus_chrf(e.hyps, e.refs);
      for (int n = 0; n < 6; ++n) {
        INFO("character order " << n + 1);
        CHECK(chrf.orders[n].hyp == e.chrf_stats[3 * n]);
        CHECK(chrf.orders[n].ref == e.chrf_stats[3 * n + 1]);
        CHECK(chrf.orders[n].match == e.chrf_stats[3 * n + 2]);
      }
      CHECK(chrf.score == Approx(e.chrf).margin(1e-6));
    }
  }
}

TEST_CASE("scores print as the sacrebleu command prints them", "[metrics]") {
  const Expected& e = expected_cases()[0];
  const decode::BleuScore bleu = corpus_bleu(e.hyps, e.refs);
  const decode::ChrfScore chrf = corpus_chrf(e.hyps, e.refs);
  CHECK(bleu.signature() == "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.4.3");
  CHECK(chrf.signature() == "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.4.3");
  CHECK(bleu.format(1, bleu.signature()) ==
        "BLEU|nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.4.3 = 51.7 82.2/67.5/57.1/50.0 "
        "(BP = 0.819 ratio = 0.833 hyp_len = 45 ref_len = 54)");
  CHECK(chrf.format(1, chrf.signature()) == "chrF2|nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.4.3 = 59.4");
  CHECK(chrf.format() == "chrF2 = 59.43");
}

TEST_CASE("an empty corpus scores zero", "[metrics]") {
  // sacreBLEU raises IndexError here; these are the values its formulas give for all-zero statistics.
  const decode::BleuScore bleu = corpus_bleu({}, {});
  CHECK(bleu.score == 0.0);
  CHECK(bleu.sys_len == 0);
  CHECK(bleu.ref_len == 0);
  CHECK(bleu.bp == 1.0);
  CHECK(bleu.ratio == 0.0);
  CHECK(corpus_chrf({}, {}).score == 0.0);
}

TEST_CASE("metrics reject mismatched corpora and invalid UTF-8", "[metrics]") {
  CHECK_THROWS_WITH(corpus_bleu({"a", "b"}, {"a"}), "2 hypotheses but 1 references: they must pair up one to one");
  CHECK_THROWS_WITH(corpus_chrf({"a"}, {"a", "b", "c"}),
                    "1 hypotheses but 3 references: they must pair up one to one");
  CHECK_THROWS_WITH(corpus_bleu({"ok", "ab\xff"}, {"ok", "ab"}), "hypothesis 2 is not valid UTF-8 (byte 3)");
  // Overlong form, surrogate, past U+10FFFF, truncated sequence: all rejected, as Python's decoder does.
  for (const std::string bad : {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "x\xc3"}) {
    CHECK_THROWS_WITH(corpus_chrf({"a"}, {bad}), Catch::StartsWith("reference 1 is not valid UTF-8"));
  }
  CHECK(corpus_chrf({"\xf0\x9f\x98\x80 ñ"}, {"\xf0\x9f\x98\x80 ñ"}).score == 100.0);
}

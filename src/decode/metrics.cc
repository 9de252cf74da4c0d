// BLEU and chrF, a line-for-line port of sacreBLEU 2.4.3 (metrics/bleu.py, metrics/chrf.py,
// tokenizers/tokenizer_13a.py, tokenizers/tokenizer_re.py). Matching it to the last digit means matching
// Python's text semantics, so the text is processed as Unicode code points, not bytes:
//  - str.split(), str.rstrip() and chrF's whitespace removal split on Python's whitespace set (str.isspace:
//    ASCII whitespace, U+001C..U+001F, U+0085, U+00A0 no-break space, U+2000..U+200A, U+3000, ...), not on
//    ASCII spaces only;
//  - the 13a regexes are applied as re.sub() does: left to right, non-overlapping matches; their classes
//    name ASCII characters only (Python's [0-9] is ASCII digits), so Unicode punctuation (¿ « » — “ ”)
//    stays attached to its word;
//  - chrF's character n-grams are n code points.
// The arithmetic follows sacreBLEU's expressions operation by operation, so scores agree to the last bit.
#include "heed/decode/metrics.h"

#include "heed/data/text.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "heed/core/error.h"

namespace heed::decode {

namespace {

void check_utf8(std::string_view text, std::string_view what, size_t number) {
  const size_t bad = data::find_invalid_utf8(text);
  HEED_CHECK(bad == std::string_view::npos, "{} {} is not valid UTF-8 (byte {})", what, number, bad + 1);
}

// `text` must be valid UTF-8.
std::u32string decode_utf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto lead = static_cast<uint8_t>(text[i]);
    const int length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    char32_t code = length == 1 ? lead : lead & (0x7F >> length);
    for (int k = 1; k < length; ++k) code = (code << 6) | (static_cast<uint8_t>(text[i + k]) & 0x3F);
    out += code;
    i += length;
  }
  return out;
}

void append_utf8(std::string& out, char32_t code) {
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else if (code < 0x10000) {
    out += static_cast<char>(0xE0 | (code >> 12));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code >> 18));
    out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
}

// Python's str.isspace(), which str.split() and str.rstrip() use.
bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_ascii_digit(char32_t c) { return c >= U'0' && c <= U'9'; }
bool is_period_or_comma(char32_t c) { return c == U'.' || c == U','; }

// The first 13a regex's class [\{-\~\[-\` -\&\(-\+\:-\@\/]: ASCII punctuation and symbols except the
// apostrophe, comma, hyphen and period (and the space, which it also matches, to no visible effect).
bool is_13a_symbol(char32_t c) {
  return c == U'/' || (c >= 0x20 && c <= 0x26) || (c >= 0x28 && c <= 0x2B) || (c >= 0x3A && c <= 0x40) ||
         (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
}

// Python's str.replace: every non-overlapping occurrence, left to right.
void replace_all(std::u32string& text, std::u32string_view from, std::u32string_view to) {
  for (size_t at = text.find(from); at != std::u32string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
}

// One re.sub() of a two-character pattern (a)(b): scanning left to right, each match is replaced by
// `rewrite(out, a, b)` and scanning resumes after it.
template <class MatchFirst, class MatchSecond, class Rewrite>
std::u32string substitute_pairs(const std::u32string& text, MatchFirst first, MatchSecond second, Rewrite rewrite) {
  std::u32string out;
  out.reserve(text.size() + text.size() / 4);
  size_t i = 0;
  for (; i + 1 < text.size(); ++i) {
    if (first(text[i]) && second(text[i + 1])) {
      rewrite(out, text[i], text[i + 1]);
      ++i;
    } else {
      out += text[i];
    }
  }
  if (i < text.size()) out += text[i];
  return out;
}

// Tokenizer13a.__call__ and TokenizerRegexp.__call__, after BLEU's sent.rstrip().
std::string tokenize_13a_code_points(std::u32string line) {
  while (!line.empty() && is_python_space(line.back())) line.pop_back();
  replace_all(line, U"<skipped>", U"");
  replace_all(line, U"-\n", U"");
  replace_all(line, U"\n", U" ");
  replace_all(line, U"&quot;", U"\"");
  replace_all(line, U"&amp;", U"&");
  replace_all(line, U"&lt;", U"<");
  replace_all(line, U"&gt;", U">");

  std::u32string spaced = U" ";
  for (char32_t c : line) {
    if (is_13a_symbol(c)) {
      spaced += {U' ', c, U' '};
    } else {
      spaced += c;
    }
  }
  spaced += U' ';
  const auto not_digit = [](char32_t c) { return !is_ascii_digit(c); };
  // Period and comma unless preceded by a digit: ([^0-9])([\.,]) -> "\1 \2 ".
  spaced = substitute_pairs(spaced, not_digit, is_period_or_comma,
                            [](std::u32string& out, char32_t a, char32_t b) { out += {a, U' ', b, U' '}; });
  // Period and comma unless followed by a digit: ([\.,])([^0-9]) -> " \1 \2".
  spaced = substitute_pairs(spaced, is_period_or_comma, not_digit,
                            [](std::u32string& out, char32_t a, char32_t b) { out += {U' ', a, U' ', b}; });
  // Dash preceded by a digit: ([0-9])(-) -> "\1 \2 ".
  spaced = substitute_pairs(spaced, is_ascii_digit, [](char32_t c) { return c == U'-'; },
                            [](std::u32string& out, char32_t a, char32_t b) { out += {a, U' ', b, U' '}; });

  // ' '.join(line.split())
  std::string tokens;
  bool in_token = false;
  for (char32_t c : spaced) {
    if (is_python_space(c)) {
      in_token = false;
      continue;
    }
    if (!in_token && !tokens.empty()) tokens += ' ';
    in_token = true;
    append_utf8(tokens, c);
  }
  return tokens;
}

// n-gram counts keyed by views into the text they come from, which must outlive them.
template <class Char>
using NgramCounts = std::unordered_map<std::basic_string_view<Char>, int64_t>;

// [begin, end) of one unit (a word or a character) in a text.
struct Span {
  size_t begin, end;
};

// The n-grams of n consecutive units; an n-gram's key is the text from its first unit's start to its last
// unit's end, which identifies it because units are either adjacent or separated by exactly one space.
template <class Char>
NgramCounts<Char> count_ngrams(std::basic_string_view<Char> text, const std::vector<Span>& units, int n) {
  NgramCounts<Char> counts;
  for (size_t i = 0; i + n <= units.size(); ++i)
    ++counts[text.substr(units[i].begin, units[i + n - 1].end - units[i].begin)];
  return counts;
}

// Hypothesis n-grams matched by the reference, each counted at most as often as the reference has it.
template <class Char>
int64_t clipped_matches(const NgramCounts<Char>& hyp, const NgramCounts<Char>& ref) {
  int64_t matches = 0;
  for (const auto& [ngram, count] : hyp) {
    const auto found = ref.find(ngram);
    if (found != ref.end()) matches += std::min(count, found->second);
  }
  return matches;
}

std::vector<Span> word_spans(std::string_view tokens) {
  std::vector<Span> words;
  for (size_t begin = 0; begin < tokens.size();) {
    const size_t end = std::min(tokens.find(' ', begin), tokens.size());
    words.push_back({begin, end});
    begin = end + 1;
  }
  return words;
}

void check_corpus(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references) {
  HEED_CHECK(hypotheses.size() == references.size(), "{} hypotheses but {} references: they must pair up one to one",
             hypotheses.size(), references.size());
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    check_utf8(hypotheses[i], "hypothesis", i + 1);
    check_utf8(references[i], "reference", i + 1);
  }
}

// BLEU.compute_bleu with smooth_method='exp', effective_order=False.
void compute_bleu(BleuScore& s) {
  if (s.sys_len < s.ref_len) {
    s.bp = s.sys_len > 0 ? std::exp(1 - static_cast<double>(s.ref_len) / static_cast<double>(s.sys_len)) : 0.0;
  } else {
    s.bp = 1.0;
  }
  s.ratio = s.ref_len ? static_cast<double>(s.sys_len) / static_cast<double>(s.ref_len) : 0.0;
  s.precisions.fill(0.0);
  s.score = 0.0;
  if (std::all_of(s.correct.begin(), s.correct.end(), [](int64_t c) { return c == 0; })) return;

  double smooth_mteval = 1.0;
  for (int n = 0; n < kBleuMaxOrder; ++n) {
    if (s.total[n] == 0) break;  // later precisions stay 0 and zero the score, as in sacreBLEU
    if (s.correct[n] == 0) {
      smooth_mteval *= 2;
      s.precisions[n] = 100. / (smooth_mteval * static_cast<double>(s.total[n]));
    } else {
      s.precisions[n] = 100. * static_cast<double>(s.correct[n]) / static_cast<double>(s.total[n]);
    }
  }
  double log_sum = 0.0;
  for (double p : s.precisions) log_sum += p == 0.0 ? -9999999999.0 : std::log(p);  // sacrebleu.utils.my_log
  s.score = s.bp * std::exp(log_sum / kBleuMaxOrder);
}

// CHRF._compute_f_score with eps_smoothing=False: precision and recall are averaged over the orders where
// both hypothesis and reference have n-grams, then combined. (The epsilons sacreBLEU computes for the other
// orders only matter under eps_smoothing.)
double chrf_f_score(const std::array<ChrfOrderStatistics, kChrfCharOrder>& orders) {
  const double factor = kChrfBeta * kChrfBeta;
  double avg_prec = 0.0, avg_rec = 0.0;
  int effective_order = 0;
  for (const ChrfOrderStatistics& o : orders) {
    if (o.hyp > 0 && o.ref > 0) {
      avg_prec += static_cast<double>(o.match) / static_cast<double>(o.hyp);
      avg_rec += static_cast<double>(o.match) / static_cast<double>(o.ref);
      ++effective_order;
    }
  }
  if (effective_order == 0) return 0.0;
  avg_prec /= effective_order;
  avg_rec /= effective_order;
  if (avg_prec + avg_rec == 0.0) return 0.0;
  double score = (1 + factor) * avg_prec * avg_rec;
  score /= factor * avg_prec + avg_rec;
  return 100 * score;
}

std::string score_line(std::string_view name, std::string_view signature, double score, int width) {
  return signature.empty() ? fmt::format("{} = {:.{}f}", name, score, width)
                           : fmt::format("{}|{} = {:.{}f}", name, signature, score, width);
}

}  // namespace

std::string tokenize_13a(std::string_view sentence) {
  check_utf8(sentence, "sentence", 1);
  return tokenize_13a_code_points(decode_utf8(sentence));
}

BleuScore corpus_bleu(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references) {
  check_corpus(hypotheses, references);
  BleuScore s;
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    const std::string hyp = tokenize_13a_code_points(decode_utf8(hypotheses[i]));
    const std::string ref = tokenize_13a_code_points(decode_utf8(references[i]));
    const std::vector<Span> hyp_words = word_spans(hyp), ref_words = word_spans(ref);
    s.sys_len += static_cast<int64_t>(hyp_words.size());
    s.ref_len += static_cast<int64_t>(ref_words.size());
    for (int n = 1; n <= kBleuMaxOrder; ++n) {
      const NgramCounts<char> hyp_ngrams = count_ngrams<char>(hyp, hyp_words, n);
      s.total[n - 1] += std::max<int64_t>(0, static_cast<int64_t>(hyp_words.size()) - n + 1);
      s.correct[n - 1] += clipped_matches(hyp_ngrams, count_ngrams<char>(ref, ref_words, n));
    }
  }
  compute_bleu(s);
  return s;
}

ChrfScore corpus_chrf(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references) {
  check_corpus(hypotheses, references);
  // ''.join(line.split()): the characters without whitespace, each one a unit.
  const auto characters = [](const std::string& sentence) {
    std::u32string text = decode_utf8(sentence);
    std::erase_if(text, is_python_space);
    return text;
  };
  ChrfScore s;
  std::vector<Span> hyp_chars, ref_chars;
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    const std::u32string hyp = characters(hypotheses[i]), ref = characters(references[i]);
    hyp_chars.clear();
    ref_chars.clear();
    for (size_t c = 0; c < hyp.size(); ++c) hyp_chars.push_back({c, c + 1});
    for (size_t c = 0; c < ref.size(); ++c) ref_chars.push_back({c, c + 1});
    for (int n = 1; n <= kChrfCharOrder; ++n) {
      const int64_t hyp_total = std::max<int64_t>(0, static_cast<int64_t>(hyp.size()) - n + 1);
      const int64_t ref_total = std::max<int64_t>(0, static_cast<int64_t>(ref.size()) - n + 1);
      ChrfOrderStatistics& o = s.orders[n - 1];
      o.hyp += ref_total > 0 ? hyp_total : 0;  // sacreBLEU counts no hypothesis n-grams an empty reference can't match
      o.ref += ref_total;
      o.match += clipped_matches(count_ngrams<char32_t>(hyp, hyp_chars, n), count_ngrams<char32_t>(ref, ref_chars, n));
    }
  }
  s.score = chrf_f_score(s.orders);
  return s;
}

std::string BleuScore::signature() const {
  return fmt::format("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:{}", kSacrebleuVersion);
}

std::string BleuScore::format(int width, std::string_view signature) const {
  return fmt::format("{} {:.1f}/{:.1f}/{:.1f}/{:.1f} (BP = {:.3f} ratio = {:.3f} hyp_len = {} ref_len = {})",
                     score_line("BLEU", signature, score, width), precisions[0], precisions[1], precisions[2],
                     precisions[3], bp, ratio, sys_len, ref_len);
}

std::string ChrfScore::signature() const {
  return fmt::format("nrefs:1|case:mixed|eff:yes|nc:{}|nw:0|space:no|version:{}", kChrfCharOrder, kSacrebleuVersion);
}

std::string ChrfScore::format(int width, std::string_view signature) const {
  return score_line(fmt::format("chrF{}", kChrfBeta), signature, score, width);
}

}  // namespace heed::decode

#include "heed/decode/alignment.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <string_view>
#include <utility>

#include "heed/core/error.h"

namespace heed::decode {

namespace {

constexpr std::string_view kWordBoundary = "\u2581";  // SentencePiece's "▁"

}  // namespace

std::vector<int64_t> word_of_pieces(const std::vector<std::string>& pieces) {
  // Pieces with characters besides the boundary: a new word where a boundary came since the last word.
  // A bare boundary piece ("▁", which SentencePiece emits before a character that has no "▁x" piece)
  // holds no characters of its own: it joins the word that follows it (the last word at the end).
  std::vector<int64_t> words(pieces.size(), -1);
  int64_t word = -1;
  bool boundary = false;
  for (size_t i = 0; i < pieces.size(); ++i) {
    std::string_view rest = pieces[i];
    while (rest.starts_with(kWordBoundary)) {
      rest.remove_prefix(kWordBoundary.size());
      boundary = true;
    }
    if (rest.empty()) continue;
    if (word < 0 || boundary) ++word;
    boundary = false;
    words[i] = word;
  }
  int64_t next = std::max<int64_t>(word, 0);
  for (size_t i = pieces.size(); i-- > 0;) {
    if (words[i] < 0) words[i] = next;
    next = words[i];
  }
  return words;
}

std::string hard_alignment(const std::vector<std::vector<float>>& weights,
                           const std::vector<std::string>& source_pieces,
                           const std::vector<std::string>& target_pieces) {
  HEED_CHECK(weights.size() >= target_pieces.size(), "alignment: {} rows of weights for {} target pieces",
             weights.size(), target_pieces.size());
  const std::vector<int64_t> source_words = word_of_pieces(source_pieces), target_words = word_of_pieces(target_pieces);
  std::set<std::pair<int64_t, int64_t>> pairs;
  for (size_t t = 0; t < target_pieces.size() && !source_pieces.empty(); ++t) {
    const std::vector<float>& row = weights[t];
    HEED_CHECK(row.size() >= source_pieces.size(), "alignment: {} weights in row {} for {} source pieces", row.size(),
               t, source_pieces.size());
    const auto best = std::max_element(row.begin(), row.begin() + static_cast<int64_t>(source_pieces.size()));
    pairs.insert({source_words[static_cast<size_t>(best - row.begin())], target_words[t]});
  }
  std::string out;
  for (const auto& [source, target] : pairs) out += fmt::format("{}{}-{}", out.empty() ? "" : " ", source, target);
  return out;
}

std::string soft_alignment(const std::vector<std::vector<float>>& weights) {
  std::string out;
  for (size_t t = 0; t < weights.size(); ++t) {
    if (t > 0) out += ' ';
    for (size_t s = 0; s < weights[t].size(); ++s)
      out += fmt::format("{}{:g}", s > 0 ? "," : "", weights[t][s]);  // {:g}: what Marian's ostream << prints
  }
  return out;
}

}  // namespace heed::decode

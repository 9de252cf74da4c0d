// Word alignments from attention weights, printed as Marian's `--alignment` prints them after ` ||| `.
//
// The weights are per SentencePiece piece; words are the pieces joined back, as SentencePiece's decoding
// and a split at spaces would give them: a piece that starts with "▁" (U+2581, SentencePiece's word
// boundary) begins a new word, any other piece continues the word before it, and a bare "▁" piece (no
// characters of its own) belongs to the word that follows it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace heed::decode {

// The word index of each piece (the first piece with characters begins word 0, "▁" or not).
std::vector<int64_t> word_of_pieces(const std::vector<std::string>& pieces);

// Hard alignment: each target piece aligns to the source piece it attends to most (ties: the first), and
// the words of the two pieces form a pair. The distinct pairs "i-j" (source word i, target word j,
// 0-based) sorted by i then j, separated by spaces. `weights` is [target][source] with at least as many
// rows as `target_pieces` and columns as `source_pieces`: the rows and columns beyond them (eos) are not
// words and are ignored.
std::string hard_alignment(const std::vector<std::vector<float>>& weights,
                           const std::vector<std::string>& source_pieces,
                           const std::vector<std::string>& target_pieces);

// Soft alignment, Marian's format: one group per target piece (eos included), groups separated by spaces,
// each group the weights of every source piece (eos included) separated by commas.
std::string soft_alignment(const std::vector<std::vector<float>>& weights);

}  // namespace heed::decode

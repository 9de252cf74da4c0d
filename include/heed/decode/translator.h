// Text in, text out: SentencePiece encoding, beam search in length-sorted batches, decoding back to text.
// Sorting by length only groups similar sentences; beam_search's result for a sentence does not depend on
// its batch, so the output is the same as translating one sentence at a time.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "heed/data/vocab.h"
#include "heed/decode/beam_search.h"
#include "heed/decode/defaults.h"
#include "heed/decode/ensemble.h"

namespace heed::decode {

struct TranslateOptions {
  SearchOptions search;
  int64_t batch_tokens = kDefaultBatchTokens;  // source tokens per beam-search batch
};

struct Translation {
  std::vector<int32_t> source;    // the source ids, eos included (what Hypothesis::attention's columns are)
  std::string text;               // the best hypothesis
  std::vector<Hypothesis> nbest;  // search.n_best hypotheses, best first
  std::vector<std::string> nbest_text;
};

// `models`: one model, or an ensemble of models that share src_vocab and tgt_vocab. `keep_going` is asked
// between batches; returning false stops early with the sentences done so far.
std::vector<Translation> translate(const Ensemble& models, const data::Vocab& src_vocab,
                                   const data::Vocab& tgt_vocab, const std::vector<std::string>& lines,
                                   const TranslateOptions& options,
                                   const std::function<bool()>& keep_going = [] { return true; });

}  // namespace heed::decode

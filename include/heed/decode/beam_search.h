// Batched beam search over a Transformer, with Hugging Face generate()'s scoring and stopping rules.
//
// Every live hypothesis of every sentence in the call goes through one incremental decoder step together.
// A sentence follows HF's BeamSearchScorer with early_stopping=False: each step ranks the 2 * beam_size best
// continuations of its beams; an eos among the first beam_size of them finishes a hypothesis, the best
// beam_size others continue. A sentence stops when it holds beam_size finished hypotheses and
// best_candidate_log_prob / length^length_penalty cannot beat the worst of them (HF's heuristic), or at
// its maximum length, where its live hypotheses join the finished ones. A finished sentence leaves the
// decoder batch, so the steps shrink as sentences end. With beam_size 1 this is greedy (argmax) decoding.
// An ensemble (ensemble.h) runs the same search over the weighted sum of its models' log-probabilities.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "heed/decode/defaults.h"
#include "heed/decode/ensemble.h"

namespace heed::decode {

// What beam search records of each hypothesis's attention (heed translate --attention-plots, --alignment).
// Recording asks the decoder for the probabilities of one layer (nn::AttentionProbe) at every step; without
// it, nothing is computed. An ensemble records its first model's attention.
struct AttentionRecord {
  nn::AttentionProbe::Kind kind = nn::AttentionProbe::Kind::DecoderCross;
  int64_t layer = 0;  // 0-based, checked against the model
  int64_t head = -1;  // 0-based; -1: the mean over heads
};

struct SearchOptions {
  int beam_size = kDefaultBeamSize;
  // Hypothesis score = sum of log-probabilities / length^length_penalty, as in HF generate; the length
  // counts the generated tokens including eos.
  float length_penalty = kDefaultLengthPenalty;
  // Maximum generated tokens (eos included) for a source of n ids (eos included):
  // min(floor(max_length_ratio * n) + max_length_offset, max_length).
  float max_length_ratio = 2.0f;
  int64_t max_length_offset = 10;
  int64_t max_length = 256;
  int n_best = 1;  // 1 <= n_best <= beam_size
  DType compute = DType::F32;  // the decoder's activations: fp32 on the CPU, bf16 or fp16 on a GPU
  std::optional<AttentionRecord> attention;  // fills Hypothesis::attention
};

struct Hypothesis {
  std::vector<int32_t> tokens;  // without the decoder start token and without eos
  float score = 0;              // normalised: log_prob / length^length_penalty
  float log_prob = 0;           // sum of the token log-probabilities (eos included when it was generated)
  // With SearchOptions::attention, the weights over the source ids (eos included), from the same steps that
  // chose the tokens: DecoderCross, one row per generated token (eos included when it was generated);
  // EncoderSelf, one row per source id. Empty otherwise.
  std::vector<std::vector<float>> attention;
};

// Throws heed::Error naming the option that is out of range.
void validate(const SearchOptions& options);
// The maximum number of generated tokens (eos included) for a source of `source_length` ids.
int64_t max_target_length(int64_t source_length, const SearchOptions& options);

// Translates `sources` (token ids including eos, as the batcher produces them; not padded) in one batch.
// Returns, per sentence, its min(n_best, found) best hypotheses by score, best first. The result for a
// sentence does not depend on the other sentences in the call. The pad id is never generated; decoding
// starts from the model's decoder_start_id and a hypothesis ends at its eos_id. `models` is one model or
// an ensemble; the log-probabilities of Hypothesis are then the ensemble's weighted sums.
std::vector<std::vector<Hypothesis>> beam_search(const Ensemble& models,
                                                 const std::vector<std::vector<int32_t>>& sources,
                                                 const SearchOptions& options);

}  // namespace heed::decode

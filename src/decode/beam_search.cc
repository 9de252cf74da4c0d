// Beam search (beam_search.h): host-side bookkeeping per sentence around batched decoder steps.
//
// A step has two phases. First, ops::log_softmax_top_k gives each decoder row (one live hypothesis) its
// 2 * beam_size best continuations, on the model's device, so only those cross to the host (for an
// ensemble, by the weighted sum of its models' log-probabilities, in the same call: StepScorer); the best
// 2 * beam_size of a sentence are among the union of its rows' lists, so no sentence ever sorts
// beam_size * V scores. Then, per sentence, those lists are merged and HF's BeamSearchScorer rules applied. Sums of log-probabilities
// are fp32 additions as in HF, and normalised scores are computed in double as HF's Python does, so the
// two agree on ties and stopping decisions except where fp32 rounding of the model itself differs.
#include "heed/decode/beam_search.h"

#include <algorithm>
#include <cmath>

#include "heed/nn/incremental_decoder.h"
#include "heed/ops/log_softmax_top_k.h"

namespace heed::decode {

namespace {

// Beam `beam` of a sentence continued with `token`; log_prob is the sum over the whole hypothesis.
struct Candidate {
  float log_prob;
  int beam;
  int32_t token;
};

// Higher log-probability first; ties go to the lower beam, then the lower token (the order of HF's flattened
// [beam * V + token] scores), so the ranking is fixed and never depends on the rest of the batch.
bool ranks_before(const Candidate& a, const Candidate& b) {
  if (a.log_prob != b.log_prob) return a.log_prob > b.log_prob;
  if (a.beam != b.beam) return a.beam < b.beam;
  return a.token < b.token;
}

// Attention rows, one per generated token (SearchOptions::attention); empty when not recording.
using AttentionRows = std::vector<std::vector<float>>;

struct Beam {
  std::vector<int32_t> tokens;
  float log_prob = 0;
  AttentionRows attention;  // this hypothesis's own rows, carried through the reorders like its tokens
};

// Row `row`, query `query` of probabilities P [rows, H, Lq, Lk] over the first `length` keys: head `head`,
// or the mean over heads when head < 0.
std::vector<float> attention_row(const Tensor& p, int64_t row, int64_t query, int64_t length, int64_t head) {
  const int64_t heads = p.size(1), queries = p.size(2), keys = p.size(3);
  const int64_t first = head < 0 ? 0 : head, last = head < 0 ? heads : head + 1;
  std::vector<float> out(static_cast<size_t>(length), 0.0f);
  for (int64_t h = first; h < last; ++h) {
    const float* weights = p.data<float>() + ((row * heads + h) * queries + query) * keys;
    for (int64_t j = 0; j < length; ++j) out[j] += weights[j];
  }
  for (float& w : out) w /= static_cast<float>(last - first);
  return out;
}

// The best finished hypotheses of one sentence, at most `capacity` (HF's BeamHypotheses).
class FinishedHypotheses {
 public:
  FinishedHypotheses(size_t capacity, float length_penalty) : capacity_(capacity), length_penalty_(length_penalty) {}

  void add(const std::vector<int32_t>& tokens, float log_prob, int64_t length, const AttentionRows& attention) {
    const double score = normalise(log_prob, length);
    if (list_.size() == capacity_ && score <= worst()->score) return;
    if (list_.size() == capacity_) list_.erase(worst());
    list_.push_back({score, {tokens, static_cast<float>(score), log_prob, attention}});
  }

  // HF's early_stopping=False rule: the list is full and the best candidate of this step, normalised by
  // the current length, does not beat its worst hypothesis.
  bool cannot_improve(float best_log_prob, int64_t length) const {
    return list_.size() == capacity_ && worst()->score >= normalise(best_log_prob, length);
  }

  std::vector<Hypothesis> best(size_t n) {
    // As HF's finalize: a stable ascending sort read from the end, so of equal scores the later one comes first.
    std::stable_sort(list_.begin(), list_.end(), [](const Scored& a, const Scored& b) { return a.score < b.score; });
    std::reverse(list_.begin(), list_.end());
    std::vector<Hypothesis> out;
    for (size_t i = 0; i < std::min(n, list_.size()); ++i) out.push_back(std::move(list_[i].hypothesis));
    return out;
  }

 private:
  struct Scored {
    double score;
    Hypothesis hypothesis;
  };

  double normalise(float log_prob, int64_t length) const {
    return static_cast<double>(log_prob) / std::pow(static_cast<double>(length), static_cast<double>(length_penalty_));
  }
  std::vector<Scored>::const_iterator worst() const {
    return std::min_element(list_.begin(), list_.end(),
                            [](const Scored& a, const Scored& b) { return a.score < b.score; });
  }

  size_t capacity_;
  float length_penalty_;
  std::vector<Scored> list_;
};

// The step's log-probabilities, from one model or an ensemble: one incremental decoder per model, kept in
// lockstep (the same rows, the same reorders), whose logits one ops::log_softmax_top_k call combines and
// selects from. A single model is one decoder with weight 1, the op's plain path.
class StepScorer {
 public:
  // `probe`: recorded by the first model's decoder only (SearchOptions::attention).
  StepScorer(const Ensemble& models, const Tensor& sources, int64_t max_rows, DType compute,
             const std::optional<nn::AttentionProbe>& probe)
      : weights_(models.weights()) {
    decoders_.reserve(models.size());
    for (size_t i = 0; i < models.size(); ++i)
      decoders_.emplace_back(models.model(i), sources, max_rows, compute, i == 0 ? probe : std::nullopt);
  }

  int64_t rows() const { return decoders_.front().rows(); }
  // The probe's probabilities (nn::IncrementalDecoder::attention) of the first model.
  const Tensor& attention() const { return decoders_.front().attention(); }

  // Feeds each row its token and returns each row's k best continuations by prefix + log-probability,
  // `exclude` aside.
  ops::TopK best(const std::vector<int32_t>& inputs, const std::vector<float>& prefix, int64_t k, int64_t exclude) {
    std::vector<Tensor> logits;
    for (nn::IncrementalDecoder& decoder : decoders_) logits.push_back(decoder.step(inputs));
    return ops::log_softmax_top_k(logits, weights_, prefix, k, exclude);
  }

  void reorder(const std::vector<int64_t>& parents) {
    for (nn::IncrementalDecoder& decoder : decoders_) decoder.reorder(parents);
  }

 private:
  std::vector<nn::IncrementalDecoder> decoders_;
  std::vector<double> weights_;
};

struct Sentence {
  std::vector<Beam> beams;  // live hypotheses; beam i is decoder row first_row + i
  int64_t first_row = 0;
  int64_t max_length = 0;
  FinishedHypotheses finished;
  bool done = false;
};

// One step of HF's BeamSearchScorer.process for one sentence. `row_best` holds each decoder row's best
// continuations, and `row_attention` its attention row of this step (empty when not recording); `length`
// is the hypothesis length after this step. Appends the decoder rows that the surviving beams continue
// from to `parents`.
void advance(Sentence& s, const std::vector<std::vector<Candidate>>& row_best, const AttentionRows& row_attention,
             int64_t length, int32_t eos, size_t beam_size, std::vector<int64_t>& parents) {
  // A continuation's attention: its parent's rows and the parent decoder row's row of this step.
  const auto extend = [&](const Beam& parent, int beam) {
    AttentionRows rows = parent.attention;
    if (!row_attention.empty()) rows.push_back(row_attention[s.first_row + beam]);
    return rows;
  };
  std::vector<Candidate> ranked;
  for (size_t b = 0; b < s.beams.size(); ++b) {
    const std::vector<Candidate>& best = row_best[s.first_row + static_cast<int64_t>(b)];
    ranked.insert(ranked.end(), best.begin(), best.end());
  }
  std::sort(ranked.begin(), ranked.end(), ranks_before);
  ranked.resize(std::min(ranked.size(), 2 * beam_size));

  std::vector<Beam> next;
  const int64_t first_parent = static_cast<int64_t>(parents.size());
  std::vector<int64_t> next_parents;
  for (size_t rank = 0; rank < ranked.size() && next.size() < beam_size; ++rank) {
    const Candidate& c = ranked[rank];
    const Beam& parent = s.beams[c.beam];
    if (c.token == eos) {
      // An eos outside the top beam_size would end a hypothesis worse than the live ones: HF skips it.
      if (rank < beam_size) s.finished.add(parent.tokens, c.log_prob, length, extend(parent, c.beam));
      continue;
    }
    Beam extended{parent.tokens, c.log_prob, extend(parent, c.beam)};
    extended.tokens.push_back(c.token);
    next.push_back(std::move(extended));
    next_parents.push_back(s.first_row + c.beam);
  }
  s.done = next.empty() || (!ranked.empty() && s.finished.cannot_improve(ranked.front().log_prob, length));
  if (!s.done && length >= s.max_length) {
    for (const Beam& b : next) s.finished.add(b.tokens, b.log_prob, length, b.attention);
    s.done = true;
  }
  if (s.done) {
    s.beams.clear();
    return;
  }
  s.beams = std::move(next);
  s.first_row = first_parent;
  parents.insert(parents.end(), next_parents.begin(), next_parents.end());
}

}  // namespace

void validate(const SearchOptions& options) {
  HEED_CHECK(options.beam_size >= 1, "beam search: beam_size must be at least 1, got {}", options.beam_size);
  HEED_CHECK(options.n_best >= 1 && options.n_best <= options.beam_size,
             "beam search: n_best must be between 1 and beam_size ({}), got {}", options.beam_size, options.n_best);
  HEED_CHECK(std::isfinite(options.length_penalty), "beam search: length_penalty must be finite, got {}",
             options.length_penalty);
  HEED_CHECK(std::isfinite(options.max_length_ratio) && options.max_length_ratio >= 0,
             "beam search: max_length_ratio must be a finite number >= 0, got {}", options.max_length_ratio);
  HEED_CHECK(options.max_length >= 1, "beam search: max_length must be at least 1, got {}", options.max_length);
}

int64_t max_target_length(int64_t source_length, const SearchOptions& options) {
  const double by_source =
      std::floor(static_cast<double>(options.max_length_ratio) * static_cast<double>(source_length)) +
      static_cast<double>(options.max_length_offset);
  return std::max<int64_t>(1, static_cast<int64_t>(std::min(by_source, static_cast<double>(options.max_length))));
}

std::vector<std::vector<Hypothesis>> beam_search(const Ensemble& models,
                                                 const std::vector<std::vector<int32_t>>& sources,
                                                 const SearchOptions& options) {
  validate(options);
  if (sources.empty()) return {};
  const nn::ModelConfig& config = models.config();
  const int64_t batch = static_cast<int64_t>(sources.size());
  const size_t beam_size = static_cast<size_t>(options.beam_size);

  int64_t longest = 0;
  for (size_t i = 0; i < sources.size(); ++i) {
    HEED_CHECK(!sources[i].empty(), "beam search: source sentence {} is empty (it should hold at least eos)", i);
    longest = std::max<int64_t>(longest, static_cast<int64_t>(sources[i].size()));
  }
  std::vector<int32_t> padded(static_cast<size_t>(batch * longest), static_cast<int32_t>(config.pad_id));
  std::vector<Sentence> sentences;
  for (int64_t i = 0; i < batch; ++i) {
    const std::vector<int32_t>& source = sources[i];
    std::copy(source.begin(), source.end(), padded.begin() + i * longest);
    sentences.push_back({.beams = {Beam{}},  // the empty hypothesis, on decoder row i
                         .first_row = i,
                         .max_length = max_target_length(static_cast<int64_t>(source.size()), options),
                         .finished = FinishedHypotheses(beam_size, options.length_penalty)});
  }
  const std::optional<AttentionRecord>& record = options.attention;
  HEED_CHECK(!record || record->head < config.heads, "beam search: attention head {} does not exist; the model has {}",
             record ? record->head : 0, config.heads);
  std::optional<nn::AttentionProbe> probe;
  if (record) probe = nn::AttentionProbe{record->kind, record->layer, {}};
  StepScorer scorer(models, Tensor::from_vector(padded, {batch, longest}), batch * static_cast<int64_t>(beam_size),
                    options.compute, probe);
  const bool record_cross = record && record->kind == nn::AttentionProbe::Kind::DecoderCross;
  std::vector<AttentionRows> encoder_attention(sentences.size());  // per sentence, with EncoderSelf
  if (record && !record_cross)
    for (int64_t i = 0; i < batch; ++i) {
      const int64_t length = static_cast<int64_t>(sources[i].size());
      for (int64_t query = 0; query < length; ++query)
        encoder_attention[i].push_back(attention_row(scorer.attention(), i, query, length, record->head));
    }

  std::vector<int32_t> inputs(sentences.size(), static_cast<int32_t>(config.decoder_start_id));
  std::vector<std::vector<Candidate>> row_best(static_cast<size_t>(batch) * beam_size);
  const int64_t k = 2 * static_cast<int64_t>(beam_size);
  for (int64_t length = 1; scorer.rows() > 0; ++length) {
    std::vector<float> prefix;
    std::vector<int> row_beam;
    std::vector<int64_t> row_source_length;
    for (size_t i = 0; i < sentences.size(); ++i)
      for (size_t b = 0; b < sentences[i].beams.size(); ++b) {
        prefix.push_back(sentences[i].beams[b].log_prob);
        row_beam.push_back(static_cast<int>(b));
        row_source_length.push_back(static_cast<int64_t>(sources[i].size()));
      }
    // Padding is never generated.
    const ops::TopK top = scorer.best(inputs, prefix, k, config.pad_id);
    AttentionRows row_attention;  // this step's rows, over each row's own source (its padding cut off)
    if (record_cross)
      for (size_t r = 0; r < row_beam.size(); ++r)
        row_attention.push_back(
            attention_row(scorer.attention(), static_cast<int64_t>(r), 0, row_source_length[r], record->head));
    const float* scores = top.scores.data<float>();
    const int32_t* tokens = top.tokens.data<int32_t>();
    for (size_t r = 0; r < row_beam.size(); ++r) {
      row_best[r].clear();
      for (int64_t i = 0; i < k && tokens[r * k + i] >= 0; ++i)
        row_best[r].push_back({scores[r * k + i], row_beam[r], tokens[r * k + i]});
    }

    std::vector<int64_t> parents;
    inputs.clear();
    for (Sentence& s : sentences) {
      if (s.done) continue;
      advance(s, row_best, row_attention, length, static_cast<int32_t>(config.eos_id), beam_size, parents);
      for (const Beam& b : s.beams) inputs.push_back(b.tokens.back());
    }
    scorer.reorder(parents);
  }

  std::vector<std::vector<Hypothesis>> results;
  for (size_t i = 0; i < sentences.size(); ++i) {
    results.push_back(sentences[i].finished.best(static_cast<size_t>(options.n_best)));
    if (record && !record_cross)
      for (Hypothesis& h : results.back()) h.attention = encoder_attention[i];
  }
  return results;
}

}  // namespace heed::decode

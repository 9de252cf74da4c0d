// log_softmax_top_k on the CPU: rows in parallel; each row's log-softmax shift is computed (one per model
// of an ensemble), then the row is scanned once, keeping its k best candidates in a sorted list (k is small
// next to the vocabulary, so an insertion into the list is rare after the first few hundred tokens and the
// scan costs about one compare a token).
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cpu_math.h"
#include "ops/log_softmax_top_k_backends.h"

namespace heed::ops::cpu {

namespace {

struct Candidate {
  float score;
  int32_t token;
};

bool ranks_before(const Candidate& a, const Candidate& b) {
  return a.score > b.score || (a.score == b.score && a.token < b.token);
}

// The k best tokens of one row by score_of(token), the excluded one aside, into out_scores/out_tokens
// (best first; -inf and -1 past the finite candidates). `best` is scratch space.
template <typename ScoreOf>
void select_row(const ScoreOf& score_of, int64_t vocab, int64_t exclude, int64_t k, std::vector<Candidate>& best,
                float* out_scores, int32_t* out_tokens) {
  best.clear();
  for (int64_t v = 0; v < vocab; ++v) {
    const float score = score_of(v);
    // Also skips -inf and NaN: neither is greater than anything.
    if (v == exclude || !(score > (static_cast<int64_t>(best.size()) == k ? best.back().score : -INFINITY)))
      continue;
    const Candidate c{score, static_cast<int32_t>(v)};
    if (static_cast<int64_t>(best.size()) == k) best.pop_back();
    best.insert(std::upper_bound(best.begin(), best.end(), c, ranks_before), c);
  }
  for (int64_t i = 0; i < k; ++i) {
    const bool found = i < static_cast<int64_t>(best.size());
    out_scores[i] = found ? best[i].score : -INFINITY;
    out_tokens[i] = found ? best[i].token : -1;
  }
}

}  // namespace

void log_softmax_top_k(const std::vector<Tensor>& logits, const std::vector<double>& weights, const Tensor& prefix,
                       int64_t exclude, Tensor& scores, Tensor& tokens) {
  const int64_t models = static_cast<int64_t>(logits.size());
  const int64_t rows = logits[0].size(0), vocab = logits[0].size(1), k = scores.size(1);
  std::vector<const float*> x;
  for (const Tensor& t : logits) x.push_back(t.data<float>());
  const float* pre = prefix.data<float>();
  float* out_scores = scores.data<float>();
  int32_t* out_tokens = tokens.data<int32_t>();
  const bool single = models == 1 && weights[0] == 1.0;
#pragma omp parallel if (rows * vocab * models > 65536)
  {
    std::vector<Candidate> best;
    std::vector<LogSoftmaxShift> shift(models);
#pragma omp for
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t m = 0; m < models; ++m) shift[m] = log_softmax_shift(x[m] + r * vocab, vocab);
      float* row_scores = out_scores + r * k;
      int32_t* row_tokens = out_tokens + r * k;
      if (single) {
        const float* row = x[0] + r * vocab;
        select_row([&](int64_t v) { return pre[r] + shift[0].log_prob(row[v]); }, vocab, exclude, k, best, row_scores,
                   row_tokens);
        continue;
      }
      // See the header: the fp32 log-probabilities, weighted and summed in double, rounded once.
      auto ensemble_score = [&](int64_t v) {
        double sum = 0;
        for (int64_t m = 0; m < models; ++m)
          sum += weights[m] * static_cast<double>(shift[m].log_prob(x[m][r * vocab + v]));
        return pre[r] + static_cast<float>(sum);
      };
      select_row(ensemble_score, vocab, exclude, k, best, row_scores, row_tokens);
    }
  }
}

}  // namespace heed::ops::cpu

// log_softmax_top_k on the CPU: rows in parallel; each row's log-softmax shift is computed, then the row is
// scanned once, keeping its k best candidates in a sorted list (k is small next to the vocabulary, so an
// insertion into the list is rare after the first few hundred tokens and the scan costs about one compare
// a token).
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

}  // namespace

void log_softmax_top_k(const Tensor& logits, const Tensor& prefix, int64_t exclude, Tensor& scores, Tensor& tokens) {
  const int64_t rows = logits.size(0), vocab = logits.size(1), k = scores.size(1);
  const float* x = logits.data<float>();
  const float* pre = prefix.data<float>();
  float* out_scores = scores.data<float>();
  int32_t* out_tokens = tokens.data<int32_t>();
#pragma omp parallel if (rows * vocab > 65536)
  {
    std::vector<Candidate> best;
#pragma omp for
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = x + r * vocab;
      const LogSoftmaxShift shift = log_softmax_shift(row, vocab);
      best.clear();
      for (int64_t v = 0; v < vocab; ++v) {
        const float score = pre[r] + shift.log_prob(row[v]);
        // Also skips -inf and NaN: neither is greater than anything.
        if (v == exclude || !(score > (static_cast<int64_t>(best.size()) == k ? best.back().score : -INFINITY)))
          continue;
        const Candidate c{score, static_cast<int32_t>(v)};
        if (static_cast<int64_t>(best.size()) == k) best.pop_back();
        best.insert(std::upper_bound(best.begin(), best.end(), c, ranks_before), c);
      }
      for (int64_t i = 0; i < k; ++i) {
        const bool found = i < static_cast<int64_t>(best.size());
        out_scores[r * k + i] = found ? best[i].score : -INFINITY;
        out_tokens[r * k + i] = found ? best[i].token : -1;
      }
    }
  }
}

}  // namespace heed::ops::cpu

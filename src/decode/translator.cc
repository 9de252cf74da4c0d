#include "heed/decode/translator.h"

#include <algorithm>
#include <numeric>

#include "heed/autograd/variable.h"

namespace heed::decode {

std::vector<Translation> translate(const Ensemble& models, const data::Vocab& src_vocab,
                                   const data::Vocab& tgt_vocab, const std::vector<std::string>& lines,
                                   const TranslateOptions& options, const std::function<bool()>& keep_going) {
  validate(options.search);
  autograd::NoGradGuard no_grad;
  std::vector<std::vector<int32_t>> sources = src_vocab.encode_lines(lines);
  for (auto& ids : sources) ids.push_back(src_vocab.eos_id());

  std::vector<size_t> order(sources.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return sources[a].size() < sources[b].size(); });

  std::vector<Translation> out(sources.size());
  for (size_t begin = 0; begin < order.size() && keep_going();) {
    // Sorted ascending, so the last sentence of a batch is its longest.
    size_t end = begin + 1;
    while (end < order.size() &&
           static_cast<int64_t>((end - begin + 1) * sources[order[end]].size()) <= options.batch_tokens)
      ++end;
    std::vector<std::vector<int32_t>> batch;
    for (size_t i = begin; i < end; ++i) batch.push_back(sources[order[i]]);
    const std::vector<std::vector<Hypothesis>> found = beam_search(models, batch, options.search);
    for (size_t i = begin; i < end; ++i) {
      Translation& t = out[order[i]];
      t.source = sources[order[i]];
      t.nbest = found[i - begin];
      for (const Hypothesis& h : t.nbest) t.nbest_text.push_back(tgt_vocab.decode(h.tokens));
      if (!t.nbest_text.empty()) t.text = t.nbest_text.front();
    }
    begin = end;
  }
  return out;
}

}  // namespace heed::decode

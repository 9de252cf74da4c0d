#include "heed/train/validator.h"

#include <algorithm>
#include <cmath>

#include "heed/data/batcher.h"
#include "heed/data/text.h"
#include "heed/decode/metrics.h"
#include "heed/decode/translator.h"

namespace heed::train {

Validator::Validator(const TrainConfig& c, const data::Vocabularies& v, dist::Communicator& comm)
    : config_(c), vocabs_(v), comm_(comm) {
  data::CorpusOptions options;
  options.max_length = c.data.max_length;
  const data::ParallelCorpus all = data::load_parallel_corpus(c.data.valid_src, c.data.valid_tgt, v.src, v.tgt, options);
  for (int64_t i = comm.rank(); i < all.size(); i += comm.world()) {
    corpus_.src_ids.push_back(all.src_ids[static_cast<size_t>(i)]);
    corpus_.tgt_ids.push_back(all.tgt_ids[static_cast<size_t>(i)]);
    corpus_.line_index.push_back(all.line_index[static_cast<size_t>(i)]);
  }
  std::vector<std::string> sources = data::read_lines(c.data.valid_src);
  references_ = data::read_lines(c.data.valid_tgt);
  if (c.validation.max_sentences > 0 && static_cast<int64_t>(sources.size()) > c.validation.max_sentences) {
    sources.resize(static_cast<size_t>(c.validation.max_sentences));
    references_.resize(sources.size());
  }
  for (size_t i = static_cast<size_t>(comm.rank()); i < sources.size(); i += static_cast<size_t>(comm.world()))
    sources_.push_back(sources[i]);
}

bool Validator::wants(const std::string& metric) const {
  const auto& m = config_.validation.metrics;
  return std::find(m.begin(), m.end(), metric) != m.end();
}

std::optional<ValidationResult> Validator::run(const nn::Transformer& model, DType compute,
                                               const std::function<bool()>& stop_requested) const {
  autograd::NoGradGuard no_grad;
  const bool single = comm_.world() == 1;
  auto interrupted = [&] { return single && stop_requested(); };
  ValidationResult r;
  if (wants("loss")) {
    data::BatcherOptions options;
    options.max_tokens = config_.data.max_tokens;
    options.shuffle = false;
    options.repeat = false;
    options.pad_id = static_cast<int32_t>(model.config().pad_id);
    options.eos_id = static_cast<int32_t>(model.config().eos_id);
    options.decoder_start_id = static_cast<int32_t>(model.config().decoder_start_id);
    std::vector<double> sums(3, 0.0);  // loss, nll, tokens
    if (corpus_.size() > 0) {  // a rank can hold no pair when there are more ranks than pairs
      data::Batcher batcher(corpus_, options);
      for (data::LoadedBatch b; batcher.next(b);) {
        nn::ForwardContext ctx;
        ctx.compute = compute;
        const nn::LossResult l = model.loss(b.batch, ctx, 1.0);  // sums, normalised below
        sums[0] += l.loss.value().to(Device::cpu()).item();
        sums[1] += l.nll_sum.to(Device::cpu()).item();
        sums[2] += static_cast<double>(l.tokens);
      }
    }
    comm_.all_reduce(sums, dist::ReduceOp::Sum);
    r.metrics["loss"] = sums[0] / std::max(sums[2], 1.0);
    r.metrics["ppl"] = std::exp(sums[1] / std::max(sums[2], 1.0));
  }
  if (wants("bleu") || wants("chrf")) {
    decode::TranslateOptions options;
    options.search.beam_size = static_cast<int>(config_.validation.beam_size);
    options.search.length_penalty = static_cast<float>(config_.validation.length_penalty);
    options.batch_tokens = config_.validation.batch_tokens;
    options.search.compute = compute;
    const std::vector<decode::Translation> out =
        decode::translate(model, vocabs_.src, vocabs_.tgt, sources_, options, [&] { return !interrupted(); });
    if (interrupted()) return std::nullopt;
    std::vector<std::string> mine;
    for (const auto& t : out) mine.push_back(t.text);
    const std::vector<std::vector<std::string>> gathered = dist::all_gather_strings(comm_, mine);
    std::vector<std::string> hyps(references_.size());
    for (size_t i = 0; i < hyps.size(); ++i) hyps[i] = gathered[i % gathered.size()][i / gathered.size()];
    if (wants("bleu")) {
      const decode::BleuScore bleu = decode::corpus_bleu(hyps, references_);
      r.metrics["bleu"] = bleu.score;
      r.bleu_text = bleu.format(2, bleu.signature());
    }
    if (wants("chrf")) {
      const decode::ChrfScore chrf = decode::corpus_chrf(hyps, references_);
      r.metrics["chrf"] = chrf.score;
      r.chrf_text = chrf.format(2, chrf.signature());
    }
  }
  if (interrupted()) return std::nullopt;
  return r;
}

}  // namespace heed::train

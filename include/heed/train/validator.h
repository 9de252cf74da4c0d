// Validation during training: the loss and perplexity of the validation pairs, and the BLEU and chrF of their
// beam-search translations (validation.metrics).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "heed/core/dtype.h"
#include "heed/data/corpus.h"
#include "heed/data/vocab_dir.h"
#include "heed/dist/communicator.h"
#include "heed/nn/transformer.h"
#include "heed/train/train_config.h"

namespace heed::train {

struct ValidationResult {
  std::map<std::string, double> metrics;  // loss, ppl, bleu, chrf
  std::string bleu_text, chrf_text;       // the scores with their sacreBLEU signatures
};

// Validation split across ranks: rank r scores every world-th pair and translates every world-th
// sentence; the sums are reduced and the translations gathered, so every rank gets the single-process
// result (BLEU exactly; the loss up to the order of its sums) and takes the same decisions from it.
class Validator {
 public:
  Validator(const TrainConfig& config, const data::Vocabularies& vocabs, dist::Communicator& comm);

  // Nothing when `stop_requested` cut the validation short. That happens in a single process only: ranks
  // would disagree on where, so with several they finish it and stop at the next update.
  std::optional<ValidationResult> run(const nn::Transformer& model, DType compute,
                                      const std::function<bool()>& stop_requested) const;

 private:
  bool wants(const std::string& metric) const;

  const TrainConfig& config_;
  const data::Vocabularies& vocabs_;
  dist::Communicator& comm_;
  data::ParallelCorpus corpus_;
  std::vector<std::string> sources_, references_;
};

}  // namespace heed::train

// Ensembles: several models of one vocabulary decoding together (heed translate --model A --model B).
//
// What is combined, and how. At every step each model scores every continuation of every hypothesis, and
// beam search ranks the continuations by sum_m w_m * log p_m(token | source, prefix), the weights divided
// by their sum. This is Marian's ensemble: its --weights multiply each model's log-probabilities before
// they are added (a weighted product of the models' distributions, left unnormalised). Marian uses the
// weights as given (1 each by default, so its scores grow with the number of models); dividing them by
// their sum scales every score by one constant, which changes no ranking and no stopping decision of the
// search (up to rounding): the translations are those of Marian's weights in the same ratios, while
// scores and n-best lists stay on a single model's scale, and one model alone is unchanged whatever its
// weight. fairseq instead averages the models' probabilities (the log of the mean of p_m, a mixture). We
// follow Marian because its sum is linear in the log-probabilities that the single-model search already
// computes: the selection stays one pass on the device (ops::log_softmax_top_k), and an ensemble of a
// model with itself gives exactly that model's translations and scores, where a mixture needs an exp and
// a log per token and model and reproduces the model only within rounding.
//
// The models must share the vocabulary: the same size and the same pad, eos and decoder start ids (checked
// here), and the same pieces under the same ids (checked by whoever loads the vocabularies, as heed
// translate does with data::vocabulary_difference). They may differ in anything else: depth, width, heads.
#pragma once

#include <string>
#include <vector>

#include "heed/nn/transformer.h"

namespace heed::decode {

class Ensemble {
 public:
  struct Member {
    const nn::Transformer* model;
    std::string name;  // what errors call it: the path it was read from
  };

  // A single model, weight 1: the plain search. Implicit, so that beam_search and translate take a model
  // where they take an ensemble.
  Ensemble(const nn::Transformer& model);  // NOLINT(google-explicit-constructor)
  // `weights`: one per member, positive and finite, or empty for equal weights. Throws heed::Error naming
  // the models and the difference when their vocabulary sizes or special ids differ, and when the weights
  // are not one positive finite number per model.
  Ensemble(const std::vector<Member>& members, const std::vector<double>& weights);

  // Throws heed::Error, calling the weights `what` (e.g. "--weights"), unless `weights` is empty or holds
  // one positive finite number per model whose sum is finite.
  static void check_weights(const std::vector<double>& weights, size_t models, const std::string& what);

  size_t size() const { return models_.size(); }
  const nn::Transformer& model(size_t i) const { return *models_[i]; }
  // Normalised: they sum to one (within double rounding), in the order of the models.
  const std::vector<double>& weights() const { return weights_; }
  // The vocabulary size and special ids every model shares (the first model's config).
  const nn::ModelConfig& config() const { return models_.front()->config(); }

 private:
  std::vector<const nn::Transformer*> models_;
  std::vector<double> weights_;
};

}  // namespace heed::decode

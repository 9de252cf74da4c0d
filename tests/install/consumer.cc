// A program that uses Heed as a library: the loss of a tiny Transformer on one batch, on the CPU.
#include <cmath>
#include <cstdio>

#include "heed/data/batch.h"
#include "heed/nn/transformer.h"

int main() {
  using namespace heed;
  nn::ModelConfig config;
  config.vocab_size = 13;
  config.d_model = 8;
  config.heads = 2;
  config.ffn_dim = 16;
  config.encoder_layers = 1;
  config.decoder_layers = 1;
  config.validate();
  nn::ParameterStore store(7);
  const nn::Transformer model(config, store);
  const data::Batch batch{Tensor::from_vector<int32_t>({5, 6, 7, 2}, {1, 4}),
                          Tensor::from_vector<int32_t>({0, 3, 4}, {1, 3}),
                          Tensor::from_vector<int32_t>({3, 4, 2}, {1, 3})};
  nn::ForwardContext ctx;
  const float loss = model.loss(batch, ctx).loss.value().item();
  std::printf("loss %.4f\n", loss);
  return std::isfinite(loss) && loss > 0 ? 0 : 1;
}

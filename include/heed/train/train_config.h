// The training config: one struct per group, and one schema (train_config.cc) that declares every key
// once with its type, default, range and help. `heed train --help-config` prints that schema.
#pragma once

#include <string>
#include <vector>

#include "heed/decode/defaults.h"
#include "heed/io/options.h"
#include "heed/nn/model_config.h"

namespace heed::train {

struct DataConfig {
  std::string train_src, train_tgt;  // plain text, one sentence per line; shorthand for one entry of `train`
  std::vector<std::string> train;    // corpora: "SRC TGT [weight=W] [tag=NAME]" each
  double sampling_temperature = 0;   // > 0: corpus shares ~ weight x pairs^(1/T); 0: ~ weight
  std::string store;                 // the prepared corpus store; empty: <run_dir>/store
  int64_t vocab_sample = 2'000'000;  // lines SentencePiece trains on, sampled uniformly
  std::string valid_src, valid_tgt;  // optional; validation is skipped without them
  std::string src_lang = "src", tgt_lang = "tgt";
  bool joint_vocab = true;        // one SentencePiece model for both sides
  std::string vocab_type = "unigram";
  int64_t vocab_size = 8000;
  std::string src_vocab, tgt_vocab;  // existing .model files; empty: train into the run directory
  int64_t max_length = 128;          // tokens per side, eos included; longer pairs are filtered and counted
  int64_t max_tokens = 4096;         // per batch: sentences x longest side, padding included
  int64_t max_sentences = 0;         // per batch; 0: no limit
  bool shuffle = true;
  int64_t prefetch = 8;
};

struct OptimizerConfig {
  std::string type = "adam";  // adam: L2 weight decay in the gradient; adamw: decoupled decay
  double lr = 5e-4;
  double beta1 = 0.9, beta2 = 0.98, eps = 1e-9;
  double weight_decay = 0.0;
  double clip_norm = 0.0;      // global gradient-norm clipping; 0: off
  int64_t update_freq = 1;     // batches accumulated per update
  bool shard_state = false;    // ZeRO-1 over the processes of a data-parallel job
  double ema_decay = 0.0;      // exponential moving average of the weights; 0: off
};

struct ScheduleConfig {
  std::string type = "inverse_sqrt";
  int64_t warmup_steps = 4000;
  double min_lr = 0.0;  // the end of linear and cosine decay
};

struct TrainingConfig {
  float label_smoothing = 0.1f;
  int64_t max_steps = 100000;  // updates; training stops at whichever of max_steps and max_epochs comes first
  int64_t max_epochs = 0;      // 0: no limit
  int64_t seed = 1;
  int64_t threads = 0;         // 0: all cores
  std::string device = "cpu";
  std::string precision = "auto";     // fp32, bf16, fp16; auto: bf16 on a GPU, fp32 on the CPU
  std::string attention = "fused";    // fused (Heed's kernels) or cudnn (cuDNN's fused attention) on a GPU
  double loss_scale = 65536;          // fp16: the initial loss scale
  int64_t loss_scale_window = 2000;   // fp16: updates without overflow before the scale doubles
  std::vector<std::string> freeze;  // parameter-name patterns (* matches anything) that stay fixed
  double collective_timeout = 1800;  // seconds a rank waits for the others before ending the job
  double bucket_mb = 25;             // gradients per all-reduce (fairseq's --bucket-cap-mb)
};

struct ValidationConfig {
  int64_t every = 1000;  // updates; 0: only at the end
  std::vector<std::string> metrics = {"loss", "bleu", "chrf"};
  std::string early_stopping_metric = "bleu";
  int64_t patience = 0;  // validations without improvement before stopping; 0: never stop early
  int64_t beam_size = decode::kDefaultBeamSize;
  double length_penalty = decode::kDefaultLengthPenalty;
  int64_t max_sentences = 0;  // decode only the first N validation sentences for BLEU; 0: all
  int64_t batch_tokens = decode::kDefaultBatchTokens;  // source tokens per beam-search batch
};

struct CheckpointConfig {
  int64_t every = 1000;  // updates
  int64_t keep_last = 3;
  bool keep_best = true;  // a copy of the best checkpoint per validation metric
};

struct LoggingConfig {
  int64_t every = 100;  // updates
  std::string level = "info";
  bool progress_bar = true;  // when stderr is a terminal
};

struct TrainConfig {
  std::string run_dir = "runs/default";
  nn::ModelConfig model;  // vocabulary fields are filled from the tokenizer
  DataConfig data;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  TrainingConfig training;
  ValidationConfig validation;
  CheckpointConfig checkpoints;
  LoggingConfig logging;
};

const io::Options<TrainConfig>& train_options();

// The config file, then each `--set key=value` in order. Cross-key checks follow, naming the keys.
TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides);
void validate(const TrainConfig& config);

}  // namespace heed::train

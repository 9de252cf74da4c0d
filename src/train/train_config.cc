#include "heed/train/train_config.h"

#include "heed/core/error.h"

namespace heed::train {

namespace {

// Binds a key to a member of one group, e.g. bind(&TrainConfig::data, &DataConfig::max_tokens).
template <typename Group, typename T>
auto bind(Group TrainConfig::*group, T Group::*member) {
  return [group, member](TrainConfig& c) -> T& { return c.*group.*member; };
}

io::Options<TrainConfig> declare() {
  io::Options<TrainConfig> o;
  using T = TrainConfig;
  o.add<std::string>("run_dir", [](T& c) -> std::string& { return c.run_dir; },
                     "run directory: checkpoints, vocabulary, metrics.jsonl, train.log (--run-dir overrides)");

  nn::declare_model_options(o, "model.", [](T& c) -> nn::ModelConfig& { return c.model; }, false);

  using D = DataConfig;
  o.add<std::string>("data.train_src", bind(&T::data, &D::train_src), "training source text, one sentence per line");
  o.add<std::string>("data.train_tgt", bind(&T::data, &D::train_tgt), "training target text, line-aligned");
  o.add<std::vector<std::string>>(
      "data.train", bind(&T::data, &D::train),
      "training corpora, one entry each: 'SRC TGT [weight=W] [tag=NAME]' (paths without spaces), e.g. "
      "[data/ep.en data/ep.es, data/bt.en data/bt.es weight=0.5 tag=bt]; train_src/train_tgt are the shorthand "
      "for one. Without weights (and sampling_temperature 0) every pair is seen once per epoch; with them each "
      "epoch draws weight/sum(weights) of its pairs from each corpus, mixed in every batch, from the seed");
  o.add<double>("data.sampling_temperature", bind(&T::data, &D::sampling_temperature),
                "with several corpora: > 0 makes each corpus's share of an epoch proportional to weight x "
                "pairs^(1/T) (1: to its size; larger: flatter, as fairseq's and Marian's temperature sampling); "
                "0: to its weight alone")
      .at_least(0);
  o.add<std::string>("data.store", bind(&T::data, &D::store),
                     "the corpus store (heed prepare writes it; heed train prepares it when it is missing or stale: "
                     "other text, vocabulary or max_length); empty: <run_dir>/store. Runs that share text, "
                     "vocabulary and max_length can share one");
  o.add<int64_t>("data.vocab_sample", bind(&T::data, &D::vocab_sample),
                 "SentencePiece trains on a uniform sample of this many lines of the training text (both sides, "
                 "for a joint vocabulary), drawn while streaming through it; it gets each distinct line once, with its count")
      .positive();
  o.add<std::string>("data.valid_src", bind(&T::data, &D::valid_src), "validation source text; empty: no validation");
  o.add<std::string>("data.valid_tgt", bind(&T::data, &D::valid_tgt), "validation reference text");
  o.add<std::string>("data.src_lang", bind(&T::data, &D::src_lang), "source language code, for file names and logs");
  o.add<std::string>("data.tgt_lang", bind(&T::data, &D::tgt_lang), "target language code");
  o.add<bool>("data.joint_vocab", bind(&T::data, &D::joint_vocab),
              "one SentencePiece model for both languages (false: one per side)");
  o.add<std::string>("data.vocab_type", bind(&T::data, &D::vocab_type), "SentencePiece model type")
      .one_of({"unigram", "bpe"});
  o.add<int64_t>("data.vocab_size", bind(&T::data, &D::vocab_size), "SentencePiece vocabulary size").at_least(8);
  o.add<std::string>("data.src_vocab", bind(&T::data, &D::src_vocab),
                     "an existing SentencePiece .model for the source (or both, if joint); empty: train one");
  o.add<std::string>("data.tgt_vocab", bind(&T::data, &D::tgt_vocab),
                     "an existing SentencePiece .model for the target when not joint; empty: train one");
  o.add<int64_t>("data.max_length", bind(&T::data, &D::max_length),
                 "longest sentence in tokens (eos included); longer pairs are filtered and counted")
      .at_least(2);
  o.add<int64_t>("data.max_tokens", bind(&T::data, &D::max_tokens),
                 "batch size in tokens: sentences x longest side, padding included")
      .positive();
  o.add<int64_t>("data.max_sentences", bind(&T::data, &D::max_sentences), "most sentences per batch; 0: no limit")
      .at_least(0);
  o.add<bool>("data.shuffle", bind(&T::data, &D::shuffle), "shuffle batches each epoch (seeded by training.seed)");
  o.add<int64_t>("data.prefetch", bind(&T::data, &D::prefetch), "batches prepared ahead on a background thread")
      .positive();

  using O = OptimizerConfig;
  o.add<std::string>("optimizer.type", bind(&T::optimizer, &O::type),
                     "adam (weight decay added to the gradient) or adamw (decoupled weight decay)")
      .one_of({"adam", "adamw"});
  o.add<double>("optimizer.lr", bind(&T::optimizer, &O::lr), "peak learning rate").positive();
  o.add<double>("optimizer.beta1", bind(&T::optimizer, &O::beta1), "Adam beta1").at_least(0).at_most(0.999999);
  o.add<double>("optimizer.beta2", bind(&T::optimizer, &O::beta2), "Adam beta2").at_least(0).at_most(0.999999);
  o.add<double>("optimizer.eps", bind(&T::optimizer, &O::eps), "Adam epsilon").positive();
  o.add<double>("optimizer.weight_decay", bind(&T::optimizer, &O::weight_decay), "weight decay").at_least(0);
  o.add<double>("optimizer.clip_norm", bind(&T::optimizer, &O::clip_norm),
                "clip the global gradient norm to this; 0: no clipping")
      .at_least(0);
  o.add<int64_t>("optimizer.update_freq", bind(&T::optimizer, &O::update_freq),
                 "batches whose gradients are accumulated into one update")
      .positive();
  o.add<bool>("optimizer.shard_state", bind(&T::optimizer, &O::shard_state),
              "with several processes, ZeRO-1: each keeps Adam's moments for 1/N of the parameters, gradients are "
              "reduce-scattered and the updated parameters all-gathered");
  o.add<double>("optimizer.ema_decay", bind(&T::optimizer, &O::ema_decay),
                "keep an exponential moving average of the weights, updated after every update: average = decay "
                "* average + (1 - decay) * weights, starting from the initial weights (e.g. 0.9999; Marian's "
                "exponential-smoothing is 1 - decay). Validation, best-* checkpoints and every checkpoint's "
                "model.safetensors use the average; training continues from the raw weights. 0: off")
      .at_least(0)
      .at_most(0.999999);

  using S = ScheduleConfig;
  o.add<std::string>("schedule.type", bind(&T::schedule, &S::type),
                     "learning-rate schedule after the linear warm-up: inverse_sqrt (Noam), linear or cosine decay "
                     "to min_lr at training.max_steps, or constant")
      .one_of({"inverse_sqrt", "linear", "cosine", "constant"});
  o.add<int64_t>("schedule.warmup_steps", bind(&T::schedule, &S::warmup_steps), "linear warm-up from 0, in updates")
      .at_least(0);
  o.add<double>("schedule.min_lr", bind(&T::schedule, &S::min_lr), "learning rate at the end of linear/cosine decay")
      .at_least(0);

  using Tr = TrainingConfig;
  o.add<float>("training.label_smoothing", bind(&T::training, &Tr::label_smoothing), "label smoothing")
      .at_least(0).at_most(0.999);
  o.add<int64_t>("training.max_steps", bind(&T::training, &Tr::max_steps), "stop after this many updates")
      .positive();
  o.add<int64_t>("training.max_epochs", bind(&T::training, &Tr::max_epochs), "stop after this many epochs; 0: no limit")
      .at_least(0);
  o.add<int64_t>("training.seed", bind(&T::training, &Tr::seed),
                 "seed of the initial weights, the data order and dropout")
      .at_least(0);
  o.add<int64_t>("training.threads", bind(&T::training, &Tr::threads), "CPU threads; 0: all cores").at_least(0);
  o.add<std::string>("training.device", bind(&T::training, &Tr::device),
                     "cpu, cuda, cuda:N, sim (the simulated GPU: the GPU code path on CPU threads, slow, for "
                     "tests), or auto (cuda:0 when a GPU is usable, else cpu)");
  o.add<std::string>("training.precision", bind(&T::training, &Tr::precision),
                     "activations and GEMM inputs: fp32, bf16 or fp16 (weights, gradients, optimizer state, "
                     "softmax and LayerNorm statistics stay fp32). On the CPU, bf16 rounds only the GEMMs' inputs "
                     "(activations stay fp32; it needs AVX512_BF16) and fp16 is refused; auto: bf16 on a GPU, "
                     "fp32 on the CPU")
      .one_of({"auto", "fp32", "bf16", "fp16"});
  o.add<std::string>("training.attention", bind(&T::training, &Tr::attention),
                     "attention in the training step on a CUDA device: fused (Heed's FlashAttention-2 kernels) or "
                     "cudnn (cuDNN's fused attention, where Heed was built with cuDNN: a yardstick; causal only "
                     "for equal lengths, its own dropout generator, see docs/cuda.md)")
      .one_of({"fused", "cudnn"});
  o.add<double>("training.loss_scale", bind(&T::training, &Tr::loss_scale),
                "fp16 only: initial dynamic loss scale; halves when gradients overflow (the update is skipped)")
      .positive();
  o.add<int64_t>("training.loss_scale_window", bind(&T::training, &Tr::loss_scale_window),
                 "fp16 only: updates without overflow after which the loss scale doubles")
      .positive();
  o.add<double>("training.collective_timeout", bind(&T::training, &Tr::collective_timeout),
                "with several processes: seconds a rank waits in a collective before it ends the job, naming "
                "the operation (a rank has died or hangs); longer than the slowest vocabulary training or "
                "validation")
      .positive();
  o.add<double>("training.bucket_mb", bind(&T::training, &Tr::bucket_mb),
                "with several processes: MiB of gradients per all-reduce; each starts as soon as backward has "
                "finished its gradients")
      .positive();
  o.add<std::vector<std::string>>("training.freeze", bind(&T::training, &Tr::freeze),
                                  "parameters that stay fixed, by name pattern (* matches anything), e.g. "
                                  "[encoder.*, shared.weight]");

  using V = ValidationConfig;
  o.add<int64_t>("validation.every", bind(&T::validation, &V::every), "validate every N updates; 0: only at the end")
      .at_least(0);
  o.add<std::vector<std::string>>("validation.metrics", bind(&T::validation, &V::metrics),
                                  "what to compute on the validation set")
      .one_of({"loss", "bleu", "chrf"});
  o.add<std::string>("validation.early_stopping_metric", bind(&T::validation, &V::early_stopping_metric),
                     "the metric that early stopping and 'best' follow")
      .one_of({"loss", "bleu", "chrf"});
  o.add<int64_t>("validation.patience", bind(&T::validation, &V::patience),
                 "stop after this many validations without improvement; 0: never stop early")
      .at_least(0);
  o.add<int64_t>("validation.beam_size", bind(&T::validation, &V::beam_size), "beam size for BLEU/chrF").positive();
  o.add<double>("validation.length_penalty", bind(&T::validation, &V::length_penalty),
                "beam score = log-probability / length^length_penalty");
  o.add<int64_t>("validation.max_sentences", bind(&T::validation, &V::max_sentences),
                 "translate only the first N validation sentences for BLEU/chrF; 0: all")
      .at_least(0);
  o.add<int64_t>("validation.batch_tokens", bind(&T::validation, &V::batch_tokens),
                 "source tokens per beam-search batch")
      .positive();

  using C = CheckpointConfig;
  o.add<int64_t>("checkpoints.every", bind(&T::checkpoints, &C::every), "save every N updates").positive();
  o.add<int64_t>("checkpoints.keep_last", bind(&T::checkpoints, &C::keep_last), "how many recent checkpoints to keep")
      .positive();
  o.add<bool>("checkpoints.keep_best", bind(&T::checkpoints, &C::keep_best),
              "keep the best checkpoint per validation metric (best-bleu, best-loss, ...)");

  using L = LoggingConfig;
  o.add<int64_t>("logging.every", bind(&T::logging, &L::every), "log a line every N updates").positive();
  o.add<std::string>("logging.level", bind(&T::logging, &L::level), "log level")
      .one_of({"debug", "info", "warn", "error"});
  o.add<bool>("logging.progress_bar", bind(&T::logging, &L::progress_bar),
              "draw a progress bar between log lines when stderr is a terminal");
  return o;
}

}  // namespace

const io::Options<TrainConfig>& train_options() {
  static const io::Options<TrainConfig> options = declare();
  return options;
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  TrainConfig config;
  train_options().load_yaml(config, path);
  for (const std::string& assignment : overrides) train_options().set(config, assignment);
  validate(config);
  return config;
}

void validate(const TrainConfig& c) {
  HEED_CHECK(c.data.train_src.empty() == c.data.train_tgt.empty(),
             "data.train_src and data.train_tgt must be given together");
  HEED_CHECK(!c.data.train_src.empty() || !c.data.train.empty(),
             "data.train_src and data.train_tgt (or data.train) must name the training files");
  HEED_CHECK(c.data.train_src.empty() || c.data.train.empty(),
             "data.train_src/train_tgt and data.train both name training corpora: list all of them in data.train");
  HEED_CHECK(c.data.valid_src.empty() == c.data.valid_tgt.empty(),
             "data.valid_src and data.valid_tgt must be given together");
  HEED_CHECK(c.model.d_model % c.model.heads == 0, "model.d_model ({}) must be divisible by model.heads ({})",
             c.model.d_model, c.model.heads);
  HEED_CHECK(c.model.d_model % 2 == 0, "model.d_model must be even for the sinusoidal positions, got {}",
             c.model.d_model);
  HEED_CHECK(c.data.joint_vocab || c.model.tie_embeddings != "all",
             "model.tie_embeddings: all needs data.joint_vocab: true (separate vocabularies cannot share one matrix)");
  HEED_CHECK(c.data.max_tokens >= c.data.max_length,
             "data.max_tokens ({}) must be at least data.max_length ({}), or the longest pairs fit in no batch",
             c.data.max_tokens, c.data.max_length);
  const auto& metrics = c.validation.metrics;
  HEED_CHECK(c.data.valid_src.empty() ||
                 std::find(metrics.begin(), metrics.end(), c.validation.early_stopping_metric) != metrics.end(),
             "validation.early_stopping_metric '{}' must be one of validation.metrics [{}]",
             c.validation.early_stopping_metric, fmt::join(metrics, ", "));
}

}  // namespace heed::train

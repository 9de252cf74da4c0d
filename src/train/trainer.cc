#include "heed/train/trainer.h"

#include <omp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>

#include "heed/core/error.h"
#include "heed/data/batcher.h"
#include "heed/data/vocab_dir.h"
#include "heed/dist/communicator.h"
#include "heed/io/atomic_file.h"
#include "heed/nn/model_dir.h"
#include "heed/nn/open_model.h"
#include "heed/nn/transformer.h"
#include "heed/ops/matmul.h"
#include "heed/train/checkpoint.h"
#include "heed/train/ema.h"
#include "heed/train/loss_scaler.h"
#include "heed/train/optimizer.h"
#include "heed/train/prepare.h"
#include "heed/train/reporter.h"
#include "heed/train/scheduler.h"
#include "heed/train/stop_signal.h"
#include "heed/train/update_step.h"
#include "heed/train/validator.h"

namespace heed::train {

namespace fs = std::filesystem;

namespace {

using Vocabs = data::Vocabularies;

using data::kMarianVocab;
using data::load_vocabularies;
using data::vocab_names;

bool has_all(const fs::path& dir, const std::vector<std::string>& names) {
  return std::all_of(names.begin(), names.end(), [&](const std::string& n) { return fs::exists(dir / n); });
}

// The model's vocabulary fields come from the tokenizer; label smoothing from the training group.
nn::ModelConfig model_config(const TrainConfig& c, const Vocabs& v) {
  nn::ModelConfig m = c.model;
  m.vocab_size = std::max(v.src.size(), v.tgt.size());
  m.pad_id = v.tgt.pad_id();
  m.eos_id = v.tgt.eos_id();
  m.decoder_start_id = m.pad_id;
  m.label_smoothing = c.training.label_smoothing;
  m.validate();
  return m;
}

// Fine-tuning: the weights must fit the configured architecture exactly; list every difference.
void check_compatible(const nn::ModelConfig& have, const nn::ModelConfig& want, const std::string& source) {
  std::vector<std::string> diffs;
  auto cmp = [&](const char* key, const auto& a, const auto& b) {
    if (a != b) diffs.push_back(fmt::format("{}: {} in {} but {} in this config", key, a, source, b));
  };
  cmp("vocab_size (from the vocabulary)", have.vocab_size, want.vocab_size);
  cmp("model.d_model", have.d_model, want.d_model);
  cmp("model.heads", have.heads, want.heads);
  cmp("model.ffn_dim", have.ffn_dim, want.ffn_dim);
  cmp("model.encoder_layers", have.encoder_layers, want.encoder_layers);
  cmp("model.decoder_layers", have.decoder_layers, want.decoder_layers);
  cmp("model.norm", have.norm, want.norm);
  cmp("model.activation", have.activation, want.activation);
  cmp("model.tie_embeddings", have.tie_embeddings, want.tie_embeddings);
  cmp("model.final_logits_bias", have.final_logits_bias, want.final_logits_bias);
  cmp("model.scale_embedding", have.scale_embedding, want.scale_embedding);
  HEED_CHECK(diffs.empty(), "cannot initialise from {}: the architecture differs:\n  {}", source,
             fmt::join(diffs, "\n  "));
}

// Same sizes are not enough: ids that mean other pieces would quietly turn the weights into noise.
void check_same_vocabulary(const Vocabs& v, const std::string& checkpoint) {
  const fs::path dir(checkpoint);
  if (!has_all(dir, {"vocab.model"}) && !has_all(dir, vocab_names(false)) && !has_all(dir, kMarianVocab))
    return;  // a model directory without a tokenizer (e.g. from export-hf): the architecture check remains
  const Vocabs theirs = load_vocabularies(checkpoint);
  for (auto [mine, other] : {std::pair{&v.src, &theirs.src}, {&v.tgt, &theirs.tgt}}) {
    HEED_CHECK(mine->serialized() == other->serialized(),
               "the vocabulary {} differs from the checkpoint's {}: the model's ids would mean other pieces",
               mine->path(), other->path());
  }
}

// '*' matches any run of characters; everything else matches itself.
bool matches(const std::string& pattern, const std::string& name) {
  size_t p = 0, n = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == name[n]) {
      ++p, ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++, mark = n;
    } else if (star != std::string::npos) {
      p = star + 1, n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

void freeze(const nn::ParameterStore& store, const std::vector<std::string>& patterns) {
  if (patterns.empty()) return;
  int64_t frozen = 0;
  for (const std::string& pattern : patterns) {
    bool used = false;
    for (const auto& [name, p] : store.all()) {
      if (!matches(pattern, name)) continue;
      used = true;
      if (p.requires_grad()) frozen += p.value().numel();
      p.set_requires_grad(false);
    }
    HEED_CHECK(used, "training.freeze: pattern '{}' matches no parameter (names as in docs/model.md)", pattern);
  }
  spdlog::info("frozen: {} of {} parameters ({})", frozen, store.numel(), fmt::join(patterns, ", "));
}

// Where --resume points: a checkpoint directory, or a run directory (its newest good checkpoint).
std::string resume_checkpoint(const std::string& path) {
  if (fs::exists(fs::path(path) / "manifest.json")) return path;
  const std::string latest = nn::latest_checkpoint(path);
  HEED_CHECK(!latest.empty(), "--resume {}: no complete checkpoint there (expected {}/checkpoints/step-*/)", path,
             path);
  return latest;
}

bool same_path(const fs::path& a, const fs::path& b) { return fs::weakly_canonical(a) == fs::weakly_canonical(b); }

bool lies_inside(const fs::path& path, const fs::path& dir) {
  const fs::path relative = fs::weakly_canonical(path).lexically_relative(fs::weakly_canonical(dir));
  return !relative.empty() && *relative.begin() != "..";
}

// What `heed train` writes into a run directory, and all that --overwrite removes: other files there (a
// translation written next to the run) stay.
const std::vector<std::string> kRunFiles = {"checkpoints",     "config.yaml",     "metrics.jsonl", "train.log",
                                            "vocab.model",     "vocab.src.model", "vocab.tgt.model",
                                            "source.spm",      "target.spm",      "vocab.json"};

// Whether a run directory holds what a new run would destroy: a checkpoint or logged metrics. One with only
// a vocabulary and a config, left by a run that failed before its first update, does not.
bool holds_run(const fs::path& run_dir) {
  const fs::path metrics = run_dir / "metrics.jsonl";
  if (fs::is_regular_file(metrics) && fs::file_size(metrics) > 0) return true;
  const fs::path checkpoints = run_dir / "checkpoints";
  if (!fs::is_directory(checkpoints)) return false;
  for (const auto& entry : fs::directory_iterator(checkpoints))
    if (!entry.path().filename().string().starts_with(".")) return true;  // hidden: an abandoned save
  return false;
}

// A new run must not mix its checkpoints and logs with another run's: a directory that holds one is only
// continued (--resume) or, with --overwrite, cleared first.
void claim_run_dir(const TrainConfig& c, const RunOptions& run, const fs::path& run_dir) {
  if (!run.resume.empty() && same_path(resumed_run_dir(run.resume), run_dir)) return;
  if (!run.overwrite) {
    HEED_CHECK(!holds_run(run_dir),
               "{} already holds a run (checkpoints, metrics.jsonl) that training into it would replace: continue "
               "it with --resume {}, train into a new --run-dir, or replace it with --overwrite",
               run_dir.string(), run_dir.string());
    return;
  }
  std::vector<fs::path> inputs;  // what this run reads, which --overwrite must not remove
  for (const std::string& input : {run.init_from, c.data.src_vocab, c.data.tgt_vocab})
    if (!input.empty()) inputs.emplace_back(input);
  std::vector<std::string> removed;
  for (const std::string& name : kRunFiles) {
    const fs::path path = run_dir / name;
    if (!fs::exists(fs::symlink_status(path))) continue;
    if (std::any_of(inputs.begin(), inputs.end(), [&](const fs::path& in) { return same_path(in, path); })) continue;
    for (const fs::path& input : inputs)
      HEED_CHECK(!lies_inside(input, path), "--overwrite would remove {}, which this run reads: copy it elsewhere "
                 "first, or train into a new --run-dir", input.string());
    fs::remove_all(path);
    removed.push_back(name);
  }
  if (!removed.empty())
    spdlog::info("--overwrite: removed the previous run's {} from {}", fmt::join(removed, ", "), run_dir.string());
}

// A resume is checked against its checkpoint before anything is written, so that a refused one leaves the
// run directory (its config.yaml and vocabulary) as it was.
void check_resumable(const TrainConfig& c, const std::string& checkpoint) {
  const Vocabs theirs = load_vocabularies(checkpoint);
  if (!c.data.src_vocab.empty()) {
    const data::Vocab src = data::Vocab::load(c.data.src_vocab);
    const data::Vocab tgt = c.data.joint_vocab ? src : data::Vocab::load(c.data.tgt_vocab);
    check_same_vocabulary({src, tgt, {c.data.src_vocab, c.data.tgt_vocab}}, checkpoint);
  }
  check_compatible(nn::load_model_config((fs::path(checkpoint) / "model.yaml").string()), model_config(c, theirs),
                   checkpoint);
}

}  // namespace

std::string resumed_run_dir(const std::string& resume) {
  const fs::path path(resume);
  return fs::exists(path / "manifest.json") ? path.parent_path().parent_path().string() : path.string();
}

// Where a run trains (training.device) and in what precision (training.precision).
struct Placement {
  Device device;
  nn::Precision precision;
  ops::AttentionBackend attention;
};

Placement placement(const TrainConfig& c, int world) {
  const TrainingConfig& t = c.training;
  Placement p;
  p.device = resolve_device(t.device, "training.device");
  p.precision = nn::resolve_precision(t.precision, p.device, "training.precision");
  p.attention = t.attention == "cudnn" ? ops::AttentionBackend::Cudnn : ops::AttentionBackend::Fused;
#ifndef HEED_WITH_CUDNN
  HEED_CHECK(p.attention == ops::AttentionBackend::Fused, "training.attention: cudnn needs a build of Heed with cuDNN "
             "(CMake found none); use fused");
#endif
  HEED_CHECK(p.attention == ops::AttentionBackend::Fused || p.device.is_cuda(),
             "training.attention: cudnn runs on a CUDA device, and training.device is {}; use fused", p.device.str());
  // One GPU per process: a config that names just `cuda` (or auto) gives each rank the GPU of its local rank.
  if (p.device.is_cuda() && world > 1 && (t.device == "cuda" || t.device == "auto")) {
    p.device = Device::cuda(dist::local_rank());
    HEED_CHECK(p.device.index < cuda_device_count(), "local rank {} has no GPU: {} usable on this node",
               p.device.index, cuda_device_count());
  }
  HEED_CHECK(p.device.is_cpu() || !c.optimizer.shard_state || world == 1,
             "optimizer.shard_state with training.device {}: the sharded optimizer runs on the CPU only", p.device.str());
  return p;
}


namespace {

ops::AdamHyper adam_hyper(const OptimizerConfig& o) {
  ops::AdamHyper hyper;
  hyper.beta1 = static_cast<float>(o.beta1);
  hyper.beta2 = static_cast<float>(o.beta2);
  hyper.eps = static_cast<float>(o.eps);
  hyper.weight_decay = static_cast<float>(o.weight_decay);
  hyper.decoupled = o.type == "adamw";
  return hyper;
}

// This rank's share of the training data, shuffled per epoch.
data::BatcherOptions batcher_options(const TrainConfig& c, const nn::ModelConfig& mc, const dist::Communicator& comm) {
  data::BatcherOptions options;
  options.max_tokens = c.data.max_tokens;
  options.max_sentences = c.data.max_sentences;
  options.shuffle = c.data.shuffle;
  options.seed = static_cast<uint64_t>(c.training.seed);
  options.pad_id = static_cast<int32_t>(mc.pad_id);
  options.eos_id = static_cast<int32_t>(mc.eos_id);
  options.decoder_start_id = static_cast<int32_t>(mc.decoder_start_id);
  options.prefetch = static_cast<int>(c.data.prefetch);
  options.rank = comm.rank();
  options.world = comm.world();
  return options;
}

// The loop of a run (Marian's Train::run), over the parts that train() builds: the update step trains,
// the scheduler decides when to log, validate, save and stop, and the reporter tells.
struct TrainingLoop {
  const TrainConfig& config;
  const fs::path& run_dir;
  bool leader;           // writes the checkpoints and train.log
  const TrainLog* log;   // the leader's
  TrainState& state;
  data::Batcher& batcher;
  UpdateStep& update;
  const Validator* validator;  // none without validation data
  Scheduler& scheduler;
  Reporter& reporter;
  dist::Communicator& comm;  // the reporter's sums over the ranks
  const StopSignal& stop;
  // What the validator runs and a checkpoint holds besides the state.
  const nn::Transformer& model;
  DType compute;
  const nn::ParameterStore& store;
  const AdamOptimizer& optimizer;
  ExponentialMovingAverage& average;  // what validation scores and the checkpoints' model files hold
  const LossScaler& scaler;
  const std::vector<std::string>& checkpoint_files;  // the config and the vocabularies

  void run() {
    while (scheduler.keep_going()) {
      if (log) log->check();  // a full disk stops training at once, not after a torn log
      if (scheduler.epochs_done(batcher.position().epoch)) break;
      const Update u = update.run(batcher, state, stop.requested());
      if (u.stop) scheduler.stop();
      if (!u.applied) continue;
      reporter.add(u);
      if (scheduler.log_due()) reporter.log_window(batcher.position().epoch + 1, comm);
      if (scheduler.validate_due()) validate();
      if (scheduler.save_due()) save("scheduled");
    }
    if (scheduler.stopped()) reporter.stopping(stop.signal());
    if (scheduler.final_save_due()) save(scheduler.stopped() ? "signal" : "end of training");
    reporter.finished();
  }

  void validate() {
    const std::optional<ValidationResult> result = validate_averaged();
    if (!result) return;
    reporter.validation(*result);
    const std::vector<std::string> improved = scheduler.record_validation(result->metrics);
    if (!improved.empty() && config.checkpoints.keep_best) {
      const std::string dir = save("validation");
      const auto saving = stop.saving();
      for (const std::string& name : improved)
        if (leader) copy_checkpoint(dir, (run_dir / "checkpoints" / ("best-" + name)).string());
      spdlog::info("new best: {}", fmt::join(improved, ", "));
    }
    if (scheduler.early_stopped())
      spdlog::info("early stopping: {} did not improve in {} validations", config.validation.early_stopping_metric,
                   state.bad_validations);
  }

  // Validation scores the weights that a checkpoint's model file holds: the average, when there is one.
  std::optional<ValidationResult> validate_averaged() {
    const auto averaged = average.swap_in();
    return validator->run(model, compute, [this] { return stop.requested(); });
  }

  // Every rank saves, as a sharded optimizer gathers its moments; the leader writes. Returns the directory.
  std::string save(const std::string& reason) {
    reporter.settle(comm);
    TrainState saved = state;
    saved.optimizer_steps = optimizer.steps();
    saved.data = batcher.position();
    saved.elapsed_s = reporter.elapsed();
    saved.loss_scale = scaler.enabled() ? scaler.saved_scale() : 0;
    saved.loss_scale_good_steps = scaler.saved_good_steps();
    const std::string dir = (run_dir / "checkpoints" / nn::step_checkpoint_name(state.step)).string();
    scheduler.saved();
    io::TensorMap moments = optimizer.state();  // a collective when the optimizer is sharded
    if (!leader) return dir;                    // every rank holds the same weights and state
    const auto saving = stop.saving();
    save_checkpoint(dir, {model.config(), average.values(), std::move(moments), saved, checkpoint_files,
                          average.enabled() ? store.values() : io::TensorMap()});
    prune_checkpoints(run_dir.string(), config.checkpoints.keep_last);
    spdlog::info("saved {} ({})", dir, reason);
    return dir;
  }
};

// The CPU's GEMM library and kernels, once per run: kernels older than the CPU slow training several times
// over, which nothing else would show.
void log_cpu_gemm() {
  const ops::CpuGemmLibrary gemm = ops::cpu_gemm_library();
  spdlog::info("gemm: {}, on a CPU with {}", gemm.description, ops::vector_level_name(gemm.cpu));
  if (gemm.falls_back())
    spdlog::warn("gemm: the library runs its {} kernels ({}) on a CPU with {}, so matrix products run several "
                 "times slower than they could (is ONEDNN_MAX_CPU_ISA set?)",
                 gemm.kernel_name, ops::vector_level_name(gemm.kernels), ops::vector_level_name(gemm.cpu));
}

// train() once the run directory is claimed and its log open.
void train_claimed(const TrainConfig& c, const RunOptions& run, std::unique_ptr<dist::Communicator> comm,
                   const TrainLog* log) {
  const bool leader = comm->rank() == 0;
  const fs::path run_dir(c.run_dir);
  const spdlog::level::level_enum level = spdlog::level::from_str(c.logging.level);
  spdlog::set_level(leader ? level : std::max(level, spdlog::level::warn));
  if (c.training.threads > 0) omp_set_num_threads(static_cast<int>(c.training.threads));
  if (comm->world() > 1) spdlog::info("data parallel: {}", comm->name());
  const Placement where = placement(c, comm->world());
  if (where.device.is_cpu()) log_cpu_gemm();
  if (!where.device.is_cpu() && comm->world() > 1) {
    comm = dist::make_device_communicator(std::move(comm), where.device, c.training.collective_timeout);
    spdlog::info("data parallel on {}: {}", where.device.str(), comm->name());
  }

  const std::string resume_from = run.resume.empty() ? "" : resume_checkpoint(run.resume);
  if (!resume_from.empty()) {
    nn::verify_checkpoint(resume_from);
    check_resumable(c, resume_from);
  }
  std::string vocab_source = resume_from;
  if (!run.init_from.empty())  // a Hugging Face directory brings its tokenizer, a run its best checkpoint's
    vocab_source = fs::exists(fs::path(run.init_from) / "config.json") ? run.init_from : nn::resolve_model_dir(run.init_from);
  const std::string config_copy = (run_dir / "config.yaml").string();
  if (leader) {
    prepare_vocab_files(c, run_dir, vocab_source);
    io::write_file_atomic(config_copy, train_options().dump(c));
  }
  comm->barrier();
  const Vocabs vocabs = load_vocabs(c, run_dir);
  if (leader) prepare_store(c, vocabs, /*verify_ids=*/false);
  comm->barrier();
  if (!run.init_from.empty()) check_same_vocabulary(vocabs, vocab_source);
  const nn::ModelConfig mc = model_config(c, vocabs);
  std::vector<std::string> checkpoint_files = vocabs.files;
  checkpoint_files.push_back(config_copy);

  nn::ParameterStore store(static_cast<uint64_t>(c.training.seed));
  const nn::Transformer model(mc, store);
  spdlog::info("model: {} parameters, d_model {}, {}+{} layers, vocabulary {}", store.numel(), mc.d_model,
               mc.encoder_layers, mc.decoder_layers, mc.vocab_size);
  TrainState state;
  io::TensorMap averaged;  // the resumed checkpoint's model weights: the average, if it kept one
  if (!resume_from.empty()) {
    nn::ModelDir saved = nn::load_model_dir(resume_from);
    store.load(nn::training_weights(resume_from, saved), resume_from);
    averaged = std::move(saved.weights);
    state = load_train_state(resume_from);
    if (state.world_size != comm->world())  // positions and moments do not depend on it; the batch size does
      spdlog::warn("{} was written by {} processes and continues on {}: the global batch changes with them",
                   resume_from, state.world_size, comm->world());
  } else if (!run.init_from.empty()) {
    const nn::OpenedModel init = nn::open_model(run.init_from, Device::cpu(), "fp32", "--init-from");
    spdlog::info("initialising from {}", init.dir);
    check_compatible(init.config, mc, run.init_from);
    store.load(init.store->values(), run.init_from);
  }
  freeze(store, c.training.freeze);
  const DType compute = where.precision.compute;
  if (!where.device.is_cpu()) {
    store.to(where.device);
    spdlog::info("training on {} in {} (fp32 master weights)", where.device.str(), dtype_name(compute));
  }
  std::optional<ops::CpuBf16GemmScope> bf16_products;
  if (where.precision.cpu_bf16_gemm) {
    bf16_products.emplace("training.precision bf16");
    spdlog::info("training on the CPU with bf16 matrix products (fp32 activations, accumulation and master weights)");
  }

  AdamOptimizer optimizer(store, adam_hyper(c.optimizer), c.optimizer.shard_state ? comm.get() : nullptr);
  // A checkpoint written without an average resumes one from its weights, as a new run starts one.
  ExponentialMovingAverage average(store, c.optimizer.ema_decay);
  if (!averaged.empty()) average.load(averaged, resume_from);
  averaged.clear();  // not a second copy of the weights for the whole run
  if (!resume_from.empty()) {
    optimizer.load_state(load_optimizer_state(resume_from), state.optimizer_steps, resume_from);
    spdlog::info("resuming from {} at step {} (epoch {}, batch {})", resume_from, state.step, state.data.epoch + 1,
                 state.data.index);
  }
  LossScaler scaler(compute == DType::F16, c.training.loss_scale, c.training.loss_scale_window);
  if (state.loss_scale > 0) scaler.restore(state.loss_scale, state.loss_scale_good_steps);

  const auto corpus = data::CorpusStore::open(store_dir(c), store_settings(c, vocabs));
  const std::vector<TrainingCorpus> corpora = training_corpora(c.data);
  for (size_t k = 0; k < corpora.size(); ++k)  // what the store's preparation kept, told at every start
    spdlog::info("{} / {}: {}", corpora[k].files.src, corpora[k].files.tgt, corpus->reports()[k].summary());
  data::BatcherOptions options = batcher_options(c, mc, *comm);
  options.corpus_weights = corpus_weights(c, *corpus);
  data::Batcher batcher(corpus, options, state.data);
  spdlog::info("training data: {} batches per epoch of at most {} tokens", batcher.batches_per_epoch(),
               c.data.max_tokens);
  std::unique_ptr<Validator> validator;
  if (!c.data.valid_src.empty()) validator = std::make_unique<Validator>(c, vocabs, *comm);

  const bool resumed = !resume_from.empty();
  const fs::path metrics_path = leader ? run_dir / "metrics.jsonl" : fs::path();
  state.world_size = comm->world();
  const StopSignal stop;
  Reporter reporter(c, state, metrics_path, resumed);
  Scheduler scheduler(c, state, validator != nullptr, resumed);
  nn::ForwardContext context;
  context.compute = compute;
  context.attention = where.attention;
  context.seed = static_cast<uint64_t>(c.training.seed);
  UpdateStep update(c, model, store, optimizer, average, scaler, *comm, context);
  TrainingLoop{.config = c, .run_dir = run_dir, .leader = leader, .log = log, .state = state, .batcher = batcher,
               .update = update, .validator = validator.get(), .scheduler = scheduler, .reporter = reporter,
               .comm = *comm, .stop = stop, .model = model, .compute = compute, .store = store, .optimizer = optimizer,
               .average = average, .scaler = scaler, .checkpoint_files = checkpoint_files}
      .run();
}

}  // namespace

void train(TrainConfig c, const RunOptions& run) {
  validate(c);
  HEED_CHECK(run.resume.empty() || run.init_from.empty(), "--resume and --init-from exclude each other");
  HEED_CHECK(run.resume.empty() || !run.overwrite, "--resume and --overwrite exclude each other");
  std::unique_ptr<dist::Communicator> comm = dist::make_communicator(c.training.collective_timeout);
  // Rank 0 writes the run directory and logs; the others log only their warnings and errors.
  std::optional<TrainLog> log;
  if (comm->rank() == 0) {
    const fs::path run_dir(c.run_dir);
    claim_run_dir(c, run, run_dir);
    fs::create_directories(run_dir / "checkpoints");
    remove_abandoned_saves(run_dir.string());
    log.emplace(run_dir / "train.log");
  }
  try {
    train_claimed(c, run, std::move(comm), log ? &*log : nullptr);
  } catch (const std::exception& e) {
    if (log) log->error(e.what());  // why training ended belongs in its log, which closes with this scope
    throw;
  }
  if (log) log->check();
}

}  // namespace heed::train

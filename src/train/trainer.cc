#include "heed/train/trainer.h"

#include <fcntl.h>
#include <omp.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <nlohmann/json.hpp>

#include "heed/core/error.h"
#include "heed/data/batcher.h"
#include "heed/data/text.h"
#include "heed/data/vocab_dir.h"
#include "heed/decode/metrics.h"
#include "heed/dist/communicator.h"
#include "heed/decode/translator.h"
#include "heed/io/atomic_file.h"
#include "heed/nn/model_dir.h"
#include "heed/nn/open_model.h"
#include "heed/nn/transformer.h"
#include "heed/ops/elementwise.h"
#include "heed/train/checkpoint.h"
#include "heed/train/gradient_sync.h"
#include "heed/train/loss_scaler.h"
#include "heed/train/optimizer.h"
#include "heed/train/schedule.h"

namespace heed::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::atomic<int> g_signal{0};
std::atomic<bool> g_saving{false};  // the leader is writing a checkpoint
// The first SIGINT/SIGTERM asks for a checkpoint and a clean exit. A second one kills as usual, for a user
// who does not want to wait for the save; during a save, though, it says that the save finishes first, as
// being killed then would cost the very checkpoint the first signal asked for (SIGKILL still abandons it).
extern "C" void on_signal(int signal) {
  if (g_signal == 0) {
    g_signal = signal;
    return;
  }
  if (g_saving) {
    static constexpr char kMessage[] = "heed: signal received during a checkpoint save: finishing the save, then "
                                       "exiting (SIGKILL abandons it)\n";
    [[maybe_unused]] const ssize_t written = ::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
    return;
  }
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

// Marks a checkpoint save for the signal handler.
class SavingScope {
 public:
  SavingScope() { g_saving = true; }
  ~SavingScope() { g_saving = false; }
  SavingScope(const SavingScope&) = delete;
  SavingScope& operator=(const SavingScope&) = delete;
};

// Restores the previous handlers when training ends, so a library user's own handlers survive.
class SignalScope {
 public:
  SignalScope() {
    g_signal = 0;
    previous_int_ = std::signal(SIGINT, on_signal);
    previous_term_ = std::signal(SIGTERM, on_signal);
  }
  ~SignalScope() {
    std::signal(SIGINT, previous_int_);
    std::signal(SIGTERM, previous_term_);
  }

 private:
  void (*previous_int_)(int);
  void (*previous_term_)(int);
};

bool stop_requested() { return g_signal != 0; }

using Vocabs = data::Vocabularies;

// Copies a vocabulary file into the run directory under `name`, unless it is already there.
std::string adopt(const std::string& from, const fs::path& run_dir, const std::string& name) {
  const fs::path to = run_dir / name;
  HEED_CHECK(fs::is_regular_file(from), "vocabulary {} does not exist", from);
  if (fs::weakly_canonical(from) != fs::weakly_canonical(to)) {
    std::ifstream in(from, std::ios::binary);
    io::write_file_atomic(to.string(),
                          std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
  }
  return to.string();
}

using data::kMarianVocab;
using data::load_vocabularies;
using data::vocab_names;

bool has_all(const fs::path& dir, const std::vector<std::string>& names) {
  return std::all_of(names.begin(), names.end(), [&](const std::string& n) { return fs::exists(dir / n); });
}

// The run's vocabulary files: from the checkpoint it continues (resume, fine-tuning), from files the
// config names, or trained on the training data. All end up in the run directory, so checkpoints carry
// them. Only the leading rank calls this; the others load what it wrote.
void prepare_vocab_files(const TrainConfig& c, const fs::path& run_dir, const std::string& from_checkpoint) {
  const bool joint = c.data.joint_vocab;
  const std::vector<std::string> names = vocab_names(joint);
  std::vector<std::string> files;
  if (!c.data.src_vocab.empty()) {
    HEED_CHECK(joint || !c.data.tgt_vocab.empty(), "data.tgt_vocab must be set when data.joint_vocab is false");
    files.push_back(adopt(c.data.src_vocab, run_dir, names[0]));
    if (!joint) files.push_back(adopt(c.data.tgt_vocab, run_dir, names[1]));
  } else if (!from_checkpoint.empty() && (has_all(from_checkpoint, names) || has_all(from_checkpoint, kMarianVocab))) {
    for (const std::string& name : has_all(from_checkpoint, names) ? names : kMarianVocab)
      files.push_back(adopt((fs::path(from_checkpoint) / name).string(), run_dir, name));
  } else {
    data::VocabOptions options;
    options.type = c.data.vocab_type;
    options.size = c.data.vocab_size;
    options.seed = static_cast<uint64_t>(c.training.seed);
    const std::vector<std::vector<std::string>> inputs =
        joint ? std::vector<std::vector<std::string>>{{c.data.train_src, c.data.train_tgt}}
              : std::vector<std::vector<std::string>>{{c.data.train_src}, {c.data.train_tgt}};
    for (size_t i = 0; i < names.size(); ++i) {
      const fs::path path = run_dir / names[i];
      if (!fs::exists(path)) {
        spdlog::info("training a {} SentencePiece vocabulary of {} pieces: {}", options.type, options.size,
                     path.string());
        data::Vocab::train(inputs[i], path.string(), options);
      }
      files.push_back(path.string());
    }
  }
}

Vocabs load_vocabs(const TrainConfig& c, const fs::path& run_dir) {
  if (c.data.src_vocab.empty() && has_all(run_dir, kMarianVocab)) return load_vocabularies(run_dir.string());
  std::vector<std::string> files;
  for (const std::string& name : vocab_names(c.data.joint_vocab)) files.push_back((run_dir / name).string());
  return {data::Vocab::load(files.front()), data::Vocab::load(files.back()), files};
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

double global_grad_norm(const nn::ParameterStore& store) {
  double sum = 0;
  for (const auto& [name, p] : store.all()) {
    if (!p.grad().defined()) continue;
    const Tensor g = p.grad();
    sum += static_cast<double>(ops::sum(ops::mul(g, g)).to(Device::cpu()).item());
  }
  return std::sqrt(sum);
}

std::string clock(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds);
  return fmt::format("{}:{:02d}:{:02d}", s / 3600, s / 60 % 60, s % 60);
}

// metrics.jsonl: a fresh run starts it empty; a resumed one cuts it back to the checkpoint's step, so that it
// reads as one uninterrupted run. Every record is flushed and checked: on a full disk training stops at once
// instead of going on with a log that has a torn last line.
class MetricsFile {
 public:
  MetricsFile(const fs::path& path, std::optional<int64_t> resumed_at) : path_(path) {
    if (resumed_at) {
      std::string kept;
      std::ifstream in(path);
      for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        const json j = json::parse(line, nullptr, false);
        if (!j.is_discarded() && j.value("step", int64_t{0}) <= *resumed_at) kept += line + "\n";
      }
      io::write_file_atomic(path.string(), kept);
    }
    out_.open(path, resumed_at ? std::ios::app : std::ios::trunc);
    HEED_CHECK(out_.good(), "cannot write {}: {}", path.string(), std::strerror(errno));
  }
  void write(const json& record) {
    out_ << record.dump() << "\n";
    out_.flush();
    HEED_CHECK(out_.good(), "cannot write {}: {} (disk full?)", path_.string(), std::strerror(errno));
  }

 private:
  fs::path path_;
  std::ofstream out_;
};

// train.log. spdlog catches what a sink throws and goes on, so this sink writes each line with one
// unbuffered write and keeps the first failure, which check() turns into an error.
class TrainLogSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit TrainLogSink(const fs::path& path) : path_(path.string()) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    HEED_CHECK(fd_ >= 0, "cannot write {}: {}", path_, std::strerror(errno));
  }
  ~TrainLogSink() override { ::close(fd_); }
  TrainLogSink(const TrainLogSink&) = delete;
  TrainLogSink& operator=(const TrainLogSink&) = delete;

  void check() {
    const std::lock_guard<std::mutex> lock(mutex_);
    HEED_CHECK(error_.empty(), "cannot write {}: {} (disk full?)", path_, error_);
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    const char* p = line.data();
    for (size_t n = line.size(); n > 0 && error_.empty();) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        error_ = w < 0 ? std::strerror(errno) : "nothing written";
      } else {
        p += w;
        n -= static_cast<size_t>(w);
      }
    }
  }
  void flush_() override {}

 private:
  std::string path_;
  int fd_ = -1;
  std::string error_;
};

struct ValidationResult {
  std::map<std::string, double> metrics;  // loss, ppl, bleu, chrf
  std::string bleu_text, chrf_text;
};

// Validation split across ranks: rank r scores every world-th pair and translates every world-th
// sentence; the sums are reduced and the translations gathered, so every rank gets the single-process
// result (BLEU exactly; the loss up to the order of its sums) and takes the same decisions from it.
class Validator {
 public:
  Validator(const TrainConfig& c, const Vocabs& v, dist::Communicator& comm) : config_(c), vocabs_(v), comm_(comm) {
    data::CorpusOptions options;
    options.max_length = c.data.max_length;
    const data::ParallelCorpus all =
        data::load_parallel_corpus(c.data.valid_src, c.data.valid_tgt, v.src, v.tgt, options);
    for (int64_t i = comm.rank(); i < all.size(); i += comm.world()) {
      corpus_.src.push_back(all.src[static_cast<size_t>(i)]);
      corpus_.tgt.push_back(all.tgt[static_cast<size_t>(i)]);
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

  bool wants(const std::string& metric) const {
    const auto& m = config_.validation.metrics;
    return std::find(m.begin(), m.end(), metric) != m.end();
  }

  ValidationResult run(const nn::Transformer& model, DType compute) const {
    autograd::NoGradGuard no_grad;
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
          sums[1] += l.nll_sum;
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
      // A signal cuts a single process's validation short; ranks would disagree on where, so with several
      // they finish it and stop at the next update.
      const bool single = comm_.world() == 1;
      options.search.compute = compute;
      const std::vector<decode::Translation> out = decode::translate(
          model, vocabs_.src, vocabs_.tgt, sources_, options, [single] { return !single || !stop_requested(); });
      if (single && stop_requested()) return r;
      std::vector<std::string> mine;
      for (const auto& t : out) mine.push_back(t.text);
      const std::vector<std::vector<std::string>> gathered = dist::all_gather_strings(comm_, mine);
      std::vector<std::string> hyps(references_.size());
      for (size_t i = 0; i < hyps.size(); ++i)
        hyps[i] = gathered[i % gathered.size()][i / gathered.size()];
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
    return r;
  }

 private:
  const TrainConfig& config_;
  const Vocabs& vocabs_;
  dist::Communicator& comm_;
  data::ParallelCorpus corpus_;
  std::vector<std::string> sources_, references_;
};

bool higher_is_better(const std::string& metric) { return metric == "bleu" || metric == "chrf"; }

// Where --resume points: a checkpoint directory, or a run directory (its newest good checkpoint).
std::string resume_checkpoint(const std::string& path) {
  if (fs::exists(fs::path(path) / "manifest.json")) return path;
  const std::string latest = latest_checkpoint(path);
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

// Where a run trains (training.device) and the type of its activations (training.precision).
struct Placement {
  Device device;
  DType compute;
  ops::AttentionBackend attention;
};

Placement placement(const TrainConfig& c, int world) {
  const TrainingConfig& t = c.training;
  Placement p;
  p.device = resolve_device(t.device, "training.device");
  p.compute = nn::resolve_precision(t.precision, p.device, "training.precision");
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

void train(TrainConfig c, const RunOptions& run) {
  validate(c);
  HEED_CHECK(run.resume.empty() || run.init_from.empty(), "--resume and --init-from exclude each other");
  HEED_CHECK(run.resume.empty() || !run.overwrite, "--resume and --overwrite exclude each other");
  std::unique_ptr<dist::Communicator> comm = dist::make_communicator(c.training.collective_timeout);
  // Rank 0 writes the run directory and logs; the others log only their warnings and errors.
  const bool leader = comm->rank() == 0;
  const fs::path run_dir(c.run_dir);
  std::shared_ptr<TrainLogSink> log_file;
  if (leader) {
    claim_run_dir(c, run, run_dir);
    fs::create_directories(run_dir / "checkpoints");
    remove_abandoned_saves(run_dir.string());
    log_file = std::make_shared<TrainLogSink>(run_dir / "train.log");
    spdlog::default_logger()->sinks().push_back(log_file);
  }
  const spdlog::level::level_enum level = spdlog::level::from_str(c.logging.level);
  spdlog::set_level(leader ? level : std::max(level, spdlog::level::warn));
  if (c.training.threads > 0) omp_set_num_threads(static_cast<int>(c.training.threads));
  if (comm->world() > 1) spdlog::info("data parallel: {}", comm->name());
  const Placement where = placement(c, comm->world());
  if (!where.device.is_cpu() && comm->world() > 1) {
    comm = dist::make_device_communicator(std::move(comm), where.device, c.training.collective_timeout);
    spdlog::info("data parallel on {}: {}", where.device.str(), comm->name());
  }

  const std::string resume_from = run.resume.empty() ? "" : resume_checkpoint(run.resume);
  if (!resume_from.empty()) {
    verify_checkpoint(resume_from);
    check_resumable(c, resume_from);
  }
  std::string vocab_source = resume_from;
  if (!run.init_from.empty())  // a Hugging Face directory brings its tokenizer, a run its best checkpoint's
    vocab_source = fs::exists(fs::path(run.init_from) / "config.json") ? run.init_from : resolve_model_dir(run.init_from);
  const std::string config_copy = (run_dir / "config.yaml").string();
  if (leader) {
    prepare_vocab_files(c, run_dir, vocab_source);
    io::write_file_atomic(config_copy, train_options().dump(c));
  }
  comm->barrier();
  const Vocabs vocabs = load_vocabs(c, run_dir);
  if (!run.init_from.empty()) check_same_vocabulary(vocabs, vocab_source);
  const nn::ModelConfig mc = model_config(c, vocabs);
  std::vector<std::string> checkpoint_files = vocabs.files;
  checkpoint_files.push_back(config_copy);

  nn::ParameterStore store(static_cast<uint64_t>(c.training.seed));
  const nn::Transformer model(mc, store);
  spdlog::info("model: {} parameters, d_model {}, {}+{} layers, vocabulary {}", store.numel(), mc.d_model,
               mc.encoder_layers, mc.decoder_layers, mc.vocab_size);
  TrainState state;
  if (!resume_from.empty()) {
    const nn::ModelDir saved = nn::load_model_dir(resume_from);
    store.load(saved.weights, resume_from);
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
  if (!where.device.is_cpu()) {
    store.to(where.device);
    spdlog::info("training on {} in {} (fp32 master weights)", where.device.str(), dtype_name(where.compute));
  }

  ops::AdamHyper hyper;
  hyper.beta1 = static_cast<float>(c.optimizer.beta1);
  hyper.beta2 = static_cast<float>(c.optimizer.beta2);
  hyper.eps = static_cast<float>(c.optimizer.eps);
  hyper.weight_decay = static_cast<float>(c.optimizer.weight_decay);
  hyper.decoupled = c.optimizer.type == "adamw";
  AdamOptimizer optimizer(store, hyper, c.optimizer.shard_state ? comm.get() : nullptr);
  if (!resume_from.empty()) {
    optimizer.load_state(load_optimizer_state(resume_from), state.optimizer_steps, resume_from);
    spdlog::info("resuming from {} at step {} (epoch {}, batch {})", resume_from, state.step, state.data.epoch + 1,
                 state.data.index);
  }
  LossScaler scaler(where.compute == DType::F16, c.training.loss_scale, c.training.loss_scale_window);
  if (state.loss_scale > 0) scaler.restore(state.loss_scale, state.loss_scale_good_steps);

  data::CorpusOptions corpus_options;
  corpus_options.max_length = c.data.max_length;
  data::BatcherOptions batch_options;
  batch_options.max_tokens = c.data.max_tokens;
  batch_options.max_sentences = c.data.max_sentences;
  batch_options.shuffle = c.data.shuffle;
  batch_options.seed = static_cast<uint64_t>(c.training.seed);
  batch_options.pad_id = static_cast<int32_t>(mc.pad_id);
  batch_options.eos_id = static_cast<int32_t>(mc.eos_id);
  batch_options.decoder_start_id = static_cast<int32_t>(mc.decoder_start_id);
  batch_options.prefetch = static_cast<int>(c.data.prefetch);
  batch_options.rank = comm->rank();
  batch_options.world = comm->world();
  data::Batcher batcher(
      data::load_parallel_corpus(c.data.train_src, c.data.train_tgt, vocabs.src, vocabs.tgt, corpus_options),
      batch_options, state.data);
  spdlog::info("training data: {} batches per epoch of at most {} tokens", batcher.batches_per_epoch(),
               c.data.max_tokens);
  std::unique_ptr<Validator> validator;
  if (!c.data.valid_src.empty()) validator = std::make_unique<Validator>(c, vocabs, *comm);

  std::optional<MetricsFile> metrics;
  if (leader)
    metrics.emplace(run_dir / "metrics.jsonl", resume_from.empty() ? std::nullopt : std::optional<int64_t>(state.step));
  state.world_size = comm->world();
  const SignalScope signals;
  const bool progress_bar = c.logging.progress_bar && isatty(STDERR_FILENO);
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return state.elapsed_s + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  double window_start = elapsed();
  const int64_t first_step = state.step;
  int64_t saved_step = resume_from.empty() ? -1 : state.step;

  auto save = [&](const std::string& reason) {
    TrainState saved = state;
    saved.optimizer_steps = optimizer.steps();
    saved.data = batcher.position();
    saved.elapsed_s = elapsed();
    saved.loss_scale = scaler.enabled() ? scaler.saved_scale() : 0;
    saved.loss_scale_good_steps = scaler.saved_good_steps();
    const std::string dir = (run_dir / "checkpoints" / step_checkpoint_name(state.step)).string();
    saved_step = state.step;
    io::TensorMap moments = optimizer.state();  // a collective when the optimizer is sharded
    if (!leader) return dir;                    // every rank holds the same weights and state
    const SavingScope saving;
    save_checkpoint(dir, {mc, store.values(), std::move(moments), saved, checkpoint_files});
    prune_checkpoints(run_dir.string(), c.checkpoints.keep_last);
    spdlog::info("saved {} ({})", dir, reason);
    return dir;
  };

  auto validate_now = [&] {
    const ValidationResult r = validator->run(model, where.compute);
    if (comm->world() == 1 && stop_requested()) return false;
    json record = {{"kind", "valid"}, {"step", state.step}};
    std::string line = fmt::format("validation at step {}:", state.step);
    for (const auto& [name, value] : r.metrics) {
      record[name] = value;
      line += fmt::format(" {} {:.4g}", name, value);
    }
    spdlog::info("{}", line);
    if (!r.bleu_text.empty()) spdlog::info("{}", r.bleu_text);
    if (!r.chrf_text.empty()) spdlog::info("{}", r.chrf_text);
    if (metrics) metrics->write(record);
    std::vector<std::string> improved;
    for (const auto& [name, value] : r.metrics) {
      if (name == "ppl") continue;
      auto it = state.best.find(name);
      const bool better = it == state.best.end() || (higher_is_better(name) ? value > it->second : value < it->second);
      if (better) {
        state.best[name] = value;
        improved.push_back(name);
      }
    }
    const std::string& key = c.validation.early_stopping_metric;
    const bool key_improved = std::find(improved.begin(), improved.end(), key) != improved.end();
    state.bad_validations = key_improved ? 0 : state.bad_validations + 1;
    if (!improved.empty() && c.checkpoints.keep_best) {
      const std::string dir = save("validation");
      const SavingScope saving;
      for (const std::string& name : improved)
        if (leader) copy_checkpoint(dir, (run_dir / "checkpoints" / ("best-" + name)).string());
      spdlog::info("new best: {}", fmt::join(improved, ", "));
    }
    return true;
  };

  GradientSync gradient_sync(store, *comm, static_cast<int64_t>(c.training.bucket_mb * (1 << 20)));
  const int64_t accumulate = c.optimizer.update_freq;
  bool early_stop = false, stop = false;
  while (state.step < c.training.max_steps && !stop && !early_stop) {
    if (log_file) log_file->check();  // a full disk stops training at once, not after a torn log
    if (c.training.max_epochs > 0 && batcher.position().epoch >= c.training.max_epochs) break;
    std::vector<data::LoadedBatch> micro(static_cast<size_t>(accumulate));
    int64_t tokens = 0;
    for (auto& b : micro) {
      batcher.next(b);
      tokens += b.tgt_tokens;
    }
    // The loss is normalised by the target tokens of the whole update on every rank, as fairseq and Marian
    // do, so N ranks with batch b train the model that one process with batch N*b trains.
    std::vector<double> global{static_cast<double>(tokens)};
    comm->all_reduce(global, dist::ReduceOp::Sum);
    const double update_tokens = global[0];
    store.zero_grads();
    double loss_sum = 0, nll_sum = 0;
    for (int64_t i = 0; i < accumulate; ++i) {
      nn::ForwardContext ctx;
      ctx.training = true;
      ctx.compute = where.compute;
      ctx.attention = where.attention;
      ctx.seed = static_cast<uint64_t>(c.training.seed);
      // Micro-batch k of the update has the same dropout key whichever rank runs it.
      ctx.step = static_cast<uint64_t>((state.step * accumulate + i) * comm->world() + comm->rank());
      const nn::LossResult l = model.loss(micro[static_cast<size_t>(i)].batch, ctx, update_tokens);
      loss_sum += static_cast<double>(l.loss.value().to(Device::cpu()).item()) * update_tokens;
      nll_sum += l.nll_sum;
      // Only the last batch of an update communicates; the others only accumulate. A sharded optimizer
      // reduce-scatters the gradients itself.
      if (i + 1 < accumulate || optimizer.sharded())
        autograd::backward(l.loss, scaler.scale());
      else
        gradient_sync.backward_and_reduce(l.loss, scaler.scale());
    }
    // The stop vote rides along, so that every rank stops after the same update.
    std::vector<double> sums{loss_sum, nll_sum, stop_requested() ? 1.0 : 0.0};
    comm->all_reduce(sums, dist::ReduceOp::Sum);
    loss_sum = sums[0];
    nll_sum = sums[1];
    stop = sums[2] > 0;
    const double scaled_norm = optimizer.sharded() ? optimizer.reduce_gradients() : global_grad_norm(store);
    const double loss_scale = scaler.scale();
    if (!scaler.update(scaled_norm)) {
      HEED_CHECK(scaler.enabled(), "step {}: the gradient norm is {} in {}: training diverged (try a lower "
                 "optimizer.lr or optimizer.clip_norm)", state.step + 1, scaled_norm, dtype_name(where.compute));
      ++state.skipped_updates;
      spdlog::warn("step {}: fp16 gradients overflowed at loss scale {}; update skipped ({} so far), scale now {}",
                   state.step + 1, loss_scale, state.skipped_updates, scaler.scale());
      continue;
    }
    const double norm = scaled_norm / loss_scale;
    const float scale = static_cast<float>(
        (c.optimizer.clip_norm > 0 && norm > c.optimizer.clip_norm ? c.optimizer.clip_norm / norm : 1.0) / loss_scale);
    ++state.step;
    const double lr = learning_rate(c.schedule, c.optimizer.lr, state.step, c.training.max_steps);
    optimizer.hyper().lr = static_cast<float>(lr);
    optimizer.step(scale);

    state.window_loss += loss_sum;
    state.window_nll += nll_sum;
    state.window_tokens += static_cast<int64_t>(update_tokens);
    state.window_grad_norm += norm;
    ++state.window_steps;
    if (progress_bar) {
      const int64_t in_window = state.step % c.logging.every;
      fmt::print(stderr, "\r[{:>{}}] step {} loss {:.3f}", std::string(in_window * 30 / c.logging.every, '#'), 30,
                 state.step, loss_sum / update_tokens);
    }
    if (state.step % c.logging.every == 0 || state.step == c.training.max_steps) {
      if (progress_bar) fmt::print(stderr, "\r{:60}\r", "");
      const double now = elapsed(), n = static_cast<double>(state.window_tokens);
      const double tok_s = n / std::max(1e-9, now - window_start);
      const double loss = state.window_loss / n, ppl = std::exp(state.window_nll / n);
      const double eta = (now - state.elapsed_s) / static_cast<double>(state.step - first_step) *
                         static_cast<double>(c.training.max_steps - state.step);
      const int64_t epoch = batcher.position().epoch + 1;
      spdlog::info("epoch {} step {}/{} loss {:.4f} ppl {:.2f} lr {:.3e} gnorm {:.3f} {:.0f} tgt tok/s elapsed {} eta {}",
                   epoch, state.step, c.training.max_steps, loss, ppl, lr,
                   state.window_grad_norm / static_cast<double>(state.window_steps), tok_s, clock(now), clock(eta));
      if (metrics) metrics->write({{"kind", "train"}, {"step", state.step}, {"epoch", epoch}, {"loss", loss}, {"ppl", ppl},
                     {"lr", lr}, {"grad_norm", state.window_grad_norm / static_cast<double>(state.window_steps)},
                     {"tgt_tok_s", tok_s}, {"elapsed_s", now}});
      state.window_loss = state.window_nll = state.window_grad_norm = 0;
      state.window_tokens = state.window_steps = 0;
      window_start = now;
    }
    const bool last = state.step == c.training.max_steps;
    if (validator && ((c.validation.every > 0 && state.step % c.validation.every == 0) || last)) {
      if (validate_now() && c.validation.patience > 0 && state.bad_validations >= c.validation.patience) {
        spdlog::info("early stopping: {} did not improve in {} validations", c.validation.early_stopping_metric,
                     state.bad_validations);
        early_stop = true;
      }
    }
    if (saved_step != state.step && (state.step % c.checkpoints.every == 0 || last || early_stop)) save("scheduled");
  }
  if (stop) {
    if (progress_bar) fmt::print(stderr, "\n");
    spdlog::warn("{}: saving and exiting",
                 g_signal == SIGINT ? "received SIGINT" : g_signal == SIGTERM ? "received SIGTERM" : "another rank was signalled");
  }
  if (saved_step != state.step && state.step > 0) save(stop ? "signal" : "end of training");
  spdlog::info("training finished at step {} after {}", state.step, clock(elapsed()));
  if (leader) {
    spdlog::default_logger()->sinks().pop_back();
    log_file->check();
  }
}

}  // namespace heed::train

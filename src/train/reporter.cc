#include "heed/train/reporter.h"

#include <fcntl.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "heed/core/error.h"
#include "heed/io/atomic_file.h"

namespace heed::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

// spdlog catches what a sink throws and goes on, so this sink writes each line with one unbuffered write
// and keeps the first failure, which check() turns into an error.
class TrainLog::Sink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit Sink(const fs::path& path) : path_(path.string()) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    HEED_CHECK(fd_ >= 0, "cannot write {}: {}", path_, std::strerror(errno));
  }
  ~Sink() override { ::close(fd_); }
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

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

TrainLog::TrainLog(const fs::path& path) : sink_(std::make_shared<Sink>(path)) {
  spdlog::default_logger()->sinks().push_back(sink_);
}

TrainLog::~TrainLog() {
  auto& sinks = spdlog::default_logger()->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
}

void TrainLog::check() const { sink_->check(); }

void TrainLog::error(const std::string& message) const {
  const auto& logger = spdlog::default_logger();
  if (logger->should_log(spdlog::level::err)) sink_->log(spdlog::details::log_msg(logger->name(), spdlog::level::err, message));
}

// metrics.jsonl: a fresh run starts it empty; a resumed one cuts it back to the checkpoint's step, so that it
// reads as one uninterrupted run. Every record is flushed and checked: on a full disk training stops at once
// instead of going on with a log that has a torn last line.
class Reporter::MetricsFile {
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

namespace {

std::string clock(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds);
  return fmt::format("{}:{:02d}:{:02d}", s / 3600, s / 60 % 60, s % 60);
}

}  // namespace

Reporter::Reporter(const TrainConfig& config, TrainState& state, const fs::path& metrics_path, bool resumed)
    : config_(config),
      state_(state),
      metrics_(metrics_path.empty() ? nullptr
                                    : std::make_unique<MetricsFile>(
                                          metrics_path, resumed ? std::optional<int64_t>(state.step) : std::nullopt)),
      progress_bar_(config.logging.progress_bar && isatty(STDERR_FILENO)),
      start_(std::chrono::steady_clock::now()),
      first_step_(state.step),
      window_start_(elapsed()) {}

Reporter::~Reporter() = default;

double Reporter::elapsed() const {
  return state_.elapsed_s + std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Reporter::add(const Update& update) {
  unsettled_.push_back(update);
  state_.window_tokens += static_cast<int64_t>(update.tokens);
  ++state_.window_steps;
  lr_ = update.lr;
  if (progress_bar_) {
    const int64_t every = config_.logging.every, in_window = state_.step % every;
    fmt::print(stderr, "\r[{:>{}}] step {} loss {:.3f}", std::string(in_window * 30 / every, '#'), 30, state_.step,
               update.loss.to(Device::cpu()).item());  // this rank's share: the bar reads the loss every step
  }
}

void Reporter::settle(dist::Communicator& comm) {
  std::vector<double> sums{0, 0};  // loss times tokens, nll: this rank's, then every rank's
  for (const Update& update : unsettled_) {
    sums[0] += static_cast<double>(update.loss.to(Device::cpu()).item()) * update.tokens;
    sums[1] += update.nll_sum.to(Device::cpu()).item();
    state_.window_grad_norm += update.grad_norm();  // the gradients were summed over the ranks already
  }
  unsettled_.clear();
  comm.all_reduce(sums, dist::ReduceOp::Sum);
  state_.window_loss += sums[0];
  state_.window_nll += sums[1];
}

void Reporter::log_window(int64_t epoch, dist::Communicator& comm) {
  settle(comm);
  if (progress_bar_) fmt::print(stderr, "\r{:60}\r", "");
  const int64_t max_steps = config_.training.max_steps;
  const double now = elapsed(), n = static_cast<double>(state_.window_tokens);
  const double tok_s = n / std::max(1e-9, now - window_start_);
  const double loss = state_.window_loss / n, ppl = std::exp(state_.window_nll / n);
  const double grad_norm = state_.window_grad_norm / static_cast<double>(state_.window_steps);
  const double eta = (now - state_.elapsed_s) / static_cast<double>(state_.step - first_step_) *
                     static_cast<double>(max_steps - state_.step);
  spdlog::info("epoch {} step {}/{} loss {:.4f} ppl {:.2f} lr {:.3e} gnorm {:.3f} {:.0f} tgt tok/s elapsed {} eta {}",
               epoch, state_.step, max_steps, loss, ppl, lr_, grad_norm, tok_s, clock(now), clock(eta));
  if (metrics_)
    metrics_->write({{"kind", "train"}, {"step", state_.step}, {"epoch", epoch}, {"loss", loss}, {"ppl", ppl},
                     {"lr", lr_}, {"grad_norm", grad_norm}, {"tgt_tok_s", tok_s}, {"elapsed_s", now}});
  state_.window_loss = state_.window_nll = state_.window_grad_norm = 0;
  state_.window_tokens = state_.window_steps = 0;
  window_start_ = now;
}

void Reporter::validation(const ValidationResult& result) {
  json record = {{"kind", "valid"}, {"step", state_.step}};
  std::string line = fmt::format("validation at step {}:", state_.step);
  for (const auto& [name, value] : result.metrics) {
    record[name] = value;
    line += fmt::format(" {} {:.4g}", name, value);
  }
  spdlog::info("{}", line);
  if (!result.bleu_text.empty()) spdlog::info("{}", result.bleu_text);
  if (!result.chrf_text.empty()) spdlog::info("{}", result.chrf_text);
  if (metrics_) metrics_->write(record);
}

void Reporter::stopping(int signal) {
  if (progress_bar_) fmt::print(stderr, "\n");
  spdlog::warn("{}: saving and exiting", signal == SIGINT    ? "received SIGINT"
                                         : signal == SIGTERM ? "received SIGTERM"
                                                             : "another rank was signalled");
}

void Reporter::finished() { spdlog::info("training finished at step {} after {}", state_.step, clock(elapsed())); }

}  // namespace heed::train

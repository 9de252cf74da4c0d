#include "heed/train/stop_signal.h"

#include <unistd.h>

#include <atomic>

#include "heed/core/error.h"

namespace heed::train {

namespace {

// What the handler shares with the StopSignal that installed it; nothing else reads or writes these.
// Lock-free atomics are safe in a signal handler and between threads (the prefetching ones included).
std::atomic<int> received{0};
std::atomic<bool> saving_now{false};
std::atomic<bool> installed{false};
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free);

extern "C" void on_signal(int signal) {
  if (received == 0) {
    received = signal;
    return;
  }
  if (saving_now) {
    static constexpr char kMessage[] = "heed: signal received during a checkpoint save: finishing the save, then "
                                       "exiting (SIGKILL abandons it)\n";
    [[maybe_unused]] const ssize_t written = ::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
    return;
  }
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

}  // namespace

StopSignal::StopSignal() {
  HEED_CHECK(!installed.exchange(true), "training is already running in this process: one run at a time");
  received = 0;
  previous_int_ = std::signal(SIGINT, on_signal);
  previous_term_ = std::signal(SIGTERM, on_signal);
}

StopSignal::~StopSignal() {
  std::signal(SIGINT, previous_int_);
  std::signal(SIGTERM, previous_term_);
  installed = false;
}

bool StopSignal::requested() const { return received != 0; }

int StopSignal::signal() const { return received; }

StopSignal::Saving::Saving() { saving_now = true; }

StopSignal::Saving::~Saving() { saving_now = false; }

}  // namespace heed::train

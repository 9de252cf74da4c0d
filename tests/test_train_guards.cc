// The training loop's scoped guards: the stop signal (train/stop_signal.h) and train.log (TrainLog in
// train/reporter.h) are installed for a scope only, and undone on leaving it, by an exception too.
#include <catch2/catch.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "heed/core/error.h"
#include "heed/train/reporter.h"
#include "heed/train/stop_signal.h"
#include "temp_dir.h"

using namespace heed;
using Catch::Matchers::Contains;

namespace {

volatile std::sig_atomic_t g_own_handler_calls = 0;
extern "C" void own_handler(int) { g_own_handler_calls = g_own_handler_calls + 1; }

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("stop signal: SIGINT and SIGTERM ask for a stop, and the previous handlers come back", "[train]") {
  g_own_handler_calls = 0;
  const auto previous_int = std::signal(SIGINT, own_handler);
  const auto previous_term = std::signal(SIGTERM, own_handler);
  for (int signal : {SIGINT, SIGTERM}) {
    {
      const train::StopSignal stop;
      CHECK(!stop.requested());
      CHECK(stop.signal() == 0);
      std::raise(signal);
      CHECK(stop.requested());
      CHECK(stop.signal() == signal);
      {
        // A second signal during a save waits for it; without the save it would kill this process.
        const auto saving = stop.saving();
        std::raise(signal);
      }
      CHECK(stop.signal() == signal);
      CHECK(g_own_handler_calls == 0);
    }
    std::raise(signal);
    CHECK(g_own_handler_calls == 1);
    g_own_handler_calls = 0;
  }
  std::signal(SIGINT, previous_int);
  std::signal(SIGTERM, previous_term);
}

TEST_CASE("stop signal: one at a time, and each starts without a request", "[train]") {
  {
    const train::StopSignal stop;
    std::raise(SIGTERM);
    CHECK_THROWS_WITH(train::StopSignal(), Contains("one run at a time"));
    CHECK(stop.requested());
  }
  const train::StopSignal again;
  CHECK(!again.requested());
}

TEST_CASE("train log: lines go into train.log for its scope only, which an exception ends too", "[train]") {
  testing::TempDir dir;
  const std::string path = dir.file("train.log");
  const size_t sinks = spdlog::default_logger()->sinks().size();
  try {
    const train::TrainLog log(path);
    CHECK(spdlog::default_logger()->sinks().size() == sinks + 1);
    spdlog::warn("inside the scope");
    log.error("the reason training ended");
    log.check();
    throw std::runtime_error("leaving by an exception");
  } catch (const std::runtime_error&) {
  }
  CHECK(spdlog::default_logger()->sinks().size() == sinks);
  spdlog::warn("after the scope");
  const std::string text = read(path);
  CHECK_THAT(text, Contains("inside the scope"));
  CHECK_THAT(text, Contains("[error] the reason training ended"));
  CHECK_THAT(text, !Contains("after the scope"));
}

TEST_CASE("train log: a line that cannot be written is an error from check()", "[train]") {
  const train::TrainLog log("/dev/full");
  log.check();
  spdlog::warn("a line for a full disk");
  CHECK_THROWS_WITH(log.check(), Contains("cannot write /dev/full") && Contains("disk full?"));
}

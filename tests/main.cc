// The Catch2 runner of heed_tests. A test case that cannot run here (a [gpu] case without a GPU, see
// kernel_testing.h) calls testing::skip. When every case that ran skipped and none failed an assertion,
// the process exits with kSkipExitCode, which tests/CMakeLists.txt declares as CTest's skip code (CTest
// runs one case per process). A case that skips and then fails exits with its failures, as any failure
// does, and a run of many cases of which some skipped reports only what failed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "skip.h"

namespace {

struct SkipCounter : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseStarting(const Catch::TestCaseInfo& info) override {
    TestEventListenerBase::testCaseStarting(info);
    heed::testing::g_skipped = false;
  }
  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    TestEventListenerBase::testCaseEnded(stats);
    ++cases;
    skipped += heed::testing::g_skipped;
  }
  static inline int cases = 0, skipped = 0;
};

}  // namespace

CATCH_REGISTER_LISTENER(SkipCounter)

int main(int argc, char* argv[]) {
  const int failures = Catch::Session().run(argc, argv);
  const bool all_skipped = SkipCounter::cases > 0 && SkipCounter::skipped == SkipCounter::cases;
  return failures == 0 && all_skipped ? heed::testing::kSkipExitCode : failures;
}

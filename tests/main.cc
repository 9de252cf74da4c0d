// The Catch2 runner of heed_tests. CTest runs one test case per process; a case that could not run here
// (a [gpu] case without a GPU, see kernel_testing.h) makes the process exit with kSkipExitCode, which
// tests/CMakeLists.txt declares as CTest's skip code. Only a case that failed nothing is reported as
// skipped: one that skips and then fails an assertion exits with its failure count, as any failure does.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "skip.h"

int main(int argc, char* argv[]) {
  const int failures = Catch::Session().run(argc, argv);
  return failures == 0 && heed::testing::g_skipped ? heed::testing::kSkipExitCode : failures;
}

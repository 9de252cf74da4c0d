// How a test case says that it could not run on this machine. See tests/main.cc for how CTest learns it.
#pragma once

#include <cstdio>

namespace heed::testing {

inline constexpr int kSkipExitCode = 77;
inline bool g_skipped = false;

// Marks the running test case as skipped and says why on its output. The case should return next.
inline void skip(const char* why) {
  std::printf("SKIPPED: %s\n", why);
  g_skipped = true;
}

}  // namespace heed::testing

// Heed's one way to report an error: HEED_CHECK(condition, "format {}", args...).
//
// A failed check throws heed::Error carrying the formatted message and the C++ source location. The
// message is written for the person at the keyboard: it names the file, line or config key at fault and
// what was expected. The source location is kept apart (where()) so the command-line front end can show
// it only when debugging, and so tests can match messages exactly.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace heed {

class Error : public std::runtime_error {
 public:
  Error(std::string message, std::string where)
      : std::runtime_error(std::move(message)), where_(std::move(where)) {}
  const std::string& where() const { return where_; }

 private:
  std::string where_;
};

[[noreturn]] void throw_error(const char* file, int line, std::string message);

}  // namespace heed

#define HEED_CHECK(condition, ...)                                        \
  do {                                                                    \
    if (!(condition)) [[unlikely]]                                        \
      ::heed::throw_error(__FILE__, __LINE__, ::fmt::format(__VA_ARGS__)); \
  } while (0)

// Heed's one way to report an error: HEED_CHECK(condition, "format {}", args...), and for calls into a
// library that returns a status code (CUDA, cuBLASLt, cuDNN, NCCL, MPI), HEED_CHECK_CALL on top of it.
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

// The Error HEED_CHECK throws, for a place that must throw from inside an expression (a ?: operand).
Error error_at(const char* file, int line, std::string message);

[[noreturn]] void throw_error(const char* file, int line, std::string message);

}  // namespace heed

#define HEED_CHECK(condition, ...)                                        \
  do {                                                                    \
    if (!(condition)) [[unlikely]]                                        \
      ::heed::throw_error(__FILE__, __LINE__, ::fmt::format(__VA_ARGS__)); \
  } while (0)

// Checks a library call's status: HEED_CHECK_CALL("cuDNN", #call, call, CUDNN_STATUS_SUCCESS,
// cudnnGetErrorString) throws "cuDNN call <call's text> failed: <describe(status)>" unless the call returned
// `success`. Each library's checker (HEED_CUDA_CHECK, HEED_CUDNN_CHECK, ...) is this one line, so every
// failure reads alike and keeps the source location in where(), out of the message. The checker passes its
// argument's text, taken before the preprocessor expands macros such as MPI_COMM_WORLD inside it.
#define HEED_CHECK_CALL(library, call_text, call, success, describe)                               \
  do {                                                                                             \
    const auto heed_call_status_ = (call);                                                         \
    HEED_CHECK(heed_call_status_ == (success), "{} call {} failed: {}", library, call_text,        \
               describe(heed_call_status_));                                                       \
  } while (0)

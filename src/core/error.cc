#include "heed/core/error.h"

namespace heed {

Error error_at(const char* file, int line, std::string message) {
  return Error(std::move(message), fmt::format("{}:{}", file, line));
}

void throw_error(const char* file, int line, std::string message) { throw error_at(file, line, std::move(message)); }

}  // namespace heed

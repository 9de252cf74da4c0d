// The field readers of case_text.h.
#include "selftest/case_text.h"

#include <sstream>

namespace heed::selftest::detail {

std::vector<std::string> split_fields(const std::string& text, char separator) {
  std::vector<std::string> fields;
  std::stringstream ss(text);
  for (std::string field; std::getline(ss, field, separator);) fields.push_back(field);
  return fields;
}

int64_t read_size(const std::string& field, int64_t least) {
  const std::string why = fmt::format("'{}' is not a {}", field, least > 0 ? "positive size" : "size");
  try {
    size_t used = 0;
    const int64_t n = std::stoll(field, &used);
    if (used != field.size() || n < least) throw CaseTextError{why};
    return n;
  } catch (const std::logic_error&) {  // std::stoll's invalid_argument and out_of_range
    throw CaseTextError{why};
  }
}

std::optional<float> read_keyed_number(const std::string& field, const std::string& key) {
  const std::string prefix = key + "=";
  if (field.rfind(prefix, 0) != 0) return std::nullopt;
  const std::string value = field.substr(prefix.size());
  try {
    size_t used = 0;
    const float x = std::stof(value, &used);
    if (used == value.size()) return x;
  } catch (const std::logic_error&) {
  }
  throw CaseTextError{fmt::format("'{}' is not a number", field)};
}

std::optional<float> read_dropout(const std::string& field) {
  const std::optional<float> p = read_keyed_number(field, "dropout");
  if (p && !(*p >= 0.0f && *p < 1.0f)) throw CaseTextError{"dropout must lie in [0, 1)"};
  return p;
}

std::optional<DType> read_dtype(const std::string& field) {
  for (const DType dtype : {DType::BF16, DType::F16, DType::F32})
    if (field == dtype_text(dtype)) return dtype;
  return std::nullopt;
}

const char* dtype_text(DType dtype) {
  return dtype == DType::F32 ? "fp32" : dtype == DType::BF16 ? "bf16" : "fp16";
}

std::string case_text_error(const std::string& option, const std::string& format, const std::string& text,
                            const std::string& why) {
  return fmt::format("{} '{}': {} (expected {})", option, text, why, format);
}

}  // namespace heed::selftest::detail

// Reading the comma-separated case texts of `heed selftest` (--attn, --layernorm, ...), shared by the
// checks' parsers so that each says what it expects in the same words. A reader that meets a field it
// cannot read throws CaseTextError; read_case turns that into the parsers' contract (nullopt, with
// "OPTION 'TEXT': WHY (expected FORMAT)" in *error), so a parser reads as a list of its fields.
#pragma once

#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "heed/core/dtype.h"
#include "heed/core/error.h"

namespace heed::selftest::detail {

struct CaseTextError {
  std::string why;
};

std::vector<std::string> split_fields(const std::string& text, char separator);

// A whole decimal number of at least `least` (1 for a size, 0 for a count that may be empty).
int64_t read_size(const std::string& field, int64_t least = 1);
// The number after `key=` in "key=VALUE"; nullopt when the field names another key.
std::optional<float> read_keyed_number(const std::string& field, const std::string& key);
// "dropout=P" with P in [0, 1); nullopt for another field.
std::optional<float> read_dropout(const std::string& field);
// "bf16", "fp16" or "fp32"; nullopt for anything else, so a parser can go on to its other flags.
std::optional<DType> read_dtype(const std::string& field);
// The inverse of read_dtype, for a case's str().
const char* dtype_text(DType dtype);

// "OPTION 'TEXT': WHY (expected FORMAT)".
std::string case_text_error(const std::string& option, const std::string& format, const std::string& text,
                            const std::string& why);

// Runs `read` on the fields of `text`; its CaseTextError, or fewer than `least_fields` fields, becomes
// nullopt and *error.
template <class Read>
auto read_case(const std::string& option, const std::string& format, const std::string& text, size_t least_fields,
               std::string* error, const Read& read)
    -> std::optional<std::invoke_result_t<Read, const std::vector<std::string>&>> {
  const std::vector<std::string> fields = split_fields(text, ',');
  try {
    if (fields.size() < least_fields) throw CaseTextError{fmt::format("at least {} fields", least_fields)};
    return read(fields);
  } catch (const CaseTextError& e) {
    *error = case_text_error(option, format, text, e.why);
    return std::nullopt;
  }
}

}  // namespace heed::selftest::detail

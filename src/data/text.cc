// Line reading for corpora, translation input and references: the whole file is read at once (corpora
// are tens of megabytes at most) and split in place.
#include "heed/data/text.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "heed/core/error.h"

namespace heed::data {

size_t find_invalid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    // The sequence length, and the range of the second byte, which is what excludes overlong forms
    // (E0, F0), surrogates (ED) and code points above U+10FFFF (F4).
    size_t length;
    unsigned char second_min = 0x80, second_max = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) second_min = 0xA0;
      if (lead == 0xED) second_max = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) second_min = 0x90;
      if (lead == 0xF4) second_max = 0x8F;
    } else {
      return i;
    }
    if (i + length > text.size()) return i;
    const auto second = static_cast<unsigned char>(text[i + 1]);
    if (second < second_min || second > second_max) return i;
    for (size_t k = 2; k < length; ++k)
      if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return i;
    i += length;
  }
  return std::string_view::npos;
}

void check_text_line(std::string_view line, const std::string& origin, size_t line_number) {
  const size_t bad = find_invalid_utf8(line);
  HEED_CHECK(bad == std::string_view::npos, "{}:{}: invalid UTF-8 at byte {} of the line", origin, line_number,
             bad + 1);
  const size_t nul = line.find('\0');
  HEED_CHECK(nul == std::string_view::npos, "{}:{}: NUL byte at byte {} of the line (a binary file?)", origin,
             line_number, nul + 1);
}

std::vector<std::string> read_lines(const std::string& path) {
  HEED_CHECK(!std::filesystem::is_directory(path), "cannot read {}: it is a directory", path);
  std::ifstream file(path, std::ios::binary);
  HEED_CHECK(file.is_open(), "cannot read {}: {}", path, std::strerror(errno));
  std::ostringstream buffer;
  buffer << file.rdbuf();
  HEED_CHECK(!file.bad(), "cannot read {}: {}", path, std::strerror(errno));
  std::string_view content = buffer.view();
  if (content.starts_with("\xEF\xBB\xBF")) content.remove_prefix(3);

  std::vector<std::string> lines;
  while (!content.empty()) {
    const size_t end = std::min(content.find('\n'), content.size());
    std::string_view line = content.substr(0, end);
    content.remove_prefix(std::min(end + 1, content.size()));
    if (line.ends_with('\r')) line.remove_suffix(1);
    check_text_line(line, path, lines.size() + 1);
    lines.emplace_back(line);
  }
  return lines;
}

}  // namespace heed::data

// Line reading for corpora, translation input and references: read_lines takes a whole file at once
// (translation input and references are small); LineReader streams a corpus through a buffer of a few
// megabytes that grows only for a line longer than that.
#include "heed/data/text.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "heed/core/error.h"
#include "heed/data/shuffle.h"
#include "heed/io/atomic_file.h"

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
  LineReader reader(path);
  std::vector<std::string> lines;
  for (std::string_view line; reader.next(line);) lines.emplace_back(line);
  return lines;
}

std::vector<std::string> sample_lines(const std::vector<std::string>& paths, int64_t count, uint64_t seed) {
  HEED_CHECK(count > 0, "a sample needs at least one line, got {}", count);
  std::mt19937_64 rng = seeded_rng(seed, 0);
  std::vector<std::string> sample;
  int64_t seen = 0;
  for (const std::string& path : paths) {
    LineReader reader(path);
    for (std::string_view line; reader.next(line); ++seen) {
      if (seen < count) {
        sample.emplace_back(line);
      } else if (const uint64_t slot = draw_below(rng, static_cast<uint64_t>(seen) + 1); slot < static_cast<uint64_t>(count)) {
        sample[slot].assign(line);  // line `seen` stays with probability count / (seen + 1)
      }
    }
  }
  return sample;
}

std::vector<std::pair<std::string, int64_t>> count_distinct_lines(std::vector<std::string> lines) {
  std::sort(lines.begin(), lines.end());
  std::vector<std::pair<std::string, int64_t>> counts;
  for (std::string& line : lines) {
    if (!counts.empty() && counts.back().first == line) {
      ++counts.back().second;
    } else {
      counts.emplace_back(std::move(line), 1);
    }
  }
  return counts;
}

namespace {
constexpr size_t kReadBlock = size_t{4} << 20;
}

LineReader::LineReader(std::string path) : path_(std::move(path)) {
  HEED_CHECK(!std::filesystem::is_directory(path_), "cannot read {}: it is a directory", path_);
  file_ = std::fopen(path_.c_str(), "rb");
  HEED_CHECK(file_ != nullptr, "cannot read {}: {}", path_, std::strerror(errno));
}

LineReader::~LineReader() {
  if (file_) std::fclose(file_);
}

bool LineReader::fill() {
  if (at_end_) return false;
  buffer_.erase(0, begin_);
  begin_ = 0;
  const size_t kept = buffer_.size();
  buffer_.resize(kept + kReadBlock);
  const size_t got = std::fread(buffer_.data() + kept, 1, kReadBlock, file_);
  HEED_CHECK(!std::ferror(file_), "cannot read {}: {}", path_, std::strerror(errno));
  buffer_.resize(kept + got);
  crc_ = io::crc32(buffer_.data() + kept, got, crc_);
  if (got == 0) at_end_ = true;
  return got > 0;
}

bool LineReader::next(std::string_view& line) {
  size_t end;
  for (;;) {
    if (at_start_ && buffer_.size() - begin_ < 3 && fill()) continue;  // the byte order mark may span reads
    if (at_start_) {
      if (std::string_view(buffer_).substr(begin_).starts_with("\xEF\xBB\xBF")) begin_ += 3;
      at_start_ = false;
    }
    end = buffer_.find('\n', begin_);
    if (end != std::string::npos || !fill()) break;
  }
  if (begin_ == buffer_.size()) return false;  // a final line without "\n" counts, nothing after a final "\n"
  if (end == std::string::npos) end = buffer_.size();
  line = std::string_view(buffer_).substr(begin_, end - begin_);
  begin_ = std::min(end + 1, buffer_.size());
  if (line.ends_with('\r')) line.remove_suffix(1);
  check_text_line(line, path_, static_cast<size_t>(++line_number_));
  return true;
}

}  // namespace heed::data

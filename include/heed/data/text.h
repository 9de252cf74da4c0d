// Reading text files line by line, strictly: every line must be valid UTF-8, and an error names the file
// and the line, so a bad byte in a corpus is found before it becomes a strange token.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace heed::data {

// The lines of a UTF-8 text file, without their line ends ("\n" or "\r\n") and without a leading byte
// order mark. A final line without "\n" counts; an empty file has no lines. Each line passes
// check_text_line.
std::vector<std::string> read_lines(const std::string& path);

// A uniform random sample of `count` lines of all `paths` together, drawn while streaming through them
// (reservoir sampling), so its memory is the sample's; every line, in file order, when there are no more
// than `count`. The same seed gives the same sample.
std::vector<std::string> sample_lines(const std::vector<std::string>& paths, int64_t count, uint64_t seed);

// The distinct lines of `lines`, sorted, each with how often it occurs. Each line is moved, not copied, so
// the peak memory is about one copy of the text.
std::vector<std::pair<std::string, int64_t>> count_distinct_lines(std::vector<std::string> lines);

// The same as read_lines, one line at a time in bounded memory, for corpora larger than memory: next() hands out a view
// of the next line (valid until the following call), checked as read_lines checks it.
class LineReader {
 public:
  explicit LineReader(std::string path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // False at the end of the file.
  bool next(std::string_view& line);
  // The 1-based number of the line next() returned last; the count of lines read so far.
  int64_t line_number() const { return line_number_; }
  // CRC-32 of the bytes read so far: of the whole file once next() has returned false.
  uint32_t crc32() const { return crc_; }
  const std::string& path() const { return path_; }

 private:
  bool fill();  // reads more of the file behind the unread part of the buffer; false at its end

  std::string path_;
  std::FILE* file_ = nullptr;
  std::string buffer_;
  size_t begin_ = 0;  // the unread part is buffer_[begin_, end)
  bool at_end_ = false, at_start_ = true;
  int64_t line_number_ = 0;
  uint32_t crc_ = 0;
};

// Offset of the first byte of `text` that does not start a well-formed UTF-8 sequence (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF), or npos when all of it is valid.
size_t find_invalid_utf8(std::string_view text);

// Refuses, naming `origin` (a file name, or "stdin") and the line, a line that is not valid UTF-8 or that
// holds a NUL byte: valid UTF-8, but a sign of a binary file, and a C string's end to SentencePiece.
void check_text_line(std::string_view line, const std::string& origin, size_t line_number);

}  // namespace heed::data

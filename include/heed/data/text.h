// Reading text files line by line, strictly: every line must be valid UTF-8, and an error names the file
// and the line, so a bad byte in a corpus is found before it becomes a strange token.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace heed::data {

// The lines of a UTF-8 text file, without their line ends ("\n" or "\r\n") and without a leading byte
// order mark. A final line without "\n" counts; an empty file has no lines. Each line passes
// check_text_line.
std::vector<std::string> read_lines(const std::string& path);

// Offset of the first byte of `text` that does not start a well-formed UTF-8 sequence (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF), or npos when all of it is valid.
size_t find_invalid_utf8(std::string_view text);

// Refuses, naming `origin` (a file name, or "stdin") and the line, a line that is not valid UTF-8 or that
// holds a NUL byte: valid UTF-8, but a sign of a binary file, and a C string's end to SentencePiece.
void check_text_line(std::string_view line, const std::string& origin, size_t line_number);

}  // namespace heed::data

// Text for XML and HTML documents (the SVG plots of training curves and attention weights).
#pragma once

#include <string>

namespace heed::io {

// `text` with the characters that XML gives a meaning in content and in quoted attributes escaped.
inline std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace heed::io

#include "heed/decode/attention_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "heed/core/error.h"
#include "heed/io/xml.h"

namespace heed::decode {

namespace {

constexpr double kGridTarget = 600;  // px a grid aims at
constexpr double kMaxCell = 28, kMinCell = 11;
constexpr double kCharWidth = 0.62;  // average glyph width / font size of a sans-serif font, for the margins
constexpr size_t kMaxLabel = 16;     // characters (code points) of a label before it is cut
constexpr double kPad = 8, kLegendWidth = 14, kLegendGap = 24, kTitleHeight = 28, kTitleFont = 14;

// Code points of UTF-8 text (pieces are UTF-8; a label's width depends on its characters, not bytes).
size_t code_points(const std::string& text) {
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

// `text` cut to kMaxLabel code points, with an ellipsis when cut.
std::string short_label(const std::string& text) {
  if (code_points(text) <= kMaxLabel) return text;
  size_t bytes = 0;
  for (size_t seen = 0; bytes < text.size(); ++bytes) {
    if ((text[bytes] & 0xC0) != 0x80 && seen++ == kMaxLabel - 1) break;
  }
  return text.substr(0, bytes) + "\u2026";
}

size_t longest_label(const std::vector<std::string>& labels) {
  size_t longest = 1;
  for (const std::string& l : labels) longest = std::max(longest, code_points(short_label(l)));
  return longest;
}

// The colour of weight w: white to dark blue (ColorBrewer's Blues ends), linear in w.
std::string colour(float w) {
  const auto mix = [w](int from, int to) { return static_cast<int>(std::lround(from + (to - from) * w)); };
  return fmt::format("#{:02x}{:02x}{:02x}", mix(0xff, 0x08), mix(0xff, 0x30), mix(0xff, 0x6b));
}

}  // namespace

std::string render_attention_svg(const AttentionPlot& plot) {
  const size_t n_rows = plot.rows.size(), n_cols = plot.columns.size();
  HEED_CHECK(n_rows > 0 && n_cols > 0, "attention plot '{}': no rows or no columns", plot.title);
  HEED_CHECK(plot.weights.size() == n_rows, "attention plot '{}': {} rows of weights for {} row labels", plot.title,
             plot.weights.size(), n_rows);
  for (size_t r = 0; r < n_rows; ++r) {
    HEED_CHECK(plot.weights[r].size() == n_cols, "attention plot '{}': row {} has {} weights for {} columns",
               plot.title, r, plot.weights[r].size(), n_cols);
    for (float w : plot.weights[r])
      HEED_CHECK(w >= 0.0f && w <= 1.0f, "attention plot '{}': weight {} in row {} is outside [0, 1]", plot.title, w,
                 r);
  }

  const double cell =
      std::clamp(std::floor(kGridTarget / static_cast<double>(std::max(n_rows, n_cols))), kMinCell, kMaxCell);
  const double font = std::floor(cell * 0.8);
  const double left = kPad + font * kCharWidth * static_cast<double>(longest_label(plot.rows)) + kPad + font * 1.5;
  const double top =
      kTitleHeight + font * 1.5 + font * kCharWidth * static_cast<double>(longest_label(plot.columns)) + kPad;
  const double grid_w = cell * static_cast<double>(n_cols), grid_h = cell * static_cast<double>(n_rows);
  const double legend_x = left + grid_w + kLegendGap;
  const double title_w = 2 * kPad + kTitleFont * kCharWidth * static_cast<double>(code_points(plot.title));
  const double width = std::max(legend_x + kLegendWidth + 48, title_w), height = top + grid_h + kPad * 2;

  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1:.0f}\" viewBox=\"0 0 {0:.0f} "
      "{1:.0f}\" font-family=\"DejaVu Sans, Verdana, sans-serif\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2:.1f}\" y=\"18\" font-size=\"{4:.0f}\" font-weight=\"bold\">{3}</text>\n",
      width, height, kPad, io::xml_escape(plot.title), kTitleFont);
  // Axis names: the column axis above its labels, the row axis rotated along the left edge.
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"{:.0f}\" fill=\"#555\">{}</text>\n", left,
                     kTitleHeight + font, font, io::xml_escape(plot.column_axis));
  svg += fmt::format(
      "<text transform=\"translate({:.1f},{:.1f}) rotate(-90)\" font-size=\"{:.0f}\" fill=\"#555\">{}</text>\n",
      kPad + font, top + grid_h, font, io::xml_escape(plot.row_axis));

  svg += "<g class=\"cells\">\n";
  for (size_t r = 0; r < n_rows; ++r)
    for (size_t c = 0; c < n_cols; ++c) {
      const float w = plot.weights[r][c];
      svg += fmt::format(
          "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"><title>{} \u2192 {}: "
          "{:.3f}</title></rect>\n",
          left + cell * static_cast<double>(c), top + cell * static_cast<double>(r), cell, cell, colour(w),
          io::xml_escape(plot.rows[r]), io::xml_escape(plot.columns[c]), w);
    }
  svg += "</g>\n";
  svg += fmt::format(
      "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"none\" "
      "stroke=\"#888\"/>\n",
      left, top, grid_w, grid_h);

  for (size_t r = 0; r < n_rows; ++r)
    svg += fmt::format(
        "<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"{:.0f}\" text-anchor=\"end\" dominant-baseline=\"central\">{}"
        "</text>\n",
        left - kPad / 2, top + cell * (static_cast<double>(r) + 0.5), font, io::xml_escape(short_label(plot.rows[r])));
  for (size_t c = 0; c < n_cols; ++c)
    svg += fmt::format(
        "<text transform=\"translate({:.1f},{:.1f}) rotate(-90)\" font-size=\"{:.0f}\" "
        "dominant-baseline=\"central\">{}</text>\n",
        left + cell * (static_cast<double>(c) + 0.5), top - kPad / 2, font, io::xml_escape(short_label(plot.columns[c])));

  // Legend: the colour scale as a vertical gradient, 1 at the top, with ticks at 0, 0.5 and 1.
  const double legend_h = std::max(grid_h, 60.0);
  svg += "<defs><linearGradient id=\"scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">";
  for (float w : {0.0f, 0.5f, 1.0f}) svg += fmt::format("<stop offset=\"{:g}\" stop-color=\"{}\"/>", w, colour(w));
  svg += "</linearGradient></defs>\n";
  svg += fmt::format(
      "<rect class=\"legend\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
      "fill=\"url(#scale)\" stroke=\"#888\"/>\n",
      legend_x, top, kLegendWidth, legend_h);
  for (float w : {0.0f, 0.5f, 1.0f})
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" dominant-baseline=\"central\">{:g}</text>\n",
                       legend_x + kLegendWidth + 4, top + legend_h * (1 - w), w);
  svg += "</svg>\n";
  return svg;
}

std::string render_attention_index(const std::string& title, const std::vector<IndexEntry>& entries) {
  std::string html = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{0}</title>\n"
      "<style>body {{ font-family: sans-serif; margin: 2em; }} figure {{ margin: 0 0 2em 0; }} "
      "figcaption {{ color: #333; max-width: 60em; }}</style>\n</head>\n<body>\n<h1>{0}</h1>\n",
      io::xml_escape(title));
  for (const IndexEntry& e : entries)
    html += fmt::format("<figure>\n<img src=\"{}\" alt=\"{}\">\n<figcaption>{}</figcaption>\n</figure>\n",
                        io::xml_escape(e.file), io::xml_escape(e.caption), io::xml_escape(e.caption));
  html += "</body>\n</html>\n";
  return html;
}

}  // namespace heed::decode

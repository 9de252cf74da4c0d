// Word alignments from attention weights (Marian's --alignment formats) and the attention heatmap SVG.
#include <catch2/catch.hpp>

#include <cmath>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "heed/decode/alignment.h"
#include "heed/decode/attention_plot.h"

using namespace heed;

TEST_CASE("pieces join into words at SentencePiece's word boundary", "[decode][alignment]") {
  CHECK(decode::word_of_pieces({"\u2581the", "\u2581house", "s", "\u2581are"}) == std::vector<int64_t>{0, 1, 1, 2});
  // A first piece without the boundary still begins word 0; a bare boundary piece begins a word of its own.
  CHECK(decode::word_of_pieces({"a", "\u2581b", "c"}) == std::vector<int64_t>{0, 1, 1});
  CHECK(decode::word_of_pieces({"\u2581", ",", "\u2581x"}) == std::vector<int64_t>{0, 0, 1});
  // Bare boundaries belong to the word after them (the last one at the end); repeated ones make no empty
  // words, as SentencePiece's decoding "\u2581\u2581." gives ".".
  CHECK(decode::word_of_pieces({"\u2581", "\u2581", ".", "."}) == std::vector<int64_t>{0, 0, 0, 0});
  CHECK(decode::word_of_pieces({"\u2581a", "\u2581", ".", "\u2581"}) == std::vector<int64_t>{0, 1, 1, 1});
  CHECK(decode::word_of_pieces({"\u2581"}) == std::vector<int64_t>{0});
  CHECK(decode::word_of_pieces({}).empty());
}

TEST_CASE("hard alignment pairs source and target words by each target piece's strongest source piece",
          "[decode][alignment]") {
  // the house|s are big </s>  ->  las casa|s son grande|s </s>
  const std::vector<std::string> source = {"\u2581the", "\u2581house", "s", "\u2581are", "\u2581big"};
  const std::vector<std::string> target = {"\u2581las", "\u2581casa", "s", "\u2581son", "\u2581grande", "s"};
  const std::vector<std::vector<float>> weights = {
      // the   house  s     are   big   </s>
      {0.70f, 0.10f, 0.05f, 0.05f, 0.05f, 0.05f},  // las    -> the:    0-0
      {0.10f, 0.60f, 0.20f, 0.05f, 0.03f, 0.02f},  // casa   -> house:  1-1
      {0.05f, 0.20f, 0.65f, 0.05f, 0.03f, 0.02f},  // s      -> s (word 1): 1-1 again, once
      {0.02f, 0.03f, 0.02f, 0.30f, 0.03f, 0.60f},  // son    -> are (eos is no word): 2-2
      {0.02f, 0.03f, 0.05f, 0.10f, 0.70f, 0.10f},  // grande -> big:    3-3
      {0.05f, 0.10f, 0.45f, 0.05f, 0.30f, 0.05f},  // s (word 3) -> s (word 1): 1-3
      {0.00f, 0.00f, 0.00f, 0.00f, 0.00f, 1.00f},  // </s>: not a word
  };
  CHECK(decode::hard_alignment(weights, source, target) == "0-0 1-1 1-3 2-2 3-3");
  // Ties go to the first source piece.
  CHECK(decode::hard_alignment({{0.5f, 0.5f}}, {"\u2581a", "\u2581b"}, {"\u2581x"}) == "0-0");
  CHECK(decode::hard_alignment({{1.0f}}, {}, {}) == "");
  CHECK_THROWS_WITH(decode::hard_alignment({{0.5f}}, {"\u2581a", "\u2581b"}, {"\u2581x"}),
                    Catch::Contains("1 weights in row 0 for 2 source pieces"));
}

TEST_CASE("soft alignment prints the matrix as Marian does", "[decode][alignment]") {
  // Rows (target pieces) separated by spaces, a row's weights by commas, each as C++ streams print floats.
  CHECK(decode::soft_alignment({{0.5f, 0.25f, 0.25f}, {1.0f, 0.0f, 1e-5f}}) == "0.5,0.25,0.25 1,0,1e-05");
  CHECK(decode::soft_alignment({{0.125f, 0.875f}, {0.75f, 0.25f}, {0.5f, 0.5f}}) == "0.125,0.875 0.75,0.25 0.5,0.5");
}

namespace {

std::vector<double> numbers_after(const std::string& text, const std::string& pattern) {
  std::vector<double> out;
  const std::regex re(pattern);
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it)
    out.push_back(std::stod((*it)[1].str()));
  return out;
}

}  // namespace

TEST_CASE("the heatmap's labels do not overlap up to 60 pieces, and it has a colour legend", "[decode][plot]") {
  for (size_t n : {3, 20, 60}) {
    INFO(n << " pieces");
    decode::AttentionPlot plot;
    plot.title = "sentence <1>";
    plot.row_axis = "target pieces";
    plot.column_axis = "source pieces";
    for (size_t i = 0; i < n; ++i) {
      plot.rows.push_back("\u2581row" + std::to_string(i));
      plot.columns.push_back(i == 1 ? "\u2581averyveryverylongpiecename" : "\u2581col" + std::to_string(i));
      plot.weights.push_back(std::vector<float>(n, 1.0f / static_cast<float>(n)));
    }
    plot.weights[0][0] = 1.0f;
    const std::string svg = decode::render_attention_svg(plot);
    // Cells: n * n rects of one size; labels: one font size, below the cell's pitch.
    const std::vector<double> cells =
        numbers_after(svg, "<rect x=\"[0-9.]+\" y=\"[0-9.]+\" width=\"([0-9.]+)\"[^>]*><title>");
    REQUIRE(cells.size() == n * n);
    const double cell = cells[0];
    const std::vector<double> fonts = numbers_after(svg, "<text [^>]*font-size=\"([0-9.]+)\" text-anchor=\"end\"");
    REQUIRE(fonts.size() == n);
    CHECK(fonts[0] < cell);
    // Row labels sit one cell apart vertically, and column labels (rotated) one cell apart horizontally.
    const std::vector<double> row_y =
        numbers_after(svg, "<text x=\"[0-9.]+\" y=\"([0-9.]+)\" font-size=\"[0-9.]+\" text-anchor=\"end\"");
    const std::vector<double> col_x = numbers_after(
        svg, "<text transform=\"translate\\(([0-9.]+),[0-9.]+\\) rotate\\(-90\\)\" font-size=\"[0-9.]+\" dominant");
    REQUIRE(row_y.size() == n);
    REQUIRE(col_x.size() == n);
    for (size_t i = 1; i < n; ++i) {
      CHECK(row_y[i] - row_y[i - 1] == Approx(cell));
      CHECK(col_x[i] - col_x[i - 1] == Approx(cell));
    }
    CHECK(svg.find(">\u2581averyveryveryl\u2026<") != std::string::npos);  // cut to 16 characters
    CHECK(svg.find("sentence &lt;1&gt;") != std::string::npos);            // escaped
    CHECK(svg.find("fill=\"url(#scale)\"") != std::string::npos);          // the legend
    CHECK(svg.find("fill=\"#08306b\"") != std::string::npos);              // weight 1: the darkest blue
    CHECK(svg.find("fill=\"#ffffff\"") == std::string::npos);              // no weight 0 here
  }
}

TEST_CASE("the heatmap refuses weights that are not probabilities", "[decode][plot]") {
  decode::AttentionPlot plot{"t", "rows", "columns", {"a"}, {"b", "c"}, {{0.5f, 1.5f}}};
  CHECK_THROWS_WITH(decode::render_attention_svg(plot), Catch::Contains("weight 1.5 in row 0 is outside [0, 1]"));
  plot.weights = {{0.5f, std::nanf("")}};
  CHECK_THROWS_WITH(decode::render_attention_svg(plot), Catch::Contains("is outside [0, 1]"));
  plot.weights = {{0.5f}};
  CHECK_THROWS_WITH(decode::render_attention_svg(plot), Catch::Contains("row 0 has 1 weights for 2 columns"));
}

TEST_CASE("the index page shows every picture with its caption", "[decode][plot]") {
  const std::string html =
      decode::render_attention_index("attention", {{"sentence-1.svg", "a & b"}, {"sentence-2.svg", "c"}});
  CHECK(html.find("<img src=\"sentence-1.svg\" alt=\"a &amp; b\">") != std::string::npos);
  CHECK(html.find("<img src=\"sentence-2.svg\"") != std::string::npos);
  CHECK(html.find("<figcaption>a &amp; b</figcaption>") != std::string::npos);
}

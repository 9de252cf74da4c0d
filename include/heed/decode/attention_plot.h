// Attention heatmaps as self-contained SVG files, and an index.html that shows them (heed translate
// --attention-plots).
//
// The layout is computed from the piece counts so that labels never overlap: a cell is 28 px for short
// sentences and shrinks to fit about 600 px, down to 11 px (the grid of a 60-piece sentence is 660 px);
// the label font is 80% of a cell, so row labels (horizontal) and column labels (rotated to vertical) each
// take less than a cell across. Long pieces are cut to 16 characters with an ellipsis, and the margins
// are sized for the longest label. The colour scale runs from white (0) to dark blue (1), linear in the
// weight, with a legend beside the grid; each cell's exact weight shows on hover (an SVG <title>).
#pragma once

#include <string>
#include <vector>

namespace heed::decode {

struct AttentionPlot {
  std::string title;
  std::string row_axis, column_axis;        // e.g. "target pieces", "source pieces"
  std::vector<std::string> rows, columns;   // labels: rows top to bottom, columns left to right
  std::vector<std::vector<float>> weights;  // [rows][columns], each in [0, 1]
};

// The SVG document. Weights outside [0, 1] (or NaN) are an error: attention probabilities never are.
std::string render_attention_svg(const AttentionPlot& plot);

struct IndexEntry {
  std::string file;     // the SVG's name, relative to index.html
  std::string caption;  // shown under the picture (escaped here)
};

// index.html: every picture in order, each in a <figure> with its caption.
std::string render_attention_index(const std::string& title, const std::vector<IndexEntry>& entries);

}  // namespace heed::decode

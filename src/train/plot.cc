// SVG rendering of training curves, written by hand so that `heed plot` needs no plotting library and its
// output opens in any browser. Every series is one <polyline data-series="NAME">, which keeps the document
// easy to check by machine; sparse series (validation) also get a dot per point, since a lone point draws
// no line. Panels share the step range so that they line up vertically.
#include "heed/train/plot.h"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

#include "heed/core/error.h"
#include "heed/io/xml.h"

namespace heed::train {

namespace {

struct Point {
  double x, y;  // (step, value) in the data, a position once placed on the page
};

// Where one series comes from and how it is drawn.
struct SeriesSpec {
  const char* kind;
  const char* field;
  const char* name;
  const char* colour;
  int panel;
};

constexpr SeriesSpec kSeries[] = {
    {"train", "loss", "train loss", "#1f77b4", 0},   {"valid", "loss", "valid loss", "#d62728", 0},
    {"train", "ppl", "train ppl", "#1f77b4", 1},     {"valid", "ppl", "valid ppl", "#d62728", 1},
    {"valid", "bleu", "valid BLEU", "#2ca02c", 2},   {"valid", "chrf", "valid chrF", "#9467bd", 2},
    {"train", "lr", "learning rate", "#ff7f0e", 3},
};
constexpr int kSeriesCount = std::size(kSeries);

struct PanelSpec {
  const char* title;
  const char* y_label;
  bool log_scale;
};
constexpr PanelSpec kPanels[] = {{"Loss", "loss (nats per token)", false},
                                 {"Perplexity", "perplexity", true},
                                 {"BLEU / chrF", "score", false},
                                 {"Learning rate", "learning rate", false}};

// Page geometry (pixels): a title band, then a 2 x 2 grid of panels, each with margins for tick labels.
constexpr double kPageWidth = 1000, kTitleBand = 50, kPanelWidth = 500, kPanelHeight = 360;
constexpr double kMarginLeft = 75, kMarginRight = 20, kMarginTop = 35, kMarginBottom = 45;
constexpr size_t kMaxDottedPoints = 60;

std::vector<std::vector<Point>> read_metrics_log(const std::string& path) {
  std::ifstream file(path);
  HEED_CHECK(file.good(), "cannot read the metrics log {}: no such file or not readable", path);
  std::vector<std::vector<Point>> series(kSeriesCount);
  std::string line;
  int records = 0;
  for (int line_number = 1; std::getline(file, line); ++line_number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      HEED_CHECK(false, "{}:{}: not valid JSON ({})", path, line_number, e.what());
    }
    HEED_CHECK(record.is_object() && record.contains("kind") && record["kind"].is_string() &&
                   record.contains("step") && record["step"].is_number(),
               "{}:{}: expected a JSON object with a string \"kind\" and a numeric \"step\"", path, line_number);
    ++records;
    const std::string kind = record["kind"].get<std::string>();
    const double step = record["step"].get<double>();
    for (int s = 0; s < kSeriesCount; ++s) {
      if (kind != kSeries[s].kind || !record.contains(kSeries[s].field)) continue;
      const nlohmann::json& value = record[kSeries[s].field];
      if (value.is_null()) continue;  // how a NaN metric comes out of a JSON writer
      HEED_CHECK(value.is_number(), "{}:{}: \"{}\" must be a number, not {}", path, line_number, kSeries[s].field,
                 value.dump());
      series[s].push_back({step, value.get<double>()});
    }
  }
  HEED_CHECK(records > 0, "the metrics log {} has no records", path);
  return series;
}

// An axis maps data to pixels; logarithmic axes work on log10 of the data.
struct Axis {
  double lo = 0, hi = 1;
  bool log_scale = false;
  std::vector<double> ticks;  // in data units

  double position(double value, double pixel_lo, double pixel_hi) const {
    const double v = log_scale ? std::log10(value) : value;
    return pixel_lo + (v - lo) / (hi - lo) * (pixel_hi - pixel_lo);
  }
};

// Ticks at 1, 2 or 5 times a power of ten, about five of them, the range widened to whole ticks. Ticks are
// computed as integer multiples of the step so that zero prints as 0, not 1e-17.
Axis linear_axis(double min, double max) {
  if (min == max) {
    const double pad = min == 0 ? 1 : std::abs(min) * 0.1;
    min -= pad;
    max += pad;
  }
  const double raw_step = (max - min) / 5;
  const double magnitude = std::pow(10, std::floor(std::log10(raw_step)));
  const double ratio = raw_step / magnitude;
  const double step = (ratio < 1.5 ? 1 : ratio < 3 ? 2 : ratio < 7 ? 5 : 10) * magnitude;
  const double first = std::floor(min / step), last = std::ceil(max / step);
  Axis axis{first * step, last * step, false, {}};
  for (double k = first; k <= last; ++k) axis.ticks.push_back(k * step);
  return axis;
}

// Whole decades, ticks at each power of ten.
Axis log_axis(double min, double max) {
  const double first = std::floor(std::log10(min));
  const double last = std::max(std::ceil(std::log10(max)), first + 1);
  Axis axis{first, last, true, {}};
  for (double k = first; k <= last; ++k) axis.ticks.push_back(std::pow(10, k));
  return axis;
}

bool plottable(const Point& p, bool log_scale) {
  return std::isfinite(p.x) && std::isfinite(p.y) && (!log_scale || p.y > 0);
}

void render_panel(std::string& svg, int panel, const std::vector<std::vector<Point>>& series, const Axis& x_axis) {
  const PanelSpec& spec = kPanels[panel];
  const double left = (panel % 2) * kPanelWidth + kMarginLeft, right = (panel % 2 + 1) * kPanelWidth - kMarginRight;
  const double top = kTitleBand + (panel / 2) * kPanelHeight + kMarginTop;
  const double bottom = kTitleBand + (panel / 2 + 1) * kPanelHeight - kMarginBottom;
  svg += fmt::format("<g class=\"panel\">\n<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"14\">{}{}"
                     "</text>\n<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"none\" "
                     "stroke=\"#444\"/>\n",
                     (left + right) / 2, top - 12, spec.title, spec.log_scale ? " (log scale)" : "", left, top,
                     right - left, bottom - top);

  double min = std::numeric_limits<double>::infinity(), max = -min;
  for (int s = 0; s < kSeriesCount; ++s) {
    if (kSeries[s].panel != panel) continue;
    for (const Point& p : series[s]) {
      if (!plottable(p, spec.log_scale)) continue;
      min = std::min(min, p.y);
      max = std::max(max, p.y);
    }
  }
  if (min > max) {
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n</g>\n",
                       (left + right) / 2, (top + bottom) / 2);
    return;
  }
  const Axis y_axis = spec.log_scale ? log_axis(min, max) : linear_axis(min, max);

  for (double tick : x_axis.ticks) {
    const double x = x_axis.position(tick, left, right);
    svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#ddd\"/>"
                       "<text x=\"{0:.1f}\" y=\"{3:.1f}\" text-anchor=\"middle\">{4:g}</text>\n",
                       x, top, bottom, bottom + 16, tick);
  }
  for (double tick : y_axis.ticks) {
    const double y = y_axis.position(tick, bottom, top);
    svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"{2:.1f}\" x2=\"{1:.1f}\" y2=\"{2:.1f}\" stroke=\"#ddd\"/>"
                       "<text x=\"{3:.1f}\" y=\"{4:.1f}\" text-anchor=\"end\">{5:g}</text>\n",
                       left, right, y, left - 6, y + 4, tick);
  }
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">step</text>\n"
                     "<text transform=\"translate({:.1f},{:.1f}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
                     (left + right) / 2, bottom + 34, left - kMarginLeft + 14, (top + bottom) / 2, spec.y_label);

  std::vector<int> legend;
  for (int s = 0; s < kSeriesCount; ++s) {
    if (kSeries[s].panel != panel) continue;
    std::vector<Point> pixels;  // (x, y) on the page
    for (const Point& p : series[s]) {
      if (plottable(p, spec.log_scale))
        pixels.push_back({x_axis.position(p.x, left, right), y_axis.position(p.y, bottom, top)});
    }
    if (pixels.empty()) continue;
    std::string points;
    for (const Point& p : pixels) points += fmt::format("{}{:.1f},{:.1f}", points.empty() ? "" : " ", p.x, p.y);
    svg += fmt::format("<polyline data-series=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" "
                       "points=\"{}\"/>\n",
                       kSeries[s].name, kSeries[s].colour, points);
    if (pixels.size() <= kMaxDottedPoints) {
      for (const Point& p : pixels)
        svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"/>\n", p.x, p.y,
                           kSeries[s].colour);
    }
    legend.push_back(s);
  }
  // Top right, on a translucent box so that it stays legible over the curves.
  svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"110\" height=\"{:.1f}\" fill=\"white\" "
                     "fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n",
                     right - 116, top + 6, 16.0 * legend.size() + 6);
  for (size_t i = 0; i < legend.size(); ++i) {
    const SeriesSpec& entry = kSeries[legend[i]];
    const double y = top + 18 + 16.0 * i;
    svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"{3}\" "
                       "stroke-width=\"3\"/><text x=\"{4:.1f}\" y=\"{5:.1f}\" text-anchor=\"end\">{6}</text>\n",
                       right - 30, y, right - 12, entry.colour, right - 36, y + 4, entry.name);
  }
  svg += "</g>\n";
}

}  // namespace

std::string render_training_curves(const std::string& metrics_path, const std::string& title) {
  const std::vector<std::vector<Point>> series = read_metrics_log(metrics_path);
  double first_step = std::numeric_limits<double>::infinity(), last_step = -first_step;
  for (const std::vector<Point>& points : series) {
    for (const Point& p : points) {
      if (!std::isfinite(p.x)) continue;
      first_step = std::min(first_step, p.x);
      last_step = std::max(last_step, p.x);
    }
  }
  const Axis x_axis = first_step <= last_step ? linear_axis(first_step, last_step) : linear_axis(0, 1);

  const double height = kTitleBand + 2 * kPanelHeight;
  std::string svg = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"30\" text-anchor=\"middle\" font-size=\"18\">{3}</text>\n",
      kPageWidth, height, kPageWidth / 2, io::xml_escape(title));
  for (int panel = 0; panel < static_cast<int>(std::size(kPanels)); ++panel) render_panel(svg, panel, series, x_axis);
  svg += "</svg>\n";
  return svg;
}

}  // namespace heed::train

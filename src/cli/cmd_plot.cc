// heed plot: the training curves of a run directory (its metrics.jsonl) as one SVG file, by default
// RUN_DIR/curves.svg. The drawing lives in the library (heed/train/plot.h); this file picks the paths.
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "heed/core/error.h"
#include "heed/train/plot.h"

namespace heed::cli {

namespace {

namespace fs = std::filesystem;

struct PlotOptions {
  std::string run_dir, output;
};

void run_plot(const PlotOptions& opt) {
  const fs::path run = opt.run_dir;
  // The run's own name for the title: "runs/en-es/", "runs/en-es" and "." (inside it) all give "en-es".
  fs::path name = fs::absolute(run).lexically_normal();
  if (name.filename().empty()) name = name.parent_path();
  const std::string svg = train::render_training_curves((run / "metrics.jsonl").string(),
                                                        "Training curves: " + name.filename().string());
  const std::string output = opt.output.empty() ? (run / "curves.svg").string() : opt.output;
  std::ofstream file(output, std::ios::binary);
  HEED_CHECK(file.good(), "cannot write {}", output);
  file << svg;
  file.close();
  HEED_CHECK(file.good(), "error while writing {}", output);
  std::cout << output << std::endl;
}

}  // namespace

void add_plot_command(CLI::App& app) {
  auto opt = std::make_shared<PlotOptions>();
  CLI::App* cmd = app.add_subcommand("plot", "Draw a run's training curves (metrics.jsonl) as an SVG file");
  cmd->add_option("RUN_DIR", opt->run_dir, "Training run directory holding metrics.jsonl")->required();
  cmd->add_option("--output,-o", opt->output, "SVG file to write (default: RUN_DIR/curves.svg)");
  cmd->callback([opt] { run_plot(*opt); });
}

}  // namespace heed::cli

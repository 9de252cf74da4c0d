// Training curves as one self-contained SVG file, drawn from a run's metrics log (metrics.jsonl: one JSON
// object per line, {"kind": "train", "step", "loss", "ppl", "lr", ...} or {"kind": "valid", "step", "loss",
// "ppl", "bleu", "chrf"}). Four panels against the step: loss, perplexity (log scale), validation BLEU and
// chrF, learning rate. Fields may be missing or null; a record of another kind is skipped.
#pragma once

#include <string>

namespace heed::train {

// The SVG document for the metrics log at `metrics_path`, titled `title`. A missing or empty log, or a line
// that is not a JSON object with a string "kind" and a numeric "step" (or has a non-numeric metric), is an
// error naming the file and line.
std::string render_training_curves(const std::string& metrics_path, const std::string& title);

}  // namespace heed::train

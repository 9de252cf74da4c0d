"""`heed plot`: a synthetic metrics.jsonl renders to well-formed SVG with one polyline per series, every point
inside the page; bad logs get errors that name the file and line. Standard library only, never skips.
"""
import json
import math
import os
import sys
import xml.etree.ElementTree as ET

from cli_check import Checks, run

SVG = "{http://www.w3.org/2000/svg}"
ALL_SERIES = {"train loss", "valid loss", "train ppl", "valid ppl", "valid BLEU", "valid chrF", "learning rate"}


def synthetic_log():
    records = []
    for step in range(10, 2010, 10):
        loss = 2 + 8 * math.exp(-step / 300)
        records.append({"kind": "train", "step": step, "epoch": step // 500, "loss": loss, "ppl": math.exp(loss),
                        "lr": 5e-4 * min(step / 400, (400 / step) ** 0.5), "grad_norm": 1.5, "tgt_tok_s": 9000.0,
                        "elapsed_s": step / 10})
        if step % 200 == 0:
            valid = {"kind": "valid", "step": step, "loss": loss + 0.3, "ppl": math.exp(loss + 0.3),
                     "bleu": 30 * (1 - math.exp(-step / 500)), "chrf": 55 * (1 - math.exp(-step / 400))}
            if step == 400:
                del valid["bleu"]  # BLEU validation may be off for some records
                valid["chrf"] = None  # a NaN metric comes out of the writer as null
            records.append(valid)
    return "\n".join(json.dumps(r) for r in records) + "\n"


class Runner(Checks):
    def run_dir(self, name, log):
        path = os.path.join(self.tmp, name)
        os.makedirs(path, exist_ok=True)
        if log is not None:
            with open(os.path.join(path, "metrics.jsonl"), "w") as f:
                f.write(log)
        return path

    def plot(self, *args):
        return self.heed_run("plot", *args)

    def check_svg(self, label, result, svg_path, expected_series, title):
        if result.returncode != 0 or result.stdout.strip() != svg_path:
            self.check(label, False, f"exit {result.returncode}, stdout {result.stdout!r}, stderr {result.stderr}")
            return
        root = ET.parse(svg_path).getroot()
        width, height = float(root.get("width")), float(root.get("height"))
        series = {p.get("data-series"): p.get("points").split() for p in root.iter(f"{SVG}polyline")}
        problems = []
        if root.tag != f"{SVG}svg":
            problems.append(f"root element {root.tag}")
        if set(series) != expected_series:
            problems.append(f"series {sorted(series)}, expected {sorted(expected_series)}")
        for name, points in series.items():
            xy = [tuple(map(float, p.split(","))) for p in points]
            if len(xy) < 2 or not all(0 <= x <= width and 0 <= y <= height for x, y in xy):
                problems.append(f"{name}: {len(xy)} points, some outside the page")
            if xy != sorted(xy):
                problems.append(f"{name}: points not in step order")
        texts = [t.text or "" for t in root.iter(f"{SVG}text")]
        if not any(title in t for t in texts):
            problems.append(f"no title with {title!r}")
        self.check(f"{label}: {len(series)} series", not problems, "; ".join(problems))


def checks(r):
    run = r.run_dir("en-es & <run>", synthetic_log())
    r.check_svg("default output", r.plot(run + "/"), os.path.join(run, "curves.svg"), ALL_SERIES, "en-es & <run>")
    out = r.path("elsewhere.svg")
    r.check_svg("--output", r.plot(run, "--output", out), out, ALL_SERIES, "en-es & <run>")

    train_only = "".join(json.dumps({"kind": "train", "step": s, "loss": 5.0 / s, "ppl": math.exp(5.0 / s),
                                     "lr": 1e-3}) + "\n" for s in range(1, 6))
    run = r.run_dir("train-only", train_only)
    r.check_svg("training records only, constant lr", r.plot(run), os.path.join(run, "curves.svg"),
                {"train loss", "train ppl", "learning rate"}, "train-only")

    good = '{"kind": "train", "step": 1, "loss": 3.0}\n'
    log_of = lambda name: r.path(name, "metrics.jsonl")
    r.expect_error("malformed line", r.plot(r.run_dir("bad-json", good + good + '{"kind": "train", "step": \n')),
                   f"{log_of('bad-json')}:3: not valid JSON")
    r.expect_error("no step", r.plot(r.run_dir("no-step", good + '{"kind": "valid", "loss": 1}\n')),
                   f"{log_of('no-step')}:2: expected a JSON object with a string \"kind\" and a numeric "
                   "\"step\"")
    text_loss = good + '\n{"kind": "train", "step": 2, "loss": "x"}'
    r.expect_error("text metric", r.plot(r.run_dir("text-loss", text_loss)),
                   f"{log_of('text-loss')}:3: \"loss\" must be a number")
    r.expect_error("empty log", r.plot(r.run_dir("empty", "\n")),
                   f"the metrics log {log_of('empty')} has no records")
    r.expect_error("missing log", r.plot(r.run_dir("missing", None)),
                   f"cannot read the metrics log {log_of('missing')}")


if __name__ == "__main__":
    sys.exit(run(checks, Runner))

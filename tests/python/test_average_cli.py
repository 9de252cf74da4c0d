"""`heed average` end to end, on a few steps of the tiny model of test_train_cli.py:

- `--last 3 RUN_DIR` averages the newest 3 step checkpoints: the weights are their per-tensor mean, and
  averaged.json names them, newest first
- `heed translate --model AVERAGED` and `heed export-hf AVERAGED` take the result
- an existing output directory, too few checkpoints, and --last with several paths are refused

Standard library only, so this test never skips.
"""
import json
import os
import struct
import sys

from cli_check import read_safetensors, run
from test_train_cli import Runner, make_corpus


def floats(path):
    header, data = read_safetensors(path)
    return {name: struct.unpack(f"<{(v['data_offsets'][1] - v['data_offsets'][0]) // 4}f",
                                data[v["data_offsets"][0]:v["data_offsets"][1]])
            for name, v in header.items()}


def checks(r):
    pairs = make_corpus(50, seed=3)
    r.write("train.en", "\n".join(en for en, _ in pairs) + "\n")
    r.write("train.es", "\n".join(es for _, es in pairs) + "\n")
    run_dir = r.path("run")
    out = r.heed_run("train", r.config("avg.yaml", "run", 6, ckpt=2), "--set", "checkpoints.keep_last=3")
    r.check("training 6 steps with a checkpoint every 2 exits 0", out.returncode == 0, out.stderr[-2000:])
    if out.returncode != 0:
        return
    steps = [os.path.join(run_dir, "checkpoints", f"step-{s:08d}") for s in (6, 4, 2)]

    averaged = r.path("averaged")
    out = r.heed_run("average", "--out", averaged, "--last", "3", run_dir)
    r.check("heed average --last 3 exits 0", out.returncode == 0, out.stderr[-2000:])
    if out.returncode != 0:
        return
    with open(os.path.join(averaged, "averaged.json")) as f:
        record = json.load(f)["averaged"]
    r.check("averaged.json names the newest 3 step checkpoints, newest first",
            record == [os.path.realpath(s) for s in steps], record)
    inputs = [floats(os.path.join(s, "model.safetensors")) for s in steps]
    mean = floats(os.path.join(averaged, "model.safetensors"))
    # In fp32 ulps of the largest addend (2^-23 * max |w|): the mean rounded once to fp32 is within half of
    # one, the double sums (heed's and this one) within ~2^-29 of one (tests/test_average.cc).
    worst = 0.0
    for name, values in mean.items():
        for i, got in enumerate(values):
            xs = [w[name][i] for w in inputs]
            error = abs(got - sum(xs) / 3) / (2.0 ** -23 * max(abs(x) for x in xs) + 1e-38)
            if not error <= worst:
                worst = error
    r.check(f"the weights are the per-tensor mean (worst {worst:.6f} fp32 ulps)",
            mean.keys() == inputs[0].keys() and worst <= 0.5 + 1e-6, sorted(mean.keys() ^ inputs[0].keys()))

    src = "\n".join(en for en, _ in pairs[:3]) + "\n"
    out = r.heed_run("translate", "--model", averaged, stdin=src)
    r.check("heed translate --model AVERAGED runs", out.returncode == 0 and len(out.stdout.splitlines()) == 3,
            out.stderr[-2000:])
    out = r.heed_run("export-hf", averaged, r.path("hf-averaged"))
    r.check("heed export-hf AVERAGED runs",
            out.returncode == 0 and os.path.exists(r.path("hf-averaged", "config.json")), out.stderr[-2000:])

    r.expect_error("an existing output directory is refused",
                   r.heed_run("average", "--out", averaged, "--last", "2", run_dir), f"{averaged} exists already")
    r.expect_error("--last N with fewer step checkpoints is refused, saying how many",
                   r.heed_run("average", "--out", r.path("avg4"), "--last", "4", run_dir),
                   "has 3 step checkpoint(s), fewer than the 4 to average")
    r.expect_error("--last N with several paths is refused",
                   r.heed_run("average", "--out", r.path("avg2"), "--last", "2", *steps[:2]),
                   "--last 2 takes one run directory, got 2 paths")


if __name__ == "__main__":
    sys.exit(run(checks, Runner))

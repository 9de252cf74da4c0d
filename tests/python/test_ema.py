"""The moving average of the weights (optimizer.ema_decay), end to end on one process.

- closed form: a run started (--init-from) from known weights w0 saves the average and the raw weights after
  each of 4 updates; the average after update n equals d^n w0 + (1 - d) sum_k d^(n-k) w_k, computed here in
  double, within the bound of fp32 rounding (closed_form_error); a frozen parameter's average is its weights, bit
  for bit; the best-* checkpoints hold the average
- the same on the simulated GPU (the GPU code path's elementwise kernels), over 2 updates
- the average leaves training alone: with validation swapping it in every 4 updates, the training losses equal
  those of a run without it, bit for bit. Validation scores the average: its loss equals that of the
  checkpoint's model file validated on its own, and differs from the loss of the raw weights
- resume with the average is exact: 4 updates + resume to 8 log the same losses and validations, and save the
  same average and raw weights, bit for bit, as 8 uninterrupted updates

tests/python/test_data_parallel.py checks the average under mpirun, with and without optimizer.shard_state.
Standard library only, so this test never skips.
"""
import json
import os
import sys
from array import array

from cli_check import Checks, read_safetensors, run
from test_train_cli import CONFIG, make_corpus

DECAY = 0.9  # not a binary fraction: the fp32 rounding of 1 - decay is part of what the bound covers


def checkpoint(run, step, name="model.safetensors"):
    return os.path.join(run, "checkpoints", f"step-{step:08d}", name)


def tensors(path):
    """Every F32 tensor of a safetensors file as an array of floats, by name."""
    header, data = read_safetensors(path)
    out = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", (path, name, t["dtype"])
        begin, end = t["data_offsets"]
        out[name] = array("f", data[begin:end])
    return out


def closed_form_error(run, start, steps, decay, first=1):
    """The average in `run`'s checkpoints first..first+steps-1 against its closed form from `start`, the
    average (or initial weights) one update before `first`, and the raw weights w_k the checkpoints hold:

        average_n = decay^n start + (1 - decay) sum_{k=1..n} decay^(n-k) w_k,   computed in double.

    Heed computes each update in fp32 as t = fl(fl(1 - decay) * fl(w - a)), a' = fl(a + t): four roundings of
    relative size u = 2^-24. With M the largest |value| the element has taken (a is a convex combination of
    them, so |a| <= M and |w - a| <= 2M), one update adds at most u|a'| + 3u(1 - decay)|w - a| <= (1 + 6c) u M,
    c = 1 - decay, and earlier errors shrink by the factor decay: after n updates the error is below
    n (1 + 6c) u M. The double reference adds ~1e-16 relative, far below. Returns (worst error / bound over
    all elements and checkpoints, where), NaN-safe: <= 1 passes."""
    c, u = 1.0 - decay, 2.0 ** -24
    raw = [tensors(checkpoint(run, first + k, "training_weights.safetensors")) for k in range(steps)]
    averaged = [tensors(checkpoint(run, first + k)) for k in range(steps)]
    worst, where = 0.0, None
    for name, begin in start.items():
        for i, exact in enumerate(begin):
            largest = abs(exact)
            for n in range(1, steps + 1):
                w = raw[n - 1][name][i]
                exact = decay * exact + c * w
                largest = max(largest, abs(w))
                error = abs(averaged[n - 1][name][i] - exact)
                bound = n * (1 + 6 * c) * u * largest
                ratio = error / bound if bound > 0 else (0.0 if error == 0 else float("inf"))
                if not ratio <= worst:
                    worst, where = ratio, f"{name}[{i}] after update {first + n - 1}: {error:.3e} of bound {bound:.3e}"
    return worst, where


class Runner(Checks):
    def config(self, name, run, steps, every=1, validate=0, keep=10, dropout=0.0):
        text = CONFIG.format(run=self.path(run), dir=self.tmp, steps=steps, ckpt=every, dropout=dropout)
        text = text.replace("keep_last: 2", f"keep_last: {keep}").replace("  every: 0\n", f"  every: {validate}\n")
        return self.write(name, text)

    def records(self, run, kind):
        with open(self.path(run, "metrics.jsonl")) as f:
            return [r for r in map(json.loads, f) if r["kind"] == kind]

    def trained(self, label, result):
        self.check(f"{label} exits 0", result.returncode == 0, result.stderr[-2000:])
        return result.returncode == 0


EMA = ["--set", f"optimizer.ema_decay={DECAY}"]
# Big constant steps from the first update, so that the average moves far from each w_k.
CONSTANT = ["--set", "schedule.type=constant", "--set", "schedule.warmup_steps=0"]


def closed_form(r):
    if not r.trained("the run that makes w0", r.heed_run("train", r.config("base.yaml", "run-base", 2, every=2))):
        return
    start = checkpoint(r.path("run-base"), 2)
    w0 = tensors(start)
    frozen = "encoder.layers.0.*"
    out = r.heed_run("train", r.config("ema.yaml", "run-ema", 4), "--init-from", os.path.dirname(start), *EMA,
                     *CONSTANT, "--set", f"training.freeze=[{frozen}]")
    if not r.trained("a run with optimizer.ema_decay from w0", out):
        return
    worst, where = closed_form_error(r.path("run-ema"), w0, 4, DECAY)
    r.check(f"the average after each of 4 updates meets its closed form (worst {worst:.2f} of the fp32 bound)",
            worst <= 1, where)
    last = tensors(checkpoint(r.path("run-ema"), 4))
    raw = tensors(checkpoint(r.path("run-ema"), 4, "training_weights.safetensors"))
    fixed = [n for n in w0 if n.startswith("encoder.layers.0.")]
    r.check(f"the {len(fixed)} frozen parameters' average is their weights, bit for bit",
            fixed and all(last[n] == w0[n] == raw[n] for n in fixed), fixed[:3])
    r.check("the trained parameters' average differs from their weights",
            all(last[n] != raw[n] for n in w0 if n.startswith("decoder.layers.")))
    best = [d for d in os.listdir(r.path("run-ema", "checkpoints")) if d.startswith("best-")]
    r.check(f"the best-* checkpoints ({', '.join(best)}) hold the average", best and all(
        tensors(r.path("run-ema", "checkpoints", d, "model.safetensors")) == last for d in best), best)

    sim = ["--set", "training.device=sim", "--set", "validation.metrics=[loss]", "--set",
           "validation.early_stopping_metric=loss"]
    out = r.heed_run("train", r.config("ema-sim.yaml", "run-ema-sim", 2), "--init-from", os.path.dirname(start), *EMA,
                     *CONSTANT, *sim)
    if r.trained("the same on the simulated GPU", out):
        worst, where = closed_form_error(r.path("run-ema-sim"), w0, 2, DECAY)
        r.check(f"on the simulated GPU too (worst {worst:.2f} of the fp32 bound)", worst <= 1, where)


def training_and_validation(r):
    whole = r.config("whole.yaml", "run-whole", 8, every=4, validate=4, dropout=0.1)
    plain = r.heed_run("train", r.config("plain.yaml", "run-plain", 8, every=4, validate=4, dropout=0.1))
    runs = {"8 updates with the average": r.heed_run("train", whole, *EMA),
            "8 updates without": plain,
            "4 updates with the average": r.heed_run(
                "train", r.config("part.yaml", "run-part", 4, every=4, validate=4, dropout=0.1), *EMA),
            "and its resume to 8": r.heed_run(
                "train", r.config("part.yaml", "run-part", 8, every=4, validate=4, dropout=0.1), *EMA, "--resume",
                r.path("run-part"))}
    if not all([r.trained(label, result) for label, result in runs.items()]):
        return
    losses = {run: [x["loss"] for x in r.records(run, "train")] for run in ("run-whole", "run-plain", "run-part")}
    valid = {run: [(x["step"], x["loss"], x["bleu"]) for x in r.records(run, "valid")]
             for run in ("run-whole", "run-plain", "run-part")}
    r.check("with validation swapping the average in and out, training runs as without it, bit for bit",
            len(losses["run-whole"]) == 8 and losses["run-whole"] == losses["run-plain"], losses)
    r.check("validation scores other weights than the raw ones",
            len(valid["run-whole"]) == 2 and all(a[1] != b[1] for a, b in zip(valid["run-whole"], valid["run-plain"])),
            valid)
    r.check("resumed: the same losses and validations, bit for bit",
            losses["run-part"] == losses["run-whole"] and valid["run-part"] == valid["run-whole"], (losses, valid))
    files = ["model.safetensors", "training_weights.safetensors", "optimizer.safetensors"]
    same = [f for f in files if open(checkpoint(r.path("run-whole"), 8, f), "rb").read()
            == open(checkpoint(r.path("run-part"), 8, f), "rb").read()]
    r.check(f"resumed: the same {', '.join(same)} at update 8", same == files, same)
    # The model file's weights validated on their own: a learning rate far below one ulp of any weight leaves
    # them as they are through one update.
    out = r.heed_run("train", r.config("rescore.yaml", "run-rescore", 1), "--init-from",
                     os.path.dirname(checkpoint(r.path("run-whole"), 8)), "--set", "optimizer.lr=1e-12")
    if r.trained("validating update 8's model file", out):
        rescored = r.records("run-rescore", "valid")
        r.check("validation scored the average that the model file holds, bit for bit",
                len(rescored) == 1 and (rescored[0]["loss"], rescored[0]["bleu"]) == valid["run-whole"][-1][1:],
                (rescored, valid["run-whole"]))


def checks(r):
    pairs = make_corpus(50, seed=3)
    r.write("train.en", "\n".join(en for en, _ in pairs) + "\n")
    r.write("train.es", "\n".join(es for _, es in pairs) + "\n")
    closed_form(r)
    training_and_validation(r)


if __name__ == "__main__":
    sys.exit(run(checks, Runner))

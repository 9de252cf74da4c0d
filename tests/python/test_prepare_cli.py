"""`heed prepare` and the corpus store end to end (src/train/prepare.cc, src/data/store.cc).

- `heed prepare` trains the vocabulary and writes the store; run again, it verifies the store and keeps it
- `heed train` opens a current store without preparing it again, also when runs share it (data.store)
- 2 ranks over one store train as 1 process with update_freq 2 over the same store (losses and gradient
  norms to 1e-7 relative, the bound of test_data_parallel.py)
- `heed train` prepares the store again when the text or max_length changed, saying why
- a damaged store is refused, naming the file; bad text is an error naming the file and line

The MPI check is skipped without mpirun; the rest runs everywhere.
"""
import json
import os
import shutil
import subprocess
import sys

from cli_check import Checks, run
from test_data_parallel import worst_relative_difference
from test_train_cli import CONFIG, make_corpus

MPIRUN = shutil.which("mpirun")


class Runner(Checks):
    def config(self, name, run, steps, extra=""):
        text = CONFIG.format(run=self.path(run), dir=self.tmp, steps=steps, ckpt=1000, dropout=0.1)
        text = text.replace("max_tokens: 256", f"max_tokens: 96\n  max_length: 32\n  store: {self.path('store')}")
        return self.write(name, text + extra)

    def records(self, run):
        with open(self.path(run, "metrics.jsonl")) as f:
            return [r for r in map(json.loads, f) if r["kind"] == "train"]


def checks(r):
    pairs = make_corpus(400, seed=5)
    r.write("train.en", "\n".join(en for en, _ in pairs) + "\n")
    r.write("train.es", "\n".join(es for _, es in pairs) + "\n")
    prep = r.config("prep.yaml", "prep", 6)
    first = r.heed_run("prepare", prep)
    r.check("heed prepare exits 0 and writes the store", first.returncode == 0 and "prepared" in first.stderr and
            os.path.exists(r.path("store", "manifest.json")), first.stderr[-2000:])
    again = r.heed_run("prepare", prep)
    r.check("heed prepare again keeps the store", again.returncode == 0 and "is up to date" in again.stderr and
            "preparing" not in again.stderr, again.stderr[-2000:])

    vocab = ["--set", f"data.src_vocab={r.path('prep', 'vocab.model')}"]
    one = r.heed_run("train", r.config("one.yaml", "run-one", 6), *vocab, "--set", "optimizer.update_freq=2")
    r.check("heed train opens the prepared store without preparing it", one.returncode == 0 and
            "is up to date" in one.stderr and "preparing" not in one.stderr, one.stderr[-2000:])
    if MPIRUN:
        two = subprocess.run([MPIRUN, "-np", "2", "--oversubscribe", "--allow-run-as-root", r.heed, "train",
                              r.config("two.yaml", "run-two", 6), *vocab, "--set", "training.bucket_mb=0.03"],
                             capture_output=True, text=True)
        r.check("2 ranks open the same store without preparing it", two.returncode == 0 and
                "preparing" not in two.stderr, two.stderr[-3000:])
        if one.returncode == 0 and two.returncode == 0:
            a, b = r.records("run-one"), r.records("run-two")
            for key in ("loss", "grad_norm"):
                worst = worst_relative_difference(a, b, key)
                r.check(f"2 ranks over one store train as 1 process with update_freq 2: {key} (worst relative "
                        f"difference {worst:.1e})", len(a) == len(b) == 6 and worst <= 1e-7, (a, b))
    else:
        print("skip 2 ranks over one store: no mpirun")

    with open(r.path("train.en"), "a") as f:
        f.write("the red cat\n")
    with open(r.path("train.es"), "a") as f:
        f.write("Gato el rojo.\n")
    changed = r.heed_run("train", r.config("three.yaml", "run-three", 2), *vocab)
    r.check("heed train prepares the store again when the text changed", changed.returncode == 0 and
            "train.en changed since it was prepared" in changed.stderr and "kept 401 of 401" in changed.stderr,
            changed.stderr[-2000:])
    longer = r.heed_run("train", r.config("four.yaml", "run-four", 2), *vocab, "--set", "data.max_length=40")
    r.check("heed train prepares the store again when max_length changed", longer.returncode == 0 and
            "data.max_length changed from 32 to 40" in longer.stderr, longer.stderr[-2000:])

    offsets = r.path("store", "tgt.offsets")
    with open(offsets, "r+b") as f:
        f.seek(24)
        f.write(b"\x55")
    r.expect_error("a damaged store is refused, naming the file",
                   r.heed_run("train", r.config("five.yaml", "run-five", 2), *vocab, "--set", "data.max_length=40"),
                   f"{offsets}: CRC-32 differs")
    with open(r.path("bad.en"), "wb") as f:
        f.write("\n".join(en for en, _ in pairs[:3]).encode() + b"\nthe \xff cat\n")
    r.expect_error("bad text names the file and line",
                   r.heed_run("prepare", prep, "--set", f"data.train_src={r.path('bad.en')}"),
                   f"{r.path('bad.en')}:4: invalid UTF-8")


if __name__ == "__main__":
    sys.exit(run(checks, Runner))

"""Hostile probes of `heed train` and `heed translate`: bad inputs get a clear refusal (file and line, or the
option) and a non-zero exit, and nothing a user already has is lost on the way.

- config: a duplicate key or group, a directory given as the config
- data: an empty corpus, a NUL byte in a training line or on stdin
- translate: --threads -1, --batch-tokens 0, --metric bogus are refused; a beam wider than the vocabulary
  is capped with a warning
- loading: with manifest.json deleted, a flipped data byte is still refused (translate and --init-from),
  and an intact checkpoint still loads; NaN or Inf weights are refused by parameter name
- the run directory: a second run into it is refused before it touches anything, --overwrite replaces the
  old run cleanly, a refused resume leaves config.yaml and the vocabulary as they were
- a full disk: metrics.jsonl or train.log on /dev/full stops training at once, naming the file
- saves cut short: leftover temporary checkpoint directories are removed when training starts, and a save
  that fails removes its own

Standard library only, so this test never skips.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time

from cli_check import read_safetensors, run
from test_train_cli import Runner, flip_data_byte, make_corpus, step_checkpoints


def file_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def rewrite_weights(path, change):
    """Rewrites a safetensors file as a foreign writer would (no __metadata__, so no checksum) after
    change(header, bytearray of the data) edits it in place."""
    header, data = read_safetensors(path)
    data = bytearray(data)
    change(header, data)
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + bytes(data))


def set_first_value(value):
    def change(header, data):
        name = sorted(header)[0]
        begin = header[name]["data_offsets"][0]
        assert header[name]["dtype"] == "F32"
        data[begin:begin + 4] = struct.pack("<f", value)
    return change


def config_probes(r):
    r.expect_error("a key written twice", r.heed_run("train", r.write(
        "dup.yaml", "training:\n  max_steps: 5\n  seed: 1\n  max_steps: 7\n")),
        "dup.yaml:4: duplicate key 'training.max_steps' (first at line 2)")
    r.expect_error("a group written twice", r.heed_run("train", r.write(
        "dup2.yaml", "model:\n  d_model: 64\ntraining:\n  seed: 1\nmodel:\n  heads: 2\n")),
        "dup2.yaml:5: duplicate key 'model' (first at line 1)")
    os.mkdir(r.path("config-dir.yaml"))
    r.expect_error("a directory as the config", r.heed_run("train", r.path("config-dir.yaml")),
                   "config-dir.yaml is a directory, not a YAML file")


def data_probes(r):
    r.write("empty.en", "")
    r.write("empty.es", "\n\n")
    config = r.config("empty.yaml", "run-empty", 5)
    r.expect_error("an empty corpus", r.heed_run(
        "train", config, "--set", f"data.train_src={r.path('empty.en')}", "--set",
        f"data.train_tgt={r.path('empty.es')}"), "cannot train the vocabulary", "empty.en", "hold no text")
    lines = open(r.path("train.en"), encoding="utf-8").read().splitlines()
    lines[2] = lines[2][:3] + "\0" + lines[2][3:]
    r.write("nul.en", "\n".join(lines) + "\n")
    r.expect_error("a NUL byte in a training line", r.heed_run(
        "train", config, "--set", f"data.train_src={r.path('nul.en')}", "--run-dir", r.path("run-nul")),
        "nul.en:3: NUL byte at byte 4 of the line")


def translate_probes(r, model):
    r.expect_error("translate --threads -1", r.heed_run("translate", "--model", model, "--threads", "-1",
                                                        stdin="the cat\n"), "--threads")
    r.expect_error("translate --batch-tokens 0", r.heed_run("translate", "--model", model, "--batch-tokens", "0",
                                                            stdin="the cat\n"), "--batch-tokens")
    r.expect_error("translate --metric bogus", r.heed_run("translate", "--model", model, "--metric", "bogus",
                                                          stdin="the cat\n"),
                   "no checkpoint is chosen by the metric 'bogus': use one of bleu, chrf, loss, latest")
    r.expect_error("a NUL byte on stdin", r.heed_run("translate", "--model", model, stdin="the cat\nthe\0dog\n"),
                   "stdin:2: NUL byte at byte 4 of the line")
    newest = os.path.join(model, "checkpoints", step_checkpoints(model)[-1])
    vocabulary = int(re.search(r"^vocab_size: *(\d+)", open(os.path.join(newest, "model.yaml")).read(), re.M)[1])
    wide = r.heed_run("translate", "--model", model, "--beam-size", "100000", stdin="the cat sees the dog\n")
    capped = r.heed_run("translate", "--model", model, "--beam-size", str(vocabulary), stdin="the cat sees the dog\n")
    r.check("a beam wider than the vocabulary is capped to it, with a warning",
            wide.returncode == 0 and f"larger than the vocabulary ({vocabulary} pieces)" in wide.stderr
            and wide.stdout == capped.stdout and capped.returncode == 0, wide.stderr[-1500:] + capped.stderr[-500:])


def loading_probes(r, run_dir):
    """On copies of a trained checkpoint without manifest.json."""
    source = os.path.join(run_dir, "checkpoints", step_checkpoints(run_dir)[-1])

    def copy(name):
        path = r.path(name)
        shutil.copytree(source, path)
        os.remove(os.path.join(path, "manifest.json"))
        return path

    intact = copy("no-manifest")
    out = r.heed_run("translate", "--model", intact, stdin="the cat\n")
    r.check("a checkpoint without manifest.json but intact still translates", out.returncode == 0, out.stderr[-1500:])

    flipped = copy("no-manifest-flipped")
    flip_data_byte(os.path.join(flipped, "model.safetensors"))
    r.expect_error("without manifest.json, a flipped data byte is refused by translate",
                   r.heed_run("translate", "--model", flipped, stdin="the cat\n"),
                   "model.safetensors: the tensor data fails its checksum")
    r.expect_error("without manifest.json, a flipped data byte is refused by --init-from", r.heed_run(
        "train", r.config("init.yaml", "run-init", 2), "--init-from", flipped),
        "model.safetensors: the tensor data fails its checksum")

    for label, value in (("NaN", float("nan")), ("Inf", float("inf"))):
        broken = copy(f"weights-{label}")
        weights = os.path.join(broken, "model.safetensors")
        rewrite_weights(weights, set_first_value(value))
        name = sorted(read_safetensors(weights)[0])[0]
        r.expect_error(f"a {label} weight is refused by name", r.heed_run("translate", "--model", broken,
                                                                          stdin="the cat\n"),
                       f"parameter {name} holds {label.lower()} at index 0")


def run_directory_probes(r):
    """A finished run, then every way of training into its directory again."""
    run_dir = r.path("run-first")
    config = r.config("first.yaml", "run-first", 4, ckpt=2, extra="")
    first = r.heed_run("train", config, "--set", "validation.every=2")
    r.check("the first run exits 0", first.returncode == 0, first.stderr[-2000:])
    if first.returncode != 0:
        return
    kept = ["config.yaml", "metrics.jsonl", "vocab.model", "checkpoints/best-bleu/model.safetensors",
            "checkpoints/step-00000004/model.safetensors"]
    before = {name: file_bytes(os.path.join(run_dir, name)) for name in kept}

    def unchanged():
        return [name for name in kept if not os.path.exists(os.path.join(run_dir, name))
                or file_bytes(os.path.join(run_dir, name)) != before[name]]

    again = r.heed_run("train", config, "--set", "optimizer.lr=1e-4")
    r.expect_error("a second run into a run directory is refused", again,
                   "already holds a run", f"--resume {run_dir}", "a new --run-dir", "--overwrite")
    r.check("the refused run changed nothing", not unchanged(), f"changed: {unchanged()}")

    other_arch = r.heed_run("train", config, "--resume", run_dir, "--set", "model.ffn_dim=96",
                            "--set", "training.max_steps=6")
    r.expect_error("a resume with another architecture is refused", other_arch, "the architecture differs")
    r.check("the refused resume left config.yaml and the vocabulary as they were", not unchanged(),
            f"changed: {unchanged()}")
    r.heed_run("train", config, "--set", "data.vocab_size=90", "--set", "training.max_steps=1", "--run-dir",
               r.path("run-vocab90"))
    other_vocab = r.heed_run("train", config, "--resume", run_dir, "--set", "training.max_steps=6",
                             "--set", f"data.src_vocab={r.path('run-vocab90', 'vocab.model')}")
    r.expect_error("a resume with another vocabulary is refused", other_vocab, "differs from the checkpoint's")
    r.check("the refused resume left the vocabulary as it was", not unchanged(), f"changed: {unchanged()}")

    r.write("run-first/notes.txt", "mine\n")
    replaced = r.heed_run("train", config, "--overwrite", "--set", "training.max_steps=3",
                          "--set", "checkpoints.every=3", "--set", "data.vocab_size=90")
    steps = [rec["step"] for rec in map(json.loads, open(os.path.join(run_dir, "metrics.jsonl")))
             if rec["kind"] == "train"] if replaced.returncode == 0 else []
    r.check("--overwrite replaces the old run: only its checkpoints, its metrics, its vocabulary; other files stay",
            replaced.returncode == 0 and step_checkpoints(run_dir) == ["step-00000003"] and steps == [1, 2, 3]
            and file_bytes(os.path.join(run_dir, "checkpoints/best-bleu/model.safetensors"))
            != before["checkpoints/best-bleu/model.safetensors"]
            and file_bytes(os.path.join(run_dir, "vocab.model")) != before["vocab.model"]
            and os.path.exists(os.path.join(run_dir, "notes.txt")),
            f"exit {replaced.returncode}, {os.listdir(os.path.join(run_dir, 'checkpoints'))}, steps {steps}\n"
            f"{replaced.stderr[-2000:]}")
    resumed = r.heed_run("train", config, "--resume", run_dir, "--set", "training.max_steps=5",
                         "--set", "data.vocab_size=90")
    r.check("the overwritten run resumes", resumed.returncode == 0 and "at step 3" in resumed.stderr,
            resumed.stderr[-2000:])
    return run_dir


def full_disk_probes(r):
    for name in ("metrics.jsonl", "train.log"):
        run_dir = r.path(f"run-full-{name}")
        os.makedirs(run_dir)
        os.symlink("/dev/full", os.path.join(run_dir, name))
        out = r.heed_run("train", r.config(f"full-{name}.yaml", f"run-full-{name}", 50))
        r.expect_error(f"{name} on a full disk stops training", out, f"cannot write {os.path.join(run_dir, name)}")
        r.check(f"{name} on a full disk: stopped before step 2 and saved nothing",
                "step 2/50" not in out.stderr and not step_checkpoints(run_dir), out.stderr[-1500:])


def abandoned_saves(r, run_dir):
    """What a kill during a save leaves (a hidden temporary directory with the vocabulary in it) is removed
    when training resumes; a save that fails removes its own."""
    leftover = os.path.join(run_dir, "checkpoints", ".step-00000004.tmp.99999")
    os.makedirs(leftover)
    shutil.copy(os.path.join(run_dir, "vocab.model"), leftover)
    r.write(os.path.join(leftover, "model.safetensors"), "partial")
    config = r.path("first.yaml")
    out = r.heed_run("train", config, "--resume", run_dir, "--set", "training.max_steps=6", "--set",
                     "data.vocab_size=90")
    r.check("a leftover temporary checkpoint directory is removed on resume",
            out.returncode == 0 and not os.path.exists(leftover), out.stderr[-2000:])

    proc = subprocess.Popen([r.heed, "train", config, "--resume", run_dir, "--set", "training.max_steps=100000",
                             "--set", "checkpoints.every=1", "--set", "data.vocab_size=90"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and int(step_checkpoints(run_dir)[-1][5:]) <= 6:
        time.sleep(0.02)
    os.remove(os.path.join(run_dir, "config.yaml"))  # every save copies it: the next one fails
    _, err = proc.communicate(timeout=120)
    hidden = [d for d in os.listdir(os.path.join(run_dir, "checkpoints")) if d.startswith(".")]
    r.check("a save that fails reports it and removes its temporary directory",
            proc.returncode != 0 and "to put it into checkpoint" in err and not hidden,
            f"exit {proc.returncode}, left {hidden}\n{err[-1500:]}")


def checks(r):
    pairs = make_corpus(50, seed=3)
    r.write("train.en", "\n".join(en for en, _ in pairs) + "\n")
    r.write("train.es", "\n".join(es for _, es in pairs) + "\n")
    config_probes(r)
    data_probes(r)
    full_disk_probes(r)
    run_dir = run_directory_probes(r)
    if run_dir:
        translate_probes(r, run_dir)
        loading_probes(r, run_dir)
        abandoned_saves(r, run_dir)


if __name__ == "__main__":
    sys.exit(run(checks, Runner))

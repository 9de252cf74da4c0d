"""`heed train` and `heed translate` end to end, on a tiny synthetic corpus made here.

- config errors: unknown key (with did-you-mean), wrong type, out of range, missing file, bad --set, bf16
  on a CPU without AVX512_BF16
- --help-config and --dump-config
- a tiny model overfits 50 sentence pairs to near-zero loss, then `heed translate` reproduces them exactly,
  and a batch translates the same as its sentences one at a time
- resume: 10 steps + resume to 20 logs the same losses, bit for bit, as 20 uninterrupted steps
- fine-tuning: --init-from takes the weights and vocabulary, freezing keeps the encoder fixed, and a different
  architecture is refused with the differences listed
- fine-tuning from a Hugging Face MarianMT directory (export-hf of a Heed checkpoint) keeps the weights
- ensembles: `translate --model RUN --model RUN` translates and scores exactly as RUN alone, two runs
  decode together with the weighted sum of their scores, and different vocabularies or bad --weights are
  refused, naming the difference
- early stopping ends training after `patience` validations without improvement
- SIGTERM saves a checkpoint and exits 0; the run then resumes from it; a second SIGTERM during that save
  lets the save finish, and says so
- killing the process while it writes checkpoints (SIGKILL at random moments, 6 times) always leaves the
  last complete checkpoint loadable, and each resume gets further; a checkpoint with one flipped data byte
  or a truncated one is refused by name

Standard library only, so this test never skips.
"""
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

from cli_check import Checks, read_safetensors, run

EN = ["the", "a", "red", "big", "small", "cat", "dog", "bird", "sees", "eats", "likes", "house", "tree", "fish",
      "old", "new", "man", "woman", "runs", "to"]
ES = ["el", "un", "rojo", "grande", "pequeño", "gato", "perro", "pájaro", "ve", "come", "quiere", "casa", "árbol",
      "pez", "viejo", "nuevo", "hombre", "mujer", "corre", "a"]
LEXICON = dict(zip(EN, ES))


def make_corpus(n, seed):
    rng = random.Random(seed)
    pairs = set()
    while len(pairs) < n:
        words = [rng.choice(EN) for _ in range(rng.randint(3, 7))]
        # A reordering rule as well as a lexicon, so that attention has something to learn.
        es = [LEXICON[w] for w in words]
        es = es[1:] + es[:1]
        pairs.add((" ".join(words), " ".join(es).capitalize() + "."))
    return sorted(pairs)


CONFIG = """run_dir: {run}
model:
  d_model: 64
  heads: 2
  ffn_dim: 128
  encoder_layers: 2
  decoder_layers: 2
  dropout: {dropout}
data:
  train_src: {dir}/train.en
  train_tgt: {dir}/train.es
  valid_src: {dir}/train.en
  valid_tgt: {dir}/train.es
  vocab_size: 100
  max_tokens: 256
optimizer:
  lr: 3.0e-3
schedule:
  warmup_steps: 30
training:
  label_smoothing: 0.0
  max_steps: {steps}
  threads: 1
validation:
  every: 0
  metrics: [loss, bleu]
  beam_size: 2
checkpoints:
  every: {ckpt}
  keep_last: 2
logging:
  every: 1
"""


class Runner(Checks):
    def config(self, name, run, steps, ckpt=1000, dropout=0.0, extra=""):
        return self.write(name, CONFIG.format(run=self.path(run), dir=self.tmp, steps=steps, ckpt=ckpt,
                                              dropout=dropout) + extra)

    def losses(self, run):
        with open(self.path(run, "metrics.jsonl")) as f:
            return [(r["step"], r["loss"]) for r in map(json.loads, f) if r["kind"] == "train"]


def config_errors(r):
    good = r.config("good.yaml", "run-errors", 10)
    r.expect_error("unknown key", r.heed_run("train", r.write("e1.yaml", "optimizer:\n  lr: 1\n  betta1: 0.9\n")),
                   "e1.yaml:3: unknown config key 'optimizer.betta1'; did you mean 'optimizer.beta1'?")
    r.expect_error("key in the wrong group", r.heed_run("train", r.write("e2.yaml", "model:\n  lr: 0.1\n")),
                   "e2.yaml:2: unknown config key 'model.lr'; did you mean 'optimizer.lr'?")
    r.expect_error("wrong type", r.heed_run("train", r.write("e3.yaml", "training:\n  max_steps: many\n")),
                   "e3.yaml:2: training.max_steps expects an integer, got 'many'")
    r.expect_error("out of range", r.heed_run("train", r.write("e4.yaml", "model:\n  dropout: 1.5\n")),
                   "e4.yaml:2: model.dropout must be <= 0.999, got 1.5")
    r.expect_error("bad choice", r.heed_run("train", r.write("e5.yaml", "schedule:\n  type: noam\n")),
                   "e5.yaml:2: schedule.type must be one of inverse_sqrt, linear, cosine, constant, got 'noam'")
    r.expect_error("missing config file", r.heed_run("train", r.path("nope.yaml")), "nope.yaml does not exist")
    r.expect_error("bad --set", r.heed_run("train", good, "--set", "optimizer.lr=fast"),
                   "--set optimizer.lr=fast: optimizer.lr expects a number, got 'fast'")
    r.expect_error("missing training file", r.heed_run("train", good, "--set", f"data.train_src={r.path('x.en')}"),
                   "x.en")
    # Refused on the CPU, whether or not this build has cuDNN; the message names the key.
    r.expect_error("cuDNN attention on the CPU", r.heed_run("train", good, "--set", "training.attention=cudnn"),
                   "training.attention: cudnn")
    # oneDNN capped below AVX512_BF16 stands for a CPU without it: bf16 is refused, not emulated, and the
    # message names the kernels oneDNN runs: the cap, or this CPU's own level where that is lower.
    r.expect_error("bf16 on a CPU without AVX512_BF16",
                   r.heed_run("train", good, "--set", "training.precision=bf16",
                              env={"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"}),
                   "training.precision bf16: bf16 products on the CPU need AVX512_BF16",
                   f"oneDNN's kernels here are {onednn_isa_capped_at_avx512_core_vnni()} (")
    helped = r.heed_run("train", "--help-config")
    r.check("--help-config lists every group", helped.returncode == 0 and all(
        f"\n{g}:\n" in "\n" + helped.stdout for g in
        ["model", "data", "optimizer", "schedule", "training", "validation", "checkpoints", "logging"]), helped.stdout)
    dumped = r.heed_run("train", good, "--set", "optimizer.lr=0.25", "--dump-config")
    r.check("--dump-config shows overrides", dumped.returncode == 0 and "  lr: 0.25\n" in dumped.stdout, dumped.stdout)


def onednn_isa_capped_at_avx512_core_vnni():
    """The kernels oneDNN picks under ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI, from /proc/cpuinfo's flags."""
    flags = set(next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split(":", 1)[1].split())
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        return "avx512_core_vnni" if "avx512_vnni" in flags else "avx512_core"
    return "avx2" if {"avx2", "fma"} <= flags else "avx"


def overfit_and_translate(r, pairs):
    result = r.heed_run("train", r.config("overfit.yaml", "run-overfit", 1500))
    r.check("overfit run exits 0", result.returncode == 0, result.stderr[-3000:])
    if result.returncode != 0:
        return
    final = r.losses("run-overfit")[-1][1]
    r.check(f"loss near zero after 1500 steps ({final:.4f})", final < 0.05, final)
    src = "\n".join(en for en, _ in pairs) + "\n"
    out = r.heed_run("translate", "--model", r.path("run-overfit"), "--beam-size", "4", stdin=src)
    hyps = out.stdout.splitlines()
    exact = sum(h == es for h, (_, es) in zip(hyps, pairs))
    r.check(f"translate reproduces the training pairs ({exact}/{len(pairs)})", out.returncode == 0 and exact == len(pairs),
            f"{out.stderr[-2000:]}\n" + "\n".join(f"{h!r} vs {es!r}" for h, (_, es) in zip(hyps, pairs) if h != es))
    one_by_one = [r.heed_run("translate", "--model", r.path("run-overfit"), stdin=en + "\n").stdout.strip()
                  for en, _ in pairs[:8]]
    r.check("a batch translates as its sentences one at a time", one_by_one == hyps[:8], (one_by_one, hyps[:8]))
    nbest = r.heed_run("translate", "--model", r.path("run-overfit"), "--n-best", "3", stdin=src).stdout.splitlines()
    r.check("n-best prints 'id ||| text ||| score'", len(nbest) == 3 * len(pairs) and nbest[0].startswith("0 ||| "),
            nbest[:4])


def tensor_bytes(path):
    header, data = read_safetensors(path)
    return {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items()}


def fine_tune(r):
    base = r.path("run-overfit")
    init = tensor_bytes(os.path.join(base, "checkpoints", "best-bleu", "model.safetensors"))
    config = r.config("tune.yaml", "run-tune", 5)
    out = r.heed_run("train", config, "--init-from", base, "--set", "training.freeze=[encoder.*]")
    r.check("fine-tuning with a frozen encoder exits 0", out.returncode == 0, out.stderr[-2000:])
    if out.returncode == 0:
        tuned = tensor_bytes(os.path.join(r.path("run-tune"), "checkpoints", "step-00000005", "model.safetensors"))
        frozen = [k for k in init if k.startswith("encoder.")]
        r.check("the frozen encoder is unchanged", frozen and all(init[k] == tuned[k] for k in frozen), frozen[:3])
        r.check("the decoder was trained", any(init[k] != tuned[k] for k in init if k.startswith("decoder.layers")))
        r.check("the vocabulary came from the checkpoint",
                open(os.path.join(base, "vocab.model"), "rb").read() == open(r.path("run-tune", "vocab.model"), "rb").read())
    r.expect_error("fine-tuning a different architecture", r.heed_run(
        "train", config, "--init-from", base, "--set", "model.ffn_dim=96", "--run-dir", r.path("run-tune2")),
        "the architecture differs", "model.ffn_dim: 128 in", "but 96 in this config")
    r.heed_run("train", config, "--set", "data.vocab_size=90", "--set", "training.max_steps=1", "--run-dir",
               r.path("run-vocab90"))
    other_vocab = r.path("run-vocab90", "vocab.model")
    r.expect_error("fine-tuning with another vocabulary", r.heed_run(
        "train", config, "--init-from", base, "--set", f"data.src_vocab={other_vocab}", "--run-dir", r.path("run-tune4")),
        "differs from the checkpoint's")
    r.expect_error("a freeze pattern that matches nothing", r.heed_run(
        "train", config, "--init-from", base, "--set", "training.freeze=[encoderr.*]", "--run-dir", r.path("run-tune3")),
        "training.freeze: pattern 'encoderr.*' matches no parameter")


def fine_tune_from_hugging_face(r):
    """export-hf, then --init-from the MarianMT directory: the weights survive the round trip."""
    base = r.path("run-overfit")
    hf = r.path("hf-overfit")
    out = r.heed_run("export-hf", os.path.join(base, "checkpoints", "best-bleu"), hf)
    r.check("export-hf of a trained checkpoint", out.returncode == 0, out.stderr[-1500:])
    config = r.config("tune-hf.yaml", "run-tune-hf", 1)
    # The export carries its tokenizer (OPUS-MT's numbering, pad last), which --init-from takes along.
    out = r.heed_run("train", config, "--init-from", hf, "--set", "optimizer.lr=1e-9")
    r.check("fine-tuning from a MarianMT directory exits 0", out.returncode == 0, out.stderr[-2000:])
    if out.returncode == 0:
        loss = r.losses("run-tune-hf")[0][1]
        r.check(f"it starts from the trained weights (first loss {loss:.4f})", loss < 0.05, loss)


def nbest_scores(out):
    """{(line, text): score} of n-best output ('i ||| text ||| score'), without texts listed twice for a line
    (two segmentations of one text score differently)."""
    scores, seen = {}, set()
    for line in out.splitlines():
        i, text, score = line.split(" ||| ")
        key = (int(i), text)
        if key in seen:
            scores.pop(key, None)
        else:
            scores[key] = float(score)
        seen.add(key)
    return scores


def ensembles(r, pairs):
    """translate with several --model: the run with itself, with a run of another seed, and with runs of other
    vocabularies (run-vocab90, a BPE vocabulary of the same size, the MarianMT export's numbering)."""
    run, other = r.path("run-overfit"), r.path("run-seed2")
    r.heed_run("train", r.config("seed2.yaml", "run-seed2", 300), "--set", "training.seed=2")
    src = "\n".join(en for en, _ in pairs) + "\n"

    def translate(*args):
        return r.heed_run("translate", *args, "--beam-size", "4", stdin=src)

    for extra in ([], ["--n-best", "3"]):
        alone = translate("--model", run, *extra)
        for weights in ([], ["--weights", "0.3,0.7"], ["--weights", "1,1,1"]):
            models = ["--model", run] * (3 if "1,1,1" in weights else 2)
            both = translate(*models, *weights, *extra)
            options = " ".join(weights + extra) or "defaults"
            r.check(f"an ensemble of a run with itself ({options}) gives the run's output",
                    alone.returncode == 0 and both.returncode == 0 and both.stdout == alone.stdout != "",
                    both.stderr[-1500:] + "\n".join(f"{a!r} vs {b!r}" for a, b in
                                                   zip(alone.stdout.splitlines(), both.stdout.splitlines()) if a != b))

    # Two models: a hypothesis in the n-best lists of both and of their ensemble scores the weighted sum of
    # their scores (a score is linear in the token log-probabilities, over the same length). Scores print
    # with 6 decimals; the fp32 sums of ~10 log-probabilities agree far closer than 2e-5.
    nbest = ["--n-best", "4"]
    a = nbest_scores(translate("--model", run, *nbest).stdout)
    b = nbest_scores(translate("--model", other, *nbest).stdout)
    for weights, (wa, wb) in (([], (0.5, 0.5)), (["--weights", "1,3"], (0.25, 0.75))):
        out = translate("--model", run, "--model", other, *weights, *nbest)
        ens = nbest_scores(out.stdout) if out.returncode == 0 else {}
        common = [key for key in ens if key in a and key in b]
        apart = max((abs(a[key] - b[key]) for key in common), default=0)
        wrong = [(key, ens[key], a[key], b[key]) for key in common
                 if abs(ens[key] - (wa * a[key] + wb * b[key])) > 2e-5]
        r.check(f"two runs decode together, scoring by the weighted sum ({wa}, {wb}) "
                f"({len(common)} hypotheses in all three lists, up to {apart:.3f} apart)",
                out.returncode == 0 and len(common) >= len(pairs) and apart > 0.1 and not wrong,
                f"{out.stderr[-1500:]}\n{wrong[:5]}")

    r.heed_run("train", r.config("bpe.yaml", "run-bpe", 1), "--set", "data.vocab_type=bpe")
    for stranger, fragments in ((r.path("run-vocab90"), ["vocabulary has 100 pieces in", "but 90 in"]),
                                (r.path("run-bpe"), ["source id", "is '"]),
                                (r.path("hf-overfit"), ["source id 0 is '<pad>' in", "but '</s>' in"])):
        r.expect_error(f"an ensemble with another vocabulary ({os.path.basename(stranger)})",
                       translate("--model", run, "--model", stranger), "cannot ensemble", *fragments)
    r.expect_error("--weights of the wrong count", translate("--model", run, "--model", run, "--weights", "1"),
                   "--weights: 1 weights for 2 models")
    r.expect_error("a negative weight", translate("--model", run, "--model", run, "--weights", "1,-2"),
                   "--weights: weight 2 is -2; weights must be positive finite numbers")
    r.expect_error("a zero weight", translate("--model", run, "--model", run, "--weights", "0,1"), "weight 1 is 0")


def early_stopping(r):
    """With a learning rate too small to change any translation, BLEU never improves: patience 2 stops
    training at the third validation."""
    config = r.config("early.yaml", "run-early", 100)
    out = r.heed_run("train", config, "--set", "optimizer.lr=1e-12", "--set", "validation.every=1",
                     "--set", "validation.patience=2", "--set", "validation.early_stopping_metric=bleu")
    steps = [s for s, _ in r.losses("run-early")] if out.returncode == 0 else []
    r.check("early stopping after patience validations without improvement",
            out.returncode == 0 and steps == [1, 2, 3] and "early stopping" in out.stderr,
            f"steps {steps}\n{out.stderr[-1500:]}")


def divergence_stops(r):
    """A learning rate of 1e30 makes the weights overflow at once and the gradients NaN. The norm stays on the
    device, so the error comes when a log line or a checkpoint first reads it; Adam skipped those updates,
    and nothing from them is saved."""
    config = r.config("diverge.yaml", "run-diverge", 20, ckpt=3)
    out = r.heed_run("train", config, "--set", "optimizer.lr=1e30", "--set", "logging.every=5")
    saved = step_checkpoints(r.path("run-diverge"))
    r.check("a diverged run stops with an error naming the step, saving nothing after it",
            out.returncode != 0 and re.search(r"step \d+: the gradient norm is -?nan in F32: training diverged",
                                              out.stderr) is not None and saved == [],
            f"exit {out.returncode}, saved {saved}\n{out.stderr[-1500:]}")


def resume_is_exact(r):
    whole = r.heed_run("train", r.config("whole.yaml", "run-whole", 20, ckpt=10, dropout=0.1))
    first = r.heed_run("train", r.config("part.yaml", "run-part", 10, ckpt=10, dropout=0.1))
    rest = r.heed_run("train", r.config("part.yaml", "run-part", 20, ckpt=10, dropout=0.1), "--resume", r.path("run-part"))
    ok = whole.returncode == 0 and first.returncode == 0 and rest.returncode == 0
    r.check("resume runs exit 0", ok, whole.stderr[-1500:] + first.stderr[-1500:] + rest.stderr[-1500:])
    if ok:
        a, b = r.losses("run-whole"), r.losses("run-part")
        r.check("resumed losses equal the uninterrupted run's, bit for bit", a == b and len(a) == 20,
                "\n".join(f"{x} {y}" for x, y in zip(a, b)))


def sigterm_saves(r):
    config = r.config("long.yaml", "run-signal", 100000)
    proc = subprocess.Popen([r.heed, "train", config], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = r.path("run-signal", "metrics.jsonl")
    deadline = time.time() + 120
    while time.time() < deadline and not (os.path.exists(metrics) and os.path.getsize(metrics) > 0):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    saved = [d for d in os.listdir(r.path("run-signal", "checkpoints")) if d.startswith("step-")]
    r.check("SIGTERM: exit 0 with a checkpoint", proc.returncode == 0 and len(saved) == 1 and "SIGTERM" in err,
            f"exit {proc.returncode}, checkpoints {saved}\n{err[-2000:]}")
    if saved:
        step = int(saved[0][5:])
        again = r.heed_run("train", config, "--set", f"training.max_steps={step + 2}", "--resume", r.path("run-signal"))
        r.check("the signal's checkpoint resumes", again.returncode == 0 and f"at step {step}" in again.stderr,
                again.stderr[-2000:])


def step_checkpoints(run):
    root = os.path.join(run, "checkpoints")
    return sorted(d for d in os.listdir(root) if d.startswith("step-")) if os.path.isdir(root) else []


def newest_step(run):
    steps = step_checkpoints(run)
    return int(steps[-1][5:]) if steps else 0


def flip_data_byte(path):
    """Flips one byte in the middle of the first tensor's data: the file keeps its size and its header, so
    only a checksum can tell."""
    header, _ = read_safetensors(path)
    with open(path, "rb") as f:
        data_start = 8 + int.from_bytes(f.read(8), "little")
    begin, end = min(v["data_offsets"] for v in header.values())
    with open(path, "r+b") as f:
        f.seek(data_start + (begin + end) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x10]))


def damaged_checkpoints(r):
    run = r.path("run-crash")
    config = r.config("crash.yaml", "run-crash", 100000, ckpt=1)
    rng = random.Random(7)
    for attempt in range(6):
        before = newest_step(run)
        proc = subprocess.Popen([r.heed, "train", config] + (["--resume", run] if attempt else []),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Wait for this attempt's first checkpoint, then kill at a random moment of the steady state, in
        # which a checkpoint is being written most of the time.
        deadline = time.time() + 120
        while time.time() < deadline and newest_step(run) <= before:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.3, 1.5))
        proc.kill()
        proc.wait()
        after = newest_step(run)
        out = r.heed_run("translate", "--model", run, "--metric", "latest", stdin="the cat sees the dog\n")
        r.check(f"SIGKILL #{attempt + 1}: training got on (newest checkpoint step {before} -> {after}) and the "
                "newest complete checkpoint loads", after > before and out.returncode == 0,
                f"steps {before} -> {after}\n{out.stderr[-1500:]}")

    newest = os.path.join(run, "checkpoints", step_checkpoints(run)[-1])
    weights = os.path.join(newest, "model.safetensors")
    intact = open(weights, "rb").read()
    flip_data_byte(weights)
    out = r.heed_run("translate", "--model", newest, stdin="the cat\n")
    r.expect_error("a checkpoint with one flipped data byte is refused by name", out,
                   "is damaged: model.safetensors fails its checksum")
    out = r.heed_run("train", config, "--set", "training.max_steps=1000000", "--resume", newest)
    r.expect_error("resume from a checkpoint with one flipped data byte is refused", out,
                   "is damaged: model.safetensors fails its checksum")
    with open(weights, "wb") as f:
        f.write(intact[:len(intact) // 2])
    out = r.heed_run("translate", "--model", newest, stdin="the cat\n")
    r.expect_error("a truncated checkpoint is refused by name", out, "is damaged: model.safetensors has")


def second_sigterm_during_save(r):
    """A second SIGTERM that lands while the first one's checkpoint is being written: the save finishes, and
    says so. The process is stopped (SIGSTOP) while the save's temporary directory exists, so the signal
    arrives during the save for sure; a big model makes the save long enough to catch."""
    config = r.config("big.yaml", "run-big", 100000, extra="")
    with open(config) as f:
        text = f.read().replace("d_model: 64", "d_model: 256").replace("ffn_dim: 128", "ffn_dim: 1024")
    with open(config, "w") as f:
        f.write(text)
    run = r.path("run-big")
    checkpoints = os.path.join(run, "checkpoints")
    for attempt in range(5):
        proc = subprocess.Popen([r.heed, "train", config, "--overwrite"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        metrics = os.path.join(run, "metrics.jsonl")
        deadline = time.time() + 120
        while time.time() < deadline and not (os.path.exists(metrics) and os.path.getsize(metrics) > 0):
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        caught = False
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if any(".tmp." in d for d in os.listdir(checkpoints)):
                proc.send_signal(signal.SIGSTOP)
                caught = any(".tmp." in d for d in os.listdir(checkpoints))
                if caught:
                    proc.send_signal(signal.SIGTERM)
                proc.send_signal(signal.SIGCONT)
                break
        _, err = proc.communicate(timeout=300)
        if not caught:
            continue
        saved = step_checkpoints(run)
        r.check("a second SIGTERM during the save: it finishes, says so, and exits 0",
                proc.returncode == 0 and "finishing the save" in err and len(saved) == 1,
                f"exit {proc.returncode}, checkpoints {saved}\n{err[-2000:]}")
        if saved:
            step = int(saved[0][5:])
            again = r.heed_run("train", config, "--set", f"training.max_steps={step + 1}", "--resume", run)
            r.check("the checkpoint saved through the second signal resumes",
                    again.returncode == 0 and f"at step {step}" in again.stderr, again.stderr[-2000:])
        return
    r.check("a second SIGTERM reached a checkpoint save", False, "the save was never caught in 5 attempts")


def checks(r):
    pairs = make_corpus(50, seed=3)
    r.write("train.en", "\n".join(en for en, _ in pairs) + "\n")
    r.write("train.es", "\n".join(es for _, es in pairs) + "\n")
    config_errors(r)
    overfit_and_translate(r, pairs)
    fine_tune(r)
    fine_tune_from_hugging_face(r)
    ensembles(r, pairs)
    early_stopping(r)
    divergence_stops(r)
    resume_is_exact(r)
    sigterm_saves(r)
    second_sigterm_during_save(r)
    damaged_checkpoints(r)


if __name__ == "__main__":
    sys.exit(run(checks, Runner))

"""`heed train` on the GPU code path, run by the simulated GPU (`training.device: sim`), end to end:

- bf16 mixed precision trains: the loss falls, validation (loss, and BLEU by beam search on the device)
  runs, checkpoints are written, and `heed translate --device sim` translates with the checkpoint
- its first loss, before any update, equals the CPU's fp32 loss within 4 bf16 unit roundoffs (2^-8 each),
  the allowance tests/test_mixed_precision.cc justifies; so does the CPU's own bf16 (bf16 matrix products),
  and `heed translate --precision bf16` on the CPU translates (both refused, by name, without AVX512_BF16)
- resume on the device is exact: 3 steps + resume to 6 log the same losses, bit for bit, as 6 steps
- fp16 with an initial loss scale far too large: the overflowing updates are skipped and reported, the scale
  halves until it fits, and the checkpoint records the scale and the skipped updates
- precision that the device cannot run is refused, naming the key

The simulator runs every CUDA thread as a fiber, so a step of this tiny model takes about two seconds: the
runs are kept short. Standard library only, so this test never skips.
"""
import json
import os
import sys

from cli_check import run
from test_train_cli import Runner, make_corpus


def losses_and_log(r, run_dir, result):
    r.check(f"{run_dir} exits 0", result.returncode == 0, result.stderr[-3000:])
    return r.losses(run_dir) if result.returncode == 0 else []


def bf16_trains(r):
    config = r.config("sim.yaml", "run-sim", 6, ckpt=3, dropout=0.1)
    sim = ["--set", "training.device=sim"]
    result = r.heed_run("train", config, *sim)
    losses = losses_and_log(r, "run-sim", result)
    r.check("the log names the device and the precision", "training on sim in BF16" in result.stderr,
            result.stderr[-2000:])
    r.check("the loss falls", len(losses) == 6 and losses[-1][1] < losses[0][1], losses)
    r.check("validation reports loss and BLEU", "validation at step 6: bleu" in result.stderr and " loss " in
            result.stderr.split("validation at step 6:")[-1], result.stderr[-2000:])
    r.check("checkpoints are written", os.path.isdir(r.path("run-sim", "checkpoints", "step-00000006")))
    src = "the cat\na big red dog sees the fish\n"
    out = r.heed_run("translate", "--model", r.path("run-sim"), "--device", "sim", "--beam-size", "2", stdin=src)
    r.check("translate --device sim translates every line", out.returncode == 0 and len(out.stdout.splitlines()) == 2
            and "on sim in BF16" in out.stderr, out.stderr[-2000:])
    r.expect_error("translate in fp16 on the CPU is refused", r.heed_run(
        "translate", "--model", r.path("run-sim"), "--precision", "fp16", stdin=src),
        "--precision fp16: the CPU computes in fp32")
    bf16 = r.heed_run("translate", "--model", r.path("run-sim"), "--precision", "bf16", stdin=src)
    r.check("translate --precision bf16 on the CPU: bf16 products, or refused without AVX512_BF16",
            (bf16.returncode == 0 and len(bf16.stdout.splitlines()) == 2 and "fp32 with bf16 matrix products" in
             bf16.stderr) or (bf16.returncode != 0 and "need AVX512_BF16" in bf16.stderr), bf16.stderr[-2000:])

    cpu = r.heed_run("train", r.config("cpu.yaml", "run-cpu", 1, dropout=0.1))
    cpu_losses = losses_and_log(r, "run-cpu", cpu)
    if losses and cpu_losses:
        first_sim, first_cpu = losses[0][1], cpu_losses[0][1]
        r.check(f"the first bf16 loss {first_sim:.6f} matches the CPU's fp32 {first_cpu:.6f} within 4 u",
                abs(first_sim - first_cpu) <= 4 * 2 ** -8 * first_cpu)
    # The CPU's bf16 rounds only the GEMMs' inputs, so the same allowance holds with room to spare.
    cpu_bf16 = r.heed_run("train", r.config("cpu-bf16.yaml", "run-cpu-bf16", 1, dropout=0.1), "--set",
                          "training.precision=bf16")
    if cpu_bf16.returncode != 0 and "need AVX512_BF16" in cpu_bf16.stderr:
        r.check("bf16 on the CPU is refused only for want of AVX512_BF16", True)
    elif cpu_losses:
        bf16_losses = losses_and_log(r, "run-cpu-bf16", cpu_bf16)
        first_bf16 = bf16_losses[0][1] if bf16_losses else float("nan")
        r.check(f"the CPU's first bf16 loss {first_bf16:.6f} matches its fp32 {first_cpu:.6f} within 4 u, and differs",
                abs(first_bf16 - first_cpu) <= 4 * 2 ** -8 * first_cpu and first_bf16 != first_cpu)

    part = r.config("part.yaml", "run-part", 3, ckpt=3, dropout=0.1)
    first = r.heed_run("train", part, *sim)
    rest = r.heed_run("train", r.config("part.yaml", "run-part", 6, ckpt=3, dropout=0.1), *sim, "--resume",
                      r.path("run-part"))
    r.check("resume runs exit 0", first.returncode == 0 and rest.returncode == 0,
            first.stderr[-1500:] + rest.stderr[-1500:])
    if losses and first.returncode == 0 and rest.returncode == 0:
        resumed = r.losses("run-part")
        r.check("resumed losses on the simulated GPU equal the uninterrupted run's, bit for bit", resumed == losses,
                "\n".join(f"{a} {b}" for a, b in zip(losses, resumed)))


def fp16_scales(r):
    config = r.config("fp16.yaml", "run-fp16", 2, ckpt=2)
    result = r.heed_run("train", config, "--set", "training.device=sim", "--set", "training.precision=fp16",
                        "--set", "training.loss_scale=4194304", "--set", "validation.metrics=[loss]",
                        "--set", "validation.early_stopping_metric=loss")
    losses = losses_and_log(r, "run-fp16", result)
    skipped = result.stderr.count("fp16 gradients overflowed")
    r.check(f"overflowing fp16 updates are skipped and reported ({skipped})", skipped >= 1 and
            "update skipped (1 so far), scale now 2097152" in result.stderr, result.stderr[-2000:])
    r.check("then training goes on", len(losses) == 2, losses)
    state_path = r.path("run-fp16", "checkpoints", "step-00000002", "state.json")
    if os.path.exists(state_path):
        with open(state_path) as f:
            scale = json.load(f)["loss_scale"]
        r.check("the checkpoint records the loss scale and the skipped updates",
                scale["skipped_updates"] == skipped and scale["scale"] == 4194304 / 2 ** skipped, scale)
    else:
        r.check("the fp16 run wrote its checkpoint", False, state_path)


def refused(r):
    config = r.config("bad.yaml", "run-bad", 1)
    r.expect_error("fp16 on the CPU", r.heed_run("train", config, "--set", "training.precision=fp16"),
                   "training.precision fp16: the CPU computes in fp32 or bf16")
    r.expect_error("fp32 on the simulated GPU", r.heed_run("train", config, "--set", "training.device=sim", "--set",
                                                           "training.precision=fp32"),
                   "training.precision fp32 on sim")
    r.expect_error("an unknown device", r.heed_run("train", config, "--set", "training.device=tpu"),
                   "training.device: unknown device 'tpu'")


def checks(r):
    pairs = make_corpus(50, seed=3)
    r.write("train.en", "\n".join(en for en, _ in pairs) + "\n")
    r.write("train.es", "\n".join(es for _, es in pairs) + "\n")
    refused(r)
    bf16_trains(r)
    fp16_scales(r)


if __name__ == "__main__":
    sys.exit(run(checks, Runner))

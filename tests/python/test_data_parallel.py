"""Data-parallel training over MPI on the CPU (`mpirun -np 2 heed train ...`).

- 2 ranks with update_freq 1 train the same model as 1 process with update_freq 2: each update sees the
  same two batches, the loss is normalised by the tokens of the whole update, and dropout keys follow the
  micro-batch, not the rank. The logged losses and gradient norms agree to 1e-7 relative (the order of a few
  sums differs; measured 2.5e-8). Averaging the ranks' gradients where they must be summed halves the gradient
  norm but moves these losses by only 5e-8 (Adam ignores the gradient's scale but for its epsilon): the
  gradient norms are what tell the two apart.
- validation split over the ranks gives the single-process BLEU exactly
- only rank 0 writes the run directory's logs and checkpoints; the run resumes under mpirun, and also on
  one process (the data position and optimizer state do not depend on the number of ranks)
- ZeRO-1 (optimizer.shard_state) trains the same weights and checkpoints the same whole moments, and the log
  shows each rank holding its half of the moments
- with the moving average of the weights (optimizer.ema_decay), 2 ranks train and validate as 1 process with
  update_freq 2, rank 0's checkpoints meet the average's closed form (test_ema.py), and with shard_state the
  saved average and raw weights are the same bit for bit
- on the simulated GPU (training.device: sim, bf16), 2 ranks train as 1 process with update_freq 2 as well:
  the GPU path's gradient buckets (device tensors) go through the device communicator, whose streams and
  events are the simulator's stand-ins and whose library is MPI on the device's host memory in NCCL's place
- a rank that hangs ends the job once a collective has waited training.collective_timeout, naming the operation
- SIGTERM to every rank (as Slurm pre-emption sends it): every rank stops after the same update, rank 0 saves, and the job exits 0

Exits 77 (skipped) without mpirun.
"""
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from cli_check import Checks, run
from test_ema import DECAY, checkpoint, closed_form_error, tensors
from test_train_cli import CONFIG, make_corpus

MPIRUN = shutil.which("mpirun")


def children(pid):
    """The processes whose parent is `pid`, from /proc (no procps needed)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    # The command name is in parentheses and may hold spaces; the parent id follows its state.
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


class Runner(Checks):
    def mpi(self, ranks, *args):
        # --oversubscribe: CI machines may have fewer cores than ranks; root is the CI user.
        return [MPIRUN, "-np", str(ranks), "--oversubscribe", "--allow-run-as-root", self.heed, *args]

    def config(self, name, run, steps, every=1000):
        text = CONFIG.format(run=self.path(run), dir=self.tmp, steps=steps, ckpt=every, dropout=0.1)
        text = text.replace("max_tokens: 256", "max_tokens: 96\n  max_length: 32").replace("every: 0\n", f"every: {every}\n")
        return self.write(name, text)

    def records(self, run, kind):
        with open(self.path(run, "metrics.jsonl")) as f:
            return [r for r in map(json.loads, f) if r["kind"] == kind]


def one_process_and_two_ranks(r, tag, steps, label, bound, *options):
    """Trains `steps` updates as 1 process with update_freq 2 and as 2 ranks with update_freq 1 (small buckets,
    so that reductions start during the backward pass) and checks that they log the same losses and gradient
    norms, to `bound` relative."""
    one = r.heed_run("train", r.config(f"one{tag}.yaml", f"run-one{tag}", steps, every=4), *options, "--set",
                     "optimizer.update_freq=2")
    two = subprocess.run(r.mpi(2, "train", r.config(f"two{tag}.yaml", f"run-two{tag}", steps, every=4), *options,
                               "--set", "training.bucket_mb=0.03"), capture_output=True, text=True)
    r.check(f"{label}: 1 process and 2 ranks exit 0", one.returncode == 0 and two.returncode == 0,
            one.stderr[-1500:] + two.stderr[-3000:])
    if one.returncode == 0 and two.returncode == 0:
        a, b = r.records(f"run-one{tag}", "train"), r.records(f"run-two{tag}", "train")
        for key in ("loss", "grad_norm"):
            worst = worst_relative_difference(a, b, key)
            r.check(f"{label}: {key} (worst relative difference {worst:.1e}, bound {bound:.0e})",
                    len(a) == len(b) == steps and worst <= bound,
                    "\n".join(f"{x[key]!r} {y[key]!r}" for x, y in zip(a, b)))
    return one, two


def worst_relative_difference(a, b, key):
    """The largest |x - y| / |x| of `key` over two runs' records; NaN where any record is NaN."""
    worst = 0.0
    for x, y in zip(a, b):
        difference = abs(x[key] - y[key]) / abs(x[key])
        if math.isnan(difference):
            return math.nan
        worst = max(worst, difference)
    return worst


def moving_average(r):
    """Every rank keeps the whole average and updates it from the same weights; validation split over the
    ranks scores each rank's own average, so a rank whose average strayed would move the validation loss."""
    options = ["--set", f"optimizer.ema_decay={DECAY}", "--set", "checkpoints.every=1", "--set",
               "checkpoints.keep_last=4"]
    one, two = one_process_and_two_ranks(r, "-ema", 4, "with the moving average", 1e-7, *options)
    zero = subprocess.run(r.mpi(2, "train", r.config("zero-ema.yaml", "run-zero-ema", 4, every=4), *options, "--set",
                                "optimizer.shard_state=true", "--set", "training.bucket_mb=0.03"),
                          capture_output=True, text=True)
    r.check("with the moving average and shard_state: 2 ranks exit 0", zero.returncode == 0, zero.stderr[-3000:])
    if one.returncode != 0 or two.returncode != 0 or zero.returncode != 0:
        return
    run = r.path("run-two-ema")
    worst, where = closed_form_error(run, tensors(checkpoint(run, 1)), 3, DECAY, first=2)
    r.check(f"rank 0's average meets its closed form over updates 2-4 (worst {worst:.2f} of the fp32 bound)",
            worst <= 1, where)
    # The bound of the split validation above: the two models differ here as well, by the rounding of the
    # gradient sums that moves the losses by 2.5e-8 (measured 7e-9 on the validation loss). A rank 1 that
    # never updated its average moved it by 9e-3.
    a, b = r.records("run-one-ema", "valid"), r.records("run-two-ema", "valid")
    worst = worst_relative_difference(a, b, "loss")
    r.check(f"the ranks validate the average as 1 process does (relative difference {worst:.1e})",
            len(a) == len(b) == 1 and worst <= 1e-6, (a, b))
    files = ["model.safetensors", "training_weights.safetensors"]
    same = [f for f in files if open(checkpoint(run, 4, f), "rb").read()
            == open(checkpoint(r.path("run-zero-ema"), 4, f), "rb").read()]
    r.check(f"with shard_state, the same {', '.join(same)}, bit for bit", same == files, same)


def checks(r):
    pairs = make_corpus(400, seed=5)
    r.write("train.en", "\n".join(en for en, _ in pairs) + "\n")
    r.write("train.es", "\n".join(es for _, es in pairs) + "\n")

    one, two = one_process_and_two_ranks(r, "", 8, "2 ranks x 1 batch train as 1 process x 2 batches", 1e-7)
    if one.returncode == 0 and two.returncode == 0:
        # Rounding makes the two models above differ in the last bits, which can flip a beam. With a
        # learning rate far below one ulp of any weight, both runs validate the very same weights.
        frozen = ["--set", "optimizer.lr=1e-12"]
        r.heed_run("train", r.config("v1.yaml", "run-v1", 2, every=2), *frozen)
        subprocess.run(r.mpi(2, "train", r.config("v2.yaml", "run-v2", 2, every=2), *frozen), capture_output=True)
        va, vb = r.records("run-v1", "valid"), r.records("run-v2", "valid")
        r.check("validation split over ranks gives the single-process BLEU and loss",
                len(va) == len(vb) == 1 and va[0]["bleu"] == vb[0]["bleu"] and va[0]["bleu"] > 0
                and abs(va[0]["loss"] - vb[0]["loss"]) < 1e-6 * va[0]["loss"], (va, vb))
        logs = [line for line in two.stderr.splitlines() if "[info]" in line]
        buckets = [line for line in logs if "all-reduce buckets" in line]
        found = re.search(r"(\d+) all-reduce buckets; the first can start after (\d+) of (\d+)", "".join(buckets))
        count, first, nodes = map(int, found.groups()) if found else (0, 0, 0)
        r.check(f"{count} gradient buckets, the first starting after {first} of {nodes} backward nodes",
                count > 1 and first < nodes // 2, logs[-5:])
        r.check("only rank 0 logs progress", sum("step 8/8" in line for line in logs) == 1, logs[-5:])
        # The GPU code path on the simulated GPU, in bf16: the buckets hold device tensors.
        sim = ["--set", "training.device=sim", "--set", "validation.metrics=[loss]", "--set",
               "validation.early_stopping_metric=loss"]
        _, two_sim = one_process_and_two_ranks(r, "-sim", 3, "on the simulated GPU too", 1e-7, *sim)
        r.check("the simulated GPU's ranks use the device communicator (streams, events, MPI in NCCL's place)",
                "data parallel on sim: MPI on the simulated GPU's memory (standing in for NCCL)" in two_sim.stderr,
                two_sim.stderr[-2000:])
        # ZeRO-1: each rank keeps half of Adam's moments; the training is the same.
        zero = subprocess.run(r.mpi(2, "train", r.config("zero.yaml", "run-zero", 8, every=4), "--set",
                                    "optimizer.shard_state=true"), capture_output=True, text=True)
        if zero.returncode == 0:
            a, b = r.records("run-two", "train"), r.records("run-zero", "train")
            worst = worst_relative_difference(a, b, "loss")
            step8 = os.path.join("checkpoints", "step-00000008")
            same = [open(r.path(run, step8, f), "rb").read() for run in ("run-two", "run-zero")
                    for f in ("model.safetensors", "optimizer.safetensors")]
            r.check(f"sharded optimizer state trains the same (worst relative loss difference {worst:.1e}; weights and "
                    f"gathered moments {'identical' if same[0] == same[2] and same[1] == same[3] else 'differ'})",
                    len(b) == 8 and worst <= 1e-7 and same[0] == same[2] and same[1] == same[3])
            # Identical results would also come from a run that ignored shard_state: the log must show each
            # rank holding its half of the moments.
            model = re.search(r"model: (\d+) parameters", zero.stderr)
            shards = re.search(r"Adam's moments of the (\d+) trainable values sharded over 2 ranks: "
                               r"rank 0 \[0, (\d+)\), rank 1 \[(\d+), (\d+)\)", zero.stderr)
            total, end0, begin1, end1 = map(int, shards.groups()) if shards else (0, 0, 0, 0)
            r.check(f"each rank holds half of the moments (rank 0 [0, {end0}), rank 1 [{begin1}, {end1}))",
                    model is not None and total == int(model.group(1)) > 0 and end0 == begin1 == (total + 1) // 2
                    and end1 == total, [line for line in zero.stderr.splitlines() if "model:" in line or "Adam" in line])
        else:
            r.check("sharded optimizer state trains the same", False, zero.stderr[-2000:])
        moving_average(r)
        shutil.copytree(r.path("run-two"), r.path("run-mixed"))
        resumed = subprocess.run(r.mpi(2, "train", r.config("two.yaml", "run-two", 12, every=4), "--resume",
                                       r.path("run-two")), capture_output=True, text=True)
        r.check("the 2-rank run resumes under mpirun", resumed.returncode == 0 and "at step 8" in resumed.stderr,
                resumed.stderr[-2000:])
        zero_resumed = subprocess.run(r.mpi(2, "train", r.config("zero.yaml", "run-zero", 12, every=4), "--resume",
                                            r.path("run-zero"), "--set", "optimizer.shard_state=true"),
                                      capture_output=True, text=True)
        if zero_resumed.returncode == 0 and resumed.returncode == 0:
            a, b = r.records("run-two", "train"), r.records("run-zero", "train")
            r.check("a sharded run resumes from its gathered moments", [x["loss"] for x in a] == [y["loss"] for y in b],
                    "\n".join(f"{x['loss']} {y['loss']}" for x, y in zip(a, b)))
        else:
            r.check("a sharded run resumes", False, zero_resumed.stderr[-2000:])
        # The data position and the moments do not depend on the number of ranks: one process taking both
        # batches of each update continues the 2-rank run as the 2 ranks do.
        mixed = r.heed_run("train", r.config("mixed.yaml", "run-mixed", 12, every=4), "--resume", r.path("run-mixed"),
                           "--set", "optimizer.update_freq=2")
        if resumed.returncode == 0 and mixed.returncode == 0:
            a, b = r.records("run-two", "train")[8:], r.records("run-mixed", "train")[8:]
            for key in ("loss", "grad_norm"):
                worst = worst_relative_difference(a, b, key)
                r.check(f"a 2-rank checkpoint resumes on 1 process: {key} (worst relative difference {worst:.1e})",
                        len(a) == len(b) == 4 and worst <= 1e-7, "\n".join(f"{x} {y}" for x, y in zip(a, b)))
        else:
            r.check("a 2-rank checkpoint resumes on 1 process", False, mixed.stderr[-2000:])

    proc = subprocess.Popen(r.mpi(2, "train", r.config("long.yaml", "run-long", 100000)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = r.path("run-long", "metrics.jsonl")
    deadline = time.time() + 120
    while time.time() < deadline and not (os.path.exists(metrics) and os.path.getsize(metrics) > 0):
        time.sleep(0.2)
    # As Slurm pre-empts a job: SIGTERM to every rank (here the processes mpirun started).
    for pid in children(proc.pid):
        os.kill(pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    saved = [d for d in os.listdir(r.path("run-long", "checkpoints")) if d.startswith("step-")]
    r.check("SIGTERM to every rank: all exit 0, one checkpoint", proc.returncode == 0 and len(saved) == 1,
            f"exit {proc.returncode}, checkpoints {saved}\n{err[-3000:]}")

    # A rank that hangs (stopped here with SIGSTOP) must not leave the others waiting forever.
    timeout = 3
    proc = subprocess.Popen(r.mpi(2, "train", r.config("hang.yaml", "run-hang", 100000), "--set",
                                  f"training.collective_timeout={timeout}"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = r.path("run-hang", "metrics.jsonl")
    deadline = time.time() + 120
    while time.time() < deadline and not (os.path.exists(metrics) and os.path.getsize(metrics) > 0):
        time.sleep(0.2)
    ranks = children(proc.pid)
    os.kill(ranks[-1], signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        _, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    finally:
        elapsed = time.monotonic() - stopped
        for pid in ranks:  # let a stopped process receive the launcher's kill
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    # The names the MPI communicator gives its collectives (src/dist/mpi_communicator.cc).
    found = re.search(r"rank [01] waited ([0-9.]+) s in (all_reduce \((?:tensor|values|gradient bucket)\)|broadcast|"
                      r"all_gather|reduce_scatter|barrier) for the other ranks", err)
    waited, operation = (float(found.group(1)), found.group(2)) if found else (0.0, None)
    # The other rank's collective may have begun up to one step before the SIGSTOP, so the job's end is
    # measured against the timeout by the rank itself (`waited`); from outside, only a generous upper bound.
    r.check(f"a hung rank ends the job with an error naming the operation ({operation}, waited {waited} s of "
            f"{timeout} s; the job ended {elapsed:.1f} s after the SIGSTOP)",
            proc.returncode not in (0, None) and found is not None and waited >= timeout and elapsed < 60,
            err[-3000:])


if __name__ == "__main__":
    if MPIRUN is None:
        print("SKIPPED: mpirun not found (Debian: openmpi-bin)")
        sys.exit(77)
    sys.exit(run(checks, Runner))

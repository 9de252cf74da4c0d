"""What the parity tests share: random batches, running `heed`, and the one gradient comparison rule.

The rule, used against every reference: |loss_heed - loss_ref| / |loss_ref| <= 1e-4, and for every
parameter ||g_heed - g_ref|| / ||g_ref|| <= 1e-4, with the reference in float64.

Why 1e-4: Heed computes in fp32 (unit roundoff 6e-8); in the tiny models of these tests every reduction
has at most a few hundred terms and the graph is about twenty ops deep, so its accumulated relative
error is about 1e-6. A float64 reference contributes nothing measurable. A real bug (a missing mask,
scale or residual, a transposed weight, a wrong tie) moves results by 1e-2 or more.

The one exception is the key projection bias: its exact gradient is zero (softmax is unchanged when
every score of a query shifts by the same q.b_k), so both sides hold rounding noise there, and its
error is measured against the gradient of the same projection's weight instead.
"""
import json
import subprocess

import torch

TOLERANCE = 1e-4


def make_batch(vocab_size, pad, eos, start, rng, padded, rows=3, src_len=7, tgt_len=6):
    """Right-padded rows of random words; tgt_in is the start token, then tgt_out shifted right."""
    words = [t for t in range(vocab_size) if t not in (pad, eos)]
    src_lengths = [src_len, 5, 2] if padded else [src_len] * rows
    tgt_lengths = [tgt_len, 3, 1] if padded else [tgt_len] * rows
    batch = {"src": [], "tgt_in": [], "tgt_out": []}
    for s, t in zip(src_lengths, tgt_lengths):
        source = [rng.choice(words) for _ in range(s - 1)] + [eos]
        target = [rng.choice(words) for _ in range(t - 1)] + [eos]
        batch["src"].append(source + [pad] * (src_len - s))
        batch["tgt_out"].append(target + [pad] * (tgt_len - t))
        batch["tgt_in"].append([start] + target[:-1] + [pad] * (tgt_len - t))
    return batch


def heed(binary, *args):
    """Runs `heed ARGS`; returns the CompletedProcess (stdout and stderr as text)."""
    return subprocess.run([binary, *args], capture_output=True, text=True)


def heed_grads(binary, *args):
    """Runs `heed grads ARGS`; returns ({"loss", "tokens"}, None) or (None, an error message)."""
    run = heed(binary, "grads", *args)
    if run.returncode != 0:
        return None, f"heed grads failed (exit {run.returncode}):\n{run.stderr}"
    return json.loads(run.stdout.strip().splitlines()[-1]), None


def loss_error(heed_loss, ref_loss):
    return abs(heed_loss - ref_loss) / abs(ref_loss)


def compare_grads(heed_grads, ref_grads):
    """Both {name: tensor}. Returns (failure messages, (worst relative error, its name))."""
    failures = []
    missing, extra = sorted(set(ref_grads) - set(heed_grads)), sorted(set(heed_grads) - set(ref_grads))
    if missing or extra:
        failures.append(f"gradient names differ: missing {missing}, unexpected {extra}")
    worst = (0.0, "")
    for name, ref in ref_grads.items():
        if name not in heed_grads:
            continue
        got = heed_grads[name].double()
        if got.shape != ref.shape:
            failures.append(f"{name}: gradient shape {list(got.shape)}, expected {list(ref.shape)}")
            continue
        scale = ref.norm()
        if name.endswith("k_proj.bias"):
            scale = ref_grads[name[: -len("bias")] + "weight"].norm()
        err = float((got - ref.double()).norm()) / max(float(scale), 1e-30)
        worst = max(worst, (err, name))
        if err > TOLERANCE:
            failures.append(f"{name}: relative error {err:.2e} (|g_ref| = {float(ref.norm()):.3e})")
    return failures, worst


class float64_default:
    """Context manager: torch's default dtype is float64 inside (HF builds its masks in it)."""

    def __enter__(self):
        self.saved = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)

    def __exit__(self, *exc):
        torch.set_default_dtype(self.saved)

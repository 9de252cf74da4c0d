"""Heed's safetensors files against the Hugging Face safetensors library, in both directions.

- Weights and gradients written by `heed grads` load with safetensors.torch.load_file (the Rust
  reader, which rejects malformed headers, gaps and overlaps) and safe_open, with the names, shapes
  and dtype of the parameter contract.
- A weights file that Python writes (its own key order, data order and padding, plus metadata) is
  accepted by `heed grads --weights` and means the same model: loss and every gradient are bitwise
  those of the original file, and --save-weights gives back the same values.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

try:
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
except ImportError as e:
    print(f"skipped: needs torch and safetensors ({e}); run scripts/setup-python.sh")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_transformer as ref  # noqa: E402

MODEL = {"vocab_size": 30, "d_model": 8, "heads": 2, "ffn_dim": 16, "encoder_layers": 1, "decoder_layers": 2,
         "tie_embeddings": "none", "final_logits_bias": True}
BATCH = {"src": [[5, 6, 7, 2], [8, 9, 2, 0]], "tgt_in": [[0, 3, 4], [0, 5, 0]], "tgt_out": [[3, 4, 2], [5, 2, 0]]}


class Check:
    def __init__(self):
        self.failures = 0

    def __call__(self, ok, label, detail=""):
        print(f"{'ok  ' if ok else 'FAIL'} {label}{': ' + detail if detail and not ok else ''}")
        self.failures += not ok


def grads(heed, *args):
    run = subprocess.run([heed, "grads", *args], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"FAIL heed grads {' '.join(args)} exited {run.returncode}:\n{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def same_tensors(a, b):
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heed", required=True, help="path to the heed binary")
    args = parser.parse_args()
    check = Check()
    with tempfile.TemporaryDirectory() as tmp:
        path = lambda name: os.path.join(tmp, name)  # noqa: E731
        with open(path("m.yaml"), "w") as f:
            json.dump(MODEL, f)  # JSON is YAML
        with open(path("b.json"), "w") as f:
            json.dump(BATCH, f)
        # One thread: this test is about files, so results must be bitwise reproducible whatever the scheduling.
        common = ["--model-config", path("m.yaml"), "--batch", path("b.json"), "--threads", "1"]
        expected = ref.parameter_shapes(ref.load_config(path("m.yaml")))

        first = grads(args.heed, *common, "--seed", "1", "--save-weights", path("w.safetensors"),
                      "--out", path("g.safetensors"))
        for label, file in (("weights", "w.safetensors"), ("gradients", "g.safetensors")):
            tensors = load_file(path(file))
            check(sorted(tensors) == sorted(expected), f"heed's {label} load in safetensors.torch with the contract's names",
                  f"got {sorted(tensors)}")
            bad = [k for k, t in tensors.items() if t.dtype != torch.float32 or list(t.shape) != expected.get(k)]
            check(not bad, f"heed's {label} are float32 with the contract's shapes", f"wrong: {bad}")
            check(all(torch.isfinite(t).all() for t in tensors.values()), f"heed's {label} are finite")
            with safe_open(path(file), framework="pt") as f:
                check(sorted(f.keys()) == sorted(expected) and f.metadata() is None,
                      f"safe_open reads heed's {label} (no metadata written when there is none)")
        weights = load_file(path("w.safetensors"))
        check(not torch.equal(weights["lm_head.weight"], weights["decoder.embed_tokens.weight"]),
              "untied matrices hold different values")

        # Python writes the same weights its own way; Heed must read them as the same model.
        save_file({k: v.clone() for k, v in reversed(list(weights.items()))}, path("py.safetensors"),
                  metadata={"format": "pt", "written_by": "safetensors.torch"})
        second = grads(args.heed, *common, "--weights", path("py.safetensors"), "--save-weights",
                       path("w2.safetensors"), "--out", path("g2.safetensors"))
        check(second == first, "a Python-written weights file gives the same loss", f"{second} vs {first}")
        check(same_tensors(load_file(path("g2.safetensors")), load_file(path("g.safetensors"))),
              "... and bitwise the same gradients")
        check(same_tensors(load_file(path("w2.safetensors")), weights), "... and --save-weights returns the same values")

        # Changed values must change the result: the file is really read, not merely accepted.
        weights["final_logits_bias"][4] += 1.0
        save_file(weights, path("py2.safetensors"))
        third = grads(args.heed, *common, "--weights", path("py2.safetensors"), "--out", path("g3.safetensors"))
        check(third["loss"] != first["loss"], "a changed weight changes the loss", f"{third} vs {first}")
    print(f"{check.failures} failed")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())

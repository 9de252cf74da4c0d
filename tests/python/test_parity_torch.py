"""Heed's loss and every parameter gradient against the PyTorch reference (reference_transformer.py).

For each configuration below, `heed grads` draws a random model (--seed, --save-weights; where a case scales
some weights, they go back in with --weights) and computes the loss and gradients of a random batch; the reference recomputes both in float64 from the same
weights. The parameter names must be identical, and loss and gradients must agree to the tolerance
explained in parity.py (1e-4 relative).
"""
import argparse
import json
import os
import random
import sys
import tempfile

try:
    import torch
    import yaml
    from safetensors.torch import load_file, save_file
except ImportError as e:
    print(f"skipped: the PyTorch reference needs torch, safetensors and yaml ({e}); run scripts/setup-python.sh")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import parity  # noqa: E402
import reference_transformer as ref  # noqa: E402

TINY = {"vocab_size": 50, "d_model": 16, "heads": 2, "ffn_dim": 32, "encoder_layers": 2, "decoder_layers": 2}

# (name, config overrides, whether the batch has padding, weight scales). Dropout stays at its non-zero
# defaults in the configs: `heed grads` must switch it off. Weight scales {name prefix: factor} multiply
# the drawn weights before the gradients are taken.
CASES = [
    ("post relu tied-all padded", {}, True, {}),
    ("post relu tied-all unpadded", {}, False, {}),
    ("pre gelu untied ls0.1 bias padded",
     {"norm": "pre", "activation": "gelu", "tie_embeddings": "none", "label_smoothing": 0.1,
      "final_logits_bias": True}, True, {}),
    ("post gelu tied-target ls0.1 bias unscaled d32 padded",
     {"activation": "gelu", "tie_embeddings": "target", "label_smoothing": 0.1, "final_logits_bias": True,
      "scale_embedding": False, "d_model": 32, "ffn_dim": 64}, True, {}),
    ("pre swish tied-all pad=3 dropouts padded",
     {"norm": "pre", "activation": "swish", "pad_id": 3, "decoder_start_id": 3, "attention_dropout": 0.1,
      "activation_dropout": 0.1}, True, {}),
    # On rows of variance ~1, eps 1e-5 instead of 1e-6 moves a LayerNorm's output by 4.5e-6 relative, far
    # below the tolerance. Here the first encoder and decoder layers feed their second LayerNorm rows of
    # variance ~1e-6 (the first LayerNorm's gain and bias and the sublayer after it scaled by 1e-3), whose
    # outputs eps 1e-5 would shrink by more than half.
    ("post relu untied ls0.1 bias eps1e-6 tiny-variance rows unpadded",
     {"tie_embeddings": "none", "label_smoothing": 0.1, "final_logits_bias": True, "layer_norm_eps": 1e-6}, False,
     {"encoder.layers.0.self_attn_layer_norm.": 1e-3, "encoder.layers.0.fc2.": 1e-3,
      "decoder.layers.0.self_attn_layer_norm.": 1e-3, "decoder.layers.0.encoder_attn.out_proj.": 1e-3}),
]


def scale_weights(path, scales):
    """Multiplies, in the safetensors file at `path`, every tensor whose name starts with a prefix in `scales`."""
    tensors = load_file(path)
    for name in tensors:
        for prefix, factor in scales.items():
            if name.startswith(prefix):
                tensors[name] = tensors[name] * factor
    save_file(tensors, path)


def check_case(heed, tmp, index, name, overrides, padded, scales):
    """Runs one configuration; prints its summary and returns its failure messages."""
    cfg = {**ref.DEFAULTS, **TINY, **overrides}
    paths = {k: os.path.join(tmp, f"{index}.{k}") for k in ("yaml", "json", "weights", "grads")}
    with open(paths["yaml"], "w") as f:
        yaml.safe_dump(cfg, f)
    batch = parity.make_batch(cfg["vocab_size"], cfg["pad_id"], cfg["eos_id"], cfg["decoder_start_id"],
                              random.Random(100 + index), padded)
    with open(paths["json"], "w") as f:
        json.dump(batch, f)

    weights = ["--seed", str(index + 1), "--save-weights", paths["weights"]]
    if scales:  # draw the weights, scale them, and take the gradients of the scaled ones
        _, error = parity.heed_grads(heed, "--model-config", paths["yaml"], *weights, "--batch", paths["json"],
                                     "--out", paths["grads"])
        if error:
            print(f"FAIL {name}")
            return [error]
        scale_weights(paths["weights"], scales)
        weights = ["--weights", paths["weights"]]
    result, error = parity.heed_grads(heed, "--model-config", paths["yaml"], *weights, "--batch", paths["json"],
                                      "--out", paths["grads"])
    if error:
        print(f"FAIL {name}")
        return [error]

    params = ref.load_weights(paths["weights"], ref.load_config(paths["yaml"]), dtype=torch.float64)
    ids = {k: torch.tensor(v) for k, v in batch.items()}
    loss, tokens = ref.model_loss(cfg, params, ids["src"], ids["tgt_in"], ids["tgt_out"])
    loss.backward()

    failures, worst = parity.compare_grads(load_file(paths["grads"]), {n: p.grad for n, p in params.items()})
    loss_err = parity.loss_error(result["loss"], float(loss))
    if loss_err > parity.TOLERANCE:
        failures.append(f"loss: heed {result['loss']:.8g}, reference {float(loss):.8g}, relative error {loss_err:.2e}")
    if result["tokens"] != tokens:
        failures.append(f"tokens: heed {result['tokens']}, reference {tokens}")
    print(f"{'FAIL' if failures else 'ok  '} {name}: loss heed {result['loss']:.6f} ref {float(loss):.6f} "
          f"(rel {loss_err:.1e}), {len(params)} gradients, worst {worst[1]} rel {worst[0]:.1e}")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heed", required=True, help="path to the heed binary")
    args = parser.parse_args()
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, overrides, padded, scales) in enumerate(CASES):
            failures = check_case(args.heed, tmp, index, name, overrides, padded, scales)
            for message in failures:
                print(f"     {message}")
            failed += bool(failures)
    print(f"{len(CASES) - failed} of {len(CASES)} configurations match the reference")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

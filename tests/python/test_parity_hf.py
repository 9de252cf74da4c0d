"""`heed import-hf` / `heed export-hf` against Hugging Face's MarianMTModel, which nobody here wrote.

(a) import: random tiny MarianMT models (relu/gelu/swish, all three tie modes, pad as the last id as in
    the OPUS-MT models) saved with save_pretrained, imported, and run through `heed grads`. Loss and
    gradients (renamed with `export-hf --names-only`) must match MarianMTModel's own in float64.
(b) export: random Heed models exported, loaded with MarianMTModel.from_pretrained (no missing or
    unexpected keys), same loss and gradients; importing the export gives back the same weights and
    config.
(c) config fields: one that does not define the network (a new release's bookkeeping such as 5.x's
    "dtype", or any unknown name) is accepted and logged; one that does, holding a value Heed cannot
    build, is refused naming the field.
(d) rejection: unknown tensors, an unsupported tie mode, foreign position tables, tied copies that differ,
    pre-norm export, and non-Heed names each give an error that names them.

The models are made by whatever transformers this interpreter has: CTest runs this file with the pinned
4.44 (.venv) and again with a current 5.x (.venv-hf5), whose save_pretrained writes different config.json
fields.

Tolerances are those of parity.py. HF has no label smoothing in its loss, so these models use none;
final_logits_bias is a buffer in HF, so it has no gradient to compare.
"""
import argparse
import filecmp
import json
import os
import random
import sys
import tempfile

try:
    import torch
    import transformers
    import yaml
    from safetensors.torch import load_file, save_file
    from transformers import MarianConfig, MarianMTModel
except ImportError as e:
    print(f"skipped: needs torch, transformers, safetensors and yaml ({e}); run scripts/setup-python.sh")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import parity  # noqa: E402

transformers.logging.set_verbosity_error()
SIZES = {"d_model": 16, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 2,
         "decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32}
VOCAB = 60


class Report:
    def __init__(self):
        self.failed = 0

    def case(self, name, failures, summary=""):
        print(f"{'FAIL' if failures else 'ok  '} {name}{': ' + summary if summary else ''}")
        for message in failures:
            print(f"     {message}")
        self.failed += bool(failures)


def random_marian(seed, pad, eos, bias=True, **options):
    """A MarianMTModel whose every weight (and final_logits_bias, if bias) is perturbed well away from init."""
    torch.manual_seed(seed)
    config = MarianConfig(vocab_size=VOCAB, decoder_vocab_size=VOCAB, max_position_embeddings=64, pad_token_id=pad,
                          eos_token_id=eos, forced_eos_token_id=eos, decoder_start_token_id=pad, **SIZES, **options)
    model = MarianMTModel(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_positions" not in name:
                p.add_(0.3 * torch.randn_like(p))
        if bias:
            model.final_logits_bias.normal_(0, 0.3)
    return model


def hf_loss_and_grads(model, batch, pad):
    """MarianMTModel's loss (labels: pad -> -100) and parameter gradients, in float64."""
    ids = {k: torch.tensor(v) for k, v in batch.items()}
    # The position tables are a fixed sinusoid in Marian, but transformers 5.x's from_pretrained makes them
    # trainable; Heed has no such parameter to compare with.
    for name, p in model.named_parameters():
        if "embed_positions" in name:
            p.requires_grad_(False)
    with parity.float64_default():
        model = model.double().eval()
        model.zero_grad()
        out = model(input_ids=ids["src"], attention_mask=(ids["src"] != pad).long(), decoder_input_ids=ids["tgt_in"],
                    labels=ids["tgt_out"].masked_fill(ids["tgt_out"] == pad, -100))
        out.loss.backward()
    return float(out.loss), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


def compare_with_hf(heed, tmp, model_dir, model, batch, pad):
    """Runs heed grads on model_dir and compares with the HF model. Returns (failures, summary)."""
    batch_path, grads_path, hf_grads_path = (os.path.join(tmp, n) for n in ("b.json", "g.st", "g_hf.st"))
    with open(batch_path, "w") as f:
        json.dump(batch, f)
    result, error = parity.heed_grads(heed, "--model", model_dir, "--batch", batch_path, "--out", grads_path)
    if error:
        return [error], ""
    rename = parity.heed(heed, "export-hf", "--names-only", grads_path, hf_grads_path)
    if rename.returncode != 0:
        return [f"export-hf --names-only failed:\n{rename.stderr}"], ""
    heed_grads = load_file(hf_grads_path)
    heed_grads.pop("final_logits_bias", None)  # a buffer in HF, trainable in Heed
    loss, grads = hf_loss_and_grads(model, batch, pad)
    failures, worst = parity.compare_grads(heed_grads, grads)
    loss_err = parity.loss_error(result["loss"], loss)
    if loss_err > parity.TOLERANCE:
        failures.append(f"loss: heed {result['loss']:.8g}, MarianMTModel {loss:.8g}, relative error {loss_err:.2e}")
    return failures, (f"loss heed {result['loss']:.6f} hf {loss:.6f} (rel {loss_err:.1e}), {len(grads)} gradients, "
                      f"worst {worst[1]} rel {worst[0]:.1e}")


def test_import(heed, tmp, report):
    cases = [  # name, options, pad, eos, non-zero final_logits_bias
        ("relu tied-all scaled pad=last", {"activation_function": "relu", "scale_embedding": True}, VOCAB - 1, 0, True),
        ("gelu tied-target", {"activation_function": "gelu", "share_encoder_decoder_embeddings": False}, 0, 2, True),
        ("swish untied scaled", {"activation_function": "swish", "share_encoder_decoder_embeddings": False,
                                 "tie_word_embeddings": False, "scale_embedding": True}, 1, 2, True),
        ("silu tied-all zero-bias", {"activation_function": "silu"}, 0, 2, False),
    ]
    for index, (name, options, pad, eos, bias) in enumerate(cases):
        model = random_marian(index, pad, eos, bias, **options)
        hf_dir, model_dir = os.path.join(tmp, f"import{index}.hf"), os.path.join(tmp, f"import{index}.heed")
        model.save_pretrained(hf_dir, safe_serialization=True)
        run = parity.heed(heed, "import-hf", hf_dir, model_dir)
        if run.returncode != 0:
            report.case(f"import {name}", [f"import-hf failed:\n{run.stderr}"])
            continue
        batch = parity.make_batch(VOCAB, pad, eos, pad, random.Random(index), padded=True)
        failures, summary = compare_with_hf(heed, tmp, model_dir, model, batch, pad)
        with open(os.path.join(model_dir, "model.yaml")) as f:
            imported = yaml.safe_load(f)
        if imported["final_logits_bias"] != bias:  # an all-zero bias is dropped
            failures.append(f"model.yaml has final_logits_bias: {imported['final_logits_bias']}, expected {bias}")
        report.case(f"import {name}", failures, summary)


def test_export(heed, tmp, report):
    cases = [  # name, model.yaml overrides
        ("relu tied-all bias", {"activation": "relu", "final_logits_bias": True}),
        ("gelu untied unscaled", {"activation": "gelu", "tie_embeddings": "none", "scale_embedding": False}),
        ("swish tied-target bias pad=5", {"activation": "swish", "tie_embeddings": "target", "final_logits_bias": True,
                                          "pad_id": 5, "decoder_start_id": 5}),
    ]
    for index, (name, overrides) in enumerate(cases):
        config = {"vocab_size": VOCAB, "d_model": 16, "heads": 2, "ffn_dim": 32, "encoder_layers": 2,
                  "decoder_layers": 2, **overrides}
        model_dir, hf_dir, back_dir = (os.path.join(tmp, f"export{index}.{s}") for s in ("heed", "hf", "back"))
        os.makedirs(model_dir)
        with open(os.path.join(model_dir, "model.yaml"), "w") as f:
            yaml.safe_dump(config, f)
        pad = config.get("pad_id", 0)
        batch = parity.make_batch(VOCAB, pad, 2, pad, random.Random(50 + index), padded=True)
        with open(os.path.join(tmp, "b.json"), "w") as f:
            json.dump(batch, f)
        _, error = parity.heed_grads(heed, "--model-config", os.path.join(model_dir, "model.yaml"), "--seed",
                                     str(7 + index), "--save-weights", os.path.join(model_dir, "model.safetensors"),
                                     "--batch", os.path.join(tmp, "b.json"), "--out", os.path.join(tmp, "g0.st"))
        weights_path = os.path.join(model_dir, "model.safetensors")
        start_table = "shared.weight" if config.get("tie_embeddings", "all") == "all" else "decoder.embed_tokens.weight"
        if not error:
            weights = {k: t.clone() for k, t in load_file(weights_path).items()}
            if config.get("final_logits_bias"):
                # A trained bias is non-zero; a seeded one is zero, which import-hf reads as "no bias".
                weights["final_logits_bias"] = 0.3 * torch.randn(weights["final_logits_bias"].shape)
            # MarianMT runtimes other than transformers start the decoder from a zero vector, so the export
            # zeroes the start token's row and folds it into the decoder's positions (test_marian_hf.cc,
            # test_export_ctranslate2.py); with a random tied row, the pad logit would change too. Trained
            # models make pad all but impossible; a random one does not, so it starts from zero here.
            weights[start_table][pad] = 0
            save_file(weights, weights_path)
        run = parity.heed(heed, "export-hf", model_dir, hf_dir)
        if error or run.returncode != 0:
            report.case(f"export {name}", [error or f"export-hf failed:\n{run.stderr}"])
            continue
        model, info = MarianMTModel.from_pretrained(hf_dir, output_loading_info=True)
        failures = [f"from_pretrained: {k} {v}" for k, v in info.items() if v]

        # The export numbers the ids OPUS-MT's way (eos first, pad last), and import-hf keeps that numbering:
        # Heed on the import and MarianMTModel on the export see the same batch, renumbered.
        order = [2] + [i for i in range(VOCAB) if i not in (2, pad)] + [pad]
        new_id = {old: new for new, old in enumerate(order)}
        hf_batch = {k: [[new_id[t] for t in row] for row in rows] for k, rows in batch.items()}
        run = parity.heed(heed, "import-hf", hf_dir, back_dir)
        if run.returncode != 0:
            report.case(f"export {name}", failures + [f"import-hf of the export failed:\n{run.stderr}"])
            continue
        more, summary = compare_with_hf(heed, tmp, back_dir, model, hf_batch, VOCAB - 1)
        failures += more

        # The export imports back to the same model, renumbered.
        before, after = (load_file(os.path.join(d, "model.safetensors")) for d in (model_dir, back_dir))
        for k in sorted(before.keys() | after.keys()):
            by_token = k.endswith("embed_tokens.weight") or k in ("shared.weight", "lm_head.weight", "final_logits_bias")
            if k not in before or k not in after or not torch.equal(before[k][order] if by_token else before[k],
                                                                     after[k]):
                failures.append(f"import(export(model)) changed {k}")
        with open(os.path.join(back_dir, "model.yaml")) as f:
            back = yaml.safe_load(f)
        renumbered = {**config, "pad_id": VOCAB - 1, "decoder_start_id": VOCAB - 1, "eos_id": 0}
        changed = {k: (v, back.get(k)) for k, v in renumbered.items() if back.get(k) != v}
        if changed:
            failures.append(f"import(export(model)) changed the config (expected, now): {changed}")
        report.case(f"export {name}", failures, summary)


def expect_error(report, name, run, *fragments):
    ok = run.returncode != 0 and all(f in run.stderr for f in fragments)
    report.case(name, [] if ok else [f"expected a non-zero exit and {fragments} in stderr, got exit "
                                     f"{run.returncode}:\n{run.stderr}"], (run.stderr.strip().splitlines() or [""])[-1])


def bad_hf_dir(tmp):
    """A saved tiny MarianMT model: (directory, its config.json as a dict, its tensors, write(config, weights))
    where write replaces either file (None: the original)."""
    hf_dir = os.path.join(tmp, "bad.hf")
    random_marian(0, 0, 2).save_pretrained(hf_dir, safe_serialization=True)
    config_path, weights_path = os.path.join(hf_dir, "config.json"), os.path.join(hf_dir, "model.safetensors")
    with open(config_path) as f:
        good_config = json.load(f)
    # Copies: safetensors 0.4's load_file returns tensors backed by the file itself, which write() overwrites.
    good_weights = {name: t.clone() for name, t in load_file(weights_path).items()}

    def write(config=None, weights=None):
        with open(config_path, "w") as f:
            json.dump(good_config if config is None else config, f)
        save_file(good_weights if weights is None else weights, weights_path)

    return hf_dir, good_config, good_weights, write


# Fields that define the network, each with a value Heed cannot build and what the error must say. The
# architecture switches of older Marian/BART configs (normalize_before, ...) are among them: a checkpoint
# that sets one was made for a different network.
MATH_FIELDS = [
    ("model_type", "bart", '"model_type": "bart" is not supported'),
    ("is_decoder", True, '"is_decoder": true is not supported'),
    ("tie_encoder_decoder", True, '"tie_encoder_decoder": true is not supported'),
    ("normalize_before", True, '"normalize_before": true is not supported'),
    ("normalize_embedding", True, '"normalize_embedding": true is not supported'),
    ("add_final_layer_norm", True, '"add_final_layer_norm": true is not supported'),
    ("static_position_embeddings", False, '"static_position_embeddings": false is not supported'),
    ("activation_function", "gelu_new", 'activation_function "gelu_new" is not supported'),
    ("scale_embedding", "yes", '"scale_embedding" must be true or false, got "yes"'),
    ("d_model", 16.0, '"d_model" must be an integer, got 16.0'),
    ("encoder_layers", None, '"encoder_layers" must be an integer, got null'),
    ("decoder_attention_heads", 4, "encoder_attention_heads 2 and decoder_attention_heads 4 differ"),
    ("decoder_ffn_dim", 64, "encoder_ffn_dim 32 and decoder_ffn_dim 64 differ"),
    ("decoder_vocab_size", VOCAB + 1, f"decoder_vocab_size {VOCAB + 1} differs from vocab_size {VOCAB}"),
    ("tie_word_embeddings", False, "share_encoder_decoder_embeddings = true with tie_word_embeddings = false"),
    ("pad_token_id", None, '"pad_token_id" must be an integer, got null'),
    ("eos_token_id", [0, 2], '"eos_token_id" must be an integer, got [0,2]'),
    ("decoder_start_token_id", "0", '"decoder_start_token_id" must be an integer, got "0"'),
    ("max_position_embeddings", 0, "max_position_embeddings must be positive, got 0"),
    ("dropout", "0.1", '"dropout" must be a number, got "0.1"'),
]


def test_config_fields(heed, tmp, report):
    hf_dir, good_config, good_weights, write = bad_hf_dir(tmp)
    out = os.path.join(tmp, "fields.heed")
    reference = os.path.join(tmp, "fields-reference.heed")
    write()
    run = parity.heed(heed, "import-hf", hf_dir, reference)
    report.case("the saved config imports", [] if run.returncode == 0 else [run.stderr])

    # Harmless fields: accepted, listed in one log line, and the model is the same as without them.
    write({**good_config, "foo_bar": 1, "dtype": "bfloat16", "torch_dtype": "float16", "num_beams": 4,
           "decoder_vocab_size": None})
    run = parity.heed(heed, "import-hf", hf_dir, out)
    failures = [] if run.returncode == 0 else [f"import-hf failed:\n{run.stderr}"]
    logged = [line for line in run.stderr.splitlines() if "ignoring" in line]
    if len(logged) != 1 or not all(f in logged[0] for f in ("foo_bar", "dtype", "torch_dtype", "num_beams")):
        failures.append(f"expected one log line naming foo_bar, dtype, torch_dtype and num_beams, got {logged}")
    if "decoder_vocab_size" in "".join(logged):
        failures.append("decoder_vocab_size (null means vocab_size) was ignored instead of read")
    if not failures:
        if not all(filecmp.cmp(os.path.join(out, name), os.path.join(reference, name), shallow=False)
                   for name in ("model.yaml", "model.safetensors")):
            failures.append("the ignored fields changed the imported model")
    report.case("fields that do not define the network are logged and ignored", failures,
                (logged or [""])[0].split("] ")[-1])

    for field, value, message in MATH_FIELDS:
        write({**good_config, field: value})
        expect_error(report, f"{field}: {json.dumps(value)}", parity.heed(heed, "import-hf", hf_dir, out), message)

    # max_position_embeddings must agree with the position tables when the file has them.
    positions = MarianMTModel(MarianConfig(**good_config)).state_dict()["model.encoder.embed_positions.weight"]
    write({**good_config, "max_position_embeddings": 32},
          {**good_weights, "model.encoder.embed_positions.weight": positions})
    expect_error(report, "max_position_embeddings and the position table", parity.heed(heed, "import-hf", hf_dir, out),
                 "model.encoder.embed_positions.weight has shape [64, 16], expected [32, 16] (max_position_embeddings")


def test_rejections(heed, tmp, report):
    hf_dir, good_config, good_weights, write = bad_hf_dir(tmp)
    weights_path = os.path.join(hf_dir, "model.safetensors")
    out = os.path.join(tmp, "bad.heed")

    extra = {**good_weights, "model.encoder.layernorm_embedding.weight": torch.ones(16),
             "model.decoder.layers.0.extra.bias": torch.zeros(16)}
    write(weights=extra)
    expect_error(report, "unknown tensors", parity.heed(heed, "import-hf", hf_dir, out),
                 "tensors that Heed does not understand", "model.decoder.layers.0.extra.bias",
                 "model.encoder.layernorm_embedding.weight")
    missing = {k: v for k, v in good_weights.items() if k != "model.decoder.layers.1.fc2.bias"}
    write(weights=missing)
    expect_error(report, "missing tensor", parity.heed(heed, "import-hf", hf_dir, out),
                 "model.decoder.layers.1.fc2.bias is missing")
    untied = {**good_weights, "lm_head.weight": good_weights["model.shared.weight"] + 1}
    write(weights=untied)
    expect_error(report, "tied copies differ", parity.heed(heed, "import-hf", hf_dir, out),
                 "lm_head.weight and model.shared.weight should be tied copies", "hold different values")
    positions = MarianMTModel(MarianConfig(**good_config)).state_dict()["model.encoder.embed_positions.weight"]
    write(weights={**good_weights, "model.encoder.embed_positions.weight": positions})
    run = parity.heed(heed, "import-hf", hf_dir, out)
    report.case("HF's own position table accepted", [] if run.returncode == 0 else [run.stderr])
    interleaved = positions.clone()
    interleaved[:, 0::2], interleaved[:, 1::2] = positions[:, :8], positions[:, 8:]
    write(weights={**good_weights, "model.encoder.embed_positions.weight": interleaved})
    expect_error(report, "foreign position table", parity.heed(heed, "import-hf", hf_dir, out),
                 "model.encoder.embed_positions.weight differs from Marian's sinusoidal table")

    pre_dir = os.path.join(tmp, "pre.heed")
    os.makedirs(pre_dir)
    with open(os.path.join(pre_dir, "model.yaml"), "w") as f:
        yaml.safe_dump({"vocab_size": 20, "d_model": 8, "heads": 2, "ffn_dim": 16, "encoder_layers": 1,
                        "decoder_layers": 1, "norm": "pre"}, f)
    with open(os.path.join(tmp, "b.json"), "w") as f:
        json.dump({"src": [[3, 2]], "tgt_in": [[0, 3]], "tgt_out": [[3, 2]]}, f)
    parity.heed_grads(heed, "--model-config", os.path.join(pre_dir, "model.yaml"), "--seed", "1", "--save-weights",
                      os.path.join(pre_dir, "model.safetensors"), "--batch", os.path.join(tmp, "b.json"),
                      "--out", os.path.join(tmp, "g.st"))
    expect_error(report, "pre-norm export", parity.heed(heed, "export-hf", pre_dir, os.path.join(tmp, "pre.hf")),
                 "pre-norm model (norm: pre) cannot be represented in MarianMT")
    expect_error(report, "names-only on HF names",
                 parity.heed(heed, "export-hf", "--names-only", weights_path, os.path.join(tmp, "x.st")),
                 "names that are not Heed parameter names", "model.shared.weight")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heed", required=True, help="path to the heed binary")
    args = parser.parse_args()
    report = Report()
    print(f"references: transformers {transformers.__version__}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        test_import(args.heed, tmp, report)
        test_export(args.heed, tmp, report)
        test_config_fields(args.heed, tmp, report)
        test_rejections(args.heed, tmp, report)
    print(f"{report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())

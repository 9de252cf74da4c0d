"""Fine-tuning a Hugging Face MarianMT model the way OPUS-MT ships them: config.json and model.safetensors
from save_pretrained, plus source.spm, target.spm and a vocab.json that numbers the pieces in the model's
own order (</s> 0, <unk> 1, ..., <pad> last), which is not SentencePiece's order.

`heed train --init-from HF_DIR` must take that tokenizer along, train through the vocab.json ids, and the
run must translate its training pairs back exactly after it has overfitted them: any mismatch between the
ids used for encoding, the model and decoding would break the round trip.

Exits 77 (skipped) without torch and transformers.
"""
import json
import os
import random
import shutil
import sys

try:
    import torch
    import transformers
    from transformers import MarianConfig, MarianMTModel
except ImportError as e:
    print(f"skipped: needs torch and transformers ({e}); run scripts/setup-python.sh")
    sys.exit(77)

from cli_check import run
from test_train_cli import CONFIG, make_corpus

transformers.logging.set_verbosity_error()


def spm_pieces(path):
    """The pieces of a SentencePiece model, read from its protobuf (ModelProto.pieces = field 1, each a
    message whose field 1 is the piece and field 3 its type; 1 = normal)."""
    data = open(path, "rb").read()

    def varint(buf, i):
        shift = value = 0
        while True:
            b = buf[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return value, i

    def fields(buf):
        i = 0
        while i < len(buf):
            key, i = varint(buf, i)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, i = varint(buf, i)
            elif wire == 1:
                value, i = buf[i:i + 8], i + 8
            elif wire == 2:
                length, i = varint(buf, i)
                value, i = buf[i:i + length], i + length
            elif wire == 5:
                value, i = buf[i:i + 4], i + 4
            else:
                raise ValueError(f"{path}: unexpected protobuf wire type {wire}")
            yield number, value

    pieces = []
    for number, value in fields(data):
        if number == 1:
            entry = dict(fields(value))
            if entry.get(3, 1) == 1:
                pieces.append(entry[1].decode("utf-8"))
    return pieces


def checks(r):
    pairs = make_corpus(50, seed=11)
    r.write("train.en", "\n".join(en for en, _ in pairs) + "\n")
    r.write("train.es", "\n".join(es for _, es in pairs) + "\n")
    # A SentencePiece model (trained here by Heed, one step of training), used for both sides.
    spm_run = r.path("run-spm")
    out = r.heed_run("train", r.write("spm.yaml", CONFIG.format(run=spm_run, dir=r.tmp, steps=1, ckpt=1000, dropout=0)))
    r.check("a SentencePiece model", out.returncode == 0, out.stderr[-2000:])
    if out.returncode != 0:
        return

    hf = r.path("opus")
    pieces = spm_pieces(os.path.join(spm_run, "vocab.model"))
    random.Random(3).shuffle(pieces)  # the model's numbering, unrelated to SentencePiece's
    vocab = {"</s>": 0, "<unk>": 1, **{p: i + 2 for i, p in enumerate(pieces)}}
    vocab["<pad>"] = len(vocab)
    torch.manual_seed(0)
    config = MarianConfig(vocab_size=len(vocab), decoder_vocab_size=len(vocab), max_position_embeddings=128,
                          pad_token_id=vocab["<pad>"], eos_token_id=0, decoder_start_token_id=vocab["<pad>"],
                          d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                          decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128,
                          activation_function="relu", scale_embedding=True)
    MarianMTModel(config).save_pretrained(hf, safe_serialization=True)
    shutil.copy(os.path.join(spm_run, "vocab.model"), os.path.join(hf, "source.spm"))
    shutil.copy(os.path.join(spm_run, "vocab.model"), os.path.join(hf, "target.spm"))
    with open(os.path.join(hf, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)

    tune = r.path("run-tune")
    text = CONFIG.format(run=tune, dir=r.tmp, steps=1500, ckpt=1500, dropout=0)
    out = r.heed_run("train", r.write("tune.yaml", text), "--init-from", hf)
    r.check("heed train --init-from a MarianMT directory with its tokenizer", out.returncode == 0, out.stderr[-3000:])
    if out.returncode != 0:
        return
    r.check("the run carries the MarianMT tokenizer",
            all(os.path.exists(os.path.join(tune, name)) for name in ("source.spm", "target.spm", "vocab.json")))
    with open(os.path.join(tune, "checkpoints", "step-00001500", "model.yaml")) as f:
        model = dict(line.split(": ", 1) for line in f.read().splitlines() if ": " in line)
    r.check(f"pad and eos are vocab.json's (pad_id {model.get('pad_id')}, eos_id {model.get('eos_id')})",
            model.get("pad_id") == str(vocab["<pad>"]) and model.get("eos_id") == "0")
    with open(os.path.join(tune, "metrics.jsonl")) as f:
        losses = [rec["loss"] for rec in map(json.loads, f) if rec["kind"] == "train"]
    r.check(f"it trains through the vocab.json ids (loss {losses[0]:.2f} -> {losses[-1]:.4f})", losses[-1] < 0.05)
    result = r.heed_run("translate", "--model", tune, stdin="\n".join(en for en, _ in pairs) + "\n")
    hyps = result.stdout.splitlines()
    exact = sum(h == es for h, (_, es) in zip(hyps, pairs))
    r.check(f"translations decode through vocab.json ({exact}/{len(pairs)} training pairs exact)",
            result.returncode == 0 and exact == len(pairs),
            result.stderr[-1500:] + "\n".join(f"{h!r} vs {es!r}" for h, (_, es) in zip(hyps, pairs) if h != es))


if __name__ == "__main__":
    sys.exit(run(checks))

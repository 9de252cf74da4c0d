"""Translation speed of one model in three runtimes, side by side: `heed translate`, CTranslate2 (float32
and int8, converted from `heed export-hf`'s directory by CTranslate2's own converter) and Hugging Face
MarianMTModel.generate. Same sentences, same beam size, same number of threads, and Heed's default length
limit (2 x source tokens + 10, per batch of its longest source for CTranslate2 and HF); each runtime
translates the whole set once after loading (loading and conversion are not timed).

    .venv/bin/python bench/export_speed.py --heed build/heed --model RUN_DIR \\
        --input data/bible-en-es/test.en --lines 200 --beam-size 4 --threads 2

Prints one line per runtime: seconds, sentences per second, and how many lines equal Heed's output.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import ctranslate2
import torch
import transformers
from transformers import MarianMTModel, MarianTokenizer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heed", required=True, help="the heed binary")
    parser.add_argument("--model", required=True, help="a run or checkpoint directory of a post-norm model")
    parser.add_argument("--input", required=True, help="source sentences, one per line")
    parser.add_argument("--lines", type=int, default=0, help="translate only the first N lines (0: all)")
    parser.add_argument("--beam-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per batch for CTranslate2 and HF")
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    with open(args.input, encoding="utf-8") as f:
        sources = f.read().splitlines()
    if args.lines:
        sources = sources[: args.lines]

    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = os.path.join(tmp, "hf")
        subprocess.run([args.heed, "export-hf", args.model, hf_dir], check=True, capture_output=True)
        tokenizer = MarianTokenizer.from_pretrained(hf_dir)
        results = []

        start = time.perf_counter()
        run = subprocess.run([args.heed, "translate", "--model", args.model, "--beam-size", str(args.beam_size),
                              "--threads", str(args.threads)], input="\n".join(sources) + "\n", capture_output=True,
                             text=True, encoding="utf-8", check=True)
        results.append(("heed translate (fp32)", time.perf_counter() - start, run.stdout.splitlines()))

        tokens = [tokenizer.convert_ids_to_tokens(tokenizer(s).input_ids) for s in sources]
        batches = [range(i, min(i + args.batch_size, len(sources))) for i in range(0, len(sources), args.batch_size)]

        def limit(batch):  # Heed's default max_length_ratio 2, offset 10, for the batch's longest source
            return 2 * max(len(tokens[i]) for i in batch) + 10

        for compute_type in ("float32", "int8"):
            ct2_dir = os.path.join(tmp, f"ct2-{compute_type}")
            ctranslate2.converters.TransformersConverter(hf_dir).convert(
                ct2_dir, quantization=None if compute_type == "float32" else compute_type)
            translator = ctranslate2.Translator(ct2_dir, device="cpu", compute_type=compute_type,
                                                intra_threads=args.threads, inter_threads=1)
            start = time.perf_counter()
            texts = []
            for batch in batches:
                out = translator.translate_batch([tokens[i] for i in batch], beam_size=args.beam_size,
                                                 max_decoding_length=limit(batch))
                texts += [tokenizer.convert_tokens_to_string(o.hypotheses[0]) for o in out]
            results.append((f"CTranslate2 {compute_type}", time.perf_counter() - start, texts))

        torch.set_num_threads(args.threads)
        model = MarianMTModel.from_pretrained(hf_dir).eval()
        start = time.perf_counter()
        texts = []
        with torch.no_grad():
            for batch in batches:
                inputs = tokenizer([sources[i] for i in batch], return_tensors="pt", padding=True)
                generated = model.generate(**inputs, num_beams=args.beam_size, max_new_tokens=limit(batch))
                texts += tokenizer.batch_decode(generated, skip_special_tokens=True)
        results.append((f"HF generate (transformers {transformers.__version__})", time.perf_counter() - start, texts))

    heed = results[0][2]
    print(f"{len(sources)} sentences, beam {args.beam_size}, {args.threads} threads")
    for name, seconds, texts in results:
        same = sum(a == b for a, b in zip(texts, heed))
        print(f"{name:42s} {seconds:7.1f} s  {len(sources) / seconds:6.1f} sentences/s  {same}/{len(heed)} = heed")


if __name__ == "__main__":
    sys.exit(main())

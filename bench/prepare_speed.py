"""Issue 15's figures: `heed prepare` time and peak RSS, then `heed train`'s time to its first update and
its RSS then, on one corpus (scripts/make-bible-100x.sh builds the 2.9M-pair one). Standard library only.

    python3 bench/prepare_speed.py --heed build/heed --data data/bible-en-es-100x --out /tmp/bench-prepare

The model is issue 15's: d_model 64 (4 heads, ffn 256, 3+3 layers), a joint unigram vocabulary of 8000
pieces, batches of 4096 tokens, 2 threads. Runs, each in a fresh run directory under --out:
  1. heed prepare: trains the vocabulary on its sample (data.vocab_sample) and writes the store
  2. heed prepare again with the vocabulary of 1 given (data.src_vocab): encoding and writing alone
  3. heed train, 1 update, over the store of 2: from start to the first logged update
  4. the same on the corpus's first 2,000 pairs (same vocabulary, model and batch size): the baseline of a
     process that holds next to no data, so that 3 minus 4 is what the corpus costs
Peak RSS is the kernel's VmHWM of the process. At the first update the RSS is split as the kernel splits it:
RssAnon is the process's own memory; RssFile is mapped file pages, the page cache of the store's files and the
libraries' code, shared and evicted under pressure. A page of the store touched once maps its whole folio:
ext4 caches files in folios of up to 2 MB since Linux 6.16, so a few hundred random pairs map hundreds of MB.
For train, "beyond model and optimizer" subtracts 16 bytes per parameter (fp32 weights, gradients and two
Adam moments); what remains includes the libraries and one step's activations, which run 4 measures.
Prints one JSON object.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

SMALL_PAIRS = 2000

CONFIG = """run_dir: {run}
model:
  d_model: 64
  heads: 4
  ffn_dim: 256
  encoder_layers: 3
  decoder_layers: 3
data:
  train_src: {data}/train.en
  train_tgt: {data}/train.es
  vocab_size: 8000
  max_tokens: 4096
  store: {store}
training:
  max_steps: 1
  threads: {threads}
validation:
  every: 0
checkpoints:
  every: 1000
logging:
  every: 1
"""


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(cmd, log, until=None):
    """Runs cmd, sampling its VmHWM; with `until` (a function), also returns the seconds and VmRSS/VmHWM when
    until() first became true."""
    start = time.monotonic()
    with open(log, "w") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    hwm, mark = 0, None
    while p.poll() is None:
        hwm = max(hwm, status_kb(p.pid, "VmHWM"))
        if until and mark is None and until():
            mark = {"seconds": round(time.monotonic() - start, 2)}
            for key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                mark[key] = round(status_kb(p.pid, key) / 1024, 1)
        time.sleep(0.05)
    seconds = time.monotonic() - start
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}); see {log}")
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(hwm / 1024, 1), "first_update": mark}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heed", required=True)
    parser.add_argument("--data", required=True, help="a directory with train.en and train.es")
    parser.add_argument("--out", required=True, help="scratch directory (replaced)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vocab-sample", type=int, default=0, help="data.vocab_sample (0: the default)")
    parser.add_argument("--vocab", help="a SentencePiece model to use instead of training one (skips run 1)")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    data = os.path.abspath(args.data)
    with open(os.path.join(data, "train.en"), "rb") as f:
        lines = sum(1 for _ in f)

    def config(name, store, *extra, corpus=data):
        path = os.path.join(args.out, name + ".yaml")
        with open(path, "w") as f:
            f.write(CONFIG.format(run=os.path.join(args.out, name), data=corpus, store=os.path.join(args.out, store),
                                  threads=args.threads))
        return [path] + [a for kv in extra for a in ("--set", kv)]

    sample = [f"data.vocab_sample={args.vocab_sample}"] if args.vocab_sample else []
    result = {"pairs": lines, "kernel": os.uname().release, "load_average_before": os.getloadavg()}
    vocab = os.path.abspath(args.vocab) if args.vocab else os.path.join(args.out, "prepare", "vocab.model")
    if not args.vocab:
        result["prepare"] = run([args.heed, "prepare", *config("prepare", "store", *sample)],
                                os.path.join(args.out, "prepare.log"))
    result["prepare_given_vocab"] = run(
        [args.heed, "prepare", *config("encode", "store-encode", f"data.src_vocab={vocab}")],
        os.path.join(args.out, "encode.log"))
    metrics = os.path.join(args.out, "train", "metrics.jsonl")
    train_log = os.path.join(args.out, "train.log")
    result["train"] = run([args.heed, "train", *config("train", "store-encode", f"data.src_vocab={vocab}")], train_log,
                          until=lambda: os.path.exists(metrics) and os.path.getsize(metrics) > 0)
    small = os.path.join(args.out, "small")
    os.makedirs(small)
    for side in ("en", "es"):
        with open(os.path.join(data, "train." + side), "rb") as f, open(os.path.join(small, "train." + side), "wb") as g:
            g.writelines(line for _, line in zip(range(SMALL_PAIRS), f))
    small_metrics = os.path.join(args.out, "train-small", "metrics.jsonl")
    result["train_small"] = run(
        [args.heed, "train", *config("train-small", "store-small", f"data.src_vocab={vocab}", corpus=small)],
        os.path.join(args.out, "train-small.log"),
        until=lambda: os.path.exists(small_metrics) and os.path.getsize(small_metrics) > 0)
    with open(train_log) as f:
        text = f.read()
    parameters = int(re.search(r"model: (\d+) parameters", text).group(1))
    first, baseline = result["train"]["first_update"], result["train_small"]["first_update"]
    if first:
        first["model_and_optimizer_mb"] = round(16 * parameters / 2**20, 1)
        first["RssAnon_beyond_model_and_optimizer_mb"] = round(first["RssAnon"] - 16 * parameters / 2**20, 1)
    if first and baseline:
        for key in ("VmRSS", "RssAnon", "RssFile"):
            first[key + "_beyond_the_small_corpus_run_mb"] = round(first[key] - baseline[key], 1)
    for key in ("prepare", "prepare_given_vocab")[1 if args.vocab else 0:]:
        result[key]["pairs_per_second"] = round(lines / result[key]["seconds"])
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

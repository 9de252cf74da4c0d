"""`heed translate-ids` against Hugging Face's MarianMTModel.generate, which nobody here wrote.

A tiny random MarianMT model (fixed seed, with weights scaled so that its translations are varied, some
ending with eos and some running into the length limit, and beam search often beating greedy) is saved
with save_pretrained, imported with `heed import-hf`, and decoded by both sides, greedy and with beams,
over source id sequences of different lengths. HF decodes each sentence alone; Heed decodes them all in
one batch (right-padded sources, finished sentences leaving the batch) and again one at a time (where
every decoder step of greedy search has a single row).

How the options map:
- Heed's maximum length counts generated tokens (eos included); HF's max_length also counts the decoder
  start token, so HF gets Heed's per-sentence limit min(floor(ratio * n) + offset, max_length) plus one.
- Heed never generates the pad token (it is also the decoder start token); HF gets bad_words_ids=[[pad]],
  which masks it the same way: after log_softmax, so the other tokens are not renormalised.
- Heed lets hypotheses cut at the maximum length compete as they are; HF's MarianConfig would force eos at
  the last step (forced_eos_token_id), so the model is saved without it.
- early_stopping=False is HF's default heuristic; Heed implements it as transformers 4.x's
  BeamSearchScorer does. transformers 5 changed it (see HF_STOPS_EARLIER), and CTest runs this file under
  both: the pinned 4.44 (.venv) and a current 5.x (.venv-hf5).

Greedy must give the same ids; beam search the same n-best lists (ids, in order) with scores within 1e-4,
except where transformers 5 stopped a sentence earlier (below).
Both sides compute in fp32, so a near-tie between two continuations could in principle be decided
differently; the fixed seed makes such a case reproducible, and none occurs here.
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile

try:
    import torch
    import transformers
    from transformers import MarianConfig, MarianMTModel
except ImportError as e:
    print(f"skipped: needs torch and transformers ({e}); run scripts/setup-python.sh")
    sys.exit(77)

transformers.logging.set_verbosity_error()
VOCAB, PAD, EOS = 40, 39, 0  # as in the OPUS-MT models: eos 0, pad the last id and the decoder start
WORDS = list(range(1, VOCAB - 1))
SIZES = {"d_model": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
         "decoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64}
SCORE_TOLERANCE = 1e-4
# Heed's length limit: min(floor(RATIO * source ids) + OFFSET, MAX_LENGTH) generated tokens.
RATIO, OFFSET, MAX_LENGTH = 1.5, 1, 12
# transformers 5's beam search ends a sentence no later than 4.x's BeamSearchScorer, and sometimes earlier:
# its early_stopping=False bound on what the running beams can still reach starts from the best running
# beam, where 4.x started from the best of all candidates, those ending in eos included. Until 5.x stops,
# both hold the same finished hypotheses; 4.x, and Heed, may afterwards only replace some by better ones.
# (Checked on one model: 4.44.2 gives Heed's lists exactly where 5.25 gives shorter searches' lists.)
HF_STOPS_EARLIER = int(transformers.__version__.split(".")[0]) >= 5


def random_marian(seed, eos_bias=5.0):
    """A random MarianMTModel whose outputs are varied.

    HF's initialisation (std 0.02, unscaled embeddings) gives models that repeat one token whatever the
    source; here every matrix keeps its input's scale (std 1/sqrt(fan_in)), embeddings are scaled by
    sqrt(d_model), the output matrix is untied and twice as sharp, and eos gets a bias in
    final_logits_bias, so that some translations end early and others run into the length limit.
    """
    torch.manual_seed(seed)
    config = MarianConfig(vocab_size=VOCAB, decoder_vocab_size=VOCAB, max_position_embeddings=64, pad_token_id=PAD,
                          eos_token_id=EOS, forced_eos_token_id=None, decoder_start_token_id=PAD,
                          activation_function="gelu", scale_embedding=True, share_encoder_decoder_embeddings=False,
                          tie_word_embeddings=False, **SIZES)
    model = MarianMTModel(config)
    d = config.d_model
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_positions" in name or "layer_norm" in name:
                continue
            if name.endswith("bias"):
                p.normal_(0, 0.1)
            elif "embed_tokens" in name:
                p.normal_(0, d ** -0.5)
            elif name == "lm_head.weight":
                p.normal_(0, 2 * d ** -0.5)
            else:
                p.normal_(0, p.shape[1] ** -0.5)
        model.final_logits_bias[0, EOS] = eos_bias
    return model.eval()


def max_target_length(source):
    return min(int(RATIO * len(source)) + OFFSET, MAX_LENGTH)


def strip(ids):
    """HF's output row -> Heed's: no start token, nothing from eos on, no padding after a cut hypothesis."""
    ids = ids[1:]
    if EOS in ids:
        ids = ids[: ids.index(EOS)]
    while ids and ids[-1] == PAD:
        ids.pop()
    return ids


def hf_generate(model, source, beams, length_penalty):
    """[(ids, score)], best first: beams hypotheses (score None for greedy, which has none)."""
    options = dict(max_length=max_target_length(source) + 1, do_sample=False, num_beams=beams,
                   bad_words_ids=[[PAD]], return_dict_in_generate=True, output_scores=True)
    if beams > 1:
        options.update(length_penalty=length_penalty, early_stopping=False, num_return_sequences=beams)
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([source]),
                             attention_mask=torch.ones(1, len(source), dtype=torch.long), **options)
    scores = out.sequences_scores.tolist() if beams > 1 else [None]
    return [(strip(row), score) for row, score in zip(out.sequences.tolist(), scores)]


def heed_translate(heed, model_dir, sources, beams, length_penalty, batch_size):
    """[[(ids, score)]] per source, best first, from one `heed translate-ids` call over all sources.

    Greedy decoding reads the plain output (one line of ids per sentence, score None); beam search the
    n-best output ("i ||| ids ||| score" lines).
    """
    command = [heed, "translate-ids", "--model", model_dir, "--beam-size", str(beams), "--length-penalty",
               str(length_penalty), "--max-length", str(MAX_LENGTH), "--max-length-ratio", str(RATIO),
               "--max-length-offset", str(OFFSET), "--batch-size", str(batch_size)]
    if beams > 1:
        command += ["--n-best", str(beams)]
    run = subprocess.run(command, input="".join(" ".join(map(str, s)) + "\n" for s in sources), capture_output=True,
                         text=True)
    if run.returncode != 0:
        raise RuntimeError(f"heed translate-ids failed (exit {run.returncode}):\n{run.stderr}")
    lines = run.stdout.splitlines()
    if beams == 1:
        return [[([int(t) for t in line.split()], None)] for line in lines]
    lists = [[] for _ in sources]
    for line in lines:
        index, ids, score = line.split(" ||| ")
        lists[int(index)].append(([int(t) for t in ids.split()], float(score)))
    return lists


def hf_stopped_earlier(heed_list, hf_list):
    """Whether Heed's n-best list is HF's with some hypotheses replaced by better ones: each of HF's is in
    Heed's list with the same score, or scores below Heed's worst."""
    heed_scores = {tuple(ids): score for ids, score in heed_list}
    worst = min(heed_scores.values())
    return len(heed_list) == len(hf_list) and all(
        abs(heed_scores[tuple(ids)] - score) <= SCORE_TOLERANCE if tuple(ids) in heed_scores
        else score < worst - SCORE_TOLERANCE for ids, score in hf_list)


def compare(heed_list, hf_list, beams):
    """(failure messages, whether HF stopped the search earlier) for one sentence."""
    if [ids for ids, _ in heed_list] != [ids for ids, _ in hf_list]:
        if beams > 1 and HF_STOPS_EARLIER and hf_stopped_earlier(heed_list, hf_list):
            return [], True
        return [f"heed {heed_list}\n       hf   {hf_list}"], False
    if beams == 1:
        return [], False
    return [f"hypothesis {i} {ids}: score heed {a:.6f}, hf {b:.6f}"
            for i, ((ids, a), (_, b)) in enumerate(zip(heed_list, hf_list)) if abs(a - b) > SCORE_TOLERANCE], False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heed", required=True, help="path to the heed binary")
    args = parser.parse_args()

    rng = random.Random(5)
    sources = [[rng.choice(WORDS) for _ in range(n)] + [EOS] for n in (0, 1, 3, 4, 5, 6, 7, 8, 9, 10)]
    model = random_marian(seed=3)
    failed = 0
    outputs = {}
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir, model_dir = os.path.join(tmp, "hf"), os.path.join(tmp, "heed")
        model.save_pretrained(hf_dir, safe_serialization=True)
        run = subprocess.run([args.heed, "import-hf", hf_dir, model_dir], capture_output=True, text=True)
        if run.returncode != 0:
            print(f"FAIL import-hf:\n{run.stderr}")
            return 1
        for beams, length_penalty in ((1, 1.0), (4, 1.0), (4, 0.6), (4, 2.0), (3, 1.0)):
            hf_lists = [hf_generate(model, source, beams, length_penalty) for source in sources]
            # All sentences in one batch, then one at a time (single-row decoder steps).
            for batch_size in (len(sources), 1):
                heed_lists = heed_translate(args.heed, model_dir, sources, beams, length_penalty, batch_size)
                failures, earlier = [], []
                for i, source in enumerate(sources):
                    messages, stopped_earlier = compare(heed_lists[i], hf_lists[i], beams)
                    failures += [f"sentence {i} {source}: {m}" for m in messages]
                    earlier += [i] * stopped_earlier
                outputs.setdefault((beams, length_penalty), [heed_list[0][0] for heed_list in heed_lists])
                note = f" (transformers 5 stopped earlier on sentences {earlier})" if earlier else ""
                print(f"{'FAIL' if failures else 'ok  '} beams {beams}, length_penalty {length_penalty}: "
                      f"{len(sources)} sentences in batches of {batch_size}{note}")
                for message in failures:
                    print(f"     {message}")
                failed += bool(failures)

    # The model is neither degenerate nor perfect, or the comparison above would prove little.
    greedy, beam = outputs[(1, 1.0)], outputs[(4, 1.0)]
    cut = sum(len(ids) == max_target_length(s) for ids, s in zip(greedy, sources))
    checks = [(len({tuple(ids) for ids in greedy}) >= len(sources) - 1, "greedy outputs are (nearly) all distinct"),
              (0 < cut < len(sources), f"some but not all greedy outputs reach the length limit ({cut})"),
              (greedy != beam, "beam search finds something greedy does not")]
    for ok, what in checks:
        print(f"{'ok  ' if ok else 'FAIL'} model check: {what}")
        failed += not ok
    print(f"{failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

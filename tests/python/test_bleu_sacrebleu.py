"""`heed score` against sacreBLEU 2.x on seeded random corpora.

Sentences mix ASCII punctuation, numbers, HTML entities, Spanish and other Unicode text, Unicode whitespace,
empty lines, and hypotheses much shorter or longer than their references. For each corpus the test writes
hypothesis and reference files, runs `heed score` (text and --json) and compares with
sacrebleu.corpus_bleu / corpus_chrf on the same strings: BLEU's statistics exactly, scores to 1e-9, and the
printed lines character for character with what the sacrebleu command prints. Then the errors a user can
hit: line-count mismatch, invalid UTF-8, a missing file. Exits 77 (skipped) without sacrebleu.
"""
import json
import random
import sys

from cli_check import Checks, run

try:
    import sacrebleu
    from sacrebleu.metrics import BLEU, CHRF
except ImportError as e:
    print(f"skipped: sacrebleu cannot be imported ({e})")
    sys.exit(77)

WORDS = ("the cat sat on mat and a dog ran to house of my friend it is not there they said we "
         "el la los niño niña corazón está aquí también qué dónde cómo año mañana pingüino über café naïve "
         "Straße crème brûlée façade São Paulo Москва 東京 ümlaut").split()
ATTACHED = [".", ",", "!", "?", ":", ";", "'s", "n't", ")", "]", "…", "»", "”", "%", "-"]
LEADING = ["(", "[", "¿", "¡", "«", "“", "$", "#", "@", "/", "-", "'"]
SPECIAL = ["3.14", "1,000", "1,000.50", "5-6", "10-", "-4", ".5", "5.", "&quot;", "&amp;", "&lt;x&gt;", "&amp;quot;",
           "—", "--", "...", "a/b", "e-mail", "U.S.", "<skipped>", "x,y", "2,3.", "{z}", "a|b", "~", "^_^", "`q`"]
SPACES = [" "] * 12 + ["  ", "\t", "\u00a0", "\u2009", "\u3000", "\u202f", "\u200b", "\u2028", "\x1c", "\x85"]


def random_word(rng):
    roll = rng.random()
    if roll < 0.12:
        return rng.choice(SPECIAL)
    word = rng.choice(WORDS)
    if rng.random() < 0.1:
        word = word.capitalize()
    if roll < 0.25:
        word += rng.choice(ATTACHED)
    elif roll < 0.32:
        word = rng.choice(LEADING) + word
    return word


def join(rng, words):
    text = ""
    for i, w in enumerate(words):
        text += (rng.choice(SPACES) if i else "") + w
    if rng.random() < 0.1:
        text = rng.choice(SPACES) + text + rng.choice([" ", "  ", "\t", "\u00a0", "\r"])
    return text


def perturb(rng, ref_words):
    """A hypothesis: the reference with words dropped, replaced, swapped, repeated, cut short or run on."""
    roll = rng.random()
    if roll < 0.05:
        return []
    if roll < 0.12:
        return ref_words[:rng.randint(0, 3)]
    words = []
    for w in ref_words:
        r = rng.random()
        if r < 0.1:
            continue
        words.append(random_word(rng) if r < 0.25 else w)
        if r > 0.95:
            words.append(w)
    if len(words) > 2 and rng.random() < 0.3:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    if roll > 0.9:
        words += [random_word(rng) for _ in range(rng.randint(5, 30))]
    return words


def random_corpus(seed, size):
    rng = random.Random(seed)
    hyps, refs = [], []
    for _ in range(size):
        ref_words = [] if rng.random() < 0.03 else [random_word(rng) for _ in range(rng.randint(1, 40))]
        hyps.append(join(rng, perturb(rng, ref_words)))
        refs.append(join(rng, ref_words))
    return hyps, refs


def write_lines(path, lines, newline="\n"):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("".join(line + newline for line in lines))
    return path


class Runner(Checks):
    def score(self, hyp, ref, *extra):
        return self.heed_run("score", "--hyp", hyp, "--ref", ref, *extra)

    def compare(self, label, hyps, refs, newline="\n"):
        hyp = write_lines(self.path("hyp.txt"), hyps, newline)
        ref = write_lines(self.path("ref.txt"), refs, newline)
        bleu_metric, chrf_metric = BLEU(), CHRF()
        bleu, chrf = bleu_metric.corpus_score(hyps, [refs]), chrf_metric.corpus_score(hyps, [refs])
        # The public API the task names must agree with the metric objects used for the signatures.
        assert bleu.score == sacrebleu.corpus_bleu(hyps, [refs]).score
        assert chrf.score == sacrebleu.corpus_chrf(hyps, [refs]).score

        text = self.score(hyp, ref)
        expected_text = [bleu.format(1, signature=str(bleu_metric.get_signature())),
                         chrf.format(1, signature=str(chrf_metric.get_signature()))]
        self.check(f"{label}: text output", text.returncode == 0 and text.stdout.splitlines() == expected_text,
                   f"exit {text.returncode}\n     heed:      {text.stdout.splitlines()}\n"
                   f"     sacrebleu: {expected_text}\n     {text.stderr}")

        run = self.score(hyp, ref, "--json")
        if run.returncode != 0:
            self.check(f"{label}: --json", False, f"exit {run.returncode}: {run.stderr}")
            return
        got = json.loads(run.stdout)
        b, c = got["bleu"], got["chrf"]
        problems = []
        for key, want in [("counts", bleu.counts), ("totals", bleu.totals), ("sys_len", bleu.sys_len),
                          ("ref_len", bleu.ref_len)]:
            if b[key] != want:
                problems.append(f"bleu {key} {b[key]} != {want}")
        for key, have, want in [("bleu score", b["score"], bleu.score), ("bp", b["bp"], bleu.bp),
                                ("ratio", b["ratio"], bleu.ratio), ("chrf score", c["score"], chrf.score)] + \
                [(f"precision {n + 1}", b["precisions"][n], bleu.precisions[n]) for n in range(4)]:
            if abs(have - want) > 1e-9:
                problems.append(f"{key} {have!r} != {want!r}")
        if b["signature"] != str(bleu_metric.get_signature()) or c["signature"] != str(chrf_metric.get_signature()):
            problems.append(f"signatures {b['signature']!r}, {c['signature']!r}")
        if got["sentences"] != len(hyps):
            problems.append(f"sentences {got['sentences']} != {len(hyps)}")
        self.check(f"{label}: --json BLEU {bleu.score:.4f} chrF {chrf.score:.4f}", not problems, "; ".join(problems))


def checks(r):
    for seed in range(4):
        hyps, refs = random_corpus(seed, 150)
        r.compare(f"random corpus {seed} ({len(hyps)} pairs)", hyps, refs)
    hyps, refs = random_corpus(10, 60)
    r.compare("CRLF line endings", hyps, refs, newline="\r\n")
    r.compare("identical", refs, refs)
    r.compare("all hypotheses empty", [""] * len(refs), refs)
    r.compare("one short sentence", ["¿Qué?"], ["¿Qué tal?"])

    hyp = write_lines(r.path("h3.txt"), ["a", "b", "c"])
    ref = write_lines(r.path("r2.txt"), ["a", "b"])
    r.expect_error("line-count mismatch", r.score(hyp, ref), f"{hyp} has 3 lines but {ref} has 2")
    with open(r.path("latin1.txt"), "wb") as f:
        f.write("uno\ndos\nniño\n".encode("latin-1"))
    r.expect_error("invalid UTF-8", r.score(r.path("latin1.txt"), hyp),
                   f"{r.path('latin1.txt')}:3: invalid UTF-8")
    r.expect_error("missing file", r.score(r.path("nope.txt"), ref), f"cannot read {r.path('nope.txt')}")
    empty = write_lines(r.path("empty.txt"), [])
    r.expect_error("empty files", r.score(empty, empty), "nothing to score")


if __name__ == "__main__":
    print(f"sacrebleu {sacrebleu.__version__}")
    sys.exit(run(checks, Runner))

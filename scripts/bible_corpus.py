#!/usr/bin/python3
"""Builds a verse-aligned English-Spanish corpus from two SWORD Bible modules.

The SWORD plain-text renderers glue words together where a footnote stood, so this reads the
raw OSIS markup (mod2imp) and strips it itself: notes, editorial headings and the WEB glossary
go with their content, every other tag goes and leaves its words.

Pairing verses by reference is right almost everywhere, but the Spanish module squeezes Hebrew
verse numbering into KJV's: in about a dozen chapters its verses sit a few places away from the
English ones, sometimes across a chapter boundary, with the overflow merged into a neighbour.
Verse lengths alone cannot find the true offset in poetry, where all verses look alike, so each
book is aligned by dynamic programming on a word-translation lexicon learnt from the corpus
itself (Dice co-occurrence over reference-paired verses, which are overwhelmingly right) plus
the length ratio. Chapters where that alignment moves several verses are re-aligned; elsewhere
the reference pairing stands, and the alignment only fills gaps it leaves. Pairs whose lengths
are implausible for a translation (a merged verse, a textual variant) are dropped.

Standard library only: it runs with Debian's /usr/bin/python3 on a bare machine.
"""
import argparse
import collections
import html
import itertools
import math
import os
import re
import statistics
import subprocess

VALID_BOOKS = ("Joshua", "Romans")
TEST_BOOKS = ("Daniel", "Mark")
SPLITS = ("train", "valid", "test")

# What the summary counts, in the order it prints them.
REALIGNED_CHAPTERS = "chapters re-aligned"
DROPPED_CHAPTERS = "chapters dropped (no alignment fits)"
GAP_FILLED = "pairs moved across a numbering gap"
EMPTY_SPANISH = "dropped: empty on the Spanish side"
EMPTY_ENGLISH = "dropped: empty on the English side"
IMPLAUSIBLE_LENGTHS = "dropped: length ratio beyond 2x (different content)"
UNPAIRED_AFTER_REALIGNMENT = "dropped: no counterpart after re-alignment"
IN_DROPPED_CHAPTER = "dropped: verse in a dropped chapter"
ENGLISH_ONLY_BOOKS = "not paired: English verses in books the Spanish module lacks (deuterocanon)"
SUMMARY = (REALIGNED_CHAPTERS, DROPPED_CHAPTERS, GAP_FILLED, EMPTY_SPANISH, EMPTY_ENGLISH,
           IMPLAUSIBLE_LENGTHS, UNPAIRED_AFTER_REALIGNMENT, IN_DROPPED_CHAPTER, ENGLISH_ONLY_BOOKS)

# Alignment costs, in the units of the pair cost: (1 - lexical coverage) + |log length ratio
# - typical log length ratio|. A verse left out costs SKIP, so a pair is kept only when it
# costs less than leaving both of its verses out.
SKIP = 0.5
# Merging two verses of one side against one of the other costs extra, so that merges only
# happen at the seams where a numbering shift folded a verse into its neighbour.
MERGE = 0.4
MAX_DISPLACEMENT = 7  # verses; the largest shift seen is 5 (Job 40)
# A chapter counts as re-aligned when the alignment moves this many of its verses: single moves
# happen by chance between two verses the lexicon cannot tell apart.
MIN_MOVED_FOR_REALIGNMENT = 3
# A re-aligned chapter that keeps fewer of its verses than this is not trusted at all.
MIN_KEPT_IN_REALIGNED = 0.5
# Translations of one verse differ in length by less than a factor 2 from the corpus-wide ratio.
MAX_LENGTH_DEVIATION = math.log(2.0)
# Lexicon: words seen in at least 2 and at most 1/8 of the verse pairs (very common words are
# uninformative and dominate the co-occurrence cost); up to 4 translations with Dice >= 0.25.
LEXICON_MAX_DF_FRACTION = 1 / 8
LEXICON_MIN_DICE = 0.25
LEXICON_TRANSLATIONS = 4

KEY = re.compile(r"^(.+) (\d+):(\d+)$")  # "I Samuel 24:1", after the "$$$" entry marker
NOTE = re.compile(r"<note\b[^>]*>.*?</note>", re.S)
# Editorial headings (section titles, "BOOK 1", speaker labels in the Song); canonical psalm
# titles stay because the Spanish side carries them inside verse 1.
HEADING = re.compile(r'<(title|speaker)\b(?![^>]*canonical="true")[^>]*>.*?</\1>', re.S)
# Non-canonical divisions delimited by milestones (the WEB appends its glossary to Rev 22:21).
NON_CANONICAL = re.compile(
    r'<div\b[^>]*type="(glossary|introduction|front)"[^>]*/>.*?(?:<div\b[^>]*type="\1"[^>]*/>|\Z)',
    re.S)
# Tags that separate words (lines, paragraphs, divisions) become a space; the others (words,
# quotes, added words) sit inside running text.
BLOCK_TAG = re.compile(r"</?(?:l|lg|lb|div|p|chapter|title|item|list|milestone|verse)\b[^>]*>")
ANY_TAG = re.compile(r"<[^>]*>")
NOTE_MARK = "\x00"
INLINE_MARK = "\x01"
# A note follows the word it annotates: nothing goes between it and the punctuation after it.
NOTE_BEFORE_CLOSER = re.compile(NOTE_MARK + r"\s*(?=[,.;:!?)\]”’»])")
# The RV1909 splits verb + enclitic pronoun across two markup elements (<w>tráeme</w>
# <transChange>lo</transChange>); everywhere else two elements with no space between them are
# two words ("siempre</w><transChange>es" is "siempre es").
ENCLITIC = re.compile(r"(?i)\b(\w*(?:[aeií]r|[aeií]d|[áéíóú]\w+))" + INLINE_MARK
                      + r"+(lo|la|los|las|le|les|me|te|se|nos|os)\b")
INLINE_BETWEEN_WORDS = re.compile(r"(?<=\w)" + INLINE_MARK + r"+(?=\w)")
SPACES = re.compile(r"\s+")
# Old editions end each epistle with a postscript on where it was written ("Amén. Fué escrita de
# Corinto..."), which the other translation does not have.
SUBSCRIPTION = re.compile(r"(?<=Amén\.) [^\n]*\b(?:escrita|enviada)\b[^\n]*$", re.I)
WORD = re.compile(r"\w+")
# Words of two or more capital letters, with the one-letter capitals or commas between them.
CAPITALS_RUN = re.compile(r"\b[^\W\d_a-zß-ÿ]{2,}\b(?:[ ,]+[^\W\d_a-zß-ÿ]+\b)*")
SENTENCE_START = re.compile(r"(?:^|[.:;!?])[\s¡¿“‘(]*$")


def clean(markup):
    """Plain text of one verse's OSIS markup."""
    text = NOTE.sub(NOTE_MARK, markup)
    text = NON_CANONICAL.sub(" ", text)
    text = HEADING.sub(" ", text)
    text = BLOCK_TAG.sub(" ", text)
    text = ANY_TAG.sub(INLINE_MARK, text)
    text = NOTE_BEFORE_CLOSER.sub("", text).replace(NOTE_MARK, " ")
    text = ENCLITIC.sub(r"\1\2", text)
    text = INLINE_BETWEEN_WORDS.sub(" ", text).replace(INLINE_MARK, "")
    return SPACES.sub(" ", html.unescape(text)).strip()


def read_module(module):
    """{book: {(chapter, verse): text}} of a SWORD module, books and verses in canonical order."""
    imp = subprocess.run(["mod2imp", module], check=True, capture_output=True,
                         text=True, encoding="utf-8").stdout
    books = {}
    for entry in imp.split("$$$")[1:]:
        key_text, _, markup = entry.partition("\n")
        match = KEY.match(key_text.strip())
        # Chapter and verse 0 hold book and chapter introductions.
        if match and int(match.group(2)) > 0 and int(match.group(3)) > 0:
            key = (int(match.group(2)), int(match.group(3)))
            books.setdefault(match.group(1), {})[key] = clean(markup)
    for verses in books.values():
        last = max((k for k, text in verses.items() if text), default=None)
        if last is not None:
            verses[last] = SUBSCRIPTION.sub("", verses[last])
    restore_chapter_initial_case(books)
    return books


def restore_chapter_initial_case(books):
    """Undoes the small capitals some editions set a chapter's first words in ("EN el principio").

    Each word of the first all-capitals run in a chapter's first verse takes the casing it has
    most often elsewhere in the module (so names keep their capital), and a capital initial
    where the run starts a sentence.
    """
    casings = collections.Counter(w for verses in books.values() for text in verses.values()
                                  for w in WORD.findall(text) if not w.isupper())
    by_lower = {}
    for word, _ in casings.most_common():
        by_lower.setdefault(word.lower(), word)
    for verses in books.values():
        for key, text in verses.items():
            if key[1] != 1:
                continue
            run = CAPITALS_RUN.search(text)
            if not run:
                continue
            restored = WORD.sub(lambda w: by_lower.get(w.group().lower(), w.group().lower()),
                                run.group())
            if SENTENCE_START.search(text[:run.start()]):
                restored = restored[0].upper() + restored[1:]
            verses[key] = text[:run.start()] + restored + text[run.end():]


def tokens(text):
    return set(WORD.findall(text.lower()))


def build_lexicon(pairs):
    """Likely translations of each word, both ways, from (English, Spanish) token sets.

    Returns ({English word: Spanish words}, {Spanish word: English words}).
    """
    en_df, es_df = collections.Counter(), collections.Counter()
    for en, es in pairs:
        en_df.update(en)
        es_df.update(es)
    max_df = len(pairs) * LEXICON_MAX_DF_FRACTION
    cooccurrences = collections.Counter()
    for en, es in pairs:
        cooccurrences.update(itertools.product(
            [w for w in en if 2 <= en_df[w] <= max_df], [w for w in es if 2 <= es_df[w] <= max_df]))
    en_candidates, es_candidates = collections.defaultdict(list), collections.defaultdict(list)
    for (en_word, es_word), count in cooccurrences.items():
        dice = 2 * count / (en_df[en_word] + es_df[es_word])
        if count >= 2 and dice >= LEXICON_MIN_DICE:
            en_candidates[en_word].append((dice, es_word))
            es_candidates[es_word].append((dice, en_word))

    def best(candidates):
        return {w: {t for _, t in sorted(c, reverse=True)[:LEXICON_TRANSLATIONS]}
                for w, c in candidates.items()}

    return best(en_candidates), best(es_candidates)


def log_ratio(en, es):
    return math.log(len(es) / len(en))


class Book:
    """One book on both sides, as two verse lists over the union of their references."""

    def __init__(self, name, en_verses, es_verses):
        self.name = name
        self.keys = sorted(set(en_verses) | set(es_verses))
        self.en = [en_verses.get(k, "") for k in self.keys]
        self.es = [es_verses.get(k, "") for k in self.keys]

    def chapter(self, i):
        return self.keys[i][0]

    def en_text(self, bead):
        return " ".join(self.en[bead.en_start:bead.en_end])

    def es_text(self, bead):
        return " ".join(self.es[bead.es_start:bead.es_end])


# Verses [en_start, en_end) translate verses [es_start, es_end) of the same book.
Bead = collections.namedtuple("Bead", "en_start en_end es_start es_end")


def same_reference(i):
    """The bead pairing verse i of both sides: what the verse numbers say."""
    return Bead(i, i + 1, i, i + 1)

# Alignment steps (English verses, Spanish verses): pairs, merges across a seam, skips.
PAIRING_STEPS = ((1, 1), (2, 1), (1, 2))
SKIP_STEPS = ((1, 0), (0, 1))


class Aligner:
    def __init__(self, books):
        reference_pairs = [(en, es) for b in books for en, es in zip(b.en, b.es) if en and es]
        self.typical_log_ratio = statistics.median(log_ratio(en, es) for en, es in reference_pairs)
        self.en_lexicon, self.es_lexicon = build_lexicon(
            [(tokens(en), tokens(es)) for en, es in reference_pairs])

    def plausible(self, en, es):
        return self.length_deviation(en, es) <= MAX_LENGTH_DEVIATION

    def length_deviation(self, en, es):
        return abs(log_ratio(en, es) - self.typical_log_ratio)

    def align(self, book):
        """Monotonic alignment of a book's verses into beads, by dynamic programming."""
        en_words = [tokens(t) for t in book.en]
        es_words = [tokens(t) for t in book.es]
        # Per verse, the translation sets of its words the lexicon knows.
        en_known = [[self.en_lexicon[w] for w in words if w in self.en_lexicon] for words in en_words]
        es_known = [[self.es_lexicon[w] for w in words if w in self.es_lexicon] for words in es_words]

        def coverage(known, other_words):
            if not known:
                return 0.5
            return sum(1 for translations in known if not translations.isdisjoint(other_words)) \
                / len(known)

        def bead_cost(bead):
            en = book.en[bead.en_start:bead.en_end]
            es = book.es[bead.es_start:bead.es_end]
            if not all(en) or not all(es):
                return math.inf
            if len(en) + len(es) == 2:
                i, j = bead.en_start, bead.es_start
                mismatch = 1 - (coverage(en_known[i], es_words[j])
                                + coverage(es_known[j], en_words[i])) / 2
                return mismatch + self.length_deviation(en[0], es[0])
            en_set = set().union(*en_words[bead.en_start:bead.en_end])
            es_set = set().union(*es_words[bead.es_start:bead.es_end])
            mismatch = 1 - (coverage(sum(en_known[bead.en_start:bead.en_end], []), es_set)
                            + coverage(sum(es_known[bead.es_start:bead.es_end], []), en_set)) / 2
            return mismatch + self.length_deviation(" ".join(en), " ".join(es)) + MERGE

        n = len(book.keys)
        # cost[i][j - i + MAX_DISPLACEMENT]: best cost having consumed i English, j Spanish verses.
        width = 2 * MAX_DISPLACEMENT + 1
        cost = [[math.inf] * width for _ in range(n + 1)]
        came_from = [[None] * width for _ in range(n + 1)]
        cost[0][MAX_DISPLACEMENT] = 0.0
        for i in range(n + 1):
            for j in range(max(0, i - MAX_DISPLACEMENT), min(n, i + MAX_DISPLACEMENT) + 1):
                here = cost[i][j - i + MAX_DISPLACEMENT]
                if here == math.inf:
                    continue
                for di, dj in PAIRING_STEPS + SKIP_STEPS:
                    ni, nj = i + di, j + dj
                    d = nj - ni + MAX_DISPLACEMENT
                    if ni > n or nj > n or not 0 <= d < width:
                        continue
                    bead = Bead(i, ni, j, nj)
                    if di and dj:
                        step = bead_cost(bead)
                    else:
                        step = SKIP if (book.en[i] if di else book.es[j]) else 0.0
                    if here + step < cost[ni][d]:
                        cost[ni][d] = here + step
                        came_from[ni][d] = bead
        beads, i, j = [], n, n
        while (i, j) != (0, 0):
            bead = came_from[i][j - i + MAX_DISPLACEMENT]
            if bead.en_end > bead.en_start and bead.es_end > bead.es_start:
                beads.append(bead)
            i, j = bead.en_start, bead.es_start
        return fill_equal_gaps(beads[::-1], n)


def fill_equal_gaps(beads, n):
    """Pairs up the verses between two aligned beads when both sides have as many of them.

    Poetry defeats the lexicon now and then (few shared words, all verses alike), but verses
    enclosed by aligned neighbours on both sides, equally many, correspond one to one.
    """
    filled = []
    for before, after in zip([Bead(0, 0, 0, 0)] + beads, beads + [Bead(n, n, n, n)]):
        gap = after.en_start - before.en_end
        if gap == after.es_start - before.es_end:
            filled.extend(Bead(before.en_end + k, before.en_end + k + 1,
                               before.es_end + k, before.es_end + k + 1) for k in range(gap))
        if after.en_start < n:
            filled.append(after)
    return filled


def select_beads(book, aligner, stats):
    """The beads to keep from a book, in order; counts what it leaves out in `stats`."""
    alignment = aligner.align(book)

    def moved(bead):
        return bead != same_reference(bead.en_start)

    # Merges happen wherever the two translations cut verses differently; only single verses
    # that land on another reference show a numbering shift.
    moves = collections.Counter(book.chapter(b.en_start) for b in alignment if moved(b)
                                and b.en_end - b.en_start == b.es_end - b.es_start == 1)
    realigned = {c for c, count in moves.items() if count >= MIN_MOVED_FOR_REALIGNMENT}

    def usable(bead):
        en, es = book.en_text(bead), book.es_text(bead)
        return en and es and aligner.plausible(en, es)

    kept = [same_reference(i) for i in range(len(book.keys))
            if book.chapter(i) not in realigned and usable(same_reference(i))]
    used_en = {b.en_start for b in kept}
    used_es = {b.es_start for b in kept}
    for bead in alignment:
        en_range = range(bead.en_start, bead.en_end)
        es_range = range(bead.es_start, bead.es_end)
        # Outside re-aligned chapters a moved bead only fills a gap the references leave, such
        # as a verse the Spanish numbering puts at the start of the next chapter.
        if (book.chapter(bead.en_start) in realigned or moved(bead)) and usable(bead) \
                and used_en.isdisjoint(en_range) and used_es.isdisjoint(es_range):
            kept.append(bead)
            used_en.update(en_range)
            used_es.update(es_range)
            if book.chapter(bead.en_start) not in realigned:
                stats[GAP_FILLED] += 1

    dropped = set()
    for chapter in sorted(realigned):
        verses = [i for i, key in enumerate(book.keys) if key[0] == chapter and book.en[i]]
        kept_here = sum(1 for i in verses if i in used_en)
        if kept_here < MIN_KEPT_IN_REALIGNED * len(verses):
            dropped.add(chapter)
            stats[DROPPED_CHAPTERS] += 1
            print(f"  dropped {book.name} {chapter}: only {kept_here} of {len(verses)} verses align")
        else:
            stats[REALIGNED_CHAPTERS] += 1
            print(f"  re-aligned {book.name} {chapter}: {moves[chapter]} verses moved, "
                  f"{kept_here} of {len(verses)} kept")
    for i, text in enumerate(book.en):
        if not text or (i in used_en and book.chapter(i) not in dropped):
            continue
        if book.chapter(i) in dropped:
            stats[IN_DROPPED_CHAPTER] += 1
        elif book.chapter(i) in realigned:
            stats[UNPAIRED_AFTER_REALIGNMENT] += 1
        elif not book.es[i]:
            stats[EMPTY_SPANISH] += 1
        else:
            stats[IMPLAUSIBLE_LENGTHS] += 1
    stats[EMPTY_ENGLISH] += sum(
        1 for j, text in enumerate(book.es) if text and not book.en[j] and j not in used_es)
    return sorted((b for b in kept if book.chapter(b.en_start) not in dropped),
                  key=lambda b: b.en_start)


def split_of(book_name):
    if book_name in VALID_BOOKS:
        return "valid"
    if book_name in TEST_BOOKS:
        return "test"
    return "train"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--en-module", default="engWEB2015eb")
    parser.add_argument("--es-module", default="spaRV1909eb")
    parser.add_argument("out_dir", help="existing directory for train/valid/test .en/.es")
    args = parser.parse_args()

    en_books, es_books = read_module(args.en_module), read_module(args.es_module)
    books = []
    for name in en_books:
        if name in es_books:
            books.append(Book(name, en_books[name], es_books[name]))
    names = {b.name for b in books}
    missing = [n for n in VALID_BOOKS + TEST_BOOKS if n not in names]
    if missing:
        raise SystemExit(f"bible_corpus: books {missing} (held out for valid/test) are not in "
                         f"both {args.en_module} and {args.es_module}")

    stats = collections.Counter(dict.fromkeys(SUMMARY, 0))
    stats[ENGLISH_ONLY_BOOKS] = sum(
        1 for name, verses in en_books.items() if name not in names for text in verses.values() if text)
    aligner = Aligner(books)
    print("bible_corpus: aligning (re-aligned and dropped chapters follow)")
    lines = {s: ([], []) for s in SPLITS}
    for book in books:
        en_lines, es_lines = lines[split_of(book.name)]
        for bead in select_beads(book, aligner, stats):
            en_lines.append(book.en_text(bead))
            es_lines.append(book.es_text(bead))

    # The caller owns the (temporary) directory; not creating it means a run orphaned by an
    # interrupted caller fails instead of resurrecting a directory the caller cleaned up.
    if not os.path.isdir(args.out_dir):
        raise SystemExit(f"bible_corpus: output directory {args.out_dir} does not exist")
    for split, (en_lines, es_lines) in lines.items():
        for lang, split_lines in (("en", en_lines), ("es", es_lines)):
            with open(os.path.join(args.out_dir, f"{split}.{lang}"), "w", encoding="utf-8") as f:
                f.writelines(line + "\n" for line in split_lines)

    total = sum(len(en) for en, _ in lines.values())
    print("bible_corpus: pairs: " + ", ".join(f"{s} {len(lines[s][0])}" for s in SPLITS)
          + f", total {total}")
    for reason in SUMMARY:
        print(f"bible_corpus: {reason}: {stats[reason]}")


if __name__ == "__main__":
    main()

"""`heed translate --attention-plots` and `--alignment` end to end, on a few steps of the tiny model of
test_train_cli.py:

- --attention-plots writes one SVG per sentence and an index.html; Debian's chromium opens index.html
  headless, its DOM holds one loaded <img> per sentence, and its screenshot shows the heatmaps' blues (a
  broken image shows none). The screenshot is kept beside CI's logs: <build>/test-logs/attention-index.png
- --attention-kind encoder plots source against source
- --alignment hard appends ' ||| i-j ...' word pairs; soft appends the matrix, one comma-separated row per
  target piece (eos included), each row summing to one; with --n-best the alignment comes before the score;
  an ensemble of the model with itself gives the model's alignments
- an existing non-empty output directory, a layer or head the model lacks, and a bad kind are refused,
  naming the option

chromium is required, not optional: without it the test fails (scripts/install-deps.sh installs it).
"""
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

from cli_check import run
from test_train_cli import Runner, make_corpus

SENTENCES = ["the red cat sees a dog", "a big bird", "the old man likes the new house and the small tree"]


def png_pixels(path):
    """(width, height, rows of (r, g, b)) of an 8-bit RGB or RGBA, non-interlaced PNG, read from the spec."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, rows, previous = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):  # undo the row filter (PNG spec, section 9)
            left = line[i - channels] if i >= channels else 0
            up, up_left = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)) & 255
        rows.append([tuple(line[x * channels:x * channels + 3]) for x in range(width)])
        previous = line
    return width, height, rows


def browser_check(r, out_dir, count):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    r.check("chromium is installed (scripts/install-deps.sh)", chromium is not None, "no chromium on PATH")
    if chromium is None:
        return
    url = "file://" + os.path.join(out_dir, "index.html")
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={r.path('chromium-profile')}"]
    # --dump-dom prints the DOM after load; a small script adds what only a browser knows: whether each
    # image decoded, and its natural size. It runs from index.html's own page, not from a copy.
    dom = subprocess.run(base + ["--virtual-time-budget=3000", "--dump-dom", url], capture_output=True, text=True,
                         timeout=60)
    imgs = re.findall(r'<img src="(sentence-[0-9]+\.svg)"', dom.stdout)
    r.check(f"the browser's DOM holds one <img> per sentence ({len(imgs)})", dom.returncode == 0 and len(imgs) == count,
            dom.stderr[-2000:] + dom.stdout[:2000])

    logs = os.path.join(os.path.dirname(os.path.abspath(r.heed)), "test-logs")
    os.makedirs(logs, exist_ok=True)
    shot = os.path.join(logs, "attention-index.png")
    if os.path.exists(shot):
        os.remove(shot)
    result = subprocess.run(base + ["--window-size=1000,2400", f"--screenshot={shot}", url], capture_output=True,
                            text=True, timeout=60)
    print(f"screenshot of index.html: {shot}")
    r.check("chromium takes a screenshot of index.html", result.returncode == 0 and os.path.exists(shot),
            result.stderr[-2000:])
    if not os.path.exists(shot):
        return
    width, height, rows = png_pixels(shot)
    # The heatmaps' colours run from white to #08306b: strongly blue pixels (blue well above red) only come
    # from rendered cells or legends; chromium draws a broken image as a grey icon and its alt text.
    blue = sum(1 for row in rows for (red, green, b) in row if b > red + 40 and b > green + 10)
    r.check(f"the screenshot ({width}x{height}) shows the heatmaps ({blue} blue pixels)", blue > 2000, blue)


def checks(r):
    pairs = make_corpus(50, seed=3)
    r.write("train.en", "\n".join(en for en, _ in pairs) + "\n")
    r.write("train.es", "\n".join(es for _, es in pairs) + "\n")
    out = r.heed_run("train", r.config("attention.yaml", "run", 20))
    r.check("training 20 steps exits 0", out.returncode == 0, out.stderr[-2000:])
    if out.returncode != 0:
        return
    model = r.path("run")
    src = "\n".join(SENTENCES) + "\n"

    plots = r.path("plots")
    out = r.heed_run("translate", "--model", model, "--beam-size", "3", "--attention-plots", plots, stdin=src)
    r.check("--attention-plots exits 0", out.returncode == 0, out.stderr[-2000:])
    if out.returncode != 0:
        return
    svgs = sorted(f for f in os.listdir(plots) if f.endswith(".svg"))
    r.check(f"one SVG per sentence and an index.html ({svgs})",
            len(svgs) == len(SENTENCES) and os.path.exists(os.path.join(plots, "index.html")), os.listdir(plots))
    with open(os.path.join(plots, svgs[0]), encoding="utf-8") as f:
        svg = f.read()
    r.check("the SVG names its axes and has a legend",
            "source pieces" in svg and "target pieces" in svg and "url(#scale)" in svg, svg[:500])
    browser_check(r, plots, len(SENTENCES))

    again = r.heed_run("translate", "--model", model, "--attention-plots", plots, stdin=src)
    r.expect_error("an existing non-empty directory", again, "--attention-plots", plots)
    empty = r.path("empty")
    os.makedirs(empty)
    out = r.heed_run("translate", "--model", model, "--attention-plots", empty, "--attention-kind", "encoder",
                     "--attention-layer", "0", "--attention-head", "1", stdin=src)
    r.check("an empty directory is taken; --attention-kind encoder exits 0", out.returncode == 0, out.stderr[-2000:])
    if out.returncode == 0:
        with open(os.path.join(empty, "sentence-1.svg"), encoding="utf-8") as f:
            svg = f.read()
        r.check("encoder self-attention plots source against source",
                "source pieces (queries)" in svg and "source pieces (keys)" in svg, svg[:500])
    r.expect_error("a layer the model lacks",
                   r.heed_run("translate", "--model", model, "--attention-plots", r.path("p1"),
                              "--attention-layer", "9", stdin=src), "--attention-layer", "9")
    r.expect_error("a head the model lacks",
                   r.heed_run("translate", "--model", model, "--alignment", "hard", "--attention-head", "7",
                              stdin=src), "--attention-head", "7")
    r.expect_error("a head that is no number",
                   r.heed_run("translate", "--model", model, "--alignment", "hard", "--attention-head", "all",
                              stdin=src), "--attention-head", "all")
    r.expect_error("alignments come from cross-attention",
                   r.heed_run("translate", "--model", model, "--alignment", "soft", "--attention-kind", "encoder",
                              stdin=src), "--alignment", "--attention-kind")

    plain = r.heed_run("translate", "--model", model, stdin=src).stdout.splitlines()
    hard = r.heed_run("translate", "--model", model, "--alignment", "hard", stdin=src).stdout.splitlines()
    r.check("--alignment hard: 'text ||| i-j ...' with the same text",
            len(hard) == len(SENTENCES) and all(h.split(" ||| ")[0] == p for h, p in zip(hard, plain)) and
            all(re.fullmatch(r"(\d+-\d+( \d+-\d+)*)?", h.split(" ||| ")[1]) for h in hard), (plain, hard))
    pairs_ok = True
    for line, source in zip(hard, SENTENCES):
        text, alignment = line.split(" ||| ")
        for pair in alignment.split():
            i, j = map(int, pair.split("-"))
            pairs_ok &= i < len(source.split()) and j < max(1, len(text.split()))
    r.check("hard pairs index words of the source and of the translation", pairs_ok, hard)
    ensemble = r.heed_run("translate", "--model", model, "--model", model, "--alignment", "hard",
                          stdin=src).stdout.splitlines()
    r.check("an ensemble of the model with itself aligns as the model does", ensemble == hard, (ensemble, hard))
    soft = r.heed_run("translate", "--model", model, "--alignment", "soft", stdin=src).stdout.splitlines()
    sums_ok = len(soft) == len(SENTENCES)
    for line in soft:
        matrix = [[float(x) for x in row.split(",")] for row in line.split(" ||| ")[1].split(" ")]
        sums_ok &= len({len(row) for row in matrix}) == 1 and all(abs(sum(row) - 1) < 1e-3 for row in matrix)
    r.check("--alignment soft: one row per target piece, each summing to one", sums_ok, soft)
    nbest = r.heed_run("translate", "--model", model, "--alignment", "hard", "--n-best", "2", "--beam-size", "2",
                       stdin=src).stdout.splitlines()
    r.check("with --n-best: 'id ||| text ||| alignment ||| score'",
            len(nbest) == 2 * len(SENTENCES) and all(len(line.split(" ||| ")) == 4 for line in nbest), nbest)


if __name__ == "__main__":
    sys.exit(run(checks, runner=Runner))

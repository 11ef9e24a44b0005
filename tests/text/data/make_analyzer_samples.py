#!/usr/bin/python3
"""make_analyzer_samples.py KIT_DIR CORPUS.ndjson: writes analyzer_input.txt here, one sample per
line (development time only; the unit test never runs Python). Then the expected tokens:
  python3 KIT_DIR/analyzer.py --tokens analyzer_input.txt > analyzer_expected.txt
Samples: the reference's self-test inputs (those without a newline), corpus lines holding
non-ASCII characters (every 2nd one, at most 800), 1500 random strings (fixed seed) biased
towards the hard cases (marks, case foldings, CJK range edges, separators, astral planes), and
long-token edges around the 255-byte limit.
"""
import json
import random
import sys

kit, corpus = sys.argv[1], sys.argv[2]
sys.path.insert(0, kit)
import analyzer  # noqa: E402

rnd = random.Random(20251122)
out = [text for _, text, _ in analyzer.SELFTEST if "\n" not in text and text]

n = 0
with open(corpus, encoding="utf-8") as f:
    for line in f:
        for piece in json.loads(line)["text"].split("\n"):
            if not piece.isascii():
                n += 1
                if n % 2 == 0 and len(out) < 800 + 40:
                    out.append(piece[:300])

cjk_edges = []
for a, b in analyzer.CJK_RANGES:
    cjk_edges += [a - 1, a, a + 1, b - 1, b, b + 1]
folds = sorted(analyzer.FOLD.keys())
marks = [cp for a, b in analyzer._load_ranges({"Mn", "Mc", "Me"}) for cp in range(a, min(b, a + 40) + 1)]
letters = [cp for a, b in analyzer._load_ranges({"Lu", "Ll", "Lt", "Lm", "Lo", "Nd"})
           for cp in range(a, min(b, a + 30) + 1) if cp > 127]
seps = [0x20, 0x2D, 0x5F, 0x2E, 0x27, 0x3000, 0x3001, 0x3002, 0xA0, 0x2028, 0x1F680, 0xFE0F,
        0x200B, 0x200D, 0x9, 0xD, 0x30FB, 0xB2, 0xBD, 0x2460]


def pick():
    r = rnd.random()
    if r < 0.25:
        return rnd.choice(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ")
    if r < 0.35:
        return rnd.choice(folds)
    if r < 0.45:
        return rnd.choice(marks)
    if r < 0.55:
        return rnd.choice(letters)
    if r < 0.65:
        return rnd.choice(seps)
    if r < 0.75:
        return rnd.choice(cjk_edges)
    if r < 0.85:
        return rnd.randrange(0x3040, 0xA000)
    if r < 0.93:
        return rnd.randrange(0x80, 0x3000)
    return rnd.randrange(0x80, 0x110000)


for _ in range(1500):
    want = rnd.choice([1, 2, 3, 5, 8, 13, 30, 60])
    cps = []
    while len(cps) < want:
        cp = pick()
        if 0xD800 <= cp <= 0xDFFF or cp == 0x0A:
            continue
        cps.append(cp)
    out.append("".join(map(chr, cps)))

for rep, ch in [(255, "a"), (256, "a"), (127, "é"), (128, "é"), (85, "日"), (86, "本"),
                (85, "\u212a"), (255, "\u212a"), (128, "\u1e9e")]:
    out.append(ch * rep)
    out.append("x " + ch * rep + " y")
out += ["é" * 127 + "a", "é" * 127 + "ab", "a" * 254 + "\u0301", "a" * 255 + "日本"]

with open("analyzer_input.txt", "w", encoding="utf-8", newline="\n") as f:
    for line in out:
        f.write(line + "\n")
print("%d samples" % len(out))

#!/usr/bin/python3
"""gen_unicode_tables.py: generates src/text/unicode_tables.c, the character
tables of tierdb's default text analyzer, from Debian's unicode-data files.

Usage:
  python3 scripts/gen_unicode_tables.py [--unicode-dir /usr/share/unicode] [--out FILE]
  (default --out: src/text/unicode_tables.c beside this script's repository)

Why our own tables and not utf8proc's: the analyzer's specification
(docs/text.md, and the executable reference analyzer.py of the text bench
kit) pins the character data to the files of Debian's `unicode-data`
package (Unicode 15.0.0 in Debian 12), and needs *simple* case folding
(CaseFolding.txt statuses C and S). utf8proc folds with full case folding
(status F: "ß" -> "ss") and carries its own Unicode version, so it can
disagree with the reference. Generating from the same files the reference
reads makes the two agree code point for code point, and the output is
committed so a build needs neither Python nor the data files.

What is generated (all lookups are two-stage tables: stage 1 indexed by
cp >> SHIFT gives a block number, stage 2 holds the blocks, identical
blocks stored once):
  text_uc_class_stage1/2: a class byte per code point U+0000..U+10FFFF:
      bits 0-1  0 = separator, 1 = starts or continues a run (General_Category
                Lu Ll Lt Lm Lo Nd), 2 = only continues a run (Mn Mc Me)
      bit 2     the code point lies in one of the CJK ranges of the spec
  text_uc_fold_stage1/2: simple case folding as a signed delta
      (folded - cp), 0 when the code point folds to itself.
The output is deterministic: running the script twice gives the same file.
"""
import argparse
import hashlib
import os
import sys

MAX_CP = 0x10FFFF
START_CATEGORIES = {"Lu", "Ll", "Lt", "Lm", "Lo", "Nd"}
MARK_CATEGORIES = {"Mn", "Mc", "Me"}
# The CJK ranges of the analyzer's specification (not derived from data files).
CJK_RANGES = (
    (0x1100, 0x11FF), (0x2E80, 0x2FDF), (0x3040, 0x30FF), (0x3100, 0x312F),
    (0x3130, 0x318F), (0x31A0, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
    (0xA960, 0xA97F), (0xAC00, 0xD7AF), (0xD7B0, 0xD7FF), (0xF900, 0xFAFF),
    (0xFF66, 0xFF9F), (0x20000, 0x2FA1F), (0x30000, 0x323AF),
)
CLASS_SEP, CLASS_START, CLASS_MARK, CLASS_CJK = 0, 1, 2, 4
CLASS_SHIFT = 7   # 128 code points per class block
FOLD_SHIFT = 7    # 128 code points per fold block


def read_categories(path):
    """List of General_Category per code point ('Cn' when unlisted)."""
    cats = ["Cn"] * (MAX_CP + 1)
    first = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split(";")
            cp = int(fields[0], 16)
            name, cat = fields[1], fields[2]
            if name.endswith(", First>"):
                first = cp
                continue
            if name.endswith(", Last>"):
                lo, first = first, None
            else:
                lo = cp
            for c in range(lo, cp + 1):
                cats[c] = cat
    return cats


def read_folding(path):
    fold = {}
    version = "unknown"
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("# CaseFolding-"):
                version = line[len("# CaseFolding-"):].split(".txt")[0]
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            code, status, mapping = [x.strip() for x in line.split(";")[:3]]
            if status in ("C", "S"):
                fold[int(code, 16)] = int(mapping, 16)
    return fold, version


def two_stage(values, shift):
    """(stage1 list of block numbers, list of blocks) with identical blocks shared."""
    size = 1 << shift
    blocks, index, stage1 = [], {}, []
    for start in range(0, MAX_CP + 1, size):
        block = tuple(values[start:start + size])
        if len(block) < size:
            block = block + (0,) * (size - len(block))
        if block not in index:
            index[block] = len(blocks)
            blocks.append(block)
        stage1.append(index[block])
    return stage1, blocks


def c_array(ctype, name, values, per_line=16):
    out = ["const %s %s[%d] = {" % (ctype, name, len(values))]
    for i in range(0, len(values), per_line):
        out.append("    " + ", ".join(str(v) for v in values[i:i + per_line]) + ",")
    out.append("};")
    return "\n".join(out)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--unicode-dir", default="/usr/share/unicode")
    ap.add_argument("--out", default=os.path.join(here, "..", "src", "text", "unicode_tables.c"))
    a = ap.parse_args()
    ud = os.path.join(a.unicode_dir, "UnicodeData.txt")
    cf = os.path.join(a.unicode_dir, "CaseFolding.txt")
    for p in (ud, cf):
        if not os.path.exists(p):
            sys.exit("gen_unicode_tables.py: %s not found (apt-get install -y unicode-data)" % p)

    cats = read_categories(ud)
    fold, version = read_folding(cf)

    cls = [CLASS_SEP] * (MAX_CP + 1)
    for cp, cat in enumerate(cats):
        if cat in START_CATEGORIES:
            cls[cp] = CLASS_START
        elif cat in MARK_CATEGORIES:
            cls[cp] = CLASS_MARK
    for lo, hi in CJK_RANGES:
        for cp in range(lo, hi + 1):
            cls[cp] |= CLASS_CJK
    delta = [0] * (MAX_CP + 1)
    for cp, to in fold.items():
        delta[cp] = to - cp
    # ASCII is handled inline by the analyzer; check the tables agree with it.
    for cp in range(128):
        want = CLASS_START if chr(cp).isalnum() else CLASS_SEP
        assert cls[cp] == want, hex(cp)
        assert delta[cp] == (32 if 0x41 <= cp <= 0x5A else 0), hex(cp)

    c1, cblocks = two_stage(cls, CLASS_SHIFT)
    f1, fblocks = two_stage(delta, FOLD_SHIFT)
    assert len(cblocks) <= 0xFFFF and len(fblocks) <= 0xFFFF
    cflat = [v for b in cblocks for v in b]
    fflat = [v for b in fblocks for v in b]
    n_start = sum(1 for v in cls if v & 3 == CLASS_START)
    n_mark = sum(1 for v in cls if v & 3 == CLASS_MARK)

    lines = [
        "/*",
        " * unicode_tables.c: GENERATED by scripts/gen_unicode_tables.py; do not edit.",
        " * Character data of the default text analyzer (docs/text.md), Unicode %s," % version,
        " * from Debian's unicode-data package:",
        " *   UnicodeData.txt sha256 %s" % sha256(ud),
        " *   CaseFolding.txt sha256 %s" % sha256(cf),
        " * Layer: text. Read by unicode.h's inline lookups; immutable.",
        " *",
        " * class byte (text_uc_class): bits 0-1 = 0 separator, 1 run start/continue",
        " * (Lu Ll Lt Lm Lo Nd: %d code points), 2 run continue only (Mn Mc Me: %d" % (n_start, n_mark),
        " * code points); bit 2 = CJK range of the spec. fold delta (text_uc_fold):",
        " * simple case folding (statuses C and S, %d mappings) as folded - cp." % len(fold),
        " * Two-stage tables: stage1[cp >> SHIFT] is a block number, the value is",
        " * stage2[block << SHIFT | (cp & mask)]; %d class blocks, %d fold blocks." % (len(cblocks), len(fblocks)),
        " */",
        "#include \"text/unicode.h\"",
        "",
        "const char text_uc_version[] = \"%s\";" % version,
        "",
        c_array("uint16_t", "text_uc_class_stage1", c1),
        "",
        c_array("uint8_t", "text_uc_class_stage2", cflat, 32),
        "",
        c_array("uint16_t", "text_uc_fold_stage1", f1),
        "",
        c_array("int32_t", "text_uc_fold_stage2", fflat),
        "",
    ]
    text = "\n".join(lines)
    tmp = a.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, a.out)
    print("wrote %s: Unicode %s, %d class blocks, %d fold blocks, %d foldings" % (
        os.path.normpath(a.out), version, len(cblocks), len(fblocks), len(fold)))


if __name__ == "__main__":
    main()

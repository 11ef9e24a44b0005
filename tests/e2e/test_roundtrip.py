#!/usr/bin/python3
"""Round-trip of 10,000 documents through the whole storage engine.

Documents carry varied attributes (unicode in every script, emoji, combining marks, control
characters and U+0000, nested objects and arrays, large and negative integers, +-2^53 and beyond,
floats at the edges of double, empty and long strings; some ids need percent-encoding, some are JSON
integers). The server runs with a tiny memtable (TIERDB_MEMTABLE_MAX_DOCS) so the load is flushed to
many segments and compacted in the background. Then 1,000 documents are replaced and 500 deleted.

Every document must come back value for value (JSON types kept: 1 is not 1.0, key sets exact) and
its vector within float32 precision, by GET and by paging (each exactly once, in id byte order):
  1. right after the writes (data spread over memtable and flushed segments),
  2. once compaction has merged the segments,
  3. after a graceful restart (SIGTERM),
  4. after a SIGKILL and restart (WAL replay).

Run: python3 tests/e2e/test_roundtrip.py --binary build/tierdb [--docs N] [--keep]
"""
import os
import random
import struct
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdbtest as T  # noqa: E402
from tdbtest import q  # noqa: E402

NAME = "roundtrip"
DECLARED = {"n": {"type": "int"}, "title": {"type": "string"}, "tags": {"type": "string[]"}, "price": {"type": "float"}}
DIM = 8
SEED = 20261122

# Unicode blocks the strings are drawn from (no surrogates: they are not UTF-8).
RANGES = [(0x20, 0x7E), (0x01, 0x1F), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF),
          (0x590, 0x5FF), (0x600, 0x6FF), (0x900, 0x97F), (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
          (0xE000, 0xE0FF), (0xFFF0, 0xFFFF), (0x1F300, 0x1F6FF), (0x1F900, 0x1F9FF), (0x10000, 0x1007F),
          (0x10FF00, 0x10FFFF)]
SPECIAL_STRINGS = ["", "\u0000", "a\u0000b", "\"quoted\" \\back\\slash/", "\n\r\t\b\f", "\u200d\u200c\ufeff",
                   "\U0001F468\u200D\U0001F469\u200D\U0001F467", "e\u0301 vs \u00e9", "\u202eRTL override",
                   "\U0010FFFF", "\ufffd", "</script>", "null", "true", "0", " leading and trailing "]
SPECIAL_NUMBERS = [0, 1, -1, 2 ** 53, -2 ** 53, 2 ** 53 - 1, -(2 ** 53 - 1), 2 ** 53 + 1, -(2 ** 53 + 1),
                   2 ** 63 - 1, -2 ** 63, 10 ** 20, -10 ** 25, 0.1, -0.125, 1e-300, 5e-324, 1.7976931348623157e308,
                   -1.7976931348623157e308, 2.2250738585072014e-308, 6.02214076e23, 3.141592653589793, -0.0, 1.0,
                   100.0, 1e21, 123456789.123456789]


def rand_string(rnd, max_len=40):
    k = rnd.random()
    if k < 0.15:
        return rnd.choice(SPECIAL_STRINGS)
    if k < 0.152:
        # a few long strings, mixed scripts (kept rare so a batch stays far below the body limit)
        n = rnd.choice([2000, 10000, 40000])
        return "".join(chr(rnd.randint(*rnd.choice(RANGES))) for _ in range(n // 50)) * 50
    n = rnd.randint(0, max_len)
    lo, hi = rnd.choice(RANGES)
    mixed = rnd.random() < 0.3
    out = []
    for _ in range(n):
        if mixed:
            lo, hi = rnd.choice(RANGES)
        out.append(chr(rnd.randint(lo, hi)))
    return "".join(out)


def rand_float(rnd):
    while True:
        f = struct.unpack("<d", struct.pack("<Q", rnd.getrandbits(64)))[0]
        if f == f and abs(f) != float("inf"):
            return f


def rand_number(rnd):
    k = rnd.random()
    if k < 0.25:
        return rnd.choice(SPECIAL_NUMBERS)
    if k < 0.5:
        return rnd.randint(-2 ** 63, 2 ** 63 - 1)
    if k < 0.7:
        return rnd.randint(-1000, 1000)
    if k < 0.85:
        return rand_float(rnd)
    return round(rnd.uniform(-1e6, 1e6), rnd.randint(0, 9))


def rand_value(rnd, depth=0):
    k = rnd.random()
    if depth < 4 and k < 0.12:
        return {rand_string(rnd, 12): rand_value(rnd, depth + 1) for _ in range(rnd.randint(0, 5))}
    if depth < 4 and k < 0.24:
        return [rand_value(rnd, depth + 1) for _ in range(rnd.randint(0, 6))]
    if k < 0.55:
        return rand_string(rnd)
    if k < 0.85:
        return rand_number(rnd)
    return rnd.choice([True, False, None])


def make_doc(rnd, doc_id, version):
    attrs = {"n": rnd.randint(-2 ** 53, 2 ** 53), "title": rand_string(rnd), "version": version,
             "tags": [rand_string(rnd, 8) for _ in range(rnd.randint(0, 4))], "price": rand_number(rnd)
             if rnd.random() < 0.5 else rnd.randint(-10, 10)}
    if isinstance(attrs["price"], bool) or not isinstance(attrs["price"], (int, float)):
        attrs["price"] = 0
    for _ in range(rnd.randint(0, 8)):
        key = rand_string(rnd, 10)
        if key not in DECLARED:   # declared attributes keep their declared types
            attrs[key] = rand_value(rnd)
    if rnd.random() < 0.03:
        attrs = {}
    vec = [rnd.gauss(0, 1) * rnd.choice([1e-3, 1, 1e3]) for _ in range(DIM)]
    return {"id": doc_id, "vector": vec, "attributes": attrs}


def make_ids(rnd, n):
    ids = []
    for i in range(n):
        k = rnd.random()
        if k < 0.03:
            ids.append(i * 7919 + 1)      # JSON integer ids: stored as their decimal string
        elif k < 0.08:
            word = "".join(chr(rnd.randint(*rnd.choice(RANGES))) for _ in range(rnd.randint(0, 6)))
            ids.append("%s/%d %s?#%%" % (word, i, "\U0001F680"))
        elif k < 0.1:
            ids.append("\u00e9" * rnd.randint(1, 200) + str(i))
        else:
            ids.append("d%05d" % i)
    return ids


def check_all(ctx, server, oracle, phase, get_every=True):
    """Paging (two page sizes) and GET of every document; returns the number of problems."""
    c = server.client()
    before = len(ctx.failures)
    want_ids = sorted(oracle, key=lambda i: i.encode("utf-8"))
    for limit, vectors in ((1000, True), (97, False)):
        got, probs = T.list_all(c, NAME, limit=limit, include_vectors=vectors)
        ids = [d.get("id") for d in got]
        ctx.check(not probs, "%s: paging limit=%d answered" % (phase, limit), probs[:3])
        ctx.check(ids == want_ids, "%s: paging limit=%d returns every document once, in id byte order" % (phase, limit),
                  "%d ids, first differences: %s" % (len(ids), T.short(diff_ids(ids, want_ids), 300)), len(want_ids))
        bad = []
        for d in got:
            w = oracle.get(d.get("id"))
            if w is None:
                continue
            if not T.json_same(d.get("attributes") or {}, w["attributes"]):
                bad.append(("attributes", d.get("id")))
            if vectors and not T.vec_close(d.get("vector"), w["vector"]):
                bad.append(("vector", d.get("id")))
            if not vectors and d.get("vector") is not None:
                bad.append(("vector present", d.get("id")))
        ctx.check(not bad, "%s: paging limit=%d: every value identical" % (phase, limit), bad[:5])
    if get_every:
        bad, lock = [], threading.Lock()
        ids = list(oracle)

        def worker(part):
            cl = server.client()
            for i in part:
                r = cl.get("/v1/collections/%s/documents/%s" % (NAME, q(i)))
                w = oracle[i]
                ok = (r.status == 200 and r.get("id") == i and T.json_same(r.get("attributes") or {}, w["attributes"])
                      and T.vec_close(r.get("vector"), w["vector"]))
                if not ok:
                    with lock:
                        bad.append((i, T.short(r, 200), T.short(w["attributes"], 200)))
            cl.close()
        threads = [threading.Thread(target=worker, args=(ids[k::4],)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ctx.check(not bad, "%s: GET of each of %d documents returns it value for value" % (phase, len(ids)),
                  "%d differ, e.g. %s" % (len(bad), bad[:2]))
    r = c.get("/v1/collections/" + NAME)
    ctx.check(r.get("documents") == len(oracle), "%s: the collection counts %d documents" % (phase, len(oracle)),
              r.get("documents"), len(oracle))
    c.close()
    return len(ctx.failures) - before


def diff_ids(got, want):
    gs, ws = set(got), set(want)
    return {"missing": sorted(ws - gs)[:3], "unexpected": sorted(gs - ws)[:3],
            "duplicates": len(got) - len(gs)}


def test_roundtrip(ctx):
    n = ctx.args.docs
    s = ctx.server("rt", env={"TIERDB_MEMTABLE_MAX_DOCS": str(max(50, n // 40)),
                              "TIERDB_COMPACTION_MIN_SEGMENTS": str(ctx.args.compaction_min_segments)})
    c = s.client()
    r = c.post("/v1/collections", {"name": NAME, "dimension": DIM, "metric": "l2", "attributes": DECLARED})
    ctx.check(r.status == 201, "create", r)
    rnd = random.Random(SEED)
    oracle = {}
    docs = []
    for raw_id in make_ids(rnd, n):
        d = make_doc(rnd, raw_id, 1)
        docs.append(d)
        oracle[str(raw_id)] = d
    rnd.shuffle(docs)
    batch = 250
    for k in range(0, len(docs), batch):
        r = c.post("/v1/collections/%s/documents" % NAME, {"documents": docs[k:k + batch]})
        if not ctx.check(r.status == 200 and r.get("upserted") == len(docs[k:k + batch]),
                         "upsert batch %d" % (k // batch), r):
            return
    # replace 1,000 (whole documents: attributes not carried over) and delete 500
    ids = sorted(oracle)
    rnd.shuffle(ids)
    replaced, deleted = ids[:n // 10], ids[n // 10:n // 10 + n // 20]
    upd = [make_doc(rnd, i, 2) for i in replaced]
    for k in range(0, len(upd), batch):
        r = c.post("/v1/collections/%s/documents" % NAME, {"documents": upd[k:k + batch]})
        ctx.check(r.status == 200, "replace batch", r)
    for d in upd:
        oracle[d["id"]] = d
    half = len(deleted) // 2
    r = c.post("/v1/collections/%s/documents/delete" % NAME, {"ids": deleted[:half]})
    ctx.check(r.status == 200 and r.get("deleted") == half, "delete by ids", r, {"deleted": half})
    for i in deleted[half:]:
        r = c.delete("/v1/collections/%s/documents/%s" % (NAME, q(i)))
        ctx.check(r.status == 200 and r.get("deleted") == 1, "delete %r" % i, r)
    for i in deleted:
        del oracle[i]
    col = c.get("/v1/collections/" + NAME).json or {}
    ctx.check(col.get("segments", 0) >= 1, "the load was flushed to segments", col.get("segments"))
    if check_all(ctx, s, oracle, "after the writes"):
        return

    # compaction: with 3 as the threshold the ~40 flushes must have been merged
    flushes = n // max(50, n // 40)

    def compacted():
        seg = (c.get("/v1/collections/" + NAME).json or {}).get("segments")
        return isinstance(seg, int) and seg <= flushes // 3
    if ctx.args.compaction_min_segments <= 3:
        ok = T.wait_for(compacted, 120, 0.25)
        ctx.check(ok, "compaction merged the segments (at most %d of ~%d flushed)" % (flushes // 3, flushes),
                  (c.get("/v1/collections/" + NAME).json or {}).get("segments"))
        check_all(ctx, s, oracle, "after compaction", get_every=False)
    else:
        print("    compaction phase skipped (--compaction-min-segments %d)" % ctx.args.compaction_min_segments)

    c.close()
    rc = s.stop()
    ctx.check(rc == 0, "SIGTERM -> exit 0", rc, 0)
    s.start()
    check_all(ctx, s, oracle, "after a graceful restart")
    # writes after the restart live only in the WAL when the process is killed
    c = s.client()
    extra = [make_doc(rnd, "post-restart-%d" % i, 3) for i in range(30)]
    r = c.post("/v1/collections/%s/documents" % NAME, {"documents": extra})
    ctx.check(r.status == 200, "upsert after restart", r)
    for d in extra:
        oracle[d["id"]] = d
    c.close()
    s.kill()
    s.start()
    check_all(ctx, s, oracle, "after SIGKILL and restart")
    s.stop()


def add_args(ap):
    ap.add_argument("--docs", type=int, default=10000, help="number of documents (default 10000)")
    ap.add_argument("--compaction-min-segments", type=int, default=3,
                    help="TIERDB_COMPACTION_MIN_SEGMENTS (default 3; above 3 the compaction phase is skipped)")


if __name__ == "__main__":
    T.main([test_roundtrip], add_arguments=add_args, description=__doc__)

#!/usr/bin/python3
"""End-to-end: snapshot -> DELETE the collection (keep_snapshots) -> restore gives back the same
collection (API.md "Snapshots", docs/snapshots.md).

A collection with declared full-text, numeric and array attributes, undeclared nested attributes,
Unicode ids and text, overwritten and deleted documents, is snapshotted; the answers to a fixed set
of vector (exact and approximate), text, filter, vector+filter and hybrid (RRF and weighted)
queries are recorded; the collection is dropped with ?keep_snapshots=true and restored from the
snapshot under its own name, and again into a new name. Both must hold every document exactly:
the same ids, vectors bit-identical (compared as float32 bit patterns, not approximately),
attributes value for value; and answer every query with the same ids and the same distances and
scores. The restored collection also survives a restart, takes new writes, and a snapshot of it
restores in place over changed contents.

Run: python3 tests/e2e/test_snapshot_restore.py --binary build/tierdb [--keep] [--only NAME]
"""
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdbtest as T  # noqa: E402
from tdbtest import q  # noqa: E402

DIM = 16
N_DOCS = 700
NAME = "sr_docs"
WORDS = ("alpha beta gamma delta epsilon zeta theta kappa lambda omicron sigma omega red green blue "
         "shoes socks running walking fast slow über café naïve 東京 タワー").split()
SCHEMA = {"title": {"type": "string", "full_text": {"language": "english", "stemming": True}},
          "body": {"type": "string", "full_text": True},
          "year": {"type": "int"}, "price": {"type": "float"}, "tags": {"type": "string[]"},
          "ok": {"type": "bool"}}
_shared = {}


def f32_bits(values):
    return [struct.unpack("<I", struct.pack("<f", float(v)))[0] for v in values]


def make_docs(rng, count, prefix="d"):
    docs = []
    for i in range(count):
        vec = [rng.uniform(-1, 1) for _ in range(DIM)]
        vec[0] += 0.01  # never the zero vector (cosine refuses it)
        attrs = {"title": " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5))),
                 "body": " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 30))),
                 "year": rng.randint(1990, 2030), "price": round(rng.uniform(0, 500), 3),
                 "tags": rng.sample(["sale", "new", "old", "blue", "ünï"], rng.randint(0, 3)),
                 "ok": rng.random() < 0.5}
        if i % 7 == 0:
            attrs["extra"] = {"nested": [1, 2.5, None, "x"], "deep": {"k": True}}
        if i % 11 == 0:
            attrs["note"] = None
        if i % 13 == 0:
            attrs = {}
        ident = "%s%04d" % (prefix, i) if i % 9 else "%s%04d/ü é?#%%" % (prefix, i)
        docs.append({"id": ident, "vector": vec, "attributes": attrs})
    return docs


def server(ctx):
    s = _shared.get("srv")
    if s is None or not s.alive():
        s = _shared["srv"] = ctx.server("snap")
    return s


def dump(c, name):
    """{id: (vector bits, attributes)} of every document, and listing problems."""
    docs, probs = T.list_all(c, name, limit=250, include_vectors=True)
    out = {}
    for d in docs:
        if d.get("id") in out:
            probs.append("id %r listed twice" % d.get("id"))
        out[d.get("id")] = (f32_bits(d.get("vector") or []), d.get("attributes"))
    return out, probs


def queries(rng):
    qs = []
    for k in range(4):
        v = [rng.uniform(-1, 1) for _ in range(DIM)]
        qs.append(("vector exact %d" % k, {"vector": v, "top_k": 10, "exact": True,
                                            "include": {"attributes": True}}))
        qs.append(("vector hnsw %d" % k, {"vector": v, "top_k": 10, "ef": 800}))
        qs.append(("vector+filter %d" % k, {"vector": v, "top_k": 15, "exact": True,
                                             "filter": {"year": {"$gte": 2005}, "tags": {"$in": ["sale", "new"]}}}))
    qs.append(("text shorthand", {"text": "alpha shoes", "top_k": 20}))
    qs.append(("text fields+weights", {"text": {"query": "running red café", "fields": ["title", "body"],
                                                 "weights": {"title": 2.0}}, "top_k": 20}))
    qs.append(("text stemmed title", {"text": {"query": "walks run", "fields": ["title"]}, "top_k": 20}))
    qs.append(("text CJK", {"text": "東京タワー", "top_k": 10}))
    qs.append(("filter only", {"filter": {"$or": [{"year": {"$lt": 1995}}, {"tags": {"$contains": "ünï"}}]},
                               "top_k": 200}))
    qs.append(("filter nested absent", {"filter": {"note": {"$exists": True}}, "top_k": 200}))
    qs.append(("filter prefix id", {"filter": {"id": {"$prefix": "d00"}}, "top_k": 200}))
    v = [rng.uniform(-1, 1) for _ in range(DIM)]
    qs.append(("hybrid rrf", {"vector": v, "text": "gamma delta", "top_k": 20, "exact": True,
                              "hybrid": {"method": "rrf", "k": 60}}))
    qs.append(("hybrid weighted", {"vector": v, "text": "omega blue", "top_k": 20, "exact": True,
                                   "hybrid": {"method": "weighted", "vector_weight": 0.7},
                                   "filter": {"ok": True}}))
    return qs


def answers(ctx, c, name, qs):
    out = {}
    for label, body in qs:
        r = c.post("/v1/collections/%s/query" % q(name), body)
        ctx.check(r.status == 200, "%s on %s -> 200" % (label, name), r)
        res = r.get("results") or []
        out[label] = [(x.get("id"), x.get("distance"), x.get("score"), x.get("attributes")) for x in res]
    return out


def compare_docs(ctx, what, got, want):
    ctx.check(len(got) == len(want), "%s: %d documents" % (what, len(want)), len(got))
    missing = [i for i in want if i not in got]
    extra = [i for i in got if i not in want]
    ctx.check(not missing and not extra, "%s: the same ids" % what, {"missing": missing[:5], "extra": extra[:5]})
    bad_vec = [i for i in want if i in got and got[i][0] != want[i][0]]
    ctx.check(not bad_vec, "%s: every vector bit-identical" % what, bad_vec[:5])
    bad_attr = [i for i in want if i in got and not T.json_same(got[i][1], want[i][1])]
    ctx.check(not bad_attr, "%s: every attribute object value for value" % what,
              [(i, got[i][1], want[i][1]) for i in bad_attr[:3]])


def compare_answers(ctx, what, got, want):
    for label in want:
        g, w = got.get(label), want[label]
        same = g is not None and len(g) == len(w) and all(
            a[0] == b[0] and a[1] == b[1] and a[2] == b[2] and T.json_same(a[3], b[3]) for a, b in zip(g, w))
        ctx.check(same, "%s: %s answers identically" % (what, label),
                  {"got": (g or [])[:4], "want": w[:4]})
        ctx.check(len(w) > 0 or label.startswith("filter nested"), "%s: %s has results to compare" % (what, label))


def build(ctx, c):
    rng = random.Random(20261122)
    ctx.check(c.post("/v1/collections", {"name": NAME, "dimension": DIM, "metric": "cosine",
                                         "attributes": SCHEMA}).status == 201, "create")
    docs = make_docs(rng, N_DOCS)
    for i in range(0, len(docs), 100):
        r = c.post("/v1/collections/%s/documents" % NAME, {"documents": docs[i:i + 100]})
        ctx.check(r.status == 200, "upsert batch", r)
    # Overwrites and deletes: the snapshot holds live documents only, each in its last version.
    again = make_docs(random.Random(7), 60)
    r = c.post("/v1/collections/%s/documents" % NAME, {"documents": again})
    ctx.check(r.status == 200, "overwrite 60", r)
    r = c.post("/v1/collections/%s/documents/delete" % NAME, {"ids": [d["id"] for d in docs[100:130]]})
    ctx.check(r.status == 200 and r.get("deleted") == 30, "delete 30", r)
    return N_DOCS - 30


def test_snapshot_delete_restore(ctx):
    s = server(ctx)
    c = s.client()
    live = build(ctx, c)
    before, probs = dump(c, NAME)
    ctx.check(not probs and len(before) == live, "%d live documents before" % live, (len(before), probs))
    qs = queries(random.Random(99))
    want = answers(ctx, c, NAME, qs)
    coll_before = c.get("/v1/collections/" + NAME).json or {}

    r = c.post("/v1/collections/%s/snapshots" % NAME)
    ctx.check(r.status == 201 and r.get("documents") == live and r.get("format") == "parquet",
              "snapshot -> 201 with %d documents" % live, r)
    snap = r.get("snapshot_id")
    _shared["snap"] = snap
    ctx.check(isinstance(snap, str) and r.get("size_bytes", 0) > 0, "snapshot id and size", r)
    lst = c.get("/v1/collections/%s/snapshots" % NAME)
    ctx.check(lst.status == 200 and [x.get("snapshot_id") for x in lst.get("snapshots") or []] == [snap],
              "the snapshot is listed", lst)

    r = c.delete("/v1/collections/%s?keep_snapshots=true" % NAME)
    ctx.check(r.status == 200 and r.get("deleted") is True, "DELETE ?keep_snapshots=true", r)
    ctx.check(c.get("/v1/collections/" + NAME).status == 404, "the collection is gone")
    lst = c.get("/v1/collections/%s/snapshots" % NAME)
    ctx.check(lst.status == 200 and [x.get("snapshot_id") for x in lst.get("snapshots") or []] == [snap],
              "the dropped collection's kept snapshot is still listed (so it can be found)", lst)
    T.expect_error(ctx, c.get("/v1/collections/sr_never/snapshots"), 404, "snapshots of a name never used")
    r = c.post("/v1/collections/%s/snapshots/%s/restore" % (NAME, q(snap)), {})
    ctx.check(r.status == 200 and r.get("name") == NAME and r.get("documents") == live,
              "restore under the dropped name -> the collection object", r)
    for key in ("dimension", "metric", "attributes", "index"):
        ctx.check(T.json_same(r.get(key), coll_before.get(key)), "restored %s as declared" % key,
                  r.get(key), coll_before.get(key))
    after, probs = dump(c, NAME)
    ctx.check(not probs, "listing the restored collection", probs)
    compare_docs(ctx, "restored in place", after, before)
    compare_answers(ctx, "restored in place", answers(ctx, c, NAME, qs), want)

    # Into a new name, from the same snapshot.
    r = c.post("/v1/collections/%s/snapshots/%s/restore" % (NAME, q(snap)), {"into": "sr_copy"})
    ctx.check(r.status == 200 and r.get("name") == "sr_copy" and r.get("documents") == live,
              "restore into sr_copy", r)
    copy, probs = dump(c, "sr_copy")
    compare_docs(ctx, "restored into a new name", copy, before)
    compare_answers(ctx, "restored into a new name", answers(ctx, c, "sr_copy", qs), want)
    r = c.post("/v1/collections/%s/snapshots/%s/restore" % (NAME, q(snap)), {"into": "sr_copy"})
    T.expect_error(ctx, r, 409, "restore into an existing name")

    # Both survive a restart (the restored data is durable, the indexes reopen).
    s.stop()
    s.start()
    c = s.client()
    compare_docs(ctx, "restored, after a restart", dump(c, NAME)[0], before)
    compare_answers(ctx, "restored, after a restart", answers(ctx, c, NAME, qs), want)
    compare_docs(ctx, "copy, after a restart", dump(c, "sr_copy")[0], before)
    _shared["before"], _shared["qs"], _shared["want"] = before, qs, want


def test_restore_in_place_over_changes(ctx):
    s = server(ctx)
    c = s.client()
    before, qs, want, snap = _shared.get("before"), _shared.get("qs"), _shared.get("want"), _shared.get("snap")
    if before is None or snap is None:
        ctx.check(False, "needs test_snapshot_delete_restore first")
        return
    # Change the restored collection a lot, then restore the old snapshot in place over it.
    rng = random.Random(3)
    r = c.post("/v1/collections/%s/documents" % NAME, {"documents": make_docs(rng, 150, prefix="new")})
    ctx.check(r.status == 200, "new writes into the restored collection", r)
    ids = list(before)[:200]
    r = c.post("/v1/collections/%s/documents/delete" % NAME, {"ids": ids})
    ctx.check(r.status == 200 and r.get("deleted") == 200, "delete 200", r)
    changed, _ = dump(c, NAME)
    ctx.check(len(changed) == len(before) - 200 + 150, "the collection changed", len(changed))
    r = c.post("/v1/collections/%s/snapshots/%s/restore" % (NAME, q(snap)))
    ctx.check(r.status == 200 and r.get("documents") == len(before), "restore in place -> 200", r)
    compare_docs(ctx, "restored over changes", dump(c, NAME)[0], before)
    compare_answers(ctx, "restored over changes", answers(ctx, c, NAME, qs), want)
    # Delete the snapshot, and the collection (without keep_snapshots, its snapshots go too).
    r = c.delete("/v1/collections/%s/snapshots/%s" % (NAME, q(snap)))
    ctx.check(r.status == 200 and r.get("deleted") is True, "delete the snapshot", r)
    r = c.post("/v1/collections/%s/snapshots/%s/restore" % (NAME, q(snap)))
    T.expect_error(ctx, r, 404, "restore of a deleted snapshot")
    for name in (NAME, "sr_copy"):
        ctx.check(c.delete("/v1/collections/" + name).status == 200, "drop " + name)


def test_restore_refuses_another_shape(ctx):
    """Dropped with keep_snapshots and created again with another dimension: an in-place restore
    cannot fit the rows and says so (409), changing nothing; restoring into a new name works."""
    s = server(ctx)
    c = s.client()
    name = "sr_shape"
    c.post("/v1/collections", {"name": name, "dimension": 4, "metric": "l2"})
    docs = [{"id": "s%d" % i, "vector": [i, 1, 2, 3], "attributes": {"i": i}} for i in range(20)]
    c.post("/v1/collections/%s/documents" % name, {"documents": docs})
    snap = c.post("/v1/collections/%s/snapshots" % name).get("snapshot_id")
    ctx.check(c.delete("/v1/collections/%s?keep_snapshots=true" % name).status == 200, "drop, keep snapshots")
    c.post("/v1/collections", {"name": name, "dimension": 3, "metric": "l2"})
    c.post("/v1/collections/%s/documents" % name, {"documents": [{"id": "other", "vector": [1, 2, 3]}]})
    r = c.post("/v1/collections/%s/snapshots/%s/restore" % (name, q(snap)))
    T.expect_error(ctx, r, 409, "in-place restore into a collection of another dimension", "snapshot_incompatible")
    ids = [d["id"] for d in T.list_all(c, name)[0]]
    ctx.check(ids == ["other"], "the refused restore changed nothing", ids)
    r = c.post("/v1/collections/%s/snapshots/%s/restore" % (name, q(snap)), {"into": name + "_old"})
    ctx.check(r.status == 200 and r.get("dimension") == 4 and r.get("documents") == 20, "restore beside it", r)
    got, _ = dump(c, name + "_old")
    want = {d["id"]: (f32_bits(d["vector"]), d["attributes"]) for d in docs}
    compare_docs(ctx, "restored beside", got, want)
    for n in (name, name + "_old"):
        c.delete("/v1/collections/" + n)


def test_restore_larger_than_a_memtable(ctx):
    """A restore whose rows fill several memtables (memtable_max_docs 100 for 700 documents) is
    built over several flushes beside the collection, then swapped in: every document comes back,
    the queries answer as before, nothing of the build (<id>.restore, <id>.old) is left in the data
    directory, and the restored collections survive a restart and take writes."""
    s = ctx.server("snap_small", env={"TIERDB_MEMTABLE_MAX_DOCS": "100"})
    c = s.client()
    rng = random.Random(11)
    docs = make_docs(rng, N_DOCS)
    name = "sr_small"
    r = c.post("/v1/collections", {"name": name, "dimension": DIM, "metric": "cosine", "attributes": SCHEMA})
    ctx.check(r.status == 201, "create", r)
    for i in range(0, len(docs), 100):
        r = c.post("/v1/collections/%s/documents" % name, {"documents": docs[i:i + 100]})
        ctx.check(r.status == 200, "upsert", r)
    before, _ = dump(c, name)
    qs = queries(random.Random(5))
    want = answers(ctx, c, name, qs)
    snap = c.post("/v1/collections/%s/snapshots" % name).get("snapshot_id")
    r = c.post("/v1/collections/%s/snapshots/%s/restore" % (name, q(snap)), {"into": name + "_copy"})
    ctx.check(r.status == 200 and r.get("documents") == len(before), "restore into a new name", r)
    r = c.post("/v1/collections/%s/documents" % name, {"documents": make_docs(rng, 50, prefix="x")})
    ctx.check(r.status == 200, "change the collection", r)
    r = c.post("/v1/collections/%s/snapshots/%s/restore" % (name, q(snap)))
    ctx.check(r.status == 200 and r.get("documents") == len(before), "restore in place", r)
    for n in (name, name + "_copy"):
        compare_docs(ctx, n + " restored", dump(c, n)[0], before)
        compare_answers(ctx, n + " restored", answers(ctx, c, n, qs), want)
    left = [e for e in os.listdir(os.path.join(s.data, "collections")) if "." in e]
    ctx.check(left == [], "no build directory left under collections/", left)
    s.stop()
    s.start()
    c = s.client()
    for n in (name, name + "_copy"):
        compare_docs(ctx, n + " after a restart", dump(c, n)[0], before)
        compare_answers(ctx, n + " after a restart", answers(ctx, c, n, qs), want)
        r = c.post("/v1/collections/%s/documents" % n, {"documents": make_docs(rng, 5, prefix="w")})
        ctx.check(r.status == 200 and c.get("/v1/collections/" + n).get("documents") == len(before) + 5,
                  n + " takes writes after the restore", r)


if __name__ == "__main__":
    T.main([test_snapshot_delete_restore, test_restore_in_place_over_changes, test_restore_refuses_another_shape,
            test_restore_larger_than_a_memtable],
           description=__doc__)

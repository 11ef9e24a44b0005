#!/usr/bin/python3
"""BM25 exactness of the server on a subset of the shared text kit, with the data spread over
the memtable and several segments, after compaction, and after a SIGKILL.

1. Builds the kit for the first --docs documents of its corpus in a temporary directory
   (the corpus subset goes to OUT/corpus.ndjson, then `sh ../shared/bench/text/build.sh OUT`
   makes the queries and the exact reference BM25 for that subset; it needs /usr/bin/python3
   with numpy, zstd and unicode-data: scripts/deps.sh installs them).
2. Starts the server with a small memtable (TIERDB_MEMTABLE_MAX_DOCS) and no background
   compaction, creates a text-only collection (field `text` full-text, `section`, `priority`,
   `installed_size` for the kit's filters) and loads the documents in shuffled batches.
   Noise documents (copies of real texts under other ids) are written early, flushed with the
   rest, then deleted; some real documents are deleted and written again, others overwritten
   with the same content. The live corpus is then exactly the reference's, while segments hold
   deleted and superseded rows whose text must have left N, avgdl and df.
3. Runs every query (top 10) and every filtered query through HTTP, writes result files, and
   checks them with the kit's compare.py (exit 0 = same ids, scores within 1e-4, ties allowed).
4. Restarts with compaction on (TIERDB_COMPACTION_MIN_SEGMENTS=2), rewrites documents so flushes
   schedule compactions, waits until compactions ran (/metrics) and the segment count settled,
   checks again.
5. SIGKILL, restart (segments opened in place, WAL replayed), checks again.

Run: python3 tests/e2e/test_bm25_kit.py --binary build/tierdb [--docs 5000] [--keep]
"""
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdbtest as T  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
KIT = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "bench", "text"))
SYS_PY = "/usr/bin/python3"  # the kit's interpreter (Debian's, with python3-numpy)
NAME = "kit"
SEED = 20261122
BATCH = 200


def build_kit(ctx, out, n_docs):
    """Corpus subset + queries + reference in `out`; returns the documents."""
    os.makedirs(out, exist_ok=True)
    zst = os.path.join(KIT, "corpus.ndjson.zst")
    lines = []
    with subprocess.Popen(["zstd", "-dc", zst], stdout=subprocess.PIPE) as p:
        for line in p.stdout:
            lines.append(line)
            if len(lines) == n_docs:
                break
        p.kill()
    with open(os.path.join(out, "corpus.ndjson"), "wb") as f:
        f.writelines(lines)
    r = subprocess.run(["sh", os.path.join(KIT, "build.sh"), out, "--counts",
                        ctx.args.counts, "--filtered", str(ctx.args.filtered)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise RuntimeError("build.sh failed (needs python3-numpy, zstd, unicode-data: "
                           "scripts/deps.sh):\n" + r.stdout.decode("utf-8", "replace")[-3000:])
    return [json.loads(x) for x in lines]


def as_doc(d, doc_id=None):
    return {"id": doc_id or d["id"],
            "attributes": {"text": d["text"], "section": d["section"], "priority": d["priority"],
                           "installed_size": d["installed_size"]}}


def post_docs(ctx, c, docs):
    for k in range(0, len(docs), BATCH):
        r = c.post("/v1/collections/%s/documents" % NAME, {"documents": docs[k:k + BATCH]})
        if not ctx.check(r.status == 200, "upsert a batch", r):
            return False
    return True


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(x) for x in f if x.strip()]


def run_queries(ctx, c, out, phase):
    """Runs the kit's queries; True when compare.py accepts both result files."""
    qp = "/v1/collections/%s/query" % NAME
    ok = True
    with open(os.path.join(out, "queries.txt"), encoding="utf-8") as f:
        plain = [x.rstrip("\n") for x in f if x.strip()]
    filtered = read_jsonl(os.path.join(out, "queries_filtered.jsonl"))
    for kind, items in (("", [(qq, None) for qq in plain]), ("_filtered", [(x["query"], x["filter"]) for x in filtered])):
        rows = []
        took = []
        for qtext, flt in items:
            body = {"text": qtext, "top_k": 10, "include": {"attributes": False}}
            if flt is not None:
                body["filter"] = flt
            r = c.post(qp, body)
            if not ctx.check(r.status == 200, "%s: query %r" % (phase, qtext), r):
                return False
            res = r.get("results") or []
            took.append(r.get("took_ms") or 0.0)
            row = {"query": qtext}
            if flt is not None:
                row["filter"] = flt
            row["ids"] = [x.get("id") for x in res]
            row["scores"] = [x.get("score") for x in res]
            rows.append(row)
        path = os.path.join(out, "results%s_%s.jsonl" % (kind, phase.replace(" ", "_")))
        with open(path, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        r = subprocess.run([SYS_PY, os.path.join(KIT, "compare.py"), os.path.join(out, "reference%s.jsonl" % kind),
                            path, "--k", "10"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        report = r.stdout.decode("utf-8", "replace")
        took.sort()
        print("    %s%s: server took_ms median %.3f p99 %.3f; %s" % (
            phase, kind or " (plain)", took[len(took) // 2], took[min(len(took) - 1, len(took) * 99 // 100)],
            report.strip().splitlines()[0] if report.strip() else ""))
        ok &= ctx.check(r.returncode == 0, "%s: compare.py accepts %d%s queries" % (phase, len(rows), kind),
                        report[-2500:])
    return ok


def segments(c):
    return (c.get("/v1/collections/" + NAME).json or {}).get("segments")


def compactions(c):
    """tierdb_compactions_total from /metrics (since this server started)."""
    r = c.get("/metrics")
    for line in r.text.splitlines():
        if line.startswith("tierdb_compactions_total"):
            return float(line.split()[-1])
    return 0


def test_bm25_kit(ctx):
    out = os.path.join(ctx.tmp, "kit")
    docs = build_kit(ctx, out, ctx.args.docs)
    rnd = random.Random(SEED)
    mem = str(ctx.args.memtable_docs)
    s = ctx.server("kit", env={"TIERDB_MEMTABLE_MAX_DOCS": mem, "TIERDB_COMPACTION_MIN_SEGMENTS": "1000"})
    c = s.client()
    r = c.post("/v1/collections", {"name": NAME, "dimension": 0, "attributes": {
        "text": {"type": "string", "full_text": True}, "section": {"type": "string"},
        "priority": {"type": "string"}, "installed_size": {"type": "int"}}})
    if not ctx.check(r.status == 201, "create the collection", r):
        return
    order = list(range(len(docs)))
    rnd.shuffle(order)
    noise = [as_doc(docs[i], "zz-noise-%05d" % n) for n, i in enumerate(order[:len(docs) // 10])]
    # noise first: it is flushed into the early segments, then deleted
    if not post_docs(ctx, c, noise + [as_doc(docs[i]) for i in order]):
        return
    overwrite = [as_doc(docs[i]) for i in order[: len(docs) // 8]]
    redo = order[len(docs) // 8: len(docs) // 8 + len(docs) // 20]
    r = c.post("/v1/collections/%s/documents/delete" % NAME, {"ids": [d["id"] for d in noise]})
    ctx.check(r.status == 200 and r.get("deleted") == len(noise), "delete the noise", r)
    r = c.post("/v1/collections/%s/documents/delete" % NAME, {"ids": [docs[i]["id"] for i in redo]})
    ctx.check(r.status == 200 and r.get("deleted") == len(redo), "delete documents to write again", r)
    post_docs(ctx, c, overwrite + [as_doc(docs[i]) for i in redo])
    col = c.get("/v1/collections/" + NAME).json or {}
    ctx.check(col.get("documents") == len(docs), "documents = the corpus", col.get("documents"), len(docs))
    nseg = col.get("segments") or 0
    ctx.check(nseg >= 4, "the load is spread over several segments", nseg)
    ctx.check(0 < col.get("indexed_documents", 0) < len(docs), "some documents still in the memtable",
              col.get("indexed_documents"))
    print("    loaded: %d segments, %s indexed of %d" % (nseg, col.get("indexed_documents"), len(docs)))
    run_queries(ctx, c, out, "segments and memtable")

    # compaction: restart with it on; rewrites make flushes, flushes schedule merges
    c.close()
    ctx.check(s.stop() == 0, "SIGTERM -> exit 0")
    s.env_extra["TIERDB_COMPACTION_MIN_SEGMENTS"] = "2"
    s.start()
    c = s.client()
    rewrite = [as_doc(docs[i]) for i in order[-(3 * ctx.args.memtable_docs):]]
    post_docs(ctx, c, rewrite)
    # The size-tiered policy merges what it finds similar in size; wait until it has merged
    # something and the segment count has settled.
    merged = T.wait_for(lambda: compactions(c) >= 1, 180, 0.25)
    ctx.check(merged, "a background compaction ran", compactions(c))
    settled = {"last": None, "same": 0}

    def stable():
        n = (segments(c), compactions(c))
        settled["same"] = settled["same"] + 1 if n == settled["last"] else 0
        settled["last"] = n
        return settled["same"] >= 8
    ctx.check(T.wait_for(stable, 180, 0.25), "the segment count settled", segments(c))
    print("    compacted: %s segments after %s compactions" % (segments(c), compactions(c)))
    run_queries(ctx, c, out, "after compaction")

    c.close()
    s.kill()
    s.start()
    c = s.client()
    col = c.get("/v1/collections/" + NAME).json or {}
    ctx.check(col.get("documents") == len(docs), "documents after SIGKILL", col.get("documents"), len(docs))
    run_queries(ctx, c, out, "after SIGKILL")
    c.close()
    s.stop()


def add_args(ap):
    ap.add_argument("--docs", type=int, default=5000, help="corpus documents loaded (default 5000)")
    ap.add_argument("--memtable-docs", type=int, default=600, help="TIERDB_MEMTABLE_MAX_DOCS (default 600)")
    ap.add_argument("--counts", default="300,300,200", help="1-, 2-, 3-word queries (make_queries.py)")
    ap.add_argument("--filtered", type=int, default=80, help="filtered queries (make_queries.py)")


if __name__ == "__main__":
    T.main([test_bm25_kit], add_arguments=add_args, description=__doc__)

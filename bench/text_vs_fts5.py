#!/usr/bin/python3
"""text_vs_fts5.py [BINARY] [--kit DIR] [--out DIR] [--k 10] [--threads 1] [--rounds 1]
                   [--min-ratio 2.0]

tierdb's full-text search against the SQLite FTS5 baseline, side by side in one run, on the
text kit's corpus and queries (../shared/bench/text, see its README):
  1. builds the kit into OUT (a new temporary directory unless --out is given; an existing
     OUT is reused, build.sh skips what exists): corpus, 2000 queries, exact BM25 reference;
  2. runs `BINARY bench text --corpus OUT/corpus.ndjson --field text --queries OUT/queries.txt
     --k K --threads T --results OUT/tierdb_results.jsonl` (BINARY default: build/tierdb);
  3. runs the kit's bench_fts5.py on the same corpus and queries (single thread, top-K);
  4. checks tierdb's results against the reference with the kit's compare.py (exact ids and
     scores within 1e-4 relative);
  5. prints both QPS, the ratio, index times, and one JSON summary line last.
With --rounds N the two engines alternate N times and the medians are reported (the machine
is shared: only ratios measured in one run mean anything).
Exit status: 0 when the results are exact and tierdb's QPS >= min-ratio x FTS5's; 1 otherwise;
2 on a usage error.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_KIT = os.path.join(os.path.dirname(REPO), "shared", "bench", "text")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def json_lines(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def run(cmd, what):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        sys.exit("text_vs_fts5: %s failed (exit %d): %s" % (what, p.returncode, " ".join(cmd)))
    return p.stdout, p.stderr


def run_tierdb(a, out):
    results = os.path.join(out, "tierdb_results.jsonl")
    stdout, stderr = run([a.binary, "bench", "text", "--corpus", os.path.join(out, "corpus.ndjson"),
                          "--field", "text", "--queries", os.path.join(out, "queries.txt"),
                          "--k", str(a.k), "--threads", str(a.threads), "--results", results],
                         "tierdb bench text")
    lines = json_lines(stdout)
    index = next(x for x in lines if "index_s" in x)
    query = next(x for x in lines if "qps" in x)
    detail = json_lines(stderr)
    return {"index_s": index["index_s"], "documents": index["documents"], "queries": query["queries"],
            "qps": query["qps"], "detail": detail[-1] if detail else None, "results": results}


def run_fts5(a, out):
    stdout, _ = run([PY, os.path.join(a.kit, "bench_fts5.py"), out, "--k", str(a.k)], "bench_fts5.py")
    lines = [x for x in json_lines(stdout) if x.get("engine") == "sqlite-fts5"]
    index = next(x for x in lines if "index_s" in x)
    query = next(x for x in lines if "queries" in x)
    return {"index_s": index["index_s"], "optimize_s": index.get("optimize_s"), "qps": query["qps"],
            "queries": query["queries"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary", nargs="?", default=os.path.join(REPO, "build", "tierdb"))
    ap.add_argument("--kit", default=DEFAULT_KIT, help="the text kit (default ../shared/bench/text)")
    ap.add_argument("--out", help="kit build directory (default: a new temporary directory)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="tierdb query threads (FTS5 uses one)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--min-ratio", type=float, default=2.0)
    a = ap.parse_args()
    if not os.access(a.binary, os.X_OK):
        ap.error("no executable %s (build it first, or pass its path)" % a.binary)
    if not os.path.exists(os.path.join(a.kit, "build.sh")):
        ap.error("text kit not found at %s (--kit DIR)" % a.kit)
    out = a.out or tempfile.mkdtemp(prefix="tierdb-text-")
    os.makedirs(out, exist_ok=True)
    print("kit: building into %s" % out, flush=True)
    run(["sh", os.path.join(a.kit, "build.sh"), out], "build.sh")

    ours, theirs = [], []
    for r in range(a.rounds):
        ours.append(run_tierdb(a, out))
        print("round %d tierdb: index %.3f s, %.1f QPS" % (r + 1, ours[-1]["index_s"], ours[-1]["qps"]),
              flush=True)
        theirs.append(run_fts5(a, out))
        print("round %d fts5:   index %.3f s, %.1f QPS" % (r + 1, theirs[-1]["index_s"], theirs[-1]["qps"]),
              flush=True)

    cmp = subprocess.run([PY, os.path.join(a.kit, "compare.py"), os.path.join(out, "reference.jsonl"),
                          ours[-1]["results"], "--k", str(a.k)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    print(cmp.stdout.rstrip())
    exact = cmp.returncode == 0
    compare_summary = next(iter(json_lines(cmp.stdout)), None)

    qps = statistics.median(x["qps"] for x in ours)
    fts_qps = statistics.median(x["qps"] for x in theirs)
    ratio = qps / fts_qps if fts_qps else float("inf")
    idx = statistics.median(x["index_s"] for x in ours)
    fts_idx = statistics.median(x["index_s"] for x in theirs)
    print("tierdb: %.1f QPS (top-%d, %d thread%s), index %.3f s" % (qps, a.k, a.threads,
                                                                 "" if a.threads == 1 else "s", idx))
    print("fts5:   %.1f QPS (top-%d, 1 thread), index %.3f s (+ optimize)" % (fts_qps, a.k, fts_idx))
    print("ratio:  %.2fx FTS5 QPS (goal >= %.1fx: %s); exactness vs reference: %s" % (
        ratio, a.min_ratio, "met" if ratio >= a.min_ratio else "NOT met", "PASS" if exact else "FAIL"))
    summary = {"tierdb_qps": qps, "fts5_qps": fts_qps, "ratio": round(ratio, 2), "tierdb_index_s": idx,
               "fts5_index_s": fts_idx, "k": a.k, "threads": a.threads, "rounds": a.rounds,
               "documents": ours[-1]["documents"], "queries": ours[-1]["queries"], "exact": exact,
               "compare": compare_summary, "tierdb_detail": ours[-1]["detail"], "out": out}
    print(json.dumps(summary))
    return 0 if exact and ratio >= a.min_ratio else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Short soak with kills (bench/soak.py for the long one): about 75 seconds of mixed load on four
collections (upserts, deletes, gets, queries, listings, snapshots, restores into new collections,
manual tier moves, test-clock policy cycles, flushes and compactions from a 64-document memtable),
SIGKILLed at seeded random moments and restarted on the same data directory.

Checks: after every restart each collection holds every acknowledged write with its latest value,
in-flight writes old or new, and nothing that was never sent; /health lists no problem; queries
answer only live documents; live gets and queries agree with the oracle while the load runs; no
answer is an unexpected error (a refusal that changes nothing, 503 collection_moving or
collection_changed, and a 409 for a move in the wrong direction are expected); the server never
dies on its own; the final SIGTERM exits 0; open files and RSS stay flat from the first third of
the run to the last.

Run: python3 tests/e2e/test_soak.py --binary build/tierdb [--seconds 75] [--seed 1] [--keep]
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
import tdbtest as T  # noqa: E402
import soak as S  # noqa: E402

FDS_SLACK = 8          # open files may vary by a few (WAL rotation, a compaction's files)
RSS_SLACK_MB = 48      # and memory by what one cycle's data and indexes take


def test_soak(ctx):
    a = ctx.args
    rep = S.soak(ctx.binary, ctx.tmp, a.seconds, seed=a.seed, threads=3, kill_min=1.5, kill_max=6.0)
    ops = rep["ops"]
    print("    %d cycles in %.0fs, %d acknowledged writes, %d in flight at a kill, %d gets, %d queries, "
          "%d snapshots, %d restores, %d demotes, %d promotes, %d policy cycles"
          % (rep["cycles"], rep["seconds"], ops.get("acked", 0), ops.get("in_flight", 0), ops.get("get", 0),
             ops.get("query", 0), ops.get("snapshot", 0), ops.get("restore", 0), ops.get("demote", 0),
             ops.get("promote", 0), ops.get("tiering_cycle", 0)))
    flat = S.flatness(rep["samples"])
    print("    growth, first third -> last third: %s" % flat)
    if rep["samples"]:
        last = rep["samples"][-1]
        print("    last cycle: rss %.1f MiB, %d open files, data %.2f MiB, %d orphan snapshot objects"
              % (last["rss_mb"], last["fds"], last["data_mb"], last["orphan_snapshot_objects"]))
    for x in rep["losses"][:10]:
        ctx.check(False, "loss: %s" % x)
    for kind, (n, examples) in sorted(rep["errors"].items()):
        ctx.check(False, "unexpected answer, %d times: %s; e.g. %s" % (n, kind, examples[0]))
    if not rep["losses"]:  # the soak stops at the first loss
        ctx.check(rep["cycles"] >= 5, "at least 5 kill/restart cycles", rep["cycles"])
    ctx.check(ops.get("acked", 0) >= rep["cycles"] * 20, "the load got acknowledgements", ops.get("acked", 0))
    for kind in ("snapshot", "tiering_cycle", "query", "get"):
        ctx.check(ops.get(kind, 0) > 0, "the soak ran %s operations" % kind, ops)
    if flat:
        ctx.check(flat["fds_last"] <= flat["fds_first"] + FDS_SLACK, "open files stay flat", flat)
        ctx.check(flat["rss_last_mb"] <= 2 * flat["rss_first_mb"] + RSS_SLACK_MB, "RSS stays flat", flat)
    if rep["losses"] or rep["errors"]:
        print("    server log: %s" % rep["log"])


def add_args(ap):
    ap.add_argument("--seconds", type=float, default=75, help="how long to soak (default 75)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the kill moments and the load")


if __name__ == "__main__":
    T.main([test_soak], add_arguments=add_args, description=__doc__)

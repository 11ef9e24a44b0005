#!/usr/bin/python3
"""Snapshot and restore speed and size (issue goals: 10,000 x 512-d documents; snapshot < 0.2 s,
restore < 0.3 s, snapshot <= 0.45x the same documents as JSON).

Starts `tierdb serve` on a temporary data directory with the default local object store, imports
N documents (seeded random float32 vectors, small attributes) as NDJSON, then times, through the
HTTP API (what a user sees, request overhead included):
  - POST .../snapshots (write the Parquet file, upload it to the store, record it), R times;
  - POST .../snapshots/{id}/restore {"into": ...} (download, load, flush with the text indexes and
    codes, swap in), R times. The HNSW graphs are not part of it: the restore writes its segments
    without them and the storage layer builds them after (the restore's reply tells how many
    documents are indexed yet: "indexed" below);
and compares the snapshot's size with the NDJSON of the same documents. Reports the median of R
runs, the server's CPU seconds per operation (less sensitive to a busy machine than wall time) and
the machine's load average, since the machine may be shared.

Run: python3 bench/snapshot_bench.py --binary build-bench/tierdb [--docs 10000] [--dim 512] [--rounds 5]
"""
import argparse
import json
import os
import random
import shutil
import statistics
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import tdbtest as T  # noqa: E402


def cpu_s(pid):
    """User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--docs", type=int, default=10000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ef-construction", type=int, default=0,
                    help="index.ef_construction of the collection (default: the server's)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tdb-snapbench-")
    srv = T.Server(os.path.abspath(args.binary), tmp, name="bench", env={"TIERDB_LOG_LEVEL": "warn"})
    try:
        srv.start()
        c = srv.client(timeout=600)
        rng = random.Random(1)
        lines = []
        for i in range(args.docs):
            vec = [struct.unpack("<f", struct.pack("<f", rng.uniform(-1, 1)))[0] for _ in range(args.dim)]
            lines.append(json.dumps({"id": "doc-%06d" % i, "vector": vec,
                                     "attributes": {"title": "document %d" % i, "year": 1990 + i % 35,
                                                    "tags": ["t%d" % (i % 7)]}}, separators=(",", ":")))
        body = ("\n".join(lines) + "\n").encode()
        spec = {"name": "sb", "dimension": args.dim, "metric": "cosine"}
        if args.ef_construction:
            spec["index"] = {"ef_construction": args.ef_construction}
        r = c.post("/v1/collections", spec)
        assert r.status == 201, r
        r = c.post("/v1/collections/sb/documents/import", raw=body, ctype="application/x-ndjson")
        assert r.status == 200 and r.get("imported") == args.docs, r
        snap_s, rest_s, snap_cpu, rest_cpu, sizes, snap_id, indexed = [], [], [], [], [], None, []
        pid = srv.proc.pid
        for k in range(args.rounds):
            c0, t0 = cpu_s(pid), time.perf_counter()
            r = c.post("/v1/collections/sb/snapshots")
            snap_s.append(time.perf_counter() - t0)
            snap_cpu.append(cpu_s(pid) - c0)
            assert r.status == 201 and r.get("documents") == args.docs, r
            sizes.append(r.get("size_bytes"))
            if snap_id:
                c.delete("/v1/collections/sb/snapshots/" + T.q(snap_id))
            snap_id = r.get("snapshot_id")
        for k in range(args.rounds):
            c0, t0 = cpu_s(pid), time.perf_counter()
            r = c.post("/v1/collections/sb/snapshots/%s/restore" % T.q(snap_id), {"into": "sb_r%d" % k})
            rest_s.append(time.perf_counter() - t0)
            rest_cpu.append(cpu_s(pid) - c0)
            assert r.status == 200 and r.get("documents") == args.docs, r
            indexed.append(r.get("indexed_documents"))
            c.delete("/v1/collections/sb_r%d" % k)
        load = os.getloadavg()
        size = sizes[-1]
        print("documents %d x %d-d, %d rounds, load average %.2f %.2f %.2f, %d CPUs"
              % (args.docs, args.dim, args.rounds, load[0], load[1], load[2], os.cpu_count()))
        print("snapshot  median %.3f s  (min %.3f, max %.3f), server CPU median %.3f s"
              % (statistics.median(snap_s), min(snap_s), max(snap_s), statistics.median(snap_cpu)))
        print("restore   median %.3f s  (min %.3f, max %.3f), server CPU median %.3f s"
              "  (into a new name: download, load, flush, swap; indexed on return: %s)"
              % (statistics.median(rest_s), min(rest_s), max(rest_s), statistics.median(rest_cpu),
                 indexed[-1]))
        print("size      %d bytes Parquet, %d bytes NDJSON: %.3fx" % (size, len(body), size / len(body)))
        print("          raw float32 vectors alone: %d bytes (%.3fx of the NDJSON)"
              % (args.docs * args.dim * 4, args.docs * args.dim * 4 / len(body)))
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Graceful shutdown under load: SIGTERM while clients write loses no acknowledged write.

Each cycle starts the server on the same data directory, runs writer threads that upsert batches
and import small NDJSON files (each thread owns disjoint ids, so the oracle is exact), then sends
SIGTERM after a seeded delay while they are busy. The server must stop on its own, exit 0, within
SHUTDOWN_LIMIT_S (API.md: SIGTERM stops the server within 20 s). A small memtable keeps flushes
running, so the stop lands in the middle of them too. Requests answered 503 (shutting down) or
refused at the socket count as not applied (a rejected request changes nothing); a request sent
and never answered may or may not have been applied. After a restart:
  - every acknowledged write is present with its latest acknowledged value (or with the value of a
    later write that was in flight when the server stopped),
  - no id holds a value that was never written, /health is ok with no problems,
  - the log says the stop was graceful (no "stopping anyway").

Run: python3 tests/e2e/test_shutdown.py --binary build/tierdb [--cycles 4] [--seed 11] [--keep]
"""
import http.client
import json
import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdbtest as T  # noqa: E402

THREADS = 6
IDS_PER_THREAD = 120
SHUTDOWN_LIMIT_S = 20
NAME = "sd_main"
ND = "application/x-ndjson"


class Oracle:
    """(id) -> list of acceptable values (attribute "v"); None means absent."""

    def __init__(self):
        self.states = {}
        self.lock = threading.Lock()

    def acked(self, doc_id, v):
        with self.lock:
            self.states[doc_id] = [v]

    def maybe(self, doc_id, v):
        with self.lock:
            self.states[doc_id] = self.states.get(doc_id, [None]) + [v]


class Writer(threading.Thread):
    def __init__(self, url, oracle, tid, rnd, seq_base):
        super().__init__(daemon=True)
        self.url, self.oracle, self.tid, self.rnd, self.seq = url, oracle, tid, rnd, seq_base
        self.acked = self.refused = self.unanswered = 0
        self.errors = []

    def doc(self, i):
        self.seq += 1
        return {"id": "w%d-%03d" % (self.tid, i), "vector": [self.rnd.uniform(-1, 1) for _ in range(4)],
                "attributes": {"v": self.seq, "pad": "p" * self.rnd.randint(0, 200)}}

    def run(self):
        c = T.Client(self.url, timeout=60)
        try:
            while True:
                ids = list(dict.fromkeys(self.rnd.randrange(IDS_PER_THREAD) for _ in range(self.rnd.randint(1, 8))))
                docs = [self.doc(i) for i in ids]
                use_import = self.rnd.random() < 0.3
                try:
                    if use_import:
                        body = "".join(json.dumps(d) + "\n" for d in docs).encode()
                        r = c.post("/v1/collections/%s/documents/import" % NAME, raw=body, ctype=ND, retry=False)
                    else:
                        r = c.post("/v1/collections/%s/documents" % NAME, {"documents": docs}, retry=False)
                except (OSError, http.client.HTTPException):
                    # Sent (perhaps) and never answered: either outcome is acceptable.
                    for d in docs:
                        self.oracle.maybe(d["id"], d["attributes"]["v"])
                    self.unanswered += 1
                    return
                if r.status == 200:
                    ok = (r.get("imported") == len(docs)) if use_import else (r.get("upserted") == len(docs))
                    if not ok:
                        self.errors.append("answer %s for %d documents" % (T.short(r, 200), len(docs)))
                    for d in docs:
                        self.oracle.acked(d["id"], d["attributes"]["v"])
                    self.acked += 1
                elif r.status == 503:
                    self.refused += 1     # shutting down: nothing was applied
                    return
                else:
                    self.errors.append("%s" % T.short(r, 200))
                    return
        finally:
            c.close()


def verify(ctx, s, oracle, cycle):
    c = s.client()
    h = c.get("/health")
    ctx.check(h.status == 200 and h.get("problems") == [], "cycle %d: /health ok, no problems" % cycle, h)
    docs, probs = T.list_all(c, NAME, limit=500)
    ctx.check(not probs, "cycle %d: listing" % cycle, probs)
    got = {d["id"]: (d.get("attributes") or {}).get("v") for d in docs}
    bad = []
    with oracle.lock:
        for doc_id in set(oracle.states) | set(got):
            ok = oracle.states.get(doc_id, [None])
            g = got.get(doc_id)
            if g not in ok:
                bad.append("%s: got v=%s, acceptable %s" % (doc_id, g, ok))
            oracle.states[doc_id] = [g]     # settled: the next cycle starts from what is there
    ctx.check(not bad, "cycle %d: every acknowledged write survived the graceful stop" % cycle,
              "%d problems: %s" % (len(bad), bad[:4]))
    c.close()


def test_sigterm_under_load(ctx):
    a = ctx.args
    s = ctx.server("shutdown", env={"TIERDB_MEMTABLE_MAX_DOCS": "200", "TIERDB_COMPACTION_MIN_SEGMENTS": "3"})
    c = s.client()
    ctx.check(c.post("/v1/collections", {"name": NAME, "dimension": 4, "metric": "l2"}).status == 201, "create")
    c.close()
    oracle = Oracle()
    rnd = random.Random(a.seed)
    totals = {"acked": 0, "refused": 0, "unanswered": 0}
    for cycle in range(a.cycles):
        writers = [Writer(s.url, oracle, t, random.Random("%d-%d-%d" % (a.seed, cycle, t)),
                          (cycle * THREADS + t) * 10 ** 7) for t in range(THREADS)]
        for w in writers:
            w.start()
        # Let the load build up (some acknowledgements first), then stop the server.
        T.wait_for(lambda: sum(w.acked for w in writers) >= 20, 30)
        time.sleep(rnd.uniform(0.05, 0.6))
        t0 = time.time()
        s.proc.send_signal(signal.SIGTERM)
        try:
            rc = s.proc.wait(timeout=SHUTDOWN_LIMIT_S + 10)
        except Exception:  # noqa: BLE001 - a hung server is the failure
            rc = None
            s.kill()
        took = time.time() - t0
        for w in writers:
            w.join(60)
            for e in w.errors[:3]:
                ctx.check(False, "cycle %d thread %d: %s" % (cycle, w.tid, e))
            totals["acked"] += w.acked
            totals["refused"] += w.refused
            totals["unanswered"] += w.unanswered
        ctx.check(rc == 0, "cycle %d: SIGTERM under load exits 0" % cycle, rc, 0)
        ctx.check(took <= SHUTDOWN_LIMIT_S, "cycle %d: stopped within %ds" % (cycle, SHUTDOWN_LIMIT_S), "%.1fs" % took)
        log = s.log_text()
        ctx.check("stopping anyway" not in log, "cycle %d: running requests drained (no 'stopping anyway')" % cycle)
        s.start()
        verify(ctx, s, oracle, cycle)
    ctx.check(totals["acked"] >= a.cycles * 20, "the writers were acknowledged", totals)
    print("    %d cycles: %d acknowledged requests, %d refused with 503, %d unanswered at a stop"
          % (a.cycles, totals["acked"], totals["refused"], totals["unanswered"]))
    s.stop()


def add_args(ap):
    ap.add_argument("--cycles", type=int, default=4, help="SIGTERM/restart cycles (default 4)")
    ap.add_argument("--seed", type=int, default=11, help="seed of the delays and the writes")


if __name__ == "__main__":
    T.main([test_sigterm_under_load], add_arguments=add_args, description=__doc__)

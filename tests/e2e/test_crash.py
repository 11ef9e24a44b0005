#!/usr/bin/python3
"""Crash consistency: acknowledged writes survive SIGKILL at any moment.

Each cycle starts the server on the same data directory, runs several client threads doing
concurrent upserts, single deletes, deletes by ids and deletes by filter on two collections, and
SIGKILLs the server after a random delay (seeded). A tiny memtable (TIERDB_MEMTABLE_MAX_DOCS) and
compaction threshold make flushes and compactions run all the time, so kills land in the middle of
them too. After the restart:
  - every acknowledged write is present with its latest acknowledged value,
  - every acknowledged delete is absent,
  - an id whose last operation was in flight (sent, never answered) holds its old or its new value,
  - nothing else exists, /health is ok and reports no problems.

The oracle is exact because each thread owns a disjoint set of ids, so operations on one id are
sequential; in-flight operations widen that id's acceptable values to {old, new} until the next
verification settles it.

Run: python3 tests/e2e/test_crash.py --binary build/tierdb [--cycles 30] [--seed 7] [--keep]
"""
import http.client
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdbtest as T  # noqa: E402
from tdbtest import q  # noqa: E402

THREADS = 4
IDS_PER_THREAD = 150
COLLECTIONS = {"crash_l2": {"dimension": 4, "metric": "l2"}, "crash_cos": {"dimension": 3, "metric": "cosine"}}
ABSENT = None


class Oracle:
    """For each (collection, id): the list of acceptable states (a document dict, or ABSENT)."""

    def __init__(self):
        self.states = {}
        self.lock = threading.Lock()

    def current(self, key):
        """The single known state of key (only called for keys the calling thread owns)."""
        with self.lock:
            return self.states.get(key, [ABSENT])[-1]

    def set(self, key, value):
        with self.lock:
            self.states[key] = [value]

    def in_flight(self, key, value):
        with self.lock:
            old = self.states.get(key, [ABSENT])
            self.states[key] = old + [value]


def same_doc(got, want):
    if want is ABSENT or got is ABSENT:
        return got is want
    return (got.get("id") == want["id"] and T.json_same(got.get("attributes") or {}, want["attributes"])
            and T.vec_close(got.get("vector"), want["vector"]))


class Writer(threading.Thread):
    def __init__(self, url, oracle, tid, rnd, stop, seq_base):
        super().__init__(daemon=True)
        self.client = T.Client(url, timeout=30)
        self.oracle, self.tid, self.rnd, self.stop = oracle, tid, rnd, stop
        self.seq = seq_base          # a fresh value in every upsert ("v"), so old and new always differ
        self.acked = self.in_flight = 0
        self.errors = []

    def new_doc(self, coll, doc_id):
        dim = COLLECTIONS[coll]["dimension"]
        vec = [self.rnd.uniform(-10, 10) for _ in range(dim)]
        if COLLECTIONS[coll]["metric"] == "cosine" and all(abs(x) < 1e-3 for x in vec):
            vec[0] = 1.0
        self.seq += 1
        return {"id": doc_id, "vector": vec,
                "attributes": {"t": self.tid, "g": self.rnd.randint(0, 4), "v": self.seq,
                               "s": self.rnd.choice(["", "\u00e9t\u00e9", "\U0001F680", "x" * self.rnd.randint(0, 300)])}}

    def run(self):
        rnd = self.rnd
        while not self.stop.is_set():
            coll = rnd.choice(sorted(COLLECTIONS))
            own = ["t%d-%03d" % (self.tid, rnd.randrange(IDS_PER_THREAD)) for _ in range(rnd.randint(1, 12))]
            own = list(dict.fromkeys(own))
            k = rnd.random()
            if k < 0.6:
                docs = [self.new_doc(coll, i) for i in own]
                method, path, body = "POST", "/v1/collections/%s/documents" % coll, {"documents": docs}
                effects = {(coll, d["id"]): d for d in docs}
                expect = {"upserted": len(docs)}
            elif k < 0.75:
                i = own[0]
                method, path, body = "DELETE", "/v1/collections/%s/documents/%s" % (coll, q(i)), T._NOBODY
                effects = {(coll, i): ABSENT}
                expect = {"deleted": 0 if self.oracle.current((coll, i)) is ABSENT else 1}
            elif k < 0.9:
                method, path, body = "POST", "/v1/collections/%s/documents/delete" % coll, {"ids": own}
                effects = {(coll, i): ABSENT for i in own}
                expect = {"deleted": sum(self.oracle.current((coll, i)) is not ABSENT for i in own)}
            else:
                g = rnd.randint(0, 4)
                method, path = "POST", "/v1/collections/%s/documents/delete" % coll
                body = {"filter": {"$and": [{"t": self.tid}, {"g": g}]}}
                effects = {}
                for n in range(IDS_PER_THREAD):
                    key = (coll, "t%d-%03d" % (self.tid, n))
                    cur = self.oracle.current(key)
                    if cur is not ABSENT and cur["attributes"]["g"] == g:
                        effects[key] = ABSENT
                expect = {"deleted": len(effects)}
            try:
                r = self.client.req(method, path, body, retry=False)
            except (OSError, http.client.HTTPException):
                # Sent but never answered: the server may or may not have applied it.
                for key, v in effects.items():
                    self.oracle.in_flight(key, v)
                self.in_flight += 1
                return
            if r.status == 200:
                for key, v in effects.items():
                    self.oracle.set(key, v)
                self.acked += 1
                if r.json != expect:
                    self.errors.append("%s %s answered %s, expected %s" % (method, path, T.short(r.json, 120), expect))
            else:
                # A refused request changes nothing (API.md); but these requests are valid.
                self.errors.append("%s %s -> %s" % (method, path, T.short(r, 200)))


def verify(ctx, server, oracle, cycle):
    """Compares the server's documents with the oracle, then settles the oracle on what is there."""
    c = server.client()
    h = c.get("/health")
    ctx.check(h.status == 200 and h.get("status") == "ok" and h.get("problems") == [],
              "cycle %d: /health ok without problems after the restart" % cycle, h)
    names = sorted(x.get("name") for x in c.get("/v1/collections").get("collections") or [])
    ctx.check(names == sorted(COLLECTIONS), "cycle %d: both collections exist" % cycle, names)
    bad = []
    for coll in sorted(COLLECTIONS):
        got, probs = T.list_all(c, coll, limit=200, include_vectors=True)
        if probs:
            bad.append("%s: paging: %s" % (coll, probs[:2]))
        seen = {}
        for d in got:
            i = d.get("id")
            if i in seen:
                bad.append("%s: %r listed twice" % (coll, i))
            seen[i] = d
        with oracle.lock:
            keys = {k for k in oracle.states if k[0] == coll} | {(coll, i) for i in seen}
            for key in keys:
                got_doc = seen.get(key[1], ABSENT)
                ok = oracle.states.get(key, [ABSENT])
                match = [w for w in ok if same_doc(got_doc, w)]
                if not match:
                    bad.append("%s %r: got %s, acceptable %s" % (coll, key[1], T.short(got_doc, 120),
                                                                 T.short(ok, 240)))
                    oracle.states[key] = [got_doc]
                else:
                    oracle.states[key] = [match[0]]
        r = c.get("/v1/collections/" + coll)
        live = sum(1 for k, v in oracle.states.items() if k[0] == coll and v[0] is not ABSENT)
        if r.get("documents") != live:
            bad.append("%s: 'documents' is %s, %d are live" % (coll, r.get("documents"), live))
    ctx.check(not bad, "cycle %d: every acknowledged write present with its latest value, every acknowledged "
              "delete absent" % cycle, "%d problems: %s" % (len(bad), bad[:4]))
    c.close()
    return not bad


def test_crash(ctx):
    a = ctx.args
    s = ctx.server("crash", env={"TIERDB_MEMTABLE_MAX_DOCS": str(a.memtable_docs),
                                 "TIERDB_COMPACTION_MIN_SEGMENTS": str(a.compaction_min_segments)})
    c = s.client()
    for name, cfg in COLLECTIONS.items():
        r = c.post("/v1/collections", dict(cfg, name=name, attributes={"t": {"type": "int"}, "g": {"type": "int"}}))
        ctx.check(r.status == 201, "create %s" % name, r)
    c.close()
    oracle = Oracle()
    rnd = random.Random(a.seed)
    t_start = time.time()
    totals = {"acked": 0, "in_flight": 0}
    cycles_run = 0
    for cycle in range(a.cycles):
        stop = threading.Event()
        writers = [Writer(s.url, oracle, t, random.Random("%d-%d-%d" % (a.seed, cycle, t)), stop,
                          (cycle * THREADS + t) * 10 ** 7) for t in range(THREADS)]
        for w in writers:
            w.start()
        delay = rnd.uniform(0.2, 1.5)
        # Wait the chosen delay, but notice a server that dies on its own meanwhile.
        died = T.wait_for(lambda: not s.alive(), delay, 0.02)
        if not died:
            s.kill()
        stop.set()
        for w in writers:
            w.join(30)
            w.client.close()
            for e in w.errors[:3]:
                ctx.check(False, "cycle %d thread %d: %s" % (cycle, w.tid, e))
        totals["acked"] += sum(w.acked for w in writers)
        totals["in_flight"] += sum(w.in_flight for w in writers)
        cycles_run += 1
        if died:
            ctx.check(False, "cycle %d: the server died on its own (exit %s)" % (cycle, s.proc.returncode),
                      s.log_tail(1500))
        s.start()
        # Even after a crash of its own, what was acknowledged must be there.
        if not verify(ctx, s, oracle, cycle) or died:
            print("    cycle %d failed; server log in %s" % (cycle, s.logpath))
            break
    ctx.check(totals["acked"] > cycles_run * 5, "the writers got acknowledgements",
              totals, "> %d acknowledged requests" % (cycles_run * 5))
    print("    %d cycles, %d acknowledged requests, %d in flight at a kill, %.1fs"
          % (cycles_run, totals["acked"], totals["in_flight"], time.time() - t_start))
    rc = s.stop()
    ctx.check(rc == 0, "the final SIGTERM exits 0", rc, 0)
    s.start()
    verify(ctx, s, oracle, a.cycles)
    s.stop()


def add_args(ap):
    ap.add_argument("--cycles", type=int, default=30, help="kill/restart cycles (default 30)")
    ap.add_argument("--seed", type=int, default=7, help="seed of the kill delays and the operations")
    ap.add_argument("--memtable-docs", type=int, default=64, help="TIERDB_MEMTABLE_MAX_DOCS (default 64)")
    ap.add_argument("--compaction-min-segments", type=int, default=2,
                    help="TIERDB_COMPACTION_MIN_SEGMENTS (default 2: compact all the time)")


if __name__ == "__main__":
    T.main([test_crash], add_arguments=add_args, description=__doc__)

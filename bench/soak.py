#!/usr/bin/python3
"""Soak with kills: a mixed load on several collections, SIGKILL at random moments, an exact oracle.

Each cycle starts `tierdb serve --test-clock` on the same data directory (memtable of 64 documents,
compaction at 2 segments, so flushes and compactions never stop; flushes of 16 rows or more leave
their graph to the background index job, so kills land inside it too), runs for a random (seeded) time
and is killed with SIGKILL. Meanwhile:
  - writer threads upsert, delete one id, delete by ids, get, query and list; each thread owns its
    ids, so its oracle is exact: a get of an id whose state is settled must answer exactly that
    state, live, and no query may answer an id the thread knows is deleted;
  - a chaos thread takes snapshots (keeping two per collection), restores one into a new
    collection and checks its document count, demotes and promotes collections by hand, moves the
    test clock (POST /v1/debug/clock) and runs policy cycles (POST /v1/tiering/cycle);
  - the main thread samples the server's RSS, open files (/proc/PID/fd) and the data directory's
    size.
After every restart (the oracle lives outside the data directory) each collection must hold every
acknowledged write with its latest value and nothing else: an id whose last write was in flight at
the kill holds its old or its new value, and no id holds a value that was never sent (every write
carries a fresh version number), so there is no hole. Then /health must list no problem, queries
must answer only live documents, and leftovers of interrupted restores are dropped.

The run ends with a SIGTERM (exit status 0) and a last check.

Long mode (this script):  python3 bench/soak.py --binary build/tierdb --minutes 60 [--seed 1]
                          [--threads 3] [--report soak.json] [--keep]
Short mode: tests/e2e/test_soak.py runs soak() for about 75 seconds under `make test`.
The report (stdout, and JSON with --report) gives cycles, operations by kind, acknowledged and
in-flight writes, every loss found, and RSS, open files and data-directory size per cycle.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import tdbtest as T  # noqa: E402
from tdbtest import q  # noqa: E402

ABSENT = None
IDS_PER_THREAD = 150
SNAPSHOTS_KEPT = 2
RESTORE_PREFIX = "restored-"
TEXT_WORDS = ["alpha", "bravo", "delta", "echo", "kilo", "lima", "oscar", "tango", "zulu", "hotel"]

# name -> (create body without the name, dimension)
COLLECTIONS = {
    "soak_l2": {"dimension": 4, "metric": "l2", "attributes": {"o": {"type": "int"}, "g": {"type": "int"}}},
    "soak_cos": {"dimension": 3, "metric": "cosine",
                 "attributes": {"o": {"type": "int"}, "t": {"type": "string", "full_text": True}}},
    "soak_sq8": {"dimension": 16, "metric": "l2", "attributes": {"o": {"type": "int"}},
                 "index": {"type": "hnsw", "m": 8, "ef_construction": 64, "quantization": "sq8"}},
    "soak_text": {"dimension": 0, "attributes": {"o": {"type": "int"}, "t": {"type": "string", "full_text": True}}},
}


class Oracle:
    """(collection, id) -> acceptable states, newest last (a document dict, or ABSENT)."""

    def __init__(self):
        self.states = {}
        self.lock = threading.Lock()

    def settled(self, key):
        """(True, state) when key has one known state, else (False, None)."""
        with self.lock:
            s = self.states.get(key, [ABSENT])
            return (len(s) == 1, s[-1])

    def set(self, key, value):
        with self.lock:
            self.states[key] = [value]

    def in_flight(self, key, value):
        with self.lock:
            self.states[key] = self.states.get(key, [ABSENT]) + [value]


def same_doc(got, want):
    if want is ABSENT or got is ABSENT:
        return got is want
    if got.get("id") != want["id"] or not T.json_same(got.get("attributes") or {}, want["attributes"]):
        return False
    if "vector" in want:
        return T.vec_close(got.get("vector"), want["vector"])
    return not got.get("vector")


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = {}
        self.errors = {}       # unexpected answers: kind -> [count, first examples]

    def op(self, kind, n=1):
        with self.lock:
            self.ops[kind] = self.ops.get(kind, 0) + n

    def error(self, msg, r=None, kind=None):
        """Records an unexpected answer; kind groups them (default: the message up to the first
        digit, plus the status and error code of r)."""
        if kind is None:
            kind = msg.split(" ")[0]
            if isinstance(r, T.Resp):
                kind += " -> %d %s" % (r.status, ((r.json or {}).get("error") or {}).get("code", ""))
        with self.lock:
            e = self.errors.setdefault(kind, [0, []])
            e[0] += 1
            if len(e[1]) < 3:
                e[1].append(msg if r is None else "%s -> %s" % (msg, T.short(r, 300)))

    def error_count(self):
        return sum(e[0] for e in self.errors.values())


def refused(r):
    """A valid request the server may refuse while collections move: it changed nothing."""
    return r.status == 503 and ((r.json or {}).get("error") or {}).get("code") in (
        "collection_moving", "collection_changed", "busy", "overloaded")


class Writer(threading.Thread):
    def __init__(self, url, oracle, stats, tid, rnd, stop, seq_base):
        super().__init__(daemon=True)
        self.client = T.Client(url, timeout=60)
        self.oracle, self.stats, self.tid, self.rnd, self.stop = oracle, stats, tid, rnd, stop
        self.seq = seq_base

    def new_doc(self, coll, doc_id):
        cfg = COLLECTIONS[coll]
        self.seq += 1
        attrs = {"o": self.tid, "v": self.seq, "g": self.rnd.randint(0, 3)}
        if "t" in cfg["attributes"]:
            attrs["t"] = " ".join(self.rnd.choice(TEXT_WORDS) for _ in range(self.rnd.randint(1, 6)))
        d = {"id": doc_id, "attributes": attrs}
        if cfg["dimension"]:
            v = [round(self.rnd.uniform(-10, 10), 3) for _ in range(cfg["dimension"])]
            if cfg["metric"] == "cosine" and all(abs(x) < 1e-3 for x in v):
                v[0] = 1.0
            d["vector"] = v
        return d

    def send(self, method, path, body=T._NOBODY):
        """The answer, or None when the server died (the caller records in-flight effects)."""
        try:
            return self.client.req(method, path, body, retry=False)
        except ConnectionRefusedError:
            return "refused"
        except (OSError, http.client.HTTPException):
            return None

    def run(self):
        while not self.stop.is_set():
            try:
                self.step()
            except Exception as e:  # noqa: BLE001 - a bug in the load must show, not hang the soak
                self.stats.error("writer %d crashed: %r" % (self.tid, e), kind="writer crashed")
                return

    def step(self):
        rnd = self.rnd
        coll = rnd.choice(sorted(COLLECTIONS))
        own = list(dict.fromkeys("t%d-%03d" % (self.tid, rnd.randrange(IDS_PER_THREAD))
                                 for _ in range(rnd.randint(1, 8))))
        k = rnd.random()
        base = "/v1/collections/%s" % coll
        if k < 0.45:
            docs = [self.new_doc(coll, i) for i in own]
            self.write("upsert", "POST", base + "/documents", {"documents": docs},
                       {(coll, d["id"]): d for d in docs}, {"upserted": len(docs)})
        elif k < 0.55:
            key = (coll, own[0])
            ok, cur = self.oracle.settled(key)
            self.write("delete", "DELETE", base + "/documents/" + q(own[0]), T._NOBODY, {key: ABSENT},
                       {"deleted": 0 if cur is ABSENT else 1} if ok else None)
        elif k < 0.65:
            keys = [(coll, i) for i in own]
            st = [self.oracle.settled(x) for x in keys]
            expect = {"deleted": sum(s is not ABSENT for _, s in st)} if all(o for o, _ in st) else None
            self.write("delete_ids", "POST", base + "/documents/delete", {"ids": own},
                       {x: ABSENT for x in keys}, expect)
        elif k < 0.80:
            key = (coll, own[0])
            ok, cur = self.oracle.settled(key)
            r = self.send("GET", base + "/documents/" + q(own[0]))
            if r is None or r == "refused":
                return
            self.stats.op("get")
            if refused(r):
                return
            if r.status == 200:
                got = r.json
            elif r.status == 404 and (r.get("error") or {}).get("code") == "document_not_found":
                got = ABSENT
            else:
                self.stats.error("GET %s/%s" % (coll, own[0]), r)
                return
            if ok and not same_doc(got, cur):
                self.stats.error("live GET %s/%s: got %s, acknowledged %s"
                                 % (coll, own[0], T.short(got, 150), T.short(cur, 150)),
                                 kind="live GET differs from the acknowledged state")
        elif k < 0.95:
            cfg = COLLECTIONS[coll]
            body = {"top_k": 20, "filter": {"o": self.tid}}
            if cfg["dimension"]:
                body["vector"] = [round(rnd.uniform(-10, 10), 3) or 1.0 for _ in range(cfg["dimension"])]
            else:
                body["text"] = rnd.choice(TEXT_WORDS)
            r = self.send("POST", base + "/query", body)
            if r is None or r == "refused":
                return
            self.stats.op("query")
            if refused(r):
                return
            if r.status != 200 or not isinstance(r.get("results"), list):
                self.stats.error("query %s" % coll, r)
                return
            for res in r.json["results"]:
                ok, cur = self.oracle.settled((coll, res.get("id")))
                if ok and cur is ABSENT:
                    self.stats.error("query %s answered %r, deleted (acknowledged)" % (coll, res.get("id")),
                                     kind="live query answers a deleted document")
        else:
            r = self.send("GET", base + "/documents?limit=50")
            if r is None or r == "refused":
                return
            self.stats.op("list")
            if r.status != 200 and not refused(r):
                self.stats.error("list %s" % coll, r)

    def write(self, kind, method, path, body, effects, expect):
        r = self.send(method, path, body)
        if r == "refused":
            return  # never reached the server
        if r is None:
            for key, v in effects.items():
                self.oracle.in_flight(key, v)
            self.stats.op("in_flight")
            return
        self.stats.op(kind)
        if r.status == 200:
            for key, v in effects.items():
                self.oracle.set(key, v)
            self.stats.op("acked")
            if expect is not None and r.json != expect:
                self.stats.error("%s %s answered %s, expected %s" % (method, path, T.short(r.json, 120), expect),
                                 kind="%s answered a wrong count" % kind)
        elif not refused(r):
            self.stats.error("%s %s" % (kind, path), r)


class Chaos(threading.Thread):
    """Snapshots, restores into new collections, manual tier moves, test clock and policy cycles."""

    def __init__(self, url, stats, rnd, stop, cycle, snaps):
        super().__init__(daemon=True)
        self.client = T.Client(url, timeout=120)
        self.stats, self.rnd, self.stop, self.cycle, self.snaps = stats, rnd, stop, cycle, snaps
        self.n = 0

    def req(self, method, path, body=T._NOBODY):
        try:
            return self.client.req(method, path, body, retry=False)
        except (OSError, http.client.HTTPException):
            return None

    def expect(self, what, r, ok=(200, 201), allowed=()):
        if r is None:
            return False
        if r.status in ok:
            self.stats.op(what)
            return True
        if r.status in allowed or refused(r):
            self.stats.op(what + "_refused")
            return False
        self.stats.error(what, r)
        return False

    def run(self):
        while not self.stop.is_set():
            try:
                self.step()
            except Exception as e:  # noqa: BLE001
                self.stats.error("chaos crashed: %r" % (e,), kind="chaos crashed")
                return
            self.stop.wait(self.rnd.uniform(0.05, 0.3))

    def step(self):
        rnd = self.rnd
        coll = rnd.choice(sorted(COLLECTIONS))
        base = "/v1/collections/%s" % coll
        k = rnd.random()
        if k < 0.25:
            r = self.req("POST", base + "/snapshots")
            if self.expect("snapshot", r, ok=(201,)):
                self.snaps.setdefault(coll, []).append((r.get("snapshot_id"), r.get("documents")))
                while len(self.snaps[coll]) > SNAPSHOTS_KEPT:
                    sid, _ = self.snaps[coll].pop(0)
                    self.expect("snapshot_delete", self.req("DELETE", base + "/snapshots/" + q(sid)))
        elif k < 0.35:
            if not self.snaps.get(coll):
                return
            sid, docs = rnd.choice(self.snaps[coll])
            self.n += 1
            into = "%s%d-%d" % (RESTORE_PREFIX, self.cycle, self.n)
            r = self.req("POST", base + "/snapshots/%s/restore" % q(sid), {"into": into})
            if self.expect("restore", r):
                if r.get("documents") != docs:
                    self.stats.error("restore of %s (%s documents) into %s has %s documents"
                                     % (sid, docs, into, r.get("documents")), kind="restore count differs")
                self.expect("drop_restored", self.req("DELETE", "/v1/collections/" + q(into)))
        elif k < 0.55:
            to = rnd.choice(["warm", "cold"])
            self.expect("demote", self.req("POST", base + "/tier/demote", {"to": to}), allowed=(409,))
        elif k < 0.70:
            to = rnd.choice(["hot", "warm"])
            self.expect("promote", self.req("POST", base + "/tier/promote", {"to": to}), allowed=(409,))
        elif k < 0.90:
            adv = rnd.choice(["30m", "2h", "7h", "8d"])
            if self.expect("clock", self.req("POST", "/v1/debug/clock", {"advance": adv})):
                r = self.req("POST", "/v1/tiering/cycle")
                if self.expect("tiering_cycle", r):
                    for e in r.get("errors") or []:
                        m = e.get("message", "")
                        if "will be retried" in m:
                            self.stats.op("tiering_cycle_retry")  # a busy collection changed: fine
                        else:
                            self.stats.error("policy cycle: %s" % T.short(e, 300),
                                             kind="policy cycle error: %s" % e.get("move"))
        else:
            self.expect("tiering", self.req("GET", "/v1/tiering"))


def proc_sample(pid, data_dir):
    """RSS (KiB), open files, data directory bytes (allocated)."""
    rss = fds = None
    try:
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    rss = int(ln.split()[1])
        fds = len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        pass
    return rss, fds, dir_bytes(data_dir)


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def orphan_snapshot_objects(data_dir, listed):
    """Snapshot objects on disk that no snapshot row lists (a leak of disk space)."""
    root = os.path.join(data_dir, "objects", "snapshots")
    n = 0
    for coll in os.listdir(root) if os.path.isdir(root) else []:
        for f in os.listdir(os.path.join(root, coll)):
            if not f.startswith(".") and f[:-len(".parquet")] not in listed.get(coll, set()):
                n += 1
    return n


def verify(server, oracle, stats, label, losses, snaps):
    """After a restart: every collection matches the oracle; settles the oracle on what is there."""
    c = server.client(timeout=120)
    h = c.get("/health")
    if h.status != 200 or h.get("status") != "ok" or h.get("problems"):
        losses.append("%s: /health %s" % (label, T.short(h, 400)))
    names = {x.get("name") for x in (c.get("/v1/collections").get("collections") or [])}
    for coll in sorted(COLLECTIONS):
        if coll not in names:
            losses.append("%s: collection %s is gone" % (label, coll))
            continue
        got, probs = T.list_all(c, coll, limit=500, include_vectors=True)
        if probs:
            losses.append("%s: %s: paging: %s" % (label, coll, probs[:2]))
        seen = {}
        for d in got:
            if d.get("id") in seen:
                losses.append("%s: %s: %r listed twice" % (label, coll, d.get("id")))
            seen[d.get("id")] = d
        bad = []
        with oracle.lock:
            keys = {k for k in oracle.states if k[0] == coll} | {(coll, i) for i in seen}
            for key in sorted(keys):
                g = seen.get(key[1], ABSENT)
                ok = oracle.states.get(key, [ABSENT])
                match = [w for w in ok if same_doc(g, w)]
                if not match:
                    bad.append("%r: got %s, acceptable %s" % (key[1], T.short(g, 100), T.short(ok, 200)))
                    oracle.states[key] = [g]
                else:
                    oracle.states[key] = [match[0]]
        if bad:
            losses.append("%s: %s: %d ids wrong (lost, resurrected or never sent): %s"
                          % (label, coll, len(bad), bad[:3]))
        cfg = COLLECTIONS[coll]
        body = {"top_k": 50, "exact": True}
        if cfg["dimension"]:
            body["vector"] = [1.0] * cfg["dimension"]
        else:
            body["text"] = " ".join(TEXT_WORDS)
        r = c.post("/v1/collections/%s/query" % coll, body)
        if r.status != 200:
            losses.append("%s: %s: query -> %s" % (label, coll, T.short(r, 200)))
        else:
            for res in r.json.get("results") or []:
                if res.get("id") not in seen:
                    losses.append("%s: %s: query answered %r, which is not listed" % (label, coll, res.get("id")))
                    break
        r = c.get("/v1/collections/%s" % coll)
        if r.get("documents") != len(got):
            losses.append("%s: %s: 'documents' is %s, %d listed" % (label, coll, r.get("documents"), len(got)))
    # Interrupted restores may have left a collection: drop it (not an error).
    for n in sorted(names):
        if n.startswith(RESTORE_PREFIX):
            c.delete("/v1/collections/" + q(n))
            stats.op("restore_leftover_dropped")
    # The snapshots the catalog lists are the chaos thread's memory now (a create in flight at the
    # kill may or may not have been recorded).
    listed = {}
    for coll in sorted(COLLECTIONS):
        r = c.get("/v1/collections/%s/snapshots" % coll)
        rows = r.get("snapshots") or []
        listed[coll] = {s.get("snapshot_id") for s in rows}
        snaps[coll] = [(s.get("snapshot_id"), s.get("documents")) for s in rows]
        while len(snaps[coll]) > SNAPSHOTS_KEPT:
            sid, _ = snaps[coll].pop(0)
            c.delete("/v1/collections/%s/snapshots/%s" % (coll, q(sid)))
            listed[coll].discard(sid)
    c.close()
    return listed


def soak(binary, tmp, seconds, seed=1, threads=3, kill_min=1.5, kill_max=6.0, log=print, keep_going=False,
         timeline=None):
    """Runs the soak for about `seconds`; returns the report (a dict). tmp: a scratch directory.
    It stops at the first loss unless keep_going (the oracle then takes what was found).
    timeline: an open file that gets one line per sample (seconds since start, cycle, RSS KiB,
    open files), to follow one long-lived server over time."""
    rnd = random.Random(seed)
    # Flushes of 16 rows or more go through the background index job (a
    # graph-less segment first, rewritten with its graph later), so kills
    # land inside it too.
    env = {"TIERDB_MEMTABLE_MAX_DOCS": "64", "TIERDB_COMPACTION_MIN_SEGMENTS": "2",
           "TDB_INDEX_INLINE_ROWS": "16"}
    server = T.Server(binary, tmp, name="soak", env=env, args=["--test-clock"])
    oracle, stats, losses, snaps = Oracle(), Stats(), [], {}
    samples = []   # per cycle: dict
    trace = []     # every sample: (seconds since start, RSS KiB)
    t0 = time.time()
    try:
        server.start()
        c = server.client()
        for name, cfg in COLLECTIONS.items():
            r = c.post("/v1/collections", dict(cfg, name=name))
            if r.status != 201:
                raise RuntimeError("create %s: %s" % (name, T.short(r, 300)))
        c.close()
        cycle = 0
        orphans = 0
        while True:
            stop = threading.Event()
            writers = [Writer(server.url, oracle, stats, t, random.Random("%d-%d-%d" % (seed, cycle, t)), stop,
                              (cycle * threads + t) * 10 ** 7) for t in range(threads)]
            chaos = Chaos(server.url, stats, random.Random("%d-%d-chaos" % (seed, cycle)), stop, cycle, snaps)
            for w in writers + [chaos]:
                w.start()
            delay = rnd.uniform(kill_min, kill_max)
            peak = {"rss_kb": 0, "fds": 0}
            t_cycle = time.time()
            died = False
            while time.time() - t_cycle < delay:
                if not server.alive():
                    died = True
                    break
                rss, fds, _ = proc_sample(server.proc.pid, server.data)
                trace.append((time.time() - t0, rss or 0))
                if timeline:
                    timeline.write("%.2f %d %d %d\n" % (time.time() - t0, cycle, rss or 0, fds or 0))
                peak["rss_kb"] = max(peak["rss_kb"], rss or 0)
                peak["fds"] = max(peak["fds"], fds or 0)
                time.sleep(0.25)
            server.kill()
            stop.set()
            for w in writers + [chaos]:
                w.join(60)
                w.client.close()
            if died:
                losses.append("cycle %d: the server died on its own (exit %s): %s"
                              % (cycle, server.proc.returncode, server.log_tail(1500)))
            server.start()
            listed = verify(server, oracle, stats, "cycle %d" % cycle, losses, snaps)
            orphans = orphan_snapshot_objects(server.data, listed)
            _, _, data_bytes = proc_sample(server.proc.pid, server.data)
            s = {"cycle": cycle, "t": round(time.time() - t0, 1), "ran_s": round(delay, 2),
                 "rss_mb": round(peak["rss_kb"] / 1024, 1), "fds": peak["fds"],
                 "data_mb": round(data_bytes / 2 ** 20, 2), "orphan_snapshot_objects": orphans}
            samples.append(s)
            log("    cycle %3d  t=%6.1fs  ran %4.1fs  rss %6.1f MiB  fds %3d  data %7.2f MiB  acked %d  losses %d"
                % (cycle, s["t"], delay, s["rss_mb"], s["fds"], s["data_mb"], stats.ops.get("acked", 0), len(losses)))
            cycle += 1
            if (losses and not keep_going) or time.time() - t0 >= seconds:
                break
        # A graceful stop at the end, and one more check.
        rc = server.stop()
        if rc != 0:
            losses.append("the final SIGTERM exited with %s" % rc)
        server.start()
        verify(server, oracle, stats, "after SIGTERM", losses, snaps)
        server.stop()
    finally:
        if server.alive():
            server.kill()
    return {"cycles": cycle, "seconds": round(time.time() - t0, 1), "seed": seed, "threads": threads,
            "ops": dict(sorted(stats.ops.items())), "errors": stats.errors, "losses": losses,
            "samples": samples, "rss_by_minute": rss_by_minute(trace), "log": server.logpath}


def rss_by_minute(trace):
    """Mean RSS (MiB) over each whole minute of the run: {minute: MiB}, minute 1 = [0, 60 s)."""
    sums = {}
    for t, kb in trace:
        if kb:
            m = int(t // 60) + 1
            n, total = sums.get(m, (0, 0))
            sums[m] = (n + 1, total + kb)
    return {m: round(total / n / 1024, 2) for m, (n, total) in sorted(sums.items())}


def flatness(samples):
    """Growth from the first third to the last third of the run: (rss ratio, fds delta, data ratio)."""
    if len(samples) < 3:
        return None
    k = max(1, len(samples) // 3)
    first, last = samples[:k], samples[-k:]

    def mx(xs, f):
        return max(x[f] for x in xs)
    return {"rss_first_mb": mx(first, "rss_mb"), "rss_last_mb": mx(last, "rss_mb"),
            "fds_first": mx(first, "fds"), "fds_last": mx(last, "fds"),
            "data_first_mb": mx(first, "data_mb"), "data_last_mb": mx(last, "data_mb")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True, help="path to the tierdb executable")
    ap.add_argument("--minutes", type=float, default=10, help="how long to run (default 10)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=3, help="writer threads (default 3)")
    ap.add_argument("--kill-min", type=float, default=1.5, help="shortest run before a kill, seconds")
    ap.add_argument("--kill-max", type=float, default=8.0, help="longest run before a kill, seconds")
    ap.add_argument("--report", help="write the report as JSON here")
    ap.add_argument("--keep-going", action="store_true",
                    help="go on after a loss (the oracle takes what was found), to measure the whole run")
    ap.add_argument("--keep", action="store_true", help="keep the data directory and the server log")
    ap.add_argument("--timeline", help="write every sample here: seconds, cycle, RSS KiB, open files "
                    "(with --kill-min above the run's length, this follows one long-lived server)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tdb-soak-", dir=os.environ.get("TDB_TEST_TMP") or None)
    print("soak: %.1f minutes, seed %d, data in %s" % (a.minutes, a.seed, tmp))
    timeline = open(a.timeline, "w", buffering=1) if a.timeline else None
    rep = soak(os.path.abspath(a.binary), tmp, a.minutes * 60, a.seed, a.threads, a.kill_min, a.kill_max,
               keep_going=a.keep_going, timeline=timeline)
    if timeline:
        timeline.close()
    rep["flatness"] = flatness(rep["samples"])
    print("soak: %d cycles in %.0fs; operations: %s" % (rep["cycles"], rep["seconds"], json.dumps(rep["ops"])))
    print("soak: growth (first third -> last third): %s" % json.dumps(rep["flatness"]))
    by_min = rep["rss_by_minute"]
    if 5 in by_min and max(by_min) > 5:
        last = max(by_min) - 1 if max(by_min) - 1 > 5 else max(by_min)   # the last whole minute
        print("soak: mean RSS in minute 5 %.2f MiB, in minute %d %.2f MiB (%+.1f %%)"
              % (by_min[5], last, by_min[last], 100.0 * (by_min[last] / by_min[5] - 1)))
    for kind, (n, examples) in sorted(rep["errors"].items()):
        print("soak: unexpected answer, %d times: %s; e.g. %s" % (n, kind, examples[0]))
    for x in rep["losses"][:20]:
        print("soak: LOSS: %s" % x)
    if a.report:
        with open(a.report, "w") as f:
            json.dump(rep, f, indent=1)
    n_err = sum(e[0] for e in rep["errors"].values())
    ok = not rep["losses"] and not n_err
    print("soak: %s" % ("OK" if ok else "FAILED (%d losses, %d unexpected answers)" % (len(rep["losses"]), n_err)))
    if a.keep or not ok:
        print("soak: kept %s" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

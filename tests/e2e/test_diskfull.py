#!/usr/bin/python3
"""Disk full for real: the server's data directory on a small file system that a write load fills.

Where: a 40 MiB tmpfs mounted for the test (needs root and mount permission); failing that, a
loop-mounted 40 MiB ext4 image; failing both, the test prints `SKIP: <reason>` and passes (ctest
cannot be told "skipped" without changing CMakeLists.txt, so look for the SKIP line).

Before the server starts, a ballast file takes 12 MiB of the file system. Each scenario then:
  1. fills the disk with upserts of fresh ids (each request its own ids, so a request is found
     whole or not at all: atomicity is checked, not assumed) until writes fail;
  2. checks that writes fail cleanly: a 5xx answer with the API's error body and a message that
     says the disk is full, for several writes in a row, while the server stays up;
  3. checks that reads keep working meanwhile: GET of a document, a listing, a query, /health,
     and that a snapshot create fails cleanly too;
  4. deletes the ballast and checks that writes are taken again within a few seconds, without a
     restart (and that a snapshot can be taken again);
  5. checks that nothing acknowledged is lost, and no request is half-applied, on the running
     server, then after SIGKILL + restart, then after SIGTERM + restart.

Scenarios (both run by default; --scenario picks one):
  - wal: default memtable (64 MiB), so the write-ahead log is what fills the disk;
  - flush: TIERDB_MEMTABLE_MAX_DOCS=300 and TIERDB_COMPACTION_MIN_SEGMENTS=2, so flushes and
    compactions run all along; near the end the memtable is brought one request short of full and
    a filler file leaves room for one more request's WAL record only, so that a flush (not a WAL
    append) is what runs out of space first, every time. A failed flush must not make the collection
    read-only: no write may be refused as `read_only`, and once space is freed the memtable is
    flushed again (its documents become indexed) without a restart.

The status the server gives for a full disk is printed (`disk-full status: ...`).

Run: python3 tests/e2e/test_diskfull.py --binary build/tierdb [--size-mb 40] [--scenario flush] [--keep]
"""
import base64
import os
import random
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdbtest as T  # noqa: E402
from tdbtest import q  # noqa: E402

DIM = 8
BATCH = 50
PAD_BYTES = 8000  # per document: the disk fills in ~150 requests, with few documents to replay
BALLAST_MB = 12
COLL = "full"


def run(cmd):
    """(exit status, output); 127 when the program is missing."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, str(e)
    return p.returncode, p.stdout.decode("utf-8", "replace").strip()


class Mount:
    """A small file system at `path`: tmpfs, else a loop-mounted ext4 image, else None + reason."""

    def __init__(self, path, size_mb, image_dir):
        self.path, self.size_mb, self.image_dir = path, size_mb, image_dir
        self.kind, self.image, self.reason = None, None, None

    def mount(self):
        os.makedirs(self.path, exist_ok=True)
        if os.geteuid() != 0:
            self.reason = "not root (uid %d): cannot mount a small file system" % os.geteuid()
            return False
        rc, out = run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0755" % self.size_mb, "tmpfs", self.path])
        if rc == 0:
            self.kind = "tmpfs"
            return True
        why = ["mount -t tmpfs: %s" % (out or "exit %d" % rc)]
        self.image = os.path.join(self.image_dir, "diskfull.ext4")
        try:
            with open(self.image, "wb") as f:
                f.truncate(self.size_mb << 20)
            rc, out = run(["mkfs.ext4", "-q", "-F", self.image])
            if rc != 0:
                why.append("mkfs.ext4: %s" % (out or "exit %d" % rc))
            else:
                rc, out = run(["mount", "-o", "loop", self.image, self.path])
                if rc == 0:
                    self.kind = "ext4 on a loop device"
                    return True
                why.append("mount -o loop: %s" % (out or "exit %d" % rc))
        except OSError as e:
            why.append("image: %s" % e)
        if self.image and os.path.exists(self.image):
            os.unlink(self.image)
        self.reason = "; ".join(why)
        return False

    def umount(self):
        if self.kind is None:
            return
        for attempt in range(50):
            rc, out = run(["umount", self.path])
            if rc == 0:
                break
            time.sleep(0.1)
        else:
            run(["umount", "-l", self.path])
        self.kind = None
        if self.image and os.path.exists(self.image):
            os.unlink(self.image)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def make_ballast(path, mb):
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(mb):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


class Load:
    """Upserts of fresh ids, BATCH per request; remembers what was acknowledged and what failed."""

    def __init__(self, seed):
        self.rnd = random.Random(seed)
        self.n = 0
        self.acked = {}      # request number -> [docs]
        self.failed = {}     # request number -> [docs]: found whole or not at all
        self.statuses = {}   # status -> count of failed writes
        self.codes = {}      # API error code -> count of failed writes
        self.messages = []   # first error messages
        self.last = None     # the last error answer

    def docs(self, k):
        out = []
        for i in range(BATCH):
            pad = base64.b64encode(self.rnd.getrandbits(PAD_BYTES * 6).to_bytes(PAD_BYTES * 6 // 8, "little"))
            out.append({"id": "r%05d-%03d" % (k, i),
                        "vector": [round(self.rnd.uniform(-1, 1), 4) for _ in range(DIM)],
                        "attributes": {"k": k, "i": i, "t": "fill %d words %d" % (k, self.rnd.randrange(1000)),
                                       "pad": pad.decode()[:PAD_BYTES]}})
        return out

    def write(self, c):
        k = self.n
        self.n += 1
        docs = self.docs(k)
        try:
            r = c.post("/v1/collections/%s/documents" % COLL, {"documents": docs}, retry=False)
        except OSError as e:
            self.failed[k] = docs
            self.statuses["no answer"] = self.statuses.get("no answer", 0) + 1
            self.last = "no answer: %s" % e
            if len(self.messages) < 5:
                self.messages.append(self.last)
            return None
        if r.status == 200 and r.get("upserted") == BATCH:
            self.acked[k] = docs
        else:
            self.failed[k] = docs
            self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
            code = ((r.json or {}).get("error") or {}).get("code", "?") if isinstance(r.json, dict) else "?"
            self.codes[code] = self.codes.get(code, 0) + 1
            self.last = T.short(r, 300)
            if len(self.messages) < 5:
                self.messages.append(self.last)
        return r


def create(ctx, c):
    r = c.post("/v1/collections", {"name": COLL, "dimension": DIM, "metric": "cosine",
                                   "attributes": {"t": {"type": "string", "full_text": True}, "k": {"type": "int"}}})
    ctx.check(r.status == 201, "create the collection", r)


def check_all(ctx, c, load, label):
    """Every acknowledged request is there whole, every failed one whole or absent, nothing else."""
    got, probs = T.list_all(c, COLL, limit=500, include_vectors=True)
    ctx.check(not probs, "%s: listing pages cleanly" % label, probs[:3])
    by_req = {}
    for d in got:
        k = d.get("attributes", {}).get("k")
        by_req.setdefault(k, {})[d.get("id")] = d
    bad = []
    for k, docs in load.acked.items():
        have = by_req.get(k, {})
        for d in docs:
            g = have.get(d["id"])
            if g is None:
                bad.append("acknowledged %s missing" % d["id"])
            elif not T.vec_close(g.get("vector"), d["vector"]) or not T.json_same(g.get("attributes"), d["attributes"]):
                bad.append("acknowledged %s differs" % d["id"])
    applied_failed = 0
    for k, docs in load.failed.items():
        n = len(by_req.get(k, {}))
        if n not in (0, len(docs)):
            bad.append("failed request %d is half there (%d of %d documents)" % (k, n, len(docs)))
        applied_failed += n == len(docs)
    for k in by_req:
        if k not in load.acked and k not in load.failed:
            bad.append("request %r was never sent but has documents" % k)
    ctx.check(not bad, "%s: nothing acknowledged lost, no request half-applied, nothing invented" % label,
              "%d problems: %s" % (len(bad), bad[:5]))
    return len(got), applied_failed


def reads_work(ctx, c, load, label):
    k = next(iter(load.acked))
    d = load.acked[k][0]
    r = c.get("/v1/collections/%s/documents/%s" % (COLL, q(d["id"])))
    ctx.check(r.status == 200 and r.get("id") == d["id"], "%s: GET a document" % label, r)
    r = c.get("/v1/collections/%s/documents?limit=50" % COLL)
    ctx.check(r.status == 200 and len(r.get("documents") or []) == 50, "%s: a listing page" % label, r)
    r = c.post("/v1/collections/%s/query" % COLL, {"vector": d["vector"], "top_k": 5})
    ctx.check(r.status == 200 and (r.get("results") or [{}])[0].get("id") == d["id"],
              "%s: a vector query finds the document" % label, r)
    r = c.post("/v1/collections/%s/query" % COLL, {"text": "fill", "top_k": 5})
    ctx.check(r.status == 200 and len(r.get("results") or []) == 5, "%s: a text query" % label, r)
    r = c.get("/health")
    ctx.check(r.status == 200 and r.get("status") == "ok", "%s: /health answers" % label, r)
    return r


def collection_counts(c):
    r = c.get("/v1/collections/%s" % COLL)
    return r.get("documents", 0), r.get("indexed_documents", 0)


def settle(mnt, c, timeout=20):
    """Waits until background flushes and compactions stop changing the disk usage."""
    last, stable_since, deadline = None, time.time(), time.time() + timeout
    while time.time() < deadline:
        now = (free_bytes(mnt.path), collection_counts(c))
        if now != last:
            last, stable_since = now, time.time()
        elif time.time() - stable_since >= 1.0:
            return True
        time.sleep(0.1)
    return False


def arrange_flush_failure(ctx, c, mnt, load, filler, memtable_docs, name):
    """Makes a flush, not a WAL append, the first write to find the disk full: a write load down to
    16 MiB free (flushes and compactions all along), a memtable one request short of full, then a
    filler file leaving room for one more request's WAL record but not for the segment its flush
    writes. The next request is acknowledged and its flush runs out of space."""
    while free_bytes(mnt.path) > (16 << 20) and load.n < 10000:
        r = load.write(c)
        if not ctx.check(r is not None and r.status == 200, "%s: writes before the disk is full" % name, r):
            return
    ctx.check(settle(mnt, c), "%s: background work settles" % name)
    while True:
        docs, indexed = collection_counts(c)
        if memtable_docs - (docs - indexed) <= BATCH:
            break
        r = load.write(c)
        if not ctx.check(r is not None and r.status == 200, "%s: filling the memtable" % name, r):
            return
    docs, indexed = collection_counts(c)
    room = 2 * BATCH * PAD_BYTES  # one WAL record fits, a segment of memtable_docs documents does not
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free_bytes(mnt.path) - room))
        f.flush()
        os.fsync(f.fileno())
    print("    %s: memtable at %d of %d documents, %d bytes left for the next write and its flush"
          % (name, docs - indexed, memtable_docs, free_bytes(mnt.path)))


def scenario(ctx, mnt, name, env):
    a = ctx.args
    data = os.path.join(mnt.path, name + "-data")
    ballast = os.path.join(mnt.path, "ballast")
    make_ballast(ballast, BALLAST_MB)
    memtable_docs = int(env.get("TIERDB_MEMTABLE_MAX_DOCS", "0"))
    s = T.Server(ctx.binary, ctx.tmp, name=name, env=env)  # log in ctx.tmp, data on the small disk
    shutil.rmtree(s.data, ignore_errors=True)
    s.data = data
    os.makedirs(data, exist_ok=True)
    ctx.servers.append(s)
    s.start()
    c = s.client(timeout=60)
    create(ctx, c)
    load = Load(a.seed * 31 + sum(map(ord, name)))
    t0 = time.time()
    filler = os.path.join(mnt.path, "filler")
    if memtable_docs:
        arrange_flush_failure(ctx, c, mnt, load, filler, memtable_docs, name)
    # 1. Fill until writes fail (bounded: the disk is small).
    first_fail = None
    limit = (a.size_mb << 20) // (BATCH * PAD_BYTES) * 2 + 100
    while load.n < limit:
        r = load.write(c)
        if r is None or r.status != 200:
            first_fail = r
            break
    if not ctx.check(first_fail is not None, "%s: the disk filled up (%d writes, %d bytes free)"
                     % (name, load.n, free_bytes(mnt.path))):
        s.kill()
        return
    print("    %s: disk full after %d acknowledged writes (%.1fs, %d bytes free); first refusal: %s"
          % (name, len(load.acked), time.time() - t0, free_bytes(mnt.path), T.short(first_fail, 300)))
    # 2. Writes fail cleanly, again and again, and the server stays up.
    for _ in range(5):
        r = load.write(c)
        if r is not None and r.status == 200:
            continue  # a flush or compaction may have freed a little space: fine
        ok = r is not None and 500 <= r.status <= 599
        if ok:
            T.expect_error(ctx, r, r.status, "%s: a write on a full disk" % name)
            msg = ((r.json or {}).get("error") or {}).get("message", "")
            ctx.check(any(w in msg.lower() for w in ("space", "disk is full", "disk full")),
                      "%s: the message says the disk is full" % name, r)
        ctx.check(ok, "%s: a write on a full disk gets a 5xx answer" % name, r)
    ctx.check(s.alive(), "%s: the server is still running" % name)
    statuses = sorted(str(x) for x in load.statuses)
    print("    %s: disk-full status: %s (codes %s); e.g. %s"
          % (name, ", ".join(statuses), ", ".join(sorted(load.codes)), load.messages[:1]))
    # A full disk is not an fsync failure: the collection never turns read-only.
    ctx.check("read_only" not in load.codes, "%s: no write is refused as read_only" % name, load.codes)
    if memtable_docs:
        # The scenario did what it is for: a flush failed, so a full memtable is still unflushed.
        docs, indexed = collection_counts(c)
        ctx.check(docs - indexed >= memtable_docs, "%s: a flush ran out of space (%d documents not in segments)"
                  % (name, docs - indexed), (docs, indexed))
    # 3. Reads work; a snapshot fails cleanly.
    reads_work(ctx, c, load, "%s, disk full" % name)
    r = c.post("/v1/collections/%s/snapshots" % COLL)
    if r.status == 201:
        print("    %s: a snapshot still fit on the full disk" % name)
    else:
        ctx.check(500 <= r.status <= 599, "%s: a snapshot on a full disk fails with a 5xx" % name, r)
        T.expect_error(ctx, r, r.status, "%s: a snapshot on a full disk" % name)
    h = c.get("/health")
    print("    %s: /health while full: %s" % (name, T.short(h.json, 400)))
    if memtable_docs:
        # The failing flush is reported (retried, so not read-only).
        kinds = [p.get("kind") for p in (h.json or {}).get("problems") or []]
        ctx.check("disk_full" in kinds, "%s: /health reports the disk_full problem" % name, h)
    # 4. Free the ballast: writes resume without a restart.
    os.unlink(ballast)
    if os.path.exists(filler):
        os.unlink(filler)
    t1 = time.time()
    resumed = T.wait_for(lambda: (lambda r: r is not None and r.status == 200)(load.write(c)), a.resume_seconds, 0.2)
    ctx.check(resumed, "%s: writes resume within %ds of freeing space, without a restart" % (name, a.resume_seconds),
              "last answer: %s" % load.last)
    if resumed:
        print("    %s: writes resumed %.2fs after the ballast was deleted" % (name, time.time() - t1))
        if memtable_docs:
            # The failed flush is retried: the memtable is written to a segment again (its
            # documents become indexed), without a restart.
            def flushed():
                docs, indexed = collection_counts(c)
                return docs - indexed < memtable_docs
            ok = T.wait_for(flushed, a.resume_seconds, 0.2)
            ctx.check(ok, "%s: the failed flush is retried once there is space, without a restart" % name,
                      "documents, indexed: %s" % (collection_counts(c),))
            if ok:
                print("    %s: the memtable was flushed again %.2fs after the ballast was deleted"
                      % (name, time.time() - t1))
                h = c.get("/health")
                ctx.check(not any(p.get("kind") == "disk_full" for p in (h.json or {}).get("problems") or []),
                          "%s: the disk_full problem is gone once the flush succeeded" % name, h)
        for _ in range(3):
            r = load.write(c)
            ctx.check(r is not None and r.status == 200, "%s: writes keep working after the disk recovered" % name, r)
        # The snapshot is staged in DATA/tmp: it may not fit in the space freed.
        r = c.post("/v1/collections/%s/snapshots" % COLL)
        if r.status != 201:
            ctx.check(500 <= r.status <= 599, "%s: a snapshot after the disk recovered: 201 or a clean 5xx" % name, r)
            T.expect_error(ctx, r, r.status, "%s: a snapshot that does not fit" % name)
        print("    %s: a snapshot after freeing space: %s" % (name, T.short(r, 200)))
    else:
        print("    %s: /health after freeing space: %s" % (name, T.short(c.get("/health").json, 400)))
    tmpdir = os.path.join(data, "tmp")
    leftovers = os.listdir(tmpdir) if os.path.isdir(tmpdir) else []
    ctx.check(not leftovers, "%s: failed snapshots leave nothing in DATA/tmp" % name, leftovers)
    # 5. Nothing acknowledged lost: live, after SIGKILL, after SIGTERM.
    n_live, applied = check_all(ctx, c, load, "%s, running" % name)
    c.close()
    s.kill()
    s.start()
    c = s.client(timeout=60)
    n_kill, _ = check_all(ctx, c, load, "%s, after SIGKILL + restart" % name)
    h = c.get("/health")
    ctx.check(h.status == 200 and not any(p.get("kind") == "read_only" for p in h.get("problems") or []),
              "%s: after the restart nothing is read-only" % name, h)
    r = load.write(c)
    ctx.check(r is not None and r.status == 200, "%s: writes work after the restart" % name, r)
    c.close()
    rc = s.stop()
    ctx.check(rc == 0, "%s: SIGTERM exits 0" % name, rc, 0)
    s.start()
    c = s.client(timeout=60)
    n_term, _ = check_all(ctx, c, load, "%s, after SIGTERM + restart" % name)
    c.close()
    s.stop()
    print("    %s: %d acknowledged requests, %d failed (%d of them found whole afterwards), %d documents "
          "(%d after kill, %d after stop), %.1fs"
          % (name, len(load.acked), len(load.failed), applied, n_live, n_kill, n_term, time.time() - t0))
    shutil.rmtree(data, ignore_errors=True)
    if os.path.exists(filler):
        os.unlink(filler)


def test_diskfull(ctx):
    a = ctx.args
    mnt = Mount(os.path.join(ctx.tmp, "small-disk"), a.size_mb, ctx.tmp)
    if not mnt.mount():
        print("    SKIP: no small file system to fill: %s" % mnt.reason)
        return
    try:
        print("    file system: %s of %d MiB at %s" % (mnt.kind, a.size_mb, mnt.path))
        for name, env in (("wal", {}),
                          ("flush", {"TIERDB_MEMTABLE_MAX_DOCS": "300", "TIERDB_COMPACTION_MIN_SEGMENTS": "2"})):
            if a.scenario and a.scenario != name:
                continue
            try:
                scenario(ctx, mnt, name, env)
            finally:
                for s in ctx.servers:
                    if s.alive():
                        s.kill()
    finally:
        mnt.umount()


def add_args(ap):
    ap.add_argument("--size-mb", type=int, default=40, help="size of the small file system (default 40)")
    ap.add_argument("--seed", type=int, default=11, help="seed of the documents")
    ap.add_argument("--resume-seconds", type=int, default=10, help="how long writes may take to resume")
    ap.add_argument("--scenario", default="", choices=["", "wal", "flush"],
                    help="run one scenario only: wal or flush (default: both)")


if __name__ == "__main__":
    T.main([test_diskfull], add_arguments=add_args, description=__doc__)

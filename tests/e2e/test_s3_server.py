#!/usr/bin/python3
"""End-to-end: the real server with an s3:// object store (docs/object-storage.md, docs/tiering.md,
API.md "Tiering" and "Snapshots").

Peers, started here on free loopback ports and stopped after: s3rver (npm, installed by
scripts/test-peers.sh into $TDB_NODE_PEERS or <repo>/build-peers) behind tests/objstore/s3proxy.py,
which checks the SigV4 signature of every request with botocore (s3rver does not) and injects
faults on command. The server talks to the proxy with path-style addressing.

  - cold tier on S3: a demote to cold puts the collection's objects in the bucket and removes its
    local files; after a restart, queries on the cold collection promote it and answer exactly as
    before (ids, distances, scores); every document comes back bit for bit;
  - snapshots on S3: create (an object under snapshots/ with an s3:// location), list, restore in
    place, restore into a new name, delete (the object goes);
  - start-up refuses a wrong secret (SignatureDoesNotMatch) and a missing bucket (NoSuchBucket)
    with a message naming the cause;
  - faults during a demote: 503s and dropped connections on a share of the uploads are retried
    and the move completes; 503s that outlast the retries fail the move cleanly: the collection
    stays readable and unchanged, and nothing is left in the bucket under its prefix;
  - the object-store metrics move (requests, bytes, retries).

Missing node or s3rver: prints "SKIP: ..." and exits 0 (as tests/e2e/test_diskfull.py does).
Missing botocore (python3-botocore, scripts/deps.sh) is a failure.

Run: python3 tests/e2e/test_s3_server.py --binary build/tierdb [--keep] [--only NAME]
"""
import ctypes
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdbtest as T  # noqa: E402
from tdbtest import q  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
BUCKET = "tdb-e2e"
PREFIX = "tierdb"
DIM = 8
PEER_START_S = 30
_peers = {}
_shared = {}


# ------------------------------------------------------------------------------------------ peers

def _die_with_parent():
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _start_peer(argv, what):
    """Starts argv, waits for its 'listening on ...:PORT' line; returns (Popen, port)."""
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         preexec_fn=_die_with_parent)
    found = {}
    lines = []

    def pump():
        for line in iter(p.stdout.readline, b""):
            text = line.decode("utf-8", "replace")
            lines.append(text)
            m = re.search(r"listening on \S*?:(\d+)", text)
            if m and "port" not in found:
                found["port"] = int(m.group(1))
    t = threading.Thread(target=pump, daemon=True)
    t.start()
    deadline = time.time() + PEER_START_S
    while time.time() < deadline and "port" not in found and p.poll() is None:
        time.sleep(0.02)
    if "port" not in found:
        _stop(p)
        raise RuntimeError("%s did not start: %s" % (what, "".join(lines)[-2000:]))
    return p, found["port"]


def _stop(p):
    if p is None or p.poll() is not None:
        return
    try:
        p.stdin.close()
    except OSError:
        pass
    p.terminate()
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def peers_dir():
    return os.environ.get("TDB_NODE_PEERS") or os.path.join(REPO, "build-peers")


def start_peers():
    base = os.environ.get("TDB_TEST_TMP")
    if base:
        os.makedirs(base, exist_ok=True)
    _peers["dir"] = tempfile.mkdtemp(prefix="tdb-s3e2e-", dir=base or None)
    data = os.path.join(_peers["dir"], "s3rver")
    os.makedirs(data)
    s3rver = os.path.join(peers_dir(), "node_modules", "s3rver", "bin", "s3rver.js")
    # s3rver 3.7.1 encrypts list continuation tokens with DES: OpenSSL 3 in Node offers it only
    # through the legacy provider.
    _peers["s3rver"], _peers["s3port"] = _start_peer(
        ["node", "--openssl-legacy-provider", s3rver, "-d", data, "-a", "127.0.0.1", "-p", "0",
         "--service-endpoint", "localhost", "--configure-bucket", BUCKET, "--silent"], "s3rver")
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    _peers["proxy"], _peers["port"] = _start_peer(
        [python, os.path.join(REPO, "tests", "objstore", "s3proxy.py"), "--upstream", str(_peers["s3port"])],
        "s3proxy.py (needs python3-botocore)")


def stop_peers():
    _stop(_peers.get("proxy"))
    _stop(_peers.get("s3rver"))
    if _peers.get("dir"):
        shutil.rmtree(_peers["dir"], ignore_errors=True)


def proxy(path):
    with urllib.request.urlopen("http://127.0.0.1:%d/__proxy/%s" % (_peers["port"], path), timeout=10) as r:
        return json.loads(r.read() or b"{}")


def bucket_keys(prefix=""):
    """Every key in the bucket under PREFIX/prefix, straight from s3rver (it accepts unsigned reads)."""
    keys, after = [], None
    ns = "{http://doc.s3.amazonaws.com/2006-03-01/}"
    while True:
        qs = {"list-type": "2", "prefix": PREFIX + "/" + prefix}
        if after:
            qs["start-after"] = after
        url = "http://127.0.0.1:%d/%s?%s" % (_peers["s3port"], BUCKET, urllib.parse.urlencode(qs))
        with urllib.request.urlopen(url, timeout=10) as r:
            root = ET.fromstring(r.read())
        page = [e.text for e in root.iter(ns + "Key")]
        keys += page
        if root.findtext(ns + "IsTruncated") != "true" or not page:
            return keys
        after = page[-1]


def s3_env(**over):
    env = {"TIERDB_OBJECT_STORE": "s3://%s/%s" % (BUCKET, PREFIX),
           "TIERDB_S3_ENDPOINT": "http://127.0.0.1:%d" % _peers["port"], "TIERDB_S3_PATH_STYLE": "1",
           "AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER", "AWS_REGION": "us-east-1",
           "TIERDB_LOG_LEVEL": "info"}
    env.update(over)
    return env


# ------------------------------------------------------------------------------------------ helpers

def server(ctx):
    s = _shared.get("srv")
    if s is None or not s.alive():
        s = _shared["srv"] = ctx.server("s3", env=s3_env())
    return s


def make_docs(rng, n, prefix):
    return [{"id": "%s%03d" % (prefix, i), "vector": [rng.uniform(-1, 1) for _ in range(DIM)],
             "attributes": {"title": " ".join(rng.choice(("red", "green", "blue", "shoes", "socks", "fast"))
                                              for _ in range(3)), "n": i, "tags": ["t%d" % (i % 4)]}}
            for i in range(n)]


def create(ctx, c, name, n, seed):
    r = c.post("/v1/collections", {"name": name, "dimension": DIM, "metric": "l2",
                                   "attributes": {"title": {"type": "string", "full_text": True}}})
    ctx.check(r.status == 201, "create " + name, r)
    docs = make_docs(random.Random(seed), n, name[:3])
    for i in range(0, n, 200):
        r = c.post("/v1/collections/%s/documents" % name, {"documents": docs[i:i + 200]})
        ctx.check(r.status == 200, "upsert into " + name, r)


def dump(c, name):
    docs, probs = T.list_all(c, name, limit=500, include_vectors=True)
    return {d["id"]: (d.get("vector"), d.get("attributes")) for d in docs}, probs


QUERIES = [{"vector": [0.1 * i for i in range(DIM)], "top_k": 10, "exact": True},
           {"vector": [0.5] * DIM, "top_k": 10, "filter": {"tags": {"$in": ["t1"]}}},
           {"text": "red shoes", "top_k": 10},
           {"vector": [-0.2] * DIM, "text": "blue", "top_k": 10, "hybrid": {"method": "rrf"}}]


def answers(ctx, c, name):
    out = []
    for body in QUERIES:
        r = c.post("/v1/collections/%s/query" % name, body)
        ctx.check(r.status == 200, "query %s -> 200" % name, r)
        out.append([(x.get("id"), x.get("distance"), x.get("score")) for x in r.get("results") or []])
    return out


def tier(c, name):
    return c.get("/v1/collections/%s/tier" % name).get("tier")


def metric(c, name, **labels):
    """Sum of the samples of one series (a simple parser: test_metrics.py uses the real one)."""
    text = c.get("/metrics").text
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


# ------------------------------------------------------------------------------------------ tests

def test_cold_tier_on_s3(ctx):
    s = server(ctx)
    c = s.client()
    create(ctx, c, "s3cold", 600, 1)
    before, probs = dump(c, "s3cold")
    ctx.check(len(before) == 600 and not probs, "600 documents", (len(before), probs))
    want = answers(ctx, c, "s3cold")
    put0 = metric(c, "tierdb_object_store_requests_total", operation="put", outcome="ok")
    up0 = metric(c, "tierdb_object_store_uploaded_bytes_total")
    http0 = metric(c, "tierdb_object_store_http_requests_total")
    r = c.post("/v1/collections/s3cold/tier/demote", {"to": "cold"})
    ctx.check(r.status == 200 and r.get("tier") == "cold" and r.get("object_bytes", 0) > 0,
              "demote to cold -> cold with object bytes", r)
    cid = None
    keys = bucket_keys("collections/")
    ctx.check(any(k.endswith("/data.parquet") for k in keys) and any("MANIFEST" in k for k in keys),
              "the cold copy (Parquet, MANIFEST, segments) is in the bucket", keys)
    if keys:
        cid = keys[0].split("/")[2]
    local = os.path.join(s.data, "collections")
    ctx.check(cid is not None and os.path.isdir(local), "the cold copy's keys name the collection id", keys)
    left = [d for d in os.listdir(local) if d == cid] if cid and os.path.isdir(local) else []
    ctx.check(not left, "no local files left for the cold collection", left)
    ctx.check(metric(c, "tierdb_object_store_requests_total", operation="put", outcome="ok") - put0 >= 3,
              "object-store puts counted")
    ctx.check(metric(c, "tierdb_object_store_uploaded_bytes_total") - up0 >= r.get("object_bytes", 1),
              "uploaded bytes counted (at least the copy's size)",
              metric(c, "tierdb_object_store_uploaded_bytes_total") - up0, r.get("object_bytes"))
    ctx.check(metric(c, "tierdb_object_store_http_requests_total") > http0, "HTTP requests counted")
    ctx.check(metric(c, "tierdb_object_store_info", scheme="s3") == 1, "object_store_info says s3")

    # Restart: the catalog knows the collection is cold; a query promotes it.
    s.stop()
    s.start()
    c = s.client()
    ctx.check(tier(c, "s3cold") == "cold", "still cold after a restart")
    dl0 = metric(c, "tierdb_object_store_downloaded_bytes_total")
    got = answers(ctx, c, "s3cold")
    ctx.check(got == want, "the cold collection answers exactly as before (ids, distances, scores)",
              got[:1], want[:1])
    ctx.check(tier(c, "s3cold") in ("warm", "hot"), "the query promoted it", tier(c, "s3cold"))
    ctx.check(metric(c, "tierdb_object_store_downloaded_bytes_total") > dl0, "downloaded bytes counted")
    after, probs = dump(c, "s3cold")
    ctx.check(after == before and not probs, "every document back, vectors and attributes identical",
              (len(after), probs))
    ctx.check(T.wait_for(lambda: not bucket_keys("collections/"), 10),
              "the cold copy is deleted from the bucket after the promotion", bucket_keys("collections/"))
    stats = proxy("stats")
    ctx.check(stats["sig_failures"] == 0 and stats["verified"] > 0,
              "every request the server sent was correctly signed (checked by botocore)",
              {k: stats[k] for k in ("verified", "sig_failures")})


def test_snapshots_on_s3(ctx):
    s = server(ctx)
    c = s.client()
    create(ctx, c, "s3snap", 300, 2)
    before, _ = dump(c, "s3snap")
    want = answers(ctx, c, "s3snap")
    r = c.post("/v1/collections/s3snap/snapshots")
    snap = r.get("snapshot_id")
    ctx.check(r.status == 201 and r.get("documents") == 300, "snapshot -> 201", r)
    loc = r.get("location") or ""
    ctx.check(loc.startswith("s3://%s/%s/snapshots/s3snap/" % (BUCKET, PREFIX)) and loc.endswith(".parquet"),
              "the location is in the bucket", loc)
    key = loc[len("s3://%s/" % BUCKET):]
    ctx.check(key in bucket_keys("snapshots/"), "the snapshot object exists",
              bucket_keys("snapshots/"))
    lst = c.get("/v1/collections/s3snap/snapshots").get("snapshots") or []
    ctx.check([x.get("snapshot_id") for x in lst] == [snap], "listed", lst)

    # Change the collection, restore in place.
    r = c.post("/v1/collections/s3snap/documents/delete", {"filter": {"n": {"$lt": 150}}})
    ctx.check(r.get("deleted") == 150, "delete half", r)
    r = c.post("/v1/collections/s3snap/snapshots/%s/restore" % q(snap))
    ctx.check(r.status == 200 and r.get("documents") == 300, "restore in place", r)
    ctx.check(dump(c, "s3snap")[0] == before, "restored in place: identical documents")
    ctx.check(answers(ctx, c, "s3snap") == want, "restored in place: identical answers")
    # Into a new name.
    r = c.post("/v1/collections/s3snap/snapshots/%s/restore" % q(snap), {"into": "s3snap2"})
    ctx.check(r.status == 200 and r.get("name") == "s3snap2", "restore into s3snap2", r)
    ctx.check(dump(c, "s3snap2")[0] == before, "restored into a new name: identical documents")
    ctx.check(answers(ctx, c, "s3snap2") == want, "restored into a new name: identical answers")
    # Drop with keep_snapshots, restore under the old name.
    ctx.check(c.delete("/v1/collections/s3snap?keep_snapshots=true").status == 200, "drop, keep snapshots")
    r = c.post("/v1/collections/s3snap/snapshots/%s/restore" % q(snap), {})
    ctx.check(r.status == 200 and r.get("documents") == 300, "restore a dropped collection", r)
    ctx.check(dump(c, "s3snap")[0] == before, "restored after a drop: identical documents")
    # Delete: the object goes.
    r = c.delete("/v1/collections/s3snap/snapshots/%s" % q(snap))
    ctx.check(r.status == 200 and r.get("deleted") is True, "delete the snapshot", r)
    ctx.check(not [k for k in bucket_keys("snapshots/") if snap in k], "the snapshot object is gone",
              bucket_keys("snapshots/"))
    ctx.check(c.get("/v1/collections/s3snap/snapshots").get("snapshots") == [], "no snapshot listed")
    for name in ("s3snap", "s3snap2"):
        c.delete("/v1/collections/" + name)


def _refused(ctx, name, env, want_name, want_words):
    s = ctx.server(name, env=env, start=False)
    try:
        s.start(timeout=40)
        ctx.check(False, "%s: the server must not start" % name)
        s.stop()
        return
    except T.ServerError:
        pass
    log = s.log_text()
    ctx.check(s.proc.returncode not in (None, 0), "%s: exits non-zero" % name, s.proc.returncode)
    ctx.check(want_name in log and all(w in log for w in want_words),
              "%s: the message names the cause (%s)" % (name, want_name), log[-800:])


def test_startup_refusals(ctx):
    _refused(ctx, "wrong-secret", s3_env(AWS_SECRET_ACCESS_KEY="not-the-secret"), "object_store_auth",
             ["SignatureDoesNotMatch", "secret"])
    _refused(ctx, "unknown-key", s3_env(AWS_ACCESS_KEY_ID="NOBODY"), "object_store_auth",
             ["InvalidAccessKeyId", "NOBODY"])
    _refused(ctx, "no-bucket", s3_env(TIERDB_OBJECT_STORE="s3://no-such-bucket-e2e/x"),
             "object_store_bucket_missing", ["no-such-bucket-e2e", "NoSuchBucket"])


def test_faults_during_demote(ctx):
    s = server(ctx)
    c = s.client()
    # 1. Every other upload answered 503 SlowDown: retried, the move completes.
    create(ctx, c, "s3f1", 300, 3)
    before, _ = dump(c, "s3f1")
    want = answers(ctx, c, "s3f1")
    retries0 = metric(c, "tierdb_object_store_retries_total", reason="throttled")
    proxy("fault?mode=status&code=503&every=2&method=PUT")
    r = c.post("/v1/collections/s3f1/tier/demote", {"to": "cold"})
    faults = proxy("stats")["faults"]
    proxy("reset")
    ctx.check(r.status == 200 and r.get("tier") == "cold", "503 on every other upload: the demote completes", r)
    ctx.check(faults >= 2, "faults were injected", faults)
    ctx.check(metric(c, "tierdb_object_store_retries_total", reason="throttled") - retries0 >= faults,
              "each 503 counted as a throttled retry",
              metric(c, "tierdb_object_store_retries_total", reason="throttled") - retries0, faults)
    ctx.check(answers(ctx, c, "s3f1") == want, "answers unchanged after the move")
    ctx.check(dump(c, "s3f1")[0] == before, "documents unchanged after the move")

    # 2. Dropped connections on every third request of any kind, both ways.
    create(ctx, c, "s3f2", 300, 4)
    before, _ = dump(c, "s3f2")
    want = answers(ctx, c, "s3f2")
    conn0 = metric(c, "tierdb_object_store_retries_total", reason="connection")
    proxy("fault?mode=drop&every=3")
    r = c.post("/v1/collections/s3f2/tier/demote", {"to": "cold"})
    ctx.check(r.status == 200 and r.get("tier") == "cold", "dropped connections: the demote completes", r)
    r = c.post("/v1/collections/s3f2/tier/promote", {"to": "warm"})
    ctx.check(r.status == 200 and r.get("tier") == "warm", "dropped connections: the promote completes", r)
    faults = proxy("stats")["faults"]
    proxy("reset")
    ctx.check(faults >= 2, "drops were injected", faults)
    # libcurl itself resends, once, a request whose kept-alive connection closed before any answer
    # (as a drop looks on a reused connection): those never reach our retry loop.
    conn = metric(c, "tierdb_object_store_retries_total", reason="connection") - conn0
    ctx.check(1 <= conn <= faults, "drops counted as connection retries (at most one per drop)", conn, faults)
    ctx.check(dump(c, "s3f2")[0] == before and answers(ctx, c, "s3f2") == want,
              "documents and answers unchanged through both moves")

    # 3. 503s that outlast the retries, after two uploads went through: the move fails cleanly.
    create(ctx, c, "s3f3", 300, 5)
    r = c.post("/v1/collections/s3f3/tier/demote", {"to": "warm"})
    ctx.check(r.status == 200 and r.get("tier") == "warm", "s3f3 warm", r)
    before, _ = dump(c, "s3f3")
    want = answers(ctx, c, "s3f3")
    keys0 = set(bucket_keys("collections/"))
    err0 = metric(c, "tierdb_object_store_errors_total", cause="busy")
    fail0 = metric(c, "tierdb_tier_move_failures_total", kind="warm_to_cold")
    proxy("fault?mode=status&code=503&skip=2&method=PUT")
    t0 = time.time()
    r = c.post("/v1/collections/s3f3/tier/demote", {"to": "cold"})
    took = time.time() - t0
    proxy("reset")
    ctx.check(500 <= r.status <= 599, "503s past the retries: the demote fails with a 5xx", r)
    T.expect_error(ctx, r, r.status, "a demote that ran out of retries")
    ctx.check("503" in r.text or "busy" in r.text or "SlowDown" in r.text, "the message says why", r)
    print("    a demote that ran out of retries answered in %.1f s" % took)
    ctx.check(tier(c, "s3f3") == "warm", "the collection stays warm", tier(c, "s3f3"))
    ctx.check(dump(c, "s3f3")[0] == before, "its documents are unchanged and readable")
    ctx.check(answers(ctx, c, "s3f3") == want, "its answers are unchanged")
    ctx.check(set(bucket_keys("collections/")) == keys0, "nothing it uploaded is left in the bucket",
              sorted(set(bucket_keys("collections/")) - keys0))
    ctx.check(metric(c, "tierdb_object_store_errors_total", cause="busy") - err0 >= 1, "errors{cause=busy} counted")
    ctx.check(metric(c, "tierdb_tier_move_failures_total", kind="warm_to_cold") - fail0 == 1, "one move failure")
    # And it moves once the store is healthy again.
    r = c.post("/v1/collections/s3f3/tier/demote", {"to": "cold"})
    ctx.check(r.status == 200 and r.get("tier") == "cold", "the demote succeeds once the faults stop", r)
    ctx.check(answers(ctx, c, "s3f3") == want, "answers from the cold collection unchanged")
    stats = proxy("stats")
    ctx.check(stats["sig_failures"] == 0, "every request correctly signed", stats["sig_failures"])
    for name in ("s3f1", "s3f2", "s3f3", "s3cold"):
        c.delete("/v1/collections/" + name)
    ctx.check(T.wait_for(lambda: not bucket_keys("collections/"), 10),
              "dropping the collections removed their objects", bucket_keys("collections/"))


def main():
    have_node = shutil.which("node") is not None
    s3rver = os.path.join(peers_dir(), "node_modules", "s3rver", "bin", "s3rver.js")
    if "--help" not in sys.argv and "-h" not in sys.argv and (not have_node or not os.path.exists(s3rver)):
        print("SKIP: %s (run scripts/test-peers.sh with Node.js and npm installed)"
              % ("node is not installed" if not have_node else "s3rver is not installed: no " + s3rver))
        sys.exit(0)
    try:
        if "--help" not in sys.argv and "-h" not in sys.argv:
            start_peers()
        T.main([test_cold_tier_on_s3, test_snapshots_on_s3, test_startup_refusals, test_faults_during_demote],
               description=__doc__)
    finally:
        stop_peers()


if __name__ == "__main__":
    main()

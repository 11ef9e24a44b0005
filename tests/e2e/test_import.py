#!/usr/bin/python3
"""End-to-end tests of the NDJSON import (API.md "Documents", import; docs/operations.md "Import"):
the route and the `tierdb import` command.

  - 200,000 documents through the CLI, every one stored (a sample read back exactly);
  - a bad line in the middle under abort (lines before committed, after not, the line named; CLI
    exit 4) and skip (every good line committed, the bad ones counted and named);
  - chunked uploads (a raw chunked request, and the CLI reading stdin, which sends chunked);
  - 415 for a wrong or missing Content-Type, 404 for an unknown collection (CLI exit 3), 400 for bad
    parameters, all before any line is read;
  - the body limit does not apply to the route while a single line over it is an error for that
    line; blank lines, CRLF line ends and a byte-order mark; at most 100 errors listed;
  - the collection deleted mid-import: the import fails saying how much was committed, and writes
    nothing into a new collection of the same name;
  - memory stays flat: a streamed import much bigger than the server's memtable leaves its
    anonymous memory bounded (checked from /proc while the upload runs).

Run: python3 tests/e2e/test_import.py --binary build/tierdb [--keep] [--only NAME]
"""
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdbtest as T  # noqa: E402
from tdbtest import q  # noqa: E402

ND = "application/x-ndjson"
BIG_COUNT = 200000
_shared = {}


def main_server(ctx):
    s = _shared.get("main")
    if s is None or not s.alive():
        s = _shared["main"] = ctx.server("main")
    return s


def doc(i, dim=4, prefix="d"):
    return {"id": "%s%06d" % (prefix, i), "vector": [float((i * 7 + k) % 13) - 6.0 + 0.25 for k in range(dim)],
            "attributes": {"n": i, "s": "\u00e9t\u00e9 %d" % i}}


def ndjson(docs):
    return "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs).encode("utf-8")


def ids_of(c, name):
    docs, probs = T.list_all(c, name, limit=1000)
    return [d.get("id") for d in docs], probs


def run_cli(ctx, args, stdin_data=None, env=None, timeout=600):
    e = {k: v for k, v in os.environ.items() if not k.startswith("TIERDB_")}
    e.update(env or {})
    return subprocess.run([ctx.binary] + args, input=stdin_data, capture_output=True, env=e, timeout=timeout)


def chunked_post(port, path, chunks, ctype=ND, timeout=120):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest("POST", path, skip_accept_encoding=True)
        conn.putheader("Content-Type", ctype)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for ch in chunks:
            if ch:
                conn.send(b"%x\r\n%s\r\n" % (len(ch), ch))
        conn.send(b"0\r\n\r\n")
        r = conn.getresponse()
        return T.Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def create(ctx, c, name, dim=4, metric="l2", attributes=None):
    c.delete("/v1/collections/" + q(name))
    body = {"name": name, "dimension": dim, "metric": metric}
    if attributes:
        body["attributes"] = attributes
    r = c.post("/v1/collections", body)
    ctx.check(r.status == 201, "create %s" % name, r)


# ------------------------------------------------------------------------------------------ tests

def test_cli_import_200k(ctx):
    # A memtable that holds them all: this test is about the import, not about how long the
    # background flush of 200,000 documents takes (a drop or stop waits for a running flush).
    s = ctx.server("big", env={"TIERDB_MEMTABLE_MAX_DOCS": "300000", "TIERDB_MEMTABLE_MAX_BYTES": "1G"})
    path = os.path.join(ctx.tmp, "big.ndjson")
    dim = 8
    rnd = random.Random(42)
    # Vectors from a pool (a prime number of them, so neighbours differ): writing 200,000 lines
    # stays fast on a loaded machine.
    pool = [[round(rnd.uniform(-1, 1), 5) for _ in range(dim)] for _ in range(997)]
    pool_text = [json.dumps(v) for v in pool]
    sample = {}
    with open(path, "w", encoding="utf-8") as f:
        lines = []
        for i in range(BIG_COUNT):
            lines.append('{"id":"b%06d","vector":%s,"attributes":{"n":%d,"even":%s}}\n'
                         % (i, pool_text[i % 997], i, "true" if i % 2 == 0 else "false"))
            if i % 20011 == 0:
                sample["b%06d" % i] = {"vector": pool[i % 997], "attributes": {"n": i, "even": i % 2 == 0}}
        f.write("".join(lines))
    t0 = time.time()
    r = run_cli(ctx, ["import", path, "--collection", "big", "--create", "--dimension", str(dim), "--metric", "l2",
                      "--url", s.url])
    dt = time.time() - t0
    out = r.stdout.decode()
    ctx.check(r.returncode == 0, "tierdb import of %d documents exits 0" % BIG_COUNT,
              [r.returncode, out[-300:], r.stderr.decode()[-500:]])
    ctx.check("imported %d documents" % BIG_COUNT in out, "the CLI reports every document imported", out[-300:])
    ctx.check("created collection big" in r.stderr.decode(), "--create created the collection", r.stderr.decode()[-300:])
    c = s.client()
    col = c.get("/v1/collections/big")
    ctx.check(col.get("documents") == BIG_COUNT and col.get("dimension") == dim, "the collection holds them all",
              col, BIG_COUNT)
    for i, d in sample.items():
        g = c.get("/v1/collections/big/documents/" + q(i))
        ctx.check(g.status == 200 and g.get("attributes") == d["attributes"] and T.vec_close(g.get("vector"), d["vector"]),
                  "document %s reads back exactly" % i, g, d)
    sys.stderr.write("    (%d documents of dimension %d through the CLI in %.1fs)\n" % (BIG_COUNT, dim, dt))
    # a second import of the file's first lines with --create: the collection exists with that
    # dimension, so it is used as it is (upserts: still BIG_COUNT documents)
    head = os.path.join(ctx.tmp, "head.ndjson")
    with open(path, "rb") as f, open(head, "wb") as out:
        for _ in range(3000):
            out.write(f.readline())
    r = run_cli(ctx, ["import", head, "--collection", "big", "--create", "--dimension", str(dim), "--url", s.url,
                      "--quiet", "--json", "--batch", "500"])
    rep = json.loads(r.stdout.decode() or "null")
    ctx.check(r.returncode == 0 and rep == {"imported": 3000, "skipped": 0, "errors": []},
              "--json prints the report; a re-import upserts", [r.returncode, r.stdout[-200:], r.stderr[-300:]])
    ctx.check(c.get("/v1/collections/big").get("documents") == BIG_COUNT, "still %d documents" % BIG_COUNT)
    r = run_cli(ctx, ["import", head, "--collection", "big", "--create", "--dimension", "9", "--url", s.url, "--quiet"])
    ctx.check(r.returncode == 3 and b"dimension 8, not 9" in r.stderr, "--create with another dimension -> exit 3",
              [r.returncode, r.stderr[-300:]])
    c.delete("/v1/collections/big")


def test_bad_line_abort(ctx):
    s = main_server(ctx)
    c = s.client()
    create(ctx, c, "ab", attributes={"n": {"type": "int"}})
    lines = ndjson([doc(i, prefix="a") for i in range(5000)]).split(b"\n")
    lines[2499] = b'{"id": "a002499", "vector": [1, 2, 3'                   # line 2500: malformed
    r = c.post("/v1/collections/ab/documents/import", raw=b"\n".join(lines), ctype=ND)
    ctx.check(r.status == 200 and r.get("imported") == 2499 and r.get("skipped") == 0, "abort: 2499 imported", r)
    errs = r.get("errors") or []
    ctx.check(len(errs) == 1 and errs[0].get("line") == 2500 and "malformed JSON" in errs[0].get("message", ""),
              "abort: the report names line 2500 and says why", errs)
    ids, probs = ids_of(c, "ab")
    ctx.check(not probs and ids == ["a%06d" % i for i in range(2499)], "abort: lines 1-2499 committed, none after",
              [len(ids), ids[-2:], probs])
    # declared-type mismatch and a wrong dimension are bad lines too
    for bad, needle in (({"id": "x", "vector": [1, 2, 3, 4], "attributes": {"n": "one"}}, "declared int"),
                        ({"id": "x", "vector": [1, 2]}, "dimension"),
                        ({"id": "x", "vector": [1, 2, 3, "4"]}, "not a number"),
                        ({"id": "", "vector": [1, 2, 3, 4]}, "1..512 bytes"),
                        ({"vector": [1, 2, 3, 4]}, "\"id\" is required"),
                        ({"id": "x", "vector": [1, 2, 3, 4], "extra": 1}, "unknown field"),
                        ([1, 2], "JSON object")):
        body = ndjson([doc(1, prefix="z"), bad, doc(2, prefix="z")])
        r = c.post("/v1/collections/ab/documents/import", raw=body, ctype=ND)
        errs = r.get("errors") or []
        ctx.check(r.get("imported") == 1 and len(errs) == 1 and errs[0].get("line") == 2 and needle in errs[0].get("message", ""),
                  "abort on %s: line 2 named (%r)" % (json.dumps(bad)[:60], needle), r)
    # the CLI: exit 4, the line on stderr
    path = os.path.join(ctx.tmp, "abort.ndjson")
    lines = ndjson([doc(i, prefix="c") for i in range(100)]).split(b"\n")
    lines[49] = b"not json"
    with open(path, "wb") as f:
        f.write(b"\n".join(lines))
    r = run_cli(ctx, ["import", path, "--collection", "ab", "--url", s.url])
    ctx.check(r.returncode == 4 and b"line 50:" in r.stderr and b"imported 49 documents" in r.stdout,
              "CLI abort: exit 4, 49 imported, line 50 named", [r.returncode, r.stdout[-200:], r.stderr[-300:]])


def test_bad_lines_skip(ctx):
    s = main_server(ctx)
    c = s.client()
    create(ctx, c, "sk")
    docs = [doc(i, prefix="s") for i in range(3000)]
    lines = ndjson(docs).split(b"\n")
    bad = {9, 1500, 2999}
    for i in bad:
        lines[i] = b"{oops"
    r = c.post("/v1/collections/sk/documents/import?on_error=skip", raw=b"\n".join(lines), ctype=ND)
    ctx.check(r.status == 200 and r.get("imported") == 2997 and r.get("skipped") == 3,
              "skip: 2997 imported, 3 skipped", r)
    ctx.check(sorted(e.get("line") for e in r.get("errors") or []) == [i + 1 for i in sorted(bad)],
              "skip: the errors name lines 10, 1501 and 3000", r.get("errors"))
    ids, _ = ids_of(c, "sk")
    ctx.check(ids == ["s%06d" % i for i in range(3000) if i not in bad], "skip: every good line committed", len(ids))
    # more than 100 bad lines: all counted, 100 listed
    body = b"".join((b"{bad\n" if i % 3 else json.dumps(doc(i, prefix="m")).encode() + b"\n") for i in range(600))
    r = c.post("/v1/collections/sk/documents/import?on_error=skip", raw=body, ctype=ND)
    ctx.check(r.get("imported") == 200 and r.get("skipped") == 400 and len(r.get("errors") or []) == 100,
              "400 bad lines: all counted, the first 100 listed", [r.get("imported"), r.get("skipped"), len(r.get("errors") or [])])
    path = os.path.join(ctx.tmp, "skip.ndjson")
    with open(path, "wb") as f:
        f.write(body)
    r = run_cli(ctx, ["import", path, "--collection", "sk", "--on-error", "skip", "--url", s.url])
    ctx.check(r.returncode == 4 and b"skipped 400 lines" in r.stdout, "CLI skip with bad lines: exit 4",
              [r.returncode, r.stdout[-200:]])


def test_chunked(ctx):
    s = main_server(ctx)
    c = s.client()
    create(ctx, c, "ch")
    body = ndjson([doc(i, prefix="k") for i in range(1000)])
    # pieces that split lines, UTF-8 sequences and even the CRLF of a line end anywhere
    pieces, k, rnd = [], 0, random.Random(3)
    while k < len(body):
        n = rnd.choice([1, 2, 3, 7, 100, 777, 4096, 65536])
        pieces.append(body[k:k + n])
        k += n
    r = chunked_post(s.port, "/v1/collections/ch/documents/import", pieces)
    ctx.check(r.status == 200 and r.get("imported") == 1000, "a chunked upload in %d odd pieces" % len(pieces), r)
    ids, _ = ids_of(c, "ch")
    ctx.check(ids == ["k%06d" % i for i in range(1000)], "every document of the chunked upload", len(ids))
    # stdin through the CLI goes chunked (the size is unknown)
    data = ndjson([doc(i, prefix="p") for i in range(2000)])
    r = run_cli(ctx, ["import", "-", "--collection", "ch", "--url", s.url], stdin_data=data)
    ctx.check(r.returncode == 0 and b"imported 2000 documents" in r.stdout, "tierdb import - reads stdin",
              [r.returncode, r.stdout[-200:], r.stderr[-300:]])
    ctx.check(c.get("/v1/collections/ch").get("documents") == 3000, "3000 documents in all")


def test_refusals(ctx):
    s = main_server(ctx)
    c = s.client()
    create(ctx, c, "rf")
    body = ndjson([doc(1, prefix="r")])
    for ctype in ("text/plain", "application/json", None):
        r = c.req("POST", "/v1/collections/rf/documents/import", raw=body, ctype=ctype)
        T.expect_error(ctx, r, 415, "import with Content-Type %s" % ctype, "unsupported_media_type")
    for ctype in ("application/x-ndjson; charset=utf-8", "application/jsonl", "application/x-ndjson"):
        r = c.post("/v1/collections/rf/documents/import", raw=body, ctype=ctype)
        ctx.check(r.status == 200 and r.get("imported") == 1, "Content-Type %s accepted" % ctype, r)
    T.expect_error(ctx, c.post("/v1/collections/nope/documents/import", raw=body, ctype=ND), 404,
                   "import into an unknown collection", "collection_not_found")
    for qs, what in (("?on_error=maybe", "on_error=maybe"), ("?batch_size=0", "batch_size=0"),
                     ("?batch_size=100001", "batch_size=100001"), ("?batch_size=x", "batch_size=x")):
        T.expect_error(ctx, c.post("/v1/collections/rf/documents/import" + qs, raw=body, ctype=ND), 400, what,
                       "invalid_parameter")
    T.expect_error(ctx, c.get("/v1/collections/rf/documents/import"), 404,
                   "GET .../documents/import reads the document with id 'import'")
    r = run_cli(ctx, ["import", os.devnull, "--collection", "nope", "--url", s.url])
    ctx.check(r.returncode == 3 and b"collection_not_found" in r.stderr and b"--create" in r.stderr,
              "CLI into an unknown collection: exit 3 with a hint", [r.returncode, r.stderr[-300:]])
    r = run_cli(ctx, ["import", os.path.join(ctx.tmp, "missing.ndjson"), "--collection", "rf", "--url", s.url])
    ctx.check(r.returncode == 1 and b"cannot open" in r.stderr, "CLI with a missing file: exit 1", [r.returncode, r.stderr])
    r = run_cli(ctx, ["import", os.devnull, "--collection", "rf", "--url", "http://127.0.0.1:1"])
    ctx.check(r.returncode == 1 and b"cannot reach" in r.stderr, "CLI with no server: exit 1", [r.returncode, r.stderr])
    for args, needle in ((["import"], b"which file"), (["import", "f"], b"--collection"),
                         (["import", "f", "--collection", "x", "--create"], b"--dimension"),
                         (["import", "f", "--collection", "x", "--on-error", "maybe"], b"--on-error"),
                         (["import", "f", "--collection", "x", "--batch", "0"], b"--batch"),
                         (["import", "f", "--collection", "x", "--bogus"], b"unknown flag")):
        r = run_cli(ctx, args)
        ctx.check(r.returncode == 2 and needle in r.stderr, "tierdb %s -> exit 2" % " ".join(args), [r.returncode, r.stderr[:200]])
    ctx.check(c.get("/v1/collections/rf").get("documents") == 1, "refused imports wrote nothing")


def test_lines_and_limits(ctx):
    s = ctx.server("small", env={"TIERDB_MAX_BODY_BYTES": "64K"})
    c = s.client()
    create(ctx, c, "ll", dim=2)
    # blank lines are ignored but counted; CRLF; a BOM; the last line without '\n'
    body = (b"\xef\xbb\xbf" + json.dumps({"id": "l1", "vector": [1, 2]}).encode() + b"\r\n\r\n   \n" +
            json.dumps({"id": "l2", "vector": [3, 4]}).encode() + b"\r\n" + b"{bad}\n" +
            json.dumps({"id": 77, "vector": [5, 6]}).encode())
    r = c.post("/v1/collections/ll/documents/import?on_error=skip", raw=body, ctype=ND)
    ctx.check(r.get("imported") == 3 and r.get("skipped") == 1 and [e.get("line") for e in r.get("errors") or []] == [5],
              "BOM, CRLF and blank lines: 3 imported, line 5 skipped", r)
    ctx.check(c.get("/v1/collections/ll/documents/77").status == 200, "an integer id is stored as its decimal text")
    # a body far over the 64 KiB body limit is fine; one line over it is an error for that line only
    big_attr = "x" * (80 << 10)
    docs = [{"id": "g%04d" % i, "vector": [i, 1]} for i in range(3000)]
    lines = [json.dumps(d).encode() for d in docs]
    lines[1000] = json.dumps({"id": "huge", "vector": [1, 1], "attributes": {"t": big_attr}}).encode()
    r = chunked_post(s.port, "/v1/collections/ll/documents/import?on_error=skip", [b"\n".join(lines)[k:k + 5000] for k in range(0, 200000, 5000)] +
                     [b"\n".join(lines)[200000:]])
    errs = r.get("errors") or []
    ctx.check(r.status == 200 and r.get("imported") == 2999 and len(errs) == 1 and errs[0].get("line") == 1001
              and "longer than" in errs[0].get("message", ""), "a line over the body limit is an error for that line", r)
    ctx.check(c.get("/v1/collections/ll/documents/huge").status == 404, "the over-long line was not stored")
    T.expect_error(ctx, c.post("/v1/collections/ll/documents", {"documents": [{"id": "u", "vector": [1, 1],
                                                                               "attributes": {"t": big_attr}}]}),
                   413, "an upsert body over the limit is still 413", "payload_too_large")


def test_drop_during_import(ctx):
    """The collection is deleted while an import streams into it: the import fails with a message
    saying how much was committed; nothing is written into a new collection of the same name."""
    s = main_server(ctx)
    c = s.client()
    create(ctx, c, "dr")
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
    conn.putrequest("POST", "/v1/collections/dr/documents/import?batch_size=100", skip_accept_encoding=True)
    conn.putheader("Content-Type", ND)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()

    def send(b):
        conn.send(b"%x\r\n%s\r\n" % (len(b), b))
    send(ndjson([doc(i, prefix="r") for i in range(250)]))
    # Two batches of 100 are committed as soon as the server has read them.
    got = T.wait_for(lambda: c.get("/v1/collections/dr").get("documents") == 200, 60)
    ctx.check(got, "the first batches are committed while the upload goes on",
              c.get("/v1/collections/dr").get("documents"), 200)
    ctx.check(c.delete("/v1/collections/dr").status == 200, "the collection is deleted mid-import")
    create(ctx, c, "dr")
    send(ndjson([doc(i, prefix="r") for i in range(250, 400)]))
    conn.send(b"0\r\n\r\n")
    r = conn.getresponse()
    r = T.Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    conn.close()
    T.expect_error(ctx, r, 404, "the import after its collection was deleted", "collection_not_found")
    ctx.check("200 documents were committed" in (r.get("error") or {}).get("message", ""),
              "the message says how many documents were committed", r)
    ctx.check(c.get("/v1/collections/dr").get("documents") == 0, "nothing went into the new collection of that name")


def test_flat_memory(ctx):
    """A streamed import of ~200 MB with an 8 MiB memtable: the server's anonymous memory stays
    far below the body size (it never holds the body)."""
    # Under AddressSanitizer freed memory waits in a quarantine (256 MB by default) before reuse,
    # which would look like growth: keep it small (the option means nothing to a normal build).
    asan = (os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=8").lstrip(":")
    s = ctx.server("flat", env={"TIERDB_MEMTABLE_MAX_BYTES": "8M", "TIERDB_FSYNC": "none", "ASAN_OPTIONS": asan})
    c = s.client()
    create(ctx, c, "fm", dim=0)
    pid = s.proc.pid
    filler = "y" * 900

    def rss_anon_kb():
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        return int(line.split()[1])
        except OSError:
            return 0
        return 0

    peak = [rss_anon_kb()]
    base = peak[0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_anon_kb())
            time.sleep(0.05)
    w = threading.Thread(target=watch, daemon=True)
    w.start()
    total_lines, chunk_lines = 200000, 2000

    def chunks():
        for start in range(0, total_lines, chunk_lines):
            yield "".join('{"id":"f%07d","attributes":{"t":"%s"}}\n' % (i, filler)
                          for i in range(start, start + chunk_lines)).encode()
    t0 = time.time()
    r = chunked_post(s.port, "/v1/collections/fm/documents/import", chunks(), timeout=600)
    stop.set()
    w.join()
    body_mb = total_lines * 940 / 1e6
    ctx.check(r.status == 200 and r.get("imported") == total_lines, "a ~%.0f MB streamed import" % body_mb, r)
    grown_mb = (peak[0] - base) / 1024.0
    sys.stderr.write("    (%.0f MB streamed in %.1fs; server anonymous memory %.0f MB -> peak %.0f MB)\n"
                     % (body_mb, time.time() - t0, base / 1024.0, peak[0] / 1024.0))
    # memtable (8 MiB) + frozen memtable + one batch + allocator slack; the body is ~190 MB
    ctx.check(grown_mb < 96, "server memory grew by < 96 MB for a ~%.0f MB body" % body_mb, "%.0f MB" % grown_mb)


if __name__ == "__main__":
    T.main([test_cli_import_200k, test_bad_line_abort, test_bad_lines_skip, test_chunked, test_refusals,
            test_lines_and_limits, test_drop_during_import, test_flat_memory], description=__doc__)

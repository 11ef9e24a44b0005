#!/usr/bin/python3
"""End-to-end tests of hostile requests (docs/reliability.md "Hostile requests"): path-like names and
ids, deep nesting, 10 MB strings, 100,000-element arrays, a slowloris of 1,000 idle connections, and
memory under many large answers. Each answer must be the documented status with an exact error body
(never a 500, a crash or a hang), nothing outside the data directory may change, and the server must
keep serving.

Run: python3 tests/e2e/test_hostile.py --binary build/tierdb [--only test_slowloris] [--keep]
"""
import json
import os
import random
import resource
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdbtest as T  # noqa: E402
from tdbtest import q, expect_error  # noqa: E402

_shared = {}
MB10 = 10 << 20


def main_server(ctx):
    s = _shared.get("main")
    if s is None or not s.alive():
        s = _shared["main"] = ctx.server("main")
    return s


def healthy(ctx, s, what):
    r = s.client(timeout=60).get("/health")
    ctx.check(s.alive() and r.status == 200, "the server still serves after %s" % what, r, 200)


def no_5xx(ctx, r, what, allowed=(200, 400, 404)):
    return ctx.check(r.status in allowed and r.json is not None, "%s -> one of %s with a JSON body" % (what, allowed),
                     r, allowed)


def raw_exchange(port, chunks, timeout=30):
    """Sends chunks on a fresh socket (stopping when the server answers or closes) and returns the
    status code of the answer, or None when the server closed without one."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    got = b""
    try:
        for c in chunks:
            r, _, _ = select.select([s], [], [], 0)
            if r:
                break
            try:
                s.sendall(c)
            except OSError:
                break
        deadline = time.time() + timeout
        while time.time() < deadline and b"\r\n" not in got:
            try:
                b = s.recv(65536)
            except OSError:
                break
            if not b:
                break
            got += b
    finally:
        s.close()
    if not got.startswith(b"HTTP/1."):
        return None
    return int(got.split(b" ", 2)[1])


# ---------------------------------------------------------------------------------------------- names and ids

BAD_NAMES = ["..", ".", "./x", "../x", "a/b", "/", "a\\b", "a\u0000b", "\u0000", "a\u0001b", "a\u001fb", "a\u007fb",
             "a b", "a%2Fb", "\u00e9t\u00e9", "x" * 129, ""]
ODD_IDS = ["..", ".", "../../../../etc/passwd", "a/b", "/", "//", "\\..\\x", "\u0000", "a\u0000b",
           "\u0001\u001f\u007f", "%2e%2e", "%00", "\u00e9", "\U0001F600", "CON", "x" * 512, "\u00e9" * 256, " ", "?#"]


def test_names_and_ids(ctx):
    s = main_server(ctx)
    c = s.client()
    parent = os.path.dirname(s.data)
    before_parent = sorted(os.listdir(parent))
    for name in BAD_NAMES:
        r = c.post("/v1/collections", {"name": name, "dimension": 3, "metric": "l2"})
        expect_error(ctx, r, 400, "create collection named %r" % name[:20], "invalid_name")
        r = c.get("/v1/collections/" + q(name)) if name else c.get("/v1/collections/")
        ctx.check(r.status in (400, 404) and r.json is not None, "GET of collection %r -> 400/404" % name[:20], r)
    # Overlong UTF-8 ('.' as C0 AE), a lone surrogate and a NUL sent raw in the JSON text.
    for raw, what in ((b'"\xc0\xae\xc0\xae"', "overlong '..'"), (b'"\xed\xa0\x80"', "a UTF-8 surrogate"),
                      (b'"\xe0\x80\xaf"', "overlong '/'"), (b'"a\x00b"', "a raw NUL")):
        r = c.post("/v1/collections", raw=b'{"name": ' + raw + b', "dimension": 3, "metric": "l2"}')
        expect_error(ctx, r, 400, "collection name with %s" % what)
    for path in ("/v1/collections/..", "/v1/collections/.", "/v1/collections/%2e%2e", "/v1/collections/..%2F..",
                 "/v1/collections/%C0%AE%C0%AE", "/v1/collections/%ED%A0%80", "/v1/collections/a%00b",
                 "/v1/collections/%01", "/v1/collections/../health", "/v1/../health", "/v1/collections/%2F"):
        r = c.get(path)
        ctx.check(r.status in (400, 404) and r.json is not None, "GET %s -> 400/404 with a JSON body" % path, r)
    r = raw_exchange(s.port, [b"GET /v1/collections/\x01\x7f HTTP/1.1\r\nHost: x\r\n\r\n"])
    ctx.check(r in (None, 400, 404), "control bytes in the raw request-target: refused", r)

    name = "ho_ids"
    c.delete("/v1/collections/" + name)
    c.post("/v1/collections", {"name": name, "dimension": 3, "metric": "l2"})
    base = "/v1/collections/%s/documents" % name
    r = c.post(base, {"documents": [{"id": i, "vector": [1, n, 3], "attributes": {"n": n}} for n, i in enumerate(ODD_IDS)]})
    ctx.check(r.status == 200 and r.get("upserted") == len(ODD_IDS), "every path-like id is an ordinary id", r)
    for n, i in enumerate(ODD_IDS):
        g = c.get(base + "/" + q(i))
        ctx.check(g.status == 200 and g.get("id") == i and g.get("attributes") == {"n": n},
                  "id %r reads back byte for byte" % i[:30], g)
    for raw, what in ((b'"\xc0\xae\xc0\xae"', "overlong '..'"), (b'"\xed\xa0\x80"', "a UTF-8 surrogate"),
                      (b'"\xf8\x88\x80\x80\x80"', "a 5-byte sequence"), (b'"x\x00"', "a raw NUL")):
        r = c.post(base, raw=b'{"documents": [{"id": ' + raw + b', "vector": [1, 2, 3]}]}')
        expect_error(ctx, r, 400, "document id with %s" % what)
    for path, what in (("%C0%AE%C0%AE", "overlong"), ("%ED%A0%80", "surrogate"), ("%FF", "0xFF")):
        r = c.get(base + "/" + path)
        ctx.check(r.status in (400, 404) and r.json is not None, "GET of an id that is not UTF-8 (%s) -> 400/404" % what, r)
    r = c.post(base, {"documents": [{"id": "x" * 513, "vector": [1, 2, 3]}]})
    expect_error(ctx, r, 400, "a 513-byte id", "invalid_id")
    docs, probs = T.list_all(c, name)
    ctx.check(sorted(d["id"] for d in docs) == sorted(ODD_IDS) and not probs, "the listing holds exactly the ids",
              len(docs), len(ODD_IDS))
    # Nothing appeared outside the data directory, nor a file named after an id inside it.
    ctx.check(sorted(os.listdir(parent)) == before_parent, "nothing was created beside the data directory",
              sorted(os.listdir(parent)), before_parent)
    names = set()
    for _, dirs, files in os.walk(s.data):
        names.update(dirs)
        names.update(files)
    ctx.check(not names & {"passwd", "etc", "..", "a", "b", "CON"}, "no file or directory is named after an id",
              sorted(names & {"passwd", "etc", "a", "b", "CON"}))
    # And they survive a restart (the WAL holds them as data, not as paths).
    s.stop()
    s.start()
    c = s.client()
    bad = [i for i in ODD_IDS if c.get(base + "/" + q(i)).get("id") != i]
    ctx.check(not bad, "every path-like id reads back after a restart", bad)
    c.delete("/v1/collections/" + name)


# ---------------------------------------------------------------------------------------------- nesting

def test_deep_nesting(ctx):
    s = main_server(ctx)
    c = s.client()
    name = "ho_nest"
    c.delete("/v1/collections/" + name)
    c.post("/v1/collections", {"name": name, "dimension": 3, "metric": "l2"})
    base = "/v1/collections/" + name
    c.post(base + "/documents", {"documents": [{"id": "a", "vector": [1, 2, 3], "attributes": {"y": 1}}]})
    for depth in (300, 100000, 1 << 20):
        for bracket in (b"[", b'{"a":'):
            close = b"]" if bracket == b"[" else b"}"
            deep = bracket * depth + b"1" + close * depth
            what = "%d levels of %s" % (depth, bracket.decode())
            expect_error(ctx, c.post("/v1/collections", raw=deep), 400, "create: " + what, "invalid_json")
            expect_error(ctx, c.post(base + "/documents", raw=b'{"documents": [{"id": "d", "vector": [1, 2, 3], '
                                                           b'"attributes": {"x": ' + deep + b'}}]}'),
                         400, "upsert attributes: " + what, "invalid_json")
            expect_error(ctx, c.post(base + "/query", raw=b'{"vector": [1, 2, 3], "filter": {"x": ' + deep + b'}}'),
                         400, "query filter: " + what, "invalid_json")
        # Unterminated nesting (the parser must not wait for the end to refuse it).
        expect_error(ctx, c.post(base + "/query", raw=b"[" * depth), 400, "unterminated %d levels" % depth,
                     "invalid_json")
    # Deep but within the JSON limit: filter combinators nested 120 deep are refused or answered.
    f = {"y": 1}
    for k in range(120):
        f = {"$not": f} if k % 3 == 0 else ({"$and": [f]} if k % 3 == 1 else {"$or": [f, {"y": 2}]})
    r = c.post(base + "/query", {"filter": f})
    no_5xx(ctx, r, "a filter of 120 nested combinators")
    r = c.post(base + "/documents/delete", {"filter": f})
    no_5xx(ctx, r, "a delete by a filter of 120 nested combinators")
    # Nesting in attributes up to the limit is data: stored and read back as sent.
    value = 1
    for _ in range(200):
        value = [value]
    r = c.post(base + "/documents", {"documents": [{"id": "deep", "vector": [1, 2, 3], "attributes": {"v": value}}]})
    ctx.check(r.status == 200, "200 levels inside attributes are stored", r)
    g = c.get(base + "/documents/deep")
    ctx.check(g.status == 200 and g.get("attributes") == {"v": value}, "and read back exactly", g)
    healthy(ctx, s, "deep nesting")
    c.delete(base)


# ---------------------------------------------------------------------------------------------- big strings

def test_big_strings(ctx):
    s = main_server(ctx)
    c = s.client(timeout=120)
    name = "ho_str"
    c.delete("/v1/collections/" + name)
    r = c.post("/v1/collections", {"name": name, "dimension": 3, "metric": "l2",
                                   "attributes": {"body": {"type": "string", "full_text": True}}})
    ctx.check(r.status == 201, "full-text collection created", r)
    base = "/v1/collections/" + name
    big = "x" * MB10
    expect_error(ctx, c.post(base + "/documents", {"documents": [{"id": big, "vector": [1, 2, 3]}]}), 400,
                 "a 10 MB id", "invalid_id")
    expect_error(ctx, c.post("/v1/collections", {"name": big, "dimension": 3, "metric": "l2"}), 400,
                 "a 10 MB collection name", "invalid_name")
    rnd = random.Random(9)
    words = " ".join("w%d" % rnd.randrange(100000) for _ in range(MB10 // 7))
    r = c.post(base + "/documents", {"documents": [{"id": "big", "vector": [1, 2, 3],
                                                    "attributes": {"s": big, "body": words[:1 << 20]}}]})
    ctx.check(r.status == 200, "a document with 10 MB attributes (a string, a text) is stored", r)
    g = c.get(base + "/documents/big")
    ctx.check(g.status == 200 and (g.get("attributes") or {}).get("s") == big, "and read back byte for byte",
              g.status)
    r = c.post(base + "/query", {"text": words, "top_k": 3})
    ctx.check(r.status in (200, 400) and r.json is not None, "a 10 MB text query is answered", r)
    r = c.post(base + "/query", {"text": big, "top_k": 3})
    ctx.check(r.status in (200, 400) and r.json is not None, "a 10 MB single-token text query is answered", r)
    for f, what in (({"s": big}, "value"), ({big: 1}, "field name"), ({"s": {"$prefix": big}}, "$prefix"),
                    ({"s": {"$in": [big, big + "y"]}}, "$in")):
        r = c.post(base + "/query", {"filter": f, "top_k": 1, "include": {"attributes": False}})
        no_5xx(ctx, r, "a filter with a 10 MB %s" % what)
    r = c.post(base + "/query", {"filter": {"s": big}, "top_k": 1, "include": {"attributes": False}})
    ctx.check(r.status == 200 and [d.get("id") for d in r.get("results", [])] == ["big"],
              "the 10 MB filter value matches the document", r)
    r = c.post(base + "/query", {"vector": [1, 2, 3], "include": {"attributes": [big]}})
    no_5xx(ctx, r, "include of a 10 MB attribute name")
    # 10 MB in the request line, a header, a query parameter: refused or closed, never served slowly.
    chunk = b"y" * (1 << 20)
    for start, what in ((b"GET " + base.encode() + b"/documents/", "a 10 MB path"),
                        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ", "a 10 MB header"),
                        (b"GET " + base.encode() + b"/documents?cursor=", "a 10 MB query parameter")):
        st = raw_exchange(s.port, [start] + [chunk] * 10 + [b" HTTP/1.1\r\n\r\n"])
        ctx.check(st is None or 400 <= st < 500, "%s is refused (4xx or closed), got %s" % (what, st), st)
    healthy(ctx, s, "10 MB strings")
    c.delete(base)


# ---------------------------------------------------------------------------------------------- big arrays

def test_big_arrays(ctx):
    s = main_server(ctx)
    c = s.client(timeout=120)
    name = "ho_arr"
    c.delete("/v1/collections/" + name)
    c.post("/v1/collections", {"name": name, "dimension": 3, "metric": "l2"})
    base = "/v1/collections/" + name
    c.post(base + "/documents", {"documents": [{"id": "a", "vector": [1, 2, 3], "attributes": {"n": 1}}]})
    long_vec = [0.5] * 100000
    expect_error(ctx, c.post("/v1/collections", {"name": "ho_arr2", "dimension": 100000, "metric": "l2"}), 400,
                 "dimension 100,000 (API.md: at most 4,096)")
    expect_error(ctx, c.post("/v1/collections", {"name": "ho_arr2", "dimension": 4097, "metric": "l2"}), 400,
                 "dimension 4,097")
    expect_error(ctx, c.post(base + "/documents", {"documents": [{"id": "v", "vector": long_vec}]}), 400,
                 "an upsert with a 100,000-value vector", "dimension_mismatch")
    expect_error(ctx, c.post(base + "/query", {"vector": long_vec}), 400, "a query with a 100,000-value vector",
                 "dimension_mismatch")
    many = list(range(100000))
    expect_error(ctx, c.post(base + "/query", {"filter": {"n": {"$in": many}}}), 400, "$in of 100,000 values",
                 "invalid_filter")
    expect_error(ctx, c.post(base + "/query", {"filter": {"n": {"$nin": many}}}), 400, "$nin of 100,000 values",
                 "invalid_filter")
    expect_error(ctx, c.post(base + "/query", {"filter": {"$or": [{"n": i} for i in many]}}), 400,
                 "$or of 100,000 conditions", "invalid_filter")
    expect_error(ctx, c.post(base + "/query", {"filter": {"$and": [{"n": i} for i in many]}}), 400,
                 "$and of 100,000 conditions", "invalid_filter")
    expect_error(ctx, c.post(base + "/query", {"vector": [1, 2, 3], "top_k": 100000}), 400, "top_k 100,000",
                 "invalid_top_k")
    r = c.post(base + "/query", {"vector": [1, 2, 3], "include": {"attributes": ["f%d" % i for i in many]}})
    no_5xx(ctx, r, "include of 100,000 attribute names")
    r = c.post(base + "/query", {"text": {"query": "a", "fields": ["f%d" % i for i in many]}})
    no_5xx(ctx, r, "text over 100,000 fields")
    r = c.post(base + "/documents/delete", {"ids": [str(i) for i in many]})
    ctx.check(r.status in (200, 400) and r.json is not None, "delete of 100,000 ids is answered", r)
    r = c.post(base + "/documents", {"documents": [{"id": "arr", "vector": [1, 2, 3],
                                                    "attributes": {"n": many, "t": ["s%d" % i for i in many]}}]})
    ctx.check(r.status == 200, "100,000-element attribute arrays are data", r)
    g = c.get(base + "/documents/arr")
    ctx.check(g.status == 200 and (g.get("attributes") or {}).get("n") == many, "and read back", g.status)
    r = c.post(base + "/query", {"filter": {"n": 99999}, "top_k": 5})
    ctx.check(r.status == 200 and [d["id"] for d in r.get("results", [])] == ["arr"], "and are filterable", r)
    healthy(ctx, s, "100,000-element arrays")
    c.delete(base)


# ---------------------------------------------------------------------------------------------- slowloris

IDLE = 1000


def test_slowloris(ctx):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = IDLE + 200
    if hard != resource.RLIM_INFINITY and hard < want:
        ctx.check(False, "this test needs a hard file descriptor limit of %d (ulimit -Hn is %d)" % (want, hard))
        return
    # The server starts with the common soft limit of 1024 descriptors (it raises it to the hard limit
    # itself: 1,000 connections and the database's files do not fit in 1024); this process needs more.
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, soft), hard))
    try:
        s = ctx.server("slow")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    c = s.client()
    c.post("/v1/collections", {"name": "sl", "dimension": 2, "metric": "l2"})
    socks = []
    try:
        for i in range(IDLE):
            k = socket.create_connection(("127.0.0.1", s.port), timeout=30)
            kind = i % 4
            if kind == 1:
                k.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # headers never end
            elif kind == 2:
                k.sendall(b"POST /v1/collections/sl/documents HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"docu")  # body never ends
            elif kind == 3:
                k.sendall(b"GE")  # request line never ends
            socks.append(k)
        ctx.check(len(socks) == IDLE, "%d idle connections are open" % IDLE, len(socks))
        # Others are still served, on fresh connections, with a generous timeout.
        fresh = s.client(timeout=60)
        r = fresh.get("/health")
        ctx.check(r.status == 200, "/health is answered with %d idle connections open" % IDLE, r)
        r = fresh.post("/v1/collections/sl/documents", {"documents": [{"id": "a", "vector": [1, 2]}]})
        ctx.check(r.status == 200, "an upsert is answered with %d idle connections open" % IDLE, r)
        r = s.client(timeout=60).post("/v1/collections/sl/query", {"vector": [1, 2], "top_k": 1})
        ctx.check(r.status == 200 and [d["id"] for d in r.get("results", [])] == ["a"],
                  "a query on another fresh connection is answered", r)
        ctx.check(s.alive(), "the server is alive")
    finally:
        for k in socks:
            k.close()
    r = T.wait_for(lambda: s.client(timeout=30).get("/health").status == 200, 30)
    ctx.check(r, "the server serves after the idle connections close")
    s.stop()


# ---------------------------------------------------------------------------------------------- memory

def _rss_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def test_large_answers(ctx):
    """Answers that are not read hold memory; past the server's budget (16 x the body limit) new requests
    get 503 overloaded with Retry-After until they are read, and many concurrent large queries are all
    answered (200 or 503) with the process's memory bounded."""
    s = ctx.server("mem", env={"TIERDB_MAX_BODY_BYTES": "256K"})  # a budget of 4 MiB
    c = s.client(timeout=120)
    dim = 384
    c.post("/v1/collections", {"name": "big", "dimension": dim, "metric": "l2"})
    rnd = random.Random(5)
    n_docs = 2000
    for start in range(0, n_docs, 50):
        docs = [{"id": "d%05d" % i, "vector": [round(rnd.uniform(-1, 1), 6) for _ in range(dim)]}
                for i in range(start, start + 50)]
        r = c.post("/v1/collections/big/documents", {"documents": docs})
        if not ctx.check(r.status == 200, "batch at %d upserted" % start, r):
            return
    query = json.dumps({"vector": [0.0] * dim, "top_k": n_docs, "exact": True,
                        "include": {"vector": True}}).encode()
    # A client that asks for a ~7 MB answer and does not read it; its small receive buffer and the
    # kernel's send buffer (at most a few MiB) cannot take it all, so the server holds the rest.
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    slow.connect(("127.0.0.1", s.port))
    slow.sendall(b"POST /v1/collections/big/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(query) + query)
    try:
        other = s.client(timeout=60)

        def refused():
            r = other.post("/v1/collections/big/query", {"vector": [0.0] * dim, "top_k": 1})
            return r if r.status == 503 else None
        r = T.wait_for(refused, 60, interval=0.1)
        ctx.check(r is not None, "while a large answer waits to be read, a new query gets 503", r)
        if r is not None:
            expect_error(ctx, r, 503, "the refusal", "overloaded")
            ctx.check(r.headers.get("retry-after") == "1", "with Retry-After: 1", r.headers.get("retry-after"))
        h = s.client(timeout=60).get("/health")
        ctx.check(h.status == 200, "/health is exempt from the budget", h)
        # Reading the answer frees the budget.
        slow.settimeout(60)
        got = b""
        while True:
            b = slow.recv(1 << 20)
            if not b:
                break
            got += b
            head, sep, body = got.partition(b"\r\n\r\n")
            if sep:
                length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if length and len(body) >= length[0]:
                    break
        ctx.check(got.startswith(b"HTTP/1.1 200") and len(got) > (6 << 20), "the slow client gets its whole answer",
                  len(got))
    finally:
        slow.close()
    r = T.wait_for(lambda: other.post("/v1/collections/big/query", {"vector": [0.0] * dim, "top_k": 1}).status == 200, 60)
    ctx.check(r, "once it was read, queries are answered again")
    # Many concurrent large queries: every one answered, 200 or 503 overloaded, memory bounded.
    results = []

    top_k = 400

    def worker(k):
        cl = s.client(timeout=120)
        for _ in range(1):
            r = cl.post("/v1/collections/big/query", {"vector": [0.001 * k] * dim, "top_k": top_k, "exact": True,
                                                     "include": {"vector": True}})
            results.append((r.status, r.get("error", {}).get("code") if r.status != 200 else None,
                            len(r.get("results", [])) if r.status == 200 else 0))
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    ok = [x for x in results if x[0] == 200]
    busy = [x for x in results if x[0] == 503 and x[1] == "overloaded"]
    ctx.check(len(results) == 24 and len(ok) + len(busy) == 24, "24 concurrent large queries: each 200 or 503 overloaded",
              sorted(set((x[0], x[1]) for x in results)))
    ctx.check(ok and all(x[2] == top_k for x in ok), "the answered ones are complete", len(ok))
    hwm = _rss_kb(s.proc.pid, "VmHWM")
    ctx.check(0 < hwm < 1 << 20, "peak RSS stays bounded (%d MiB)" % (hwm >> 10), hwm)
    healthy(ctx, s, "large concurrent queries")
    s.stop()


def test_query_memory_budget(ctx):
    """Each query's memory is estimated before it runs and charged against the server's query memory budget
    (docs/reliability.md): a query over the per-query cap (at most 256 MiB) gets 400 query_too_large and changes
    nothing, the same query without vectors and normal queries are answered, and concurrent large queries are
    each answered 200 or 503 overloaded with the process's memory bounded."""
    s = ctx.server("qmem")
    c = s.client(timeout=300)
    dim = 4096
    n_docs = 2200  # answers with vectors: ~150 KB each by the estimate, 2,200 of them ~330 MB
    r = c.post("/v1/collections", {"name": "wide", "dimension": dim, "metric": "l2"})
    ctx.check(r.status in (200, 201), "collection created", r)
    for start in range(0, n_docs, 100):
        docs = [{"id": "w%05d" % i, "vector": [(i + j) % 7 for j in range(dim)], "attributes": {"n": i}}
                for i in range(start, start + 100)]
        r = c.post("/v1/collections/wide/documents", {"documents": docs})
        if not ctx.check(r.status == 200, "batch at %d upserted" % start, r):
            return
    before = c.get("/v1/collections/wide")
    big = {"vector": [1] * dim, "top_k": n_docs, "include": {"vector": True}}
    r = c.post("/v1/collections/wide/query", big)
    expect_error(ctx, r, 400, "a query whose answer would be ~330 MB", "query_too_large")
    ctx.check("top_k" in r.get("error", {}).get("message", ""), "the message says how to fix it", r)
    after = c.get("/v1/collections/wide")
    ctx.check(before.status == after.status == 200 and
              before.get("documents") == after.get("documents") == n_docs,
              "the refused query changed nothing", [before.json, after.json])
    r = c.post("/v1/collections/wide/query", {"vector": [1] * dim, "top_k": n_docs})
    ctx.check(r.status == 200 and len(r.get("results", [])) == n_docs, "the same query without vectors is answered",
              r.status)
    r = c.post("/v1/collections/wide/query", {"vector": [1] * dim, "top_k": 10, "include": {"vector": True}})
    ctx.check(r.status == 200 and len(r.get("results", [])) == 10 and len(r.get("results")[0].get("vector", [])) == dim,
              "a normal query with vectors is answered", r.status)
    r = c.post("/v1/collections/wide/query", {"filter": {"n": {"$lt": 5}}, "top_k": 10})
    ctx.check(r.status == 200 and len(r.get("results", [])) == 5, "a filter-only query is answered", r)
    # Concurrent large queries: each about 220 MB by the estimate; the budget (at most 1 GiB) holds four at once.
    results = []

    def worker(k):
        cl = s.client(timeout=300)
        rr = cl.post("/v1/collections/wide/query", {"vector": [k % 7] * dim, "top_k": 1500, "include": {"vector": True}})
        results.append((rr.status, rr.get("error", {}).get("code") if rr.status != 200 else None,
                        len(rr.get("results", [])) if rr.status == 200 else 0))
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    ok = [x for x in results if x[0] == 200]
    ctx.check(len(results) == 6 and all(x[0] == 200 or (x[0] == 503 and x[1] == "overloaded") for x in results),
              "6 concurrent large queries: each 200 or 503 overloaded", sorted(set((x[0], x[1]) for x in results)))
    ctx.check(ok and all(x[2] == 1500 for x in ok), "the answered ones are complete", len(ok))
    hwm = _rss_kb(s.proc.pid, "VmHWM")
    ctx.check(0 < hwm < (3 << 20), "peak RSS stays bounded (%d MiB)" % (hwm >> 10), hwm)
    healthy(ctx, s, "queries over the memory budget")
    s.stop()


if __name__ == "__main__":
    T.main([test_names_and_ids, test_deep_nesting, test_big_strings, test_big_arrays, test_slowloris,
            test_large_answers, test_query_memory_budget], description=__doc__)

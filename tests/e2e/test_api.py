#!/usr/bin/python3
"""End-to-end tests of every HTTP route the server serves (docs/api.md) and of the errors API.md
lists: each route's success shape, each applicable error with its status and exact error body, and
that a rejected request changes nothing.

Run: python3 tests/e2e/test_api.py --binary build/tierdb [--only test_errors] [--keep]
"""
import http.client
import json
import os
import random
import re
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdbtest as T  # noqa: E402
from tdbtest import q, expect_error  # noqa: E402

_shared = {}


def main_server(ctx):
    """One server shared by the tests that need no special settings."""
    s = _shared.get("main")
    if s is None or not s.alive():
        s = _shared["main"] = ctx.server("main")
    return s


def state_of(c, name):
    """Everything observable about a collection, to compare before and after a rejected request."""
    col = c.get("/v1/collections/" + q(name))
    docs, probs = T.list_all(c, name, include_vectors=True)
    return {"status": col.status, "documents": col.get("documents"),
            "docs": sorted((d.get("id"), repr(d.get("vector")), repr(d.get("attributes"))) for d in docs),
            "problems": probs}


# ---------------------------------------------------------------------------------------------- health

def test_health(ctx):
    s = main_server(ctx)
    c = s.client()
    r = c.get("/health")
    ctx.check(r.status == 200, "GET /health -> 200", r, 200)
    ctx.check(r.headers.get("content-type", "").startswith("application/json"), "health Content-Type", r.headers)
    b = r.json or {}
    ctx.check(b.get("status") == "ok", "status ok", b)
    ctx.check(isinstance(b.get("version"), str) and re.match(r"^\d+\.\d+\.\d+", b["version"]), "version", b)
    ctx.check(isinstance(b.get("uptime_s"), int) and b["uptime_s"] >= 0, "uptime_s integer", b)
    ctx.check(isinstance(b.get("collections"), int), "collections integer", b)
    ctx.check(b.get("problems") == [], "problems is an empty list on a clean start", b)
    n0 = b.get("collections")
    ctx.check(c.post("/v1/collections", {"name": "hl_one", "dimension": 2, "metric": "l2"}).status == 201, "create")
    ctx.check(c.get("/health").get("collections") == n0 + 1, "collections counts a new one")
    c.delete("/v1/collections/hl_one")
    ctx.check(c.get("/health").get("collections") == n0, "collections drops after delete")
    r = c.req("HEAD", "/health")
    ctx.check(r.status == 200 and r.data == b"", "HEAD /health -> 200 without a body", r)
    expect_error(ctx, c.post("/health", {}), 405, "POST /health", "method_not_allowed")


# ---------------------------------------------------------------------------------------------- collections

def test_collections(ctx):
    c = main_server(ctx).client()
    body = {"name": "cl_docs", "dimension": 4, "metric": "cosine",
            "attributes": {"title": {"type": "string", "full_text": True}, "year": {"type": "int"}},
            "index": {"type": "hnsw", "m": 16, "ef_construction": 100}}
    r = c.post("/v1/collections", body)
    ctx.check(r.status == 201, "create -> 201", r, 201)
    ctx.check(r.headers.get("content-type", "").startswith("application/json"), "create Content-Type")
    col = r.json or {}
    for k, v in (("name", "cl_docs"), ("dimension", 4), ("metric", "cosine"), ("tier", "hot"), ("pinned", False),
                 ("documents", 0)):
        ctx.check(col.get(k) == v, "collection object %s" % k, col.get(k), v)
    for k in ("created_at", "indexed_documents", "segments", "disk_bytes", "memory_bytes", "attributes", "index"):
        ctx.check(k in col, "collection object has %s" % k, sorted(col))
    r = c.get("/v1/collections/cl_docs")
    ctx.check(r.status == 200 and r.get("name") == "cl_docs" and r.get("created_at") == col.get("created_at"),
              "GET collection", r)
    r = c.get("/v1/collections")
    names = [x.get("name") for x in r.get("collections") or []]
    ctx.check(r.status == 200 and "cl_docs" in names, "list has it", r)
    for tier, present in (("hot", True), ("warm", False), ("cold", False)):
        r = c.get("/v1/collections?tier=" + tier)
        names = [x.get("name") for x in r.get("collections") or []]
        ctx.check(r.status == 200 and ("cl_docs" in names) == present, "?tier=%s" % tier, r)
    expect_error(ctx, c.get("/v1/collections?tier=lukewarm"), 400, "?tier=lukewarm", "invalid_tier")
    # duplicate, bad names, bad configs
    expect_error(ctx, c.post("/v1/collections", body), 409, "duplicate name")
    for bad in ("", ".", "..", ".hidden", "bad name", "a/b", "x" * 129, "caf\u00e9", "semi;colon"):
        expect_error(ctx, c.post("/v1/collections", {"name": bad, "dimension": 2, "metric": "l2"}), 400,
                     "create with bad name %r" % bad[:20])
    for name in ("A-b_c.9", "x" * 128, "0"):
        r = c.post("/v1/collections", {"name": name, "dimension": 2, "metric": "l2"})
        ctx.check(r.status == 201, "create with valid name %r" % name[:20], r, 201)
        ctx.check(c.delete("/v1/collections/" + q(name)).status == 200, "delete %r" % name[:20])
    for bad in ({"name": "cl_bad", "dimension": -1, "metric": "l2"}, {"name": "cl_bad", "dimension": 4097, "metric": "l2"},
                {"name": "cl_bad", "dimension": "3", "metric": "l2"}, {"name": "cl_bad", "dimension": 3, "metric": "manhattan"},
                {"name": "cl_bad", "dimension": 3, "metric": "l2", "attributes": {"a": {"type": "date"}}},
                {"name": "cl_bad", "dimension": 3, "metric": "l2", "index": {"quantization": "pq"}}):
        expect_error(ctx, c.post("/v1/collections", bad), 400, "invalid config %s" % T.short(bad, 90))
    expect_error(ctx, c.get("/v1/collections/cl_bad"), 404, "no invalid config was created")
    # delete, keep_snapshots
    expect_error(ctx, c.delete("/v1/collections/cl_docs?keep_snapshots=perhaps"), 400, "keep_snapshots=perhaps")
    ctx.check(c.get("/v1/collections/cl_docs").status == 200, "the rejected delete kept the collection")
    r = c.delete("/v1/collections/cl_docs?keep_snapshots=true")
    ctx.check(r.status == 200 and r.json == {"deleted": True}, 'DELETE -> {"deleted": true}', r)
    expect_error(ctx, c.get("/v1/collections/cl_docs"), 404, "GET deleted collection")
    expect_error(ctx, c.delete("/v1/collections/cl_docs"), 404, "DELETE deleted collection")
    r = c.post("/v1/collections", {"name": "cl_docs", "dimension": 2, "metric": "dot"})
    ctx.check(r.status == 201 and r.get("documents") == 0 and r.get("dimension") == 2, "recreate", r)
    c.delete("/v1/collections/cl_docs")


# ---------------------------------------------------------------------------------------------- documents

def test_documents(ctx):
    c = main_server(ctx).client()
    name = "dc_main"
    c.delete("/v1/collections/" + name)
    ctx.check(c.post("/v1/collections", {"name": name, "dimension": 3, "metric": "l2"}).status == 201, "create")
    base = "/v1/collections/%s/documents" % name
    docs = [{"id": "a1", "vector": [0.1, 0.2, 0.3], "attributes": {"title": "Hello", "year": 2024}},
            {"id": "a2", "vector": [0.3, 0.4, 0.5]},
            {"id": 17, "vector": [1, 2, 3], "attributes": {"n": -1}}]
    r = c.post(base, {"documents": docs})
    ctx.check(r.status == 200 and r.json == {"upserted": 3}, "upsert -> {upserted: 3}", r)
    r = c.get(base + "/a1")
    ctx.check(r.status == 200 and r.get("id") == "a1" and T.vec_close(r.get("vector"), [0.1, 0.2, 0.3])
              and T.json_same(r.get("attributes"), {"title": "Hello", "year": 2024}), "GET a1", r)
    r = c.get(base + "/17")
    ctx.check(r.status == 200 and r.get("id") == "17", "integer id reads back as a string", r)
    # ids that need percent-encoding in the path
    special = ["sp ace/sl?ash#h%25", "\u65e5\u672c/\u8a9e", "emoji \U0001F680", "a+b&c=d", "..", ".", "delete",
               "import", "%", "x" * 512, "tab\there", "nul\u0000inside"]
    r = c.post(base, {"documents": [{"id": i, "vector": [1, 1, 1], "attributes": {"sid": i}} for i in special]})
    ctx.check(r.status == 200 and r.get("upserted") == len(special), "upsert special ids", r)
    for i in special:
        r = c.get(base + "/" + q(i))
        ctx.check(r.status == 200 and r.get("id") == i and r.get("attributes") == {"sid": i},
                  "special id %r reachable percent-encoded" % i[:30], r)
    r = c.get(base + "/" + q("x" * 513))
    ctx.check(r.status in (400, 404), "a 513-byte id is not found (or invalid)", r)
    # GET .../documents/delete is the document 'delete', POST is the bulk delete
    r = c.delete(base + "/delete")
    ctx.check(r.status == 200 and r.json == {"deleted": 1}, "DELETE .../documents/delete deletes id 'delete'", r)
    r = c.delete(base + "/delete")
    ctx.check(r.status == 200 and r.json == {"deleted": 0}, "again -> deleted 0", r)
    expect_error(ctx, c.get(base + "/delete"), 404, "GET the deleted id 'delete'")
    r = c.post(base + "/delete", {"ids": [special[0], special[1], "never"]})
    ctx.check(r.status == 200 and r.json == {"deleted": 2}, "POST .../documents/delete by ids", r)
    r = c.post(base + "/delete", {"filter": {"n": {"$lt": 0}}})
    ctx.check(r.status == 200 and r.json == {"deleted": 1}, "POST .../documents/delete by filter", r)
    expect_error(ctx, c.get(base + "/17"), 404, "GET the filter-deleted document")
    # upsert replaces whole
    c.post(base, {"documents": [{"id": "a1", "vector": [9, 9, 9], "attributes": {"only": True}}]})
    r = c.get(base + "/a1")
    ctx.check(r.get("attributes") == {"only": True} and T.vec_close(r.get("vector"), [9, 9, 9]), "upsert replaces whole", r)
    # listing
    want = sorted([i.encode() for i in ["a1", "a2"] + [x for x in special if x not in (special[0], special[1], "delete")]])
    got, probs = T.list_all(c, name, limit=3, include_vectors=True)
    ids = [d.get("id", "").encode() for d in got]
    ctx.check(not probs and ids == want, "list limit=3: every document once, in UTF-8 byte order",
              [probs, ids[:6]], want[:6])
    ctx.check(all(isinstance(d.get("vector"), list) for d in got), "include_vectors=true lists vectors")
    got, probs = T.list_all(c, name, limit=100, include_vectors=False)
    ctx.check(not probs and all(d.get("vector") is None for d in got), "include_vectors=false leaves vectors out", got[:1])
    r = c.get(base)
    ctx.check(r.status == 200 and isinstance(r.get("documents"), list) and "next_cursor" in (r.json or {}),
              "GET .../documents with no parameters", r)
    for bad in ("limit=0", "limit=-1", "limit=abc", "limit=10001", "limit=99999999999999999999999", "limit=+5",
                "limit=", "include_vectors=yes", "cursor=%zz"):
        r = c.get(base + "?" + bad)
        expect_error(ctx, r, 400, "list with %s" % bad)
    r = c.get(base + "?cursor=not-a-cursor")
    expect_error(ctx, r, 400, "list with a cursor the server never gave")
    r = c.get("/v1/collections/%s" % name)
    ctx.check(r.get("documents") == len(want), "collection documents count", r.get("documents"), len(want))
    c.delete("/v1/collections/" + name)


# ---------------------------------------------------------------------------------------------- query

def test_query(ctx):
    c = main_server(ctx).client()
    name = "qy_main"
    c.delete("/v1/collections/" + name)
    c.post("/v1/collections", {"name": name, "dimension": 2, "metric": "l2"})
    rnd = random.Random(5)
    docs = [{"id": "p%02d" % i, "vector": [rnd.uniform(-1, 1), rnd.uniform(-1, 1)], "attributes": {"i": i, "odd": i % 2 == 1}}
            for i in range(40)]
    c.post("/v1/collections/%s/documents" % name, {"documents": docs})
    qv = [0.25, -0.5]
    dist = sorted(((((d["vector"][0] - qv[0]) ** 2 + (d["vector"][1] - qv[1]) ** 2) ** 0.5, d["id"]) for d in docs))
    r = c.post("/v1/collections/%s/query" % name, {"vector": qv, "top_k": 5, "exact": True})
    res = r.get("results") or []
    ctx.check(r.status == 200 and [x.get("id") for x in res] == [i for _, i in dist[:5]], "exact top 5 ids", r)
    ctx.check(all(abs(x.get("distance", -1) - d) < 1e-4 for x, (d, _) in zip(res, dist)), "distances", res)
    ctx.check(isinstance(r.get("took_ms"), (int, float)) and r.get("tier") == "hot", "took_ms and tier", r)
    r = c.post("/v1/collections/%s/query" % name, {"filter": {"odd": True}, "top_k": 100})
    ids = [x.get("id") for x in r.get("results") or []]
    ctx.check(r.status == 200 and ids == sorted(d["id"] for d in docs if d["attributes"]["odd"]),
              "filter-only query returns matches in id order", r)
    qp = "/v1/collections/%s/query" % name
    expect_error(ctx, c.post(qp, raw=b'{"vector": [1, 2], "top_k": }'), 400, "query malformed JSON")
    expect_error(ctx, c.post(qp, {"vector": [1, 2, 3]}), 400, "query wrong dimension")
    expect_error(ctx, c.post(qp, raw=b'{"vector": [NaN, 1]}'), 400, "query NaN")
    expect_error(ctx, c.post(qp, raw=b'{"vector": [1e999, 1]}'), 400, "query 1e999")
    expect_error(ctx, c.post(qp, {"vector": [1, 2], "top_k": 0}), 400, "top_k 0")
    expect_error(ctx, c.post(qp, {"vector": [1, 2], "top_k": 10001}), 400, "top_k 10001")
    expect_error(ctx, c.post(qp, {"vector": [1, 2], "filter": {"i": {"$near": 1}}}), 400, "unknown filter operator")
    expect_error(ctx, c.get(qp), 405, "GET .../query", "method_not_allowed")
    expect_error(ctx, c.post("/v1/collections/qy_nope/query", {"vector": [1, 2]}), 404, "query unknown collection")
    c.delete("/v1/collections/" + name)


# ---------------------------------------------------------------------------------------------- errors

def test_errors(ctx):
    s = main_server(ctx)
    c = s.client()
    name = "er_main"
    c.delete("/v1/collections/" + name)
    c.post("/v1/collections", {"name": name, "dimension": 3, "metric": "cosine", "attributes": {"year": {"type": "int"}}})
    base = "/v1/collections/%s/documents" % name
    c.post(base, {"documents": [{"id": "keep", "vector": [1, 2, 3], "attributes": {"year": 2001}}]})
    before = state_of(c, name)

    def rejected(resp, status, what, code=None):
        expect_error(ctx, resp, status, what, code)
        after = state_of(c, name)
        ctx.check(after == before, "after %s nothing changed" % what, after, before)

    rejected(c.post(base, raw=b'{"documents": [{"id": "m1", "vector": [1, 2, 3]}'), 400, "malformed JSON", "invalid_json")
    rejected(c.post(base, raw=b'{"documents": []} trailing'), 400, "trailing garbage")
    rejected(c.post(base, raw=b""), 400, "empty body")
    rejected(c.post(base, raw=b'\xff\xfe{"documents": []}'), 400, "invalid UTF-8")
    rejected(c.post(base, {"documents": [{"id": "ok", "vector": [1, 1, 1]}, {"id": "w", "vector": [1, 2]}]}), 400,
             "a batch whose 2nd document has the wrong dimension")
    rejected(c.post(base, {"documents": [{"id": "keep", "vector": [9, 9, 9]}, {"id": "w", "vector": [1, 2, 3, 4]}]}), 400,
             "a batch that would overwrite and then fails")
    for raw, what in ((b'[NaN, 1, 2]', "raw NaN"), (b'[Infinity, 1, 2]', "raw Infinity"), (b'[1e999, 1, 2]', "1e999"),
                      (b'[1, -1e999, 2]', "-1e999"), (b'[1, 2, 3.5e38]', "a value over float32's range")):
        rejected(c.post(base, raw=b'{"documents": [{"id": "n", "vector": ' + raw + b'}]}'), 400, "vector with " + what)
    rejected(c.post(base, {"documents": [{"id": "z", "vector": [0, 0, 0]}]}), 400, "zero vector for cosine", "zero_vector")
    rejected(c.post(base, {"documents": [{"id": "t", "vector": [1, 2, 3], "attributes": {"year": "x"}}]}), 400,
             "declared int given a string")
    rejected(c.post(base, {"documents": [{"id": "t", "vector": [1, 2, 3], "attributes": [1]}]}), 400, "attributes not an object")
    rejected(c.post(base, {"documents": [{"vector": [1, 2, 3]}]}), 400, "document without an id")
    rejected(c.post(base, {"documents": [{"id": "", "vector": [1, 2, 3]}]}), 400, "empty id")
    rejected(c.post(base, {"documents": [{"id": "\u00e9" * 257, "vector": [1, 2, 3]}]}), 400, "514-byte id")
    rejected(c.post(base, {"docs": []}), 400, "no documents field")
    # 415
    for ct in ("text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1", "application/jsonx",
               "multipart/form-data; boundary=x"):
        rejected(c.post(base, raw=b'{"documents": [{"id": "ct", "vector": [1, 2, 3]}]}', ctype=ct), 415,
                 "Content-Type %s" % ct, "unsupported_media_type")
    for ct in ("application/json; charset=utf-8", "Application/JSON", "application/json;charset=\"UTF-8\"", None):
        r = c.post(base, raw=b'{"documents": [{"id": "ctok", "vector": [1, 2, 3]}]}', ctype=ct)
        ctx.check(r.status == 200, "Content-Type %s is accepted" % ct, r, 200)
        c.delete(base + "/ctok")
    expect_error(ctx, c.post("/v1/collections", raw=b'{"name": "er_ct", "dimension": 3, "metric": "l2"}',
                             ctype="text/plain"), 415, "create collection text/plain")
    expect_error(ctx, c.get("/v1/collections/er_ct"), 404, "the 415 collection was not created")
    # 413 at the default limit (64 MiB): refused from Content-Length before the body is read
    total = 65 << 20
    head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (base, total)).encode()
    t0 = time.time()
    got = T.raw_request(s.port, head + b'{"documents": [{"id": "big", "vector": [1, 2, 3], "attributes": {"p": "',
                        stop_when_answered=[b"x" * (1 << 20)] * 65)
    ctx.check(got is not None and got[0] == 413, "a 65 MiB body -> 413", got and got[:2], 413)
    if got:
        rejected(T.Resp(got[0], got[1], got[2]), 413, "a 65 MiB body", "payload_too_large")
    ctx.check(time.time() - t0 < 20, "the 413 came without reading 65 MiB slowly", time.time() - t0)
    # 404s
    expect_error(ctx, c.get("/v1/collections/er_nope"), 404, "unknown collection")
    expect_error(ctx, c.post("/v1/collections/er_nope/documents", {"documents": []}), 404, "upsert into unknown collection")
    expect_error(ctx, c.get("/v1/collections/er_nope/documents"), 404, "list unknown collection")
    expect_error(ctx, c.get("/v1/collections/er_nope/documents/a"), 404, "document of unknown collection")
    expect_error(ctx, c.delete("/v1/collections/er_nope/documents/a"), 404, "delete in unknown collection")
    expect_error(ctx, c.get(base + "/nope"), 404, "unknown document")
    expect_error(ctx, c.get("/v1/no-such-route"), 404, "unknown route", "not_found")
    expect_error(ctx, c.get("/nothing"), 404, "unknown top-level route", "not_found")
    expect_error(ctx, c.get("/v1/collections/"), 404, "trailing slash (empty name)")
    expect_error(ctx, c.get("/v1/collections/%s/documents/a/b" % name), 404, "too many segments")
    expect_error(ctx, c.post("/v1/debug/clock", {"advance": "1h"}), 404, "debug clock without --test-clock")
    # 405 with Allow
    for method, path, allowed in (("PUT", "/v1/collections", {"GET", "POST"}),
                                  ("PATCH", base + "/keep", {"GET", "DELETE"}),
                                  ("DELETE", "/v1/collections/%s/query" % name, {"POST"}),
                                  ("POST", "/v1/collections/" + name, {"GET", "DELETE"}),
                                  ("PUT", base, {"GET", "POST"})):
        r = c.req(method, path, {"x": 1})
        expect_error(ctx, r, 405, "%s %s" % (method, path), "method_not_allowed")
        allow = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
        ctx.check(allowed <= allow and allow <= allowed | {"HEAD"}, "Allow header of %s %s" % (method, path),
                  r.headers.get("allow"), sorted(allowed))
    ctx.check(state_of(c, name) == before, "after the 404s and 405s nothing changed")
    # malformed paths
    expect_error(ctx, c.get("/v1/collections/er%zzmain"), 400, "bad percent-escape", "invalid_path")
    expect_error(ctx, c.get("/v1/collections/er%2"), 400, "truncated percent-escape", "invalid_path")
    expect_error(ctx, c.get("/v1/collections/%s%%00x" % name), 400, "NUL in a collection name", "invalid_name")
    # the error shape stays exact for messages that quote bytes that are not UTF-8
    r = c.get("/v1/collections/%ff%fe")
    ctx.check(r.status in (400, 404) and r.json is not None, "a non-UTF-8 name gets a JSON error body", r)
    # kept-alive connections survive errors
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    statuses = []
    for path in ("/v1/nope", "/health", "/v1/collections/er_nope", "/health"):
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        statuses.append(resp.status)
    sock_ok = conn.sock is not None
    conn.close()
    ctx.check(statuses == [404, 200, 404, 200] and sock_ok, "four requests, two of them errors, on one connection",
              statuses)
    c.delete("/v1/collections/" + name)


# ---------------------------------------------------------------------------------------------- small body limit

def test_body_limit_setting(ctx):
    s = ctx.server("limit", env={"TIERDB_MAX_BODY_BYTES": "4K"})
    c = s.client()
    c.post("/v1/collections", {"name": "bl", "dimension": 2, "metric": "l2"})
    small = {"documents": [{"id": "s", "vector": [1, 2], "attributes": {"p": "x" * 3000}}]}
    ctx.check(c.post("/v1/collections/bl/documents", small).status == 200, "a 3 KB body fits under 4K")
    big = {"documents": [{"id": "b", "vector": [1, 2], "attributes": {"p": "x" * 5000}}]}
    expect_error(ctx, c.post("/v1/collections/bl/documents", big), 413, "a 5 KB body over 4K", "payload_too_large")
    # chunked: no Content-Length, so the server counts
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    conn.putrequest("POST", "/v1/collections/bl/documents")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    raw = json.dumps(big).encode()
    for k in range(0, len(raw), 1000):
        part = raw[k:k + 1000]
        conn.send(b"%x\r\n%s\r\n" % (len(part), part))
    conn.send(b"0\r\n\r\n")
    resp = conn.getresponse()
    r = T.Resp(resp.status, {}, resp.read())
    conn.close()
    expect_error(ctx, r, 413, "a chunked 5 KB body over 4K", "payload_too_large")
    expect_error(ctx, c.get("/v1/collections/bl/documents/b"), 404, "the 413 bodies wrote nothing")
    # a chunked body under the limit works
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    conn.putrequest("POST", "/v1/collections/bl/documents")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    raw = b'{"documents": [{"id": "c", "vector": [3, 4]}]}'
    conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(raw), raw))
    resp = conn.getresponse()
    ctx.check(resp.status == 200, "a small chunked upsert -> 200", resp.status)
    resp.read()
    conn.close()
    s.stop()


# ---------------------------------------------------------------------------------------------- auth

def test_auth(ctx):
    admin, ro = "adm-7c1d-key", "ro-93ab-key"
    s = ctx.server("auth", env={"TIERDB_API_KEY": admin, "TIERDB_READONLY_API_KEY": ro})
    none = s.client()
    a = s.client(headers={"Authorization": "Bearer " + admin})
    r = s.client(headers={"Authorization": "Bearer " + ro})
    ctx.check(none.get("/health").status == 200, "/health needs no key")
    for hdr in (None, "Bearer wrong", "Basic " + admin, "Bearer " + admin + "x", "Bearer " + admin[:-1], "Bearer",
                "Bearer " + ro + "x", admin):
        cl = s.client(headers={"Authorization": hdr} if hdr else {})
        expect_error(ctx, cl.get("/v1/collections"), 401, "Authorization %r" % hdr, "unauthorized")
    expect_error(ctx, none.get("/v1/no-such-route"), 401, "unknown /v1 route without a key")
    ctx.check(s.client(headers={"Authorization": "bearer  " + admin}).get("/v1/collections").status == 200,
              "the scheme is case-insensitive")
    ctx.check(a.post("/v1/collections", {"name": "au", "dimension": 2, "metric": "l2"}).status == 201, "admin creates")
    ctx.check(a.post("/v1/collections/au/documents", {"documents": [{"id": "x", "vector": [1, 2]}]}).status == 200,
              "admin writes")
    for what, resp in (("list", r.get("/v1/collections")), ("get", r.get("/v1/collections/au")),
                       ("get doc", r.get("/v1/collections/au/documents/x")), ("list docs", r.get("/v1/collections/au/documents")),
                       ("query", r.post("/v1/collections/au/query", {"vector": [1, 2]}))):
        ctx.check(resp.status == 200, "read-only key: %s -> 200" % what, resp)
    for what, resp in (("create", r.post("/v1/collections", {"name": "au2", "dimension": 2, "metric": "l2"})),
                       ("upsert", r.post("/v1/collections/au/documents", {"documents": [{"id": "y", "vector": [1, 2]}]})),
                       ("delete doc", r.delete("/v1/collections/au/documents/x")),
                       ("delete by", r.post("/v1/collections/au/documents/delete", {"ids": ["x"]})),
                       ("drop", r.delete("/v1/collections/au")),
                       ("pin", r.post("/v1/collections/au/tier/pin"))):
        expect_error(ctx, resp, 403, "read-only key: " + what, "forbidden")
    ids = [d["id"] for d in T.list_all(a, "au")[0]]
    names = [x["name"] for x in a.get("/v1/collections").get("collections") or []]
    ctx.check(ids == ["x"] and names == ["au"], "the refused writes changed nothing", [ids, names])
    s.stop()


# ---------------------------------------------------------------------------------------------- test clock

def test_debug_clock(ctx):
    s = ctx.server("clock", args=["--test-clock"])
    c = s.client()
    r0 = c.post("/v1/debug/clock", {})
    ctx.check(r0.status == 200 and isinstance(r0.get("now"), str), "read the clock with {}", r0)
    r1 = c.post("/v1/debug/clock", {"advance": "6h"})
    ctx.check(r1.status == 200, "advance 6h", r1)

    def ms(t):
        from datetime import datetime
        return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000
    if r0.status == 200 and r1.status == 200:
        ctx.check(ms(r1.get("now")) - ms(r0.get("now")) == 6 * 3600 * 1000, "the clock moved by exactly 6h", [r0.json, r1.json])
        ctx.check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", r1.get("now")), "now is RFC 3339 UTC", r1.get("now"))
    time.sleep(0.05)
    r2 = c.post("/v1/debug/clock", {"advance": "0s"})
    ctx.check(r2.get("now") == r1.get("now"), "the test clock stands still between advances", [r1.json, r2.json])
    for bad in ({"advance": "6 hours"}, {"advance": 6}, {"advance": "-1h"}, [1]):
        expect_error(ctx, c.post("/v1/debug/clock", bad), 400, "advance %r" % (bad,))
    expect_error(ctx, c.post("/v1/debug/clock", raw=b"{", ctype="application/json"), 400, "malformed clock body")
    expect_error(ctx, c.get("/v1/debug/clock"), 405, "GET /v1/debug/clock")
    s.stop()


# ---------------------------------------------------------------------------------------------- lifecycle

def test_lifecycle(ctx):
    s = ctx.server("life")
    c = s.client()
    c.post("/v1/collections", {"name": "lf", "dimension": 2, "metric": "l2"})
    c.post("/v1/collections/lf/documents", {"documents": [{"id": "k", "vector": [1, 2]}]})
    c.get("/v1/collections/lf/documents/k")
    log = s.log_text()
    ctx.check(re.search(r"info\s+http method=POST route=/v1/collections/\{name\}/documents status=200 ms=[\d.]+ in=\d+ out=\d+", log),
              "an access log line with method, route pattern, status, latency and bytes", log[-600:])
    ctx.check("/documents/k" not in log, "the access log names route patterns, not raw paths")
    rc = s.stop(timeout=20)
    ctx.check(rc == 0, "SIGTERM -> exit 0", rc, 0)
    s.start()
    c = s.client()
    ctx.check(c.get("/v1/collections/lf/documents/k").status == 200, "data is there after a graceful restart")
    rc = s.stop(timeout=20)
    ctx.check(rc == 0, "second graceful stop -> exit 0", rc, 0)
    try:
        socket.create_connection(("127.0.0.1", s.port), timeout=2).close()
        refused = False
    except OSError:
        refused = True
    ctx.check(refused, "the port is closed after exit")
    # two signals: the second exits at once, without waiting
    s.start()
    s.proc.send_signal(signal.SIGTERM)
    s.proc.send_signal(signal.SIGTERM)
    try:
        rc = s.proc.wait(timeout=20)
    except Exception:  # noqa: BLE001
        rc = None
    ctx.check(rc is not None, "two SIGTERMs: the process exits", rc)
    s.start()
    ctx.check(s.client().get("/v1/collections/lf/documents/k").status == 200, "data is there after the double signal")
    s.stop()


def test_listen_in_use(ctx):
    s = main_server(ctx)
    other = T.Server(ctx.binary, ctx.tmp, name="busy", listen="127.0.0.1:%d" % s.port)
    try:
        other.start(timeout=20)
        ok = False
    except T.ServerError:
        ok = True
    ctx.check(ok and other.proc.returncode == 1, "a second server on a busy port exits 1",
              other.proc.returncode if other.proc else None, 1)
    ctx.check("--listen" in other.log_text(), "its message names --listen", other.log_tail())
    # the same data directory is locked by the running server
    locked = T.Server(ctx.binary, ctx.tmp, name="main")
    try:
        locked.start(timeout=20)
        ok = False
    except T.ServerError:
        ok = True
    ctx.check(ok and locked.proc.returncode == 1, "a second server on the same data directory exits 1",
              locked.proc.returncode if locked.proc else None, 1)
    if locked.alive():
        locked.kill()


if __name__ == "__main__":
    T.main([test_health, test_collections, test_documents, test_query, test_errors, test_body_limit_setting,
            test_auth, test_debug_clock, test_lifecycle, test_listen_in_use],
           description=__doc__)

#!/usr/bin/python3
"""End-to-end tests of GET /metrics (API.md "Operations"; docs/operations.md "Metrics").

The body is parsed with a real Prometheus text-format parser (Debian's python3-prometheus-client,
installed by scripts/deps.sh) and checked for the structure strict scrapers insist on (one HELP and
one TYPE per family, before its samples, samples grouped, no duplicate series, cumulative buckets
with +Inf equal to _count). Then the counters must move exactly as requests are made: per route and
status, from several threads at once (the counters are lock-free), latency histograms, documents and
collections per tier, tier moves by kind, WAL fsyncs, import lines, object-store calls, bytes and
latencies through a demote to cold and back. Labels name route patterns,
never collection names or ids.

Run: python3 tests/e2e/test_metrics.py --binary build/tierdb [--keep] [--only NAME]
"""
import math
import os
import re
import sys
import threading

# The parser lives in Debian's python3-prometheus-client, which the system python3 has; a python3
# earlier in PATH (a virtualenv) may not: run under the system one then.
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") \
            and not os.environ.get("TDB_METRICS_REEXEC"):
        os.environ["TDB_METRICS_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    sys.stderr.write("test_metrics.py needs the Prometheus parser: apt-get install python3-prometheus-client "
                     "(scripts/deps.sh installs it)\n")
    sys.exit(1)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdbtest as T  # noqa: E402

_shared = {}
NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def main_server(ctx):
    s = _shared.get("main")
    if s is None or not s.alive():
        s = _shared["main"] = ctx.server("main")
    return s


def structure_problems(text):
    """What a strict scraper would refuse that the library parser may let through."""
    probs, helps, types, seen_series, done = [], set(), {}, set(), set()
    current = None
    if not text.endswith("\n"):
        probs.append("no final line feed")
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            name = parts[2]
            if not NAME_RE.match(name):
                probs.append("line %d: bad name %r" % (n, name))
            if name in done:
                probs.append("line %d: %s again after its samples" % (n, name))
            if parts[1] == "HELP":
                if name in helps:
                    probs.append("line %d: second HELP for %s" % (n, name))
                helps.add(name)
            else:
                if name in types:
                    probs.append("line %d: second TYPE for %s" % (n, name))
                types[name] = parts[3] if len(parts) > 3 else ""
            if current is not None and current != name:
                done.add(current)
            current = name
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})? (\S+)$', line)
        if not m:
            probs.append("line %d: not a sample: %r" % (n, line[:80]))
            continue
        name, labels = m.group(1), m.group(2) or ""
        fam = name
        for suf in ("_bucket", "_sum", "_count"):
            if name.endswith(suf) and types.get(name[:-len(suf)]) == "histogram":
                fam = name[:-len(suf)]
        if fam != current:
            probs.append("line %d: sample of %s outside its family block (HELP/TYPE first, samples grouped)" % (n, fam))
        if fam not in helps or fam not in types:
            probs.append("line %d: %s has no HELP or TYPE" % (n, fam))
        if (name, labels) in seen_series:
            probs.append("line %d: duplicate series %s%s" % (n, name, labels))
        seen_series.add((name, labels))
    return probs


def scrape(ctx, c):
    r = c.get("/metrics")
    ctx.check(r.status == 200, "GET /metrics -> 200", r)
    ctx.check(r.headers.get("content-type", "").startswith("text/plain; version=0.0.4"),
              "Content-Type text/plain; version=0.0.4", r.headers.get("content-type"))
    probs = structure_problems(r.text)
    ctx.check(not probs, "the exposition is well formed", probs[:5])
    fams = {}
    try:
        for fam in text_string_to_metric_families(r.text):
            fams[fam.name] = fam
    except Exception as e:  # noqa: BLE001 - a parse error is the failure being tested
        ctx.check(False, "prometheus_client parses the body", repr(e))
    for fam in fams.values():
        if fam.type != "histogram":
            continue
        groups = {}
        for smp in fam.samples:
            key = tuple(sorted((k, v) for k, v in smp.labels.items() if k != "le"))
            g = groups.setdefault(key, {"buckets": [], "count": None})
            if smp.name.endswith("_bucket"):
                g["buckets"].append((float(smp.labels["le"]), smp.value))
            elif smp.name.endswith("_count"):
                g["count"] = smp.value
        for key, g in groups.items():
            b = sorted(g["buckets"])
            ok = b and b[-1][0] == math.inf and all(y[1] >= x[1] for x, y in zip(b, b[1:])) and g["count"] == b[-1][1]
            ctx.check(ok, "histogram %s%s: cumulative buckets, +Inf == _count" % (fam.name, dict(key)), g)
    return fams, r.text


def value(fams, family, sample=None, **labels):
    """The value of one sample (0 when absent)."""
    fam = fams.get(family)
    if fam is None:
        return 0.0
    for smp in fam.samples:
        if (sample is None or smp.name == sample) and all(smp.labels.get(k) == v for k, v in labels.items()):
            return smp.value
    return 0.0


REQ = "tierdb_http_requests"            # prometheus_client names a counter family without _total
DUR = "tierdb_http_request_duration_seconds"


def test_format_and_families(ctx):
    s = main_server(ctx)
    c = s.client()
    c.post("/v1/collections", {"name": "mx_fam", "dimension": 2, "metric": "l2"})
    fams, text = scrape(ctx, c)
    for name, typ in ((REQ, "counter"), (DUR, "histogram"), ("tierdb_documents", "gauge"),
                      ("tierdb_collections", "gauge"), ("tierdb_tier_moves", "counter"),
                      ("tierdb_wal_fsyncs", "counter"), ("tierdb_wal_written_bytes", "counter"),
                      ("tierdb_segments", "gauge"), ("tierdb_flushes", "counter"), ("tierdb_compactions", "counter"),
                      ("tierdb_disk_bytes", "gauge"), ("tierdb_memory_bytes", "gauge"), ("tierdb_problems", "gauge"),
                      ("tierdb_import_lines", "counter"), ("tierdb_build_info", "gauge"),
                      ("tierdb_http_requests_in_flight", "gauge")):
        ctx.check(name in fams and fams[name].type == typ, "family %s (%s)" % (name, typ),
                  fams[name].type if name in fams else sorted(fams))
    for tier in ("hot", "warm", "cold"):
        ctx.check(any(smp.labels.get("tier") == tier for smp in fams["tierdb_documents"].samples),
                  "tierdb_documents has tier=%s" % tier)
    for kind in ("hot_to_warm", "warm_to_cold", "warm_to_hot", "cold_to_warm"):
        ctx.check(any(smp.labels.get("kind") == kind for smp in fams["tierdb_tier_moves"].samples),
                  "tierdb_tier_moves_total has kind=%s" % kind)
    ctx.check(value(fams, "tierdb_http_requests_in_flight") >= 1, "the scrape itself is in flight")
    ctx.check("mx_fam" not in text, "no collection name appears in the metrics (labels are route patterns)")
    c.delete("/v1/collections/mx_fam")


def test_counters_move(ctx):
    s = main_server(ctx)
    c = s.client()
    c.post("/v1/collections", {"name": "mx_mv", "dimension": 2, "metric": "l2"})
    c.post("/v1/collections/mx_mv/documents", {"documents": [{"id": "m%d" % i, "vector": [i, 1]} for i in range(10)]})
    before, _ = scrape(ctx, c)
    for _ in range(20):
        c.get("/v1/collections")
    for _ in range(5):
        c.post("/v1/collections/mx_mv/query", {"vector": [1, 1], "top_k": 2})
    for _ in range(3):
        c.get("/v1/collections/mx_nope")
    c.get("/no/such/route")
    after, _ = scrape(ctx, c)

    def delta(family, sample=None, **labels):
        return value(after, family, sample, **labels) - value(before, family, sample, **labels)
    ctx.check(delta(REQ, method="GET", route="/v1/collections", status="200") == 20,
              "GET /v1/collections 200 counted 20 times", delta(REQ, method="GET", route="/v1/collections", status="200"))
    ctx.check(delta(REQ, method="POST", route="/v1/collections/{name}/query", status="200") == 5, "5 queries counted")
    ctx.check(delta(REQ, method="GET", route="/v1/collections/{name}", status="404") == 3, "3 404s counted by status")
    ctx.check(delta(REQ, route="none", status="404") == 1, "an unknown path counts under route=\"none\"")
    ctx.check(delta(DUR, DUR + "_count", method="GET", route="/v1/collections") == 20, "the histogram counted 20")
    ctx.check(delta(DUR, DUR + "_sum", method="GET", route="/v1/collections") > 0, "the histogram's sum grew")
    ctx.check(delta(DUR, DUR + "_bucket", method="GET", route="/v1/collections", le="+Inf") == 20, "+Inf bucket +20")
    ctx.check(value(after, "tierdb_documents", tier="hot") >= 10, "tierdb_documents{tier=hot} counts the documents",
              value(after, "tierdb_documents", tier="hot"))
    ctx.check(delta("tierdb_wal_fsyncs") >= 0 and value(after, "tierdb_wal_fsyncs") >= 1,
              "WAL fsyncs are counted (fsync always)", value(after, "tierdb_wal_fsyncs"))
    ctx.check(value(after, "tierdb_wal_written_bytes") > 0, "WAL bytes are counted")
    c.delete("/v1/collections/mx_mv")


def test_concurrent_counting(ctx):
    s = main_server(ctx)
    before, _ = scrape(ctx, s.client())
    threads, per = 4, 150

    def work():
        cl = s.client()
        for _ in range(per):
            cl.get("/v1/tiering")
        cl.close()
    ts = [threading.Thread(target=work) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    after, _ = scrape(ctx, s.client())
    d = value(after, REQ, method="GET", route="/v1/tiering", status="200") - \
        value(before, REQ, method="GET", route="/v1/tiering", status="200")
    ctx.check(d == threads * per, "%d concurrent requests counted exactly" % (threads * per), d, threads * per)


def test_tiers_and_moves(ctx):
    s = main_server(ctx)
    c = s.client()
    c.delete("/v1/collections/mx_tier")
    c.post("/v1/collections", {"name": "mx_tier", "dimension": 2, "metric": "l2"})
    c.post("/v1/collections/mx_tier/documents", {"documents": [{"id": "t%d" % i, "vector": [i, 2]} for i in range(7)]})
    before, _ = scrape(ctx, c)
    r = c.post("/v1/collections/mx_tier/tier/demote", {"to": "warm"})
    ctx.check(r.status == 200 and r.get("tier") == "warm", "demote to warm", r)
    after, _ = scrape(ctx, c)
    ctx.check(value(after, "tierdb_tier_moves", kind="hot_to_warm") - value(before, "tierdb_tier_moves", kind="hot_to_warm") == 1,
              "tier_moves_total{kind=hot_to_warm} +1")
    ctx.check(value(after, "tierdb_collections", tier="warm") - value(before, "tierdb_collections", tier="warm") == 1,
              "one more warm collection")
    ctx.check(value(after, "tierdb_documents", tier="warm") - value(before, "tierdb_documents", tier="warm") == 7,
              "its 7 documents count as warm", value(after, "tierdb_documents", tier="warm"))
    ctx.check(value(after, "tierdb_segments", tier="warm") >= 1, "the demoted collection's segment is counted as warm")
    c.delete("/v1/collections/mx_tier")


def test_import_counters(ctx):
    s = main_server(ctx)
    c = s.client()
    c.post("/v1/collections", {"name": "mx_imp", "dimension": 2, "metric": "l2"})
    before, _ = scrape(ctx, c)
    body = b'{"id":"a","vector":[1,2]}\n{bad\n{"id":"b","vector":[3,4]}\n'
    r = c.post("/v1/collections/mx_imp/documents/import?on_error=skip", raw=body, ctype="application/x-ndjson")
    ctx.check(r.get("imported") == 2 and r.get("skipped") == 1, "import 2 + 1 bad", r)
    after, _ = scrape(ctx, c)
    for result, n in (("imported", 2), ("skipped", 1), ("error", 1)):
        d = value(after, "tierdb_import_lines", result=result) - value(before, "tierdb_import_lines", result=result)
        ctx.check(d == n, "tierdb_import_lines_total{result=%s} +%d" % (result, n), d)
    ctx.check(value(after, "tierdb_http_received_bytes") - value(before, "tierdb_http_received_bytes") >= len(body),
              "received bytes count the import body")
    c.delete("/v1/collections/mx_imp")


OS_REQ = "tierdb_object_store_requests"   # counter families are named without _total by the parser
OS_DUR = "tierdb_object_store_request_duration_seconds"


def test_object_store_counters(ctx):
    """A demote to cold and the promotion back move the object-store series (the file:// store
    here; tests/e2e/test_s3_server.py checks them on S3, retries included)."""
    s = main_server(ctx)
    c = s.client()
    c.delete("/v1/collections/mx_os")
    c.post("/v1/collections", {"name": "mx_os", "dimension": 2, "metric": "l2"})
    c.post("/v1/collections/mx_os/documents", {"documents": [{"id": "o%d" % i, "vector": [i, 3]} for i in range(50)]})
    before, _ = scrape(ctx, c)
    for name, typ in ((OS_REQ, "counter"), ("tierdb_object_store_errors", "counter"),
                      ("tierdb_object_store_retries", "counter"), ("tierdb_object_store_http_requests", "counter"),
                      ("tierdb_object_store_uploaded_bytes", "counter"),
                      ("tierdb_object_store_downloaded_bytes", "counter"), (OS_DUR, "histogram"),
                      ("tierdb_object_store_info", "gauge")):
        ctx.check(name in before and before[name].type == typ, "family %s (%s)" % (name, typ),
                  before[name].type if name in before else None)
    ctx.check(value(before, "tierdb_object_store_info", scheme="file") == 1, "object_store_info{scheme=file} 1")
    ctx.check(value(before, OS_REQ, operation="check", outcome="ok") == 1, "the start-up check counted once")
    r = c.post("/v1/collections/mx_os/tier/demote", {"to": "cold"})
    ctx.check(r.status == 200 and r.get("tier") == "cold", "demote to cold", r)
    mid, _ = scrape(ctx, c)

    def delta(a, b, family, sample=None, **labels):
        return value(b, family, sample, **labels) - value(a, family, sample, **labels)
    puts = delta(before, mid, OS_REQ, operation="put", outcome="ok")
    ctx.check(puts >= 3, "demote: puts counted (Parquet, MANIFEST, segments)", puts)
    ctx.check(delta(before, mid, OS_DUR, OS_DUR + "_count", operation="put") == puts,
              "the put latency histogram counted each put")
    ctx.check(delta(before, mid, OS_DUR, OS_DUR + "_bucket", operation="put", le="+Inf") == puts, "+Inf bucket")
    ctx.check(delta(before, mid, "tierdb_object_store_uploaded_bytes") >= r.get("object_bytes", 1) > 0,
              "uploaded bytes >= the cold copy's object_bytes",
              delta(before, mid, "tierdb_object_store_uploaded_bytes"), r.get("object_bytes"))
    ctx.check(delta(before, mid, OS_REQ, operation="put", outcome="error") == 0, "no failed put")
    ctx.check(value(mid, "tierdb_object_store_http_requests") == 0, "no HTTP request on a file:// store")
    r = c.post("/v1/collections/mx_os/query", {"vector": [1, 3], "top_k": 3})
    ctx.check(r.status == 200 and len(r.get("results") or []) == 3, "query the cold collection", r)
    after, _ = scrape(ctx, c)
    gets = delta(mid, after, OS_REQ, operation="get", outcome="ok")
    ctx.check(gets >= 2, "promotion: gets counted", gets)
    ctx.check(delta(mid, after, "tierdb_object_store_downloaded_bytes") > 0, "downloaded bytes counted")
    ctx.check(delta(mid, after, OS_REQ, operation="delete", outcome="ok") >= 1, "the old cold copy deleted")
    ctx.check(delta(mid, after, OS_DUR, OS_DUR + "_sum", operation="get") > 0, "get latencies summed")
    c.delete("/v1/collections/mx_os")


def test_no_key_needed(ctx):
    s = ctx.server("auth", env={"TIERDB_API_KEY": "metrics-test-key"})
    c = s.client()
    ctx.check(c.get("/v1/collections").status == 401, "/v1 needs the key")
    fams, _ = scrape(ctx, c)
    # The key is checked before the route (without one nothing about the API is learnt), so a 401
    # counts under route="none".
    ctx.check(value(fams, REQ, route="none", status="401") == 1, "the 401 is counted (route none)")


if __name__ == "__main__":
    T.main([test_format_and_families, test_counters_move, test_concurrent_counting, test_tiers_and_moves,
            test_import_counters, test_object_store_counters, test_no_key_needed], description=__doc__)

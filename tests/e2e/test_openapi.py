#!/usr/bin/python3
"""docs/openapi.yaml against the running server.

  - The file parses (with the small YAML-subset reader below: the project's tests use the Python
    standard library only, so the file is written in a subset this reader understands; where PyYAML
    happens to be installed, both readers must agree), is OpenAPI 3.0, every $ref resolves, every
    path parameter is declared, operation ids are unique.
  - It describes every route of the API contract (API.md), and no route the server does not have.
  - A server started with --test-clock answers every documented operation with a documented status,
    and for the routes that work the 2xx bodies (and error bodies) match their schemas (a small
    JSON-schema validator below covers the keywords the file uses).

Run: python3 tests/e2e/test_openapi.py --binary build/tierdb [--keep]
     python3 tests/e2e/test_openapi.py --emit-json      (prints docs/openapi.yaml as JSON)
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdbtest as T  # noqa: E402
from tdbtest import q  # noqa: E402

SPEC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "openapi.yaml")

# Every route of the API contract (API.md), as (method, path template).
CONTRACT = [
    ("get", "/health"), ("get", "/metrics"),
    ("get", "/v1/collections"), ("post", "/v1/collections"),
    ("get", "/v1/collections/{name}"), ("delete", "/v1/collections/{name}"),
    ("get", "/v1/collections/{name}/documents"), ("post", "/v1/collections/{name}/documents"),
    ("post", "/v1/collections/{name}/documents/import"), ("post", "/v1/collections/{name}/documents/delete"),
    ("get", "/v1/collections/{name}/documents/{id}"), ("delete", "/v1/collections/{name}/documents/{id}"),
    ("post", "/v1/collections/{name}/query"),
    ("get", "/v1/collections/{name}/tier"), ("post", "/v1/collections/{name}/tier/pin"),
    ("post", "/v1/collections/{name}/tier/unpin"), ("post", "/v1/collections/{name}/tier/promote"),
    ("post", "/v1/collections/{name}/tier/demote"),
    ("get", "/v1/collections/{name}/snapshots"), ("post", "/v1/collections/{name}/snapshots"),
    ("post", "/v1/collections/{name}/snapshots/{snapshot_id}/restore"),
    ("delete", "/v1/collections/{name}/snapshots/{snapshot_id}"),
    ("get", "/v1/tiering"), ("post", "/v1/tiering/cycle"), ("post", "/v1/debug/clock"),
]
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


# ------------------------------------------------------------------------------------------ YAML subset

class YamlError(ValueError):
    pass


def _strip_comment(text):
    """Removes a comment (' #' outside quotes) from a line."""
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == "\\" and quote == '"':
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
    return text.rstrip()


def _scalar(text, lineno):
    t = text.strip()
    if t.startswith('"'):
        try:
            return json.loads(t)
        except ValueError:
            raise YamlError("line %d: bad double-quoted string %r" % (lineno, t))
    if t.startswith("'"):
        if not t.endswith("'") or len(t) < 2:
            raise YamlError("line %d: bad single-quoted string %r" % (lineno, t))
        return t[1:-1].replace("''", "'")
    if t == "{}":
        return {}
    if t.startswith("["):
        if not t.endswith("]"):
            raise YamlError("line %d: a flow sequence must end on its line" % lineno)
        inner = t[1:-1].strip()
        if not inner:
            return []
        items, cur, quote = [], "", None
        for ch in inner:
            if quote:
                cur += ch
                if ch == quote:
                    quote = None
            elif ch in "\"'":
                quote = ch
                cur += ch
            elif ch == ",":
                items.append(cur)
                cur = ""
            elif ch in "[]{}":
                raise YamlError("line %d: nested flow collections are not in the subset" % lineno)
            else:
                cur += ch
        items.append(cur)
        return [_scalar(x, lineno) for x in items]
    if t[:1] in ("{", "&", "*", "!", "|", ">", "%", "@", "`"):
        raise YamlError("line %d: %r is not in the YAML subset" % (lineno, t[:20]))
    if t in ("true", "True", "TRUE"):
        return True
    if t in ("false", "False", "FALSE"):
        return False
    if t in ("null", "Null", "NULL", "~", ""):
        return None
    if re.fullmatch(r"[-+]?[0-9]+", t):
        return int(t)
    if re.fullmatch(r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+", t):
        return float(t)
    if ": " in t or t.endswith(":"):
        raise YamlError("line %d: a plain scalar holding ': ' must be quoted: %r" % (lineno, t[:40]))
    return t


_KEY = re.compile(r'^("(?:[^"\\]|\\.)*"|\'(?:[^\']|\'\')*\'|[^\s"\'#\-\[{][^#]*?|-[^\s][^#]*?):(?:\s+|$)')


def yaml_subset_load(text):
    lines = []
    for n, raw in enumerate(text.split("\n"), 1):
        if "\t" in raw[:len(raw) - len(raw.lstrip())]:
            raise YamlError("line %d: tabs in indentation" % n)
        body = _strip_comment(raw)
        if not body.strip():
            continue
        if body.strip() in ("---", "..."):
            raise YamlError("line %d: one document only" % n)
        lines.append([len(body) - len(body.lstrip(" ")), body.strip(), n])

    def parse_block(i, indent):
        if lines[i][1] == "-" or lines[i][1].startswith("- "):
            return parse_seq(i, indent)
        return parse_map(i, indent)

    def parse_value(rest, i, indent, lineno):
        """The value after 'key:' or '- ': inline, or a nested block on the following lines."""
        if rest != "":
            return _scalar(rest, lineno), i + 1
        if i + 1 < len(lines) and lines[i + 1][0] > indent:
            return parse_block(i + 1, lines[i + 1][0])
        return None, i + 1

    def parse_map(i, indent):
        out = {}
        while i < len(lines) and lines[i][0] == indent:
            ind, body, n = lines[i]
            if body == "-" or body.startswith("- "):
                raise YamlError("line %d: a sequence item where a mapping key was expected" % n)
            m = _KEY.match(body)
            if not m:
                raise YamlError("line %d: expected 'key: value': %r" % (n, body[:60]))
            key = _scalar(m.group(1), n) if m.group(1)[0] in "\"'" else m.group(1).strip()
            if isinstance(key, (int, float)):
                key = str(key)
            if key in out:
                raise YamlError("line %d: duplicate key %r" % (n, key))
            out[key], i = parse_value(body[m.end():].strip(), i, indent, n)
        if i < len(lines) and lines[i][0] > indent:
            raise YamlError("line %d: unexpected indentation" % lines[i][2])
        return out, i

    def parse_seq(i, indent):
        out = []
        while i < len(lines) and lines[i][0] == indent and (lines[i][1] == "-" or lines[i][1].startswith("- ")):
            ind, body, n = lines[i]
            rest = body[1:].strip()
            if rest and _KEY.match(rest):
                # "- key: value" starts a mapping whose keys sit two columns further in.
                lines[i] = [indent + 2, rest, n]
                value, i = parse_map(i, indent + 2)
            else:
                value, i = parse_value(rest, i, indent, n)
            out.append(value)
        return out, i

    if not lines:
        return None
    value, i = parse_block(0, lines[0][0])
    if i != len(lines):
        raise YamlError("line %d: unexpected text" % lines[i][2])
    return value


# ------------------------------------------------------------------------------------------ schemas

class Spec:
    def __init__(self, doc):
        self.doc = doc

    def resolve(self, node):
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise KeyError("external $ref %s" % ref)
            node = self.doc
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            seen += 1
            if seen > 50:
                raise KeyError("$ref loop at %s" % ref)
        return node

    def validate(self, value, schema, path="$"):
        """Problems of value against an OpenAPI 3.0 schema (the keywords docs/openapi.yaml uses)."""
        s = self.resolve(schema)
        probs = []
        if value is None:
            if s.get("nullable") or s == {}:
                return []
            if "type" in s or "properties" in s:
                return ["%s: null where %s is wanted" % (path, s.get("type", "a value"))]
        if "allOf" in s:
            for sub in s["allOf"]:
                probs += self.validate(value, sub, path)
        if "oneOf" in s:
            ok = [sub for sub in s["oneOf"] if not self.validate(value, sub, path)]
            if len(ok) != 1:
                probs.append("%s: matches %d of the oneOf alternatives, not 1" % (path, len(ok)))
        if "anyOf" in s and not any(not self.validate(value, sub, path) for sub in s["anyOf"]):
            probs.append("%s: matches none of anyOf" % path)
        t = s.get("type")
        checks = {"object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
                  "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
                  "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
                  "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)}
        if t is not None and not checks[t](value):
            return probs + ["%s: %s is not %s" % (path, T.short(value, 60), t)]
        if "enum" in s and value not in s["enum"]:
            probs.append("%s: %r not in %s" % (path, value, s["enum"]))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in s and value < s["minimum"]:
                probs.append("%s: %r < minimum %r" % (path, value, s["minimum"]))
            if "maximum" in s and value > s["maximum"]:
                probs.append("%s: %r > maximum %r" % (path, value, s["maximum"]))
        if isinstance(value, str):
            if "minLength" in s and len(value) < s["minLength"]:
                probs.append("%s: shorter than %d" % (path, s["minLength"]))
            if "pattern" in s and not re.search(s["pattern"], value):
                probs.append("%s: %r does not match %s" % (path, value[:60], s["pattern"]))
        if isinstance(value, list):
            if "maxItems" in s and len(value) > s["maxItems"]:
                probs.append("%s: more than %d items" % (path, s["maxItems"]))
            if "items" in s:
                for k, v in enumerate(value[:200]):
                    probs += self.validate(v, s["items"], "%s[%d]" % (path, k))
        if isinstance(value, dict):
            for k in s.get("required", []):
                if k not in value:
                    probs.append("%s: missing %r" % (path, k))
            props = s.get("properties", {})
            extra = s.get("additionalProperties", True)
            for k, v in value.items():
                if k in props:
                    probs += self.validate(v, props[k], "%s.%s" % (path, k))
                elif extra is False:
                    probs.append("%s: unexpected member %r" % (path, k))
                elif isinstance(extra, dict):
                    probs += self.validate(v, extra, "%s.%s" % (path, k))
        return probs


def load_spec():
    with open(SPEC, encoding="utf-8") as f:
        return yaml_subset_load(f.read())


# ------------------------------------------------------------------------------------------ tests

def test_file(ctx):
    doc = load_spec()
    ctx.check(isinstance(doc, dict) and str(doc.get("openapi", "")).startswith("3.0."), "OpenAPI 3.0 document",
              doc.get("openapi") if isinstance(doc, dict) else doc)
    try:
        import yaml  # noqa: F401 - an optional cross-check, never required
    except ImportError:
        yaml = None
    if yaml is not None:
        with open(SPEC, encoding="utf-8") as f:
            ref = yaml.safe_load(f.read())
        ctx.check(ref == doc, "the subset reader and PyYAML read the same document")
    spec = Spec(doc)
    refs = []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    refs.append((path, v))
                else:
                    walk(v, path + "/" + str(k))
        elif isinstance(node, list):
            for k, v in enumerate(node):
                walk(v, "%s/%d" % (path, k))
    walk(doc, "#")
    bad = []
    for path, ref in refs:
        try:
            spec.resolve({"$ref": ref})
        except (KeyError, TypeError) as e:
            bad.append("%s -> %s (%s)" % (path, ref, e))
    ctx.check(refs and not bad, "all %d $refs resolve" % len(refs), bad[:5])
    ops = [(m, p) for p, item in doc.get("paths", {}).items() for m in item if m in METHODS]
    ctx.check(sorted(ops) == sorted(CONTRACT), "the paths are exactly the contract's routes",
              {"missing": sorted(set(CONTRACT) - set(ops)), "extra": sorted(set(ops) - set(CONTRACT))})
    ids = [doc["paths"][p][m].get("operationId") for m, p in ops]
    ctx.check(all(ids) and len(set(ids)) == len(ids), "operation ids are present and unique", ids)
    for m, p in ops:
        item = doc["paths"][p]
        params = [spec.resolve(x) for x in item.get("parameters", []) + item[m].get("parameters", [])]
        declared = {x["name"] for x in params if x.get("in") == "path"}
        ctx.check(declared == set(re.findall(r"\{(\w+)\}", p)), "%s %s declares its path parameters" % (m.upper(), p),
                  declared)
        ctx.check(item[m].get("responses"), "%s %s has responses" % (m.upper(), p))


class Live:
    """Calls one operation and checks the answer against the spec."""

    def __init__(self, ctx, spec, client):
        self.ctx, self.spec, self.c = ctx, spec, client
        self.called = set()

    def call(self, method, template, path, body=T._NOBODY, raw=None, ctype="application/json", want=None):
        self.called.add((method, template))
        r = self.c.req(method.upper(), path, body, raw=raw, ctype=ctype)
        op = self.spec.doc["paths"][template][method]
        responses = op["responses"]
        what = "%s %s" % (method.upper(), path)
        self.ctx.check(str(r.status) in responses, "%s -> %d is a documented status" % (what, r.status),
                       r, sorted(responses))
        if want is not None:
            self.ctx.check(r.status == want, "%s -> %d" % (what, want), r, want)
        resp = responses.get(str(r.status))
        if resp is None:
            return r
        resp = self.spec.resolve(resp)
        content = resp.get("content", {})
        ct = r.headers.get("content-type", "").split(";")[0].strip()
        self.ctx.check(ct in content, "%s: Content-Type %s is documented" % (what, ct), sorted(content))
        if ct == "application/json" and ct in content:
            probs = self.spec.validate(r.json, content[ct]["schema"])
            self.ctx.check(not probs, "%s: the %d body matches its schema" % (what, r.status), probs[:5])
        return r


def test_live(ctx):
    spec = Spec(load_spec())
    s = ctx.server("openapi", args=["--test-clock"])
    c = s.client()
    L = Live(ctx, spec, c)
    C = "/v1/collections"
    L.call("get", "/health", "/health", want=200)
    L.call("get", "/metrics", "/metrics", want=200)
    L.call("post", C, C, {"name": "oa", "dimension": 2, "metric": "l2",
                          "attributes": {"t": {"type": "string", "full_text": True}, "n": {"type": "int"}},
                          "index": {"m": 8}}, want=201)
    L.call("post", C, C, {"name": "oa", "dimension": 2}, want=409)
    L.call("post", C, C, {"name": "bad name!", "dimension": 2}, want=400)
    L.call("get", C, C, want=200)
    L.call("get", C, C + "?tier=hot", want=200)
    L.call("get", C + "/{name}", C + "/oa", want=200)
    L.call("get", C + "/{name}", C + "/oa_nope", want=404)
    D = C + "/{name}/documents"
    L.call("post", D, C + "/oa/documents", {"documents": [
        {"id": "a", "vector": [1, 2], "attributes": {"t": "hello world", "n": 1}},
        {"id": 7, "vector": [2, 2], "attributes": {"t": "goodbye", "n": 2}},
        {"id": "x/y z", "vector": [3, 1]}]}, want=200)
    L.call("post", D, C + "/oa/documents", {"documents": [{"id": "a", "vector": [1]}]}, want=400)
    L.call("get", D, C + "/oa/documents?limit=2", want=200)
    L.call("get", D, C + "/oa/documents?include_vectors=true", want=200)
    L.call("post", D + "/import", C + "/oa/documents/import?on_error=skip",
           raw=b'{"id":"i1","vector":[0,1]}\n{bad\n', ctype="application/x-ndjson", want=200)
    L.call("post", D + "/import", C + "/oa/documents/import", raw=b"{}", ctype="text/plain", want=415)
    L.call("get", D + "/{id}", C + "/oa/documents/" + q("x/y z"), want=200)
    L.call("get", D + "/{id}", C + "/oa/documents/7", want=200)
    L.call("get", D + "/{id}", C + "/oa/documents/nope", want=404)
    L.call("post", C + "/{name}/query", C + "/oa/query", {"vector": [1, 2], "top_k": 2}, want=200)
    L.call("post", C + "/{name}/query", C + "/oa/query", {"text": "hello"}, want=200)
    L.call("post", C + "/{name}/query", C + "/oa/query", {"vector": [1, 2], "text": "hello", "top_k": 3}, want=200)
    L.call("post", C + "/{name}/query", C + "/oa/query", {"filter": {"n": {"$gte": 1}}}, want=200)
    L.call("post", C + "/{name}/query", C + "/oa/query", {"vector": [1, 2], "top_k": 0}, want=400)
    T_ = C + "/{name}/tier"
    L.call("get", T_, C + "/oa/tier", want=200)
    L.call("post", T_ + "/pin", C + "/oa/tier/pin", want=200)
    L.call("post", T_ + "/demote", C + "/oa/tier/demote", want=409)
    L.call("post", T_ + "/unpin", C + "/oa/tier/unpin", want=200)
    L.call("post", T_ + "/demote", C + "/oa/tier/demote", {"to": "warm"}, want=200)
    L.call("post", T_ + "/promote", C + "/oa/tier/promote", {"to": "hot"}, want=200)
    L.call("post", T_ + "/promote", C + "/oa/tier/promote", {"to": "lukewarm"}, want=400)
    L.call("get", "/v1/tiering", "/v1/tiering", want=200)
    L.call("post", "/v1/tiering/cycle", "/v1/tiering/cycle", want=200)
    L.call("get", "/v1/tiering", "/v1/tiering", want=200)     # now with a last_cycle
    L.call("post", "/v1/debug/clock", "/v1/debug/clock", {"advance": "1h"}, want=200)
    L.call("post", "/v1/debug/clock", "/v1/debug/clock", {"advance": "soon"}, want=400)
    S = C + "/{name}/snapshots"
    snap = L.call("post", S, C + "/oa/snapshots", want=201)
    L.call("get", S, C + "/oa/snapshots", want=200)
    sid = snap.get("snapshot_id") or "missing"
    L.call("post", S + "/{snapshot_id}/restore", C + "/oa/snapshots/%s/restore" % q(sid), {"into": "oa_copy"}, want=200)
    L.call("post", S + "/{snapshot_id}/restore", C + "/oa/snapshots/%s/restore" % q(sid), {"into": "oa_copy"}, want=409)
    L.call("delete", S + "/{snapshot_id}", C + "/oa/snapshots/" + q(sid), want=200)
    L.call("delete", S + "/{snapshot_id}", C + "/oa/snapshots/" + q(sid), want=404)
    L.call("post", D + "/delete", C + "/oa/documents/delete", {"ids": ["a", 7]}, want=200)
    L.call("post", D + "/delete", C + "/oa/documents/delete", {"filter": {"n": 2}}, want=200)
    L.call("post", D + "/delete", C + "/oa/documents/delete", {"neither": 1}, want=400)
    L.call("delete", D + "/{id}", C + "/oa/documents/" + q("x/y z"), want=200)
    L.call("delete", C + "/{name}", C + "/oa_copy", want=200)
    L.call("delete", C + "/{name}", C + "/oa?keep_snapshots=false", want=200)
    L.call("delete", C + "/{name}", C + "/oa", want=404)
    ctx.check(L.called == set(CONTRACT), "every documented operation was called",
              sorted(set(CONTRACT) - L.called))
    # without --test-clock the clock route does not exist: documented as 404
    s2 = ctx.server("openapi-noclock")
    r = s2.client().post("/v1/debug/clock", {"advance": "1h"})
    ctx.check(r.status == 404, "without --test-clock POST /v1/debug/clock is 404", r)
    # with a key, /v1 routes document 401 where they list it, and /health, /metrics need none
    s3 = ctx.server("openapi-auth", env={"TIERDB_API_KEY": "k"})
    c3 = s3.client()
    La = Live(ctx, spec, c3)
    La.call("get", "/health", "/health", want=200)
    La.call("get", "/metrics", "/metrics", want=200)
    La.call("get", C, C, want=401)


if __name__ == "__main__":
    if "--emit-json" in sys.argv:
        json.dump(load_spec(), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        sys.exit(0)
    T.main([test_file, test_live], description=__doc__)

"""tdbtest: shared harness of tierdb's end-to-end tests (python3 standard library only).

What it gives a test file:
  - Server: one `tierdb serve` process on a temporary data directory and `--listen 127.0.0.1:0`;
    the port is read from the `listening on http://HOST:PORT` line. Restartable on the same data
    directory; stop() sends SIGTERM, kill() SIGKILL. Its stdout and stderr go to a log file whose
    tail is shown when something fails.
  - Client: a keep-alive HTTP/1.1 client with JSON in and out (`c.post(path, body)` -> Resp).
  - q(): percent-encodes one path segment or query value (ids may hold '/ ? # %' and spaces).
  - main(tests): runs test functions in order, prints PASS/FAIL per test, exits 1 on any failure.
    Flags: --binary PATH (required), --keep (keep the temp directory and logs), --only NAME[,NAME],
    plus file-specific flags declared with add_argument.

Determinism: data comes from seeded random.Random instances; waits poll with deadlines, never
bare sleeps for synchronisation.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

# TIERDB_* settings of the developer's shell must not leak into the servers the tests start.
_STRIP_PREFIX = "TIERDB_"


def q(s):
    """Percent-encode one path segment or query value (every reserved byte, '/' included)."""
    return urllib.parse.quote(str(s), safe="")


class Resp:
    def __init__(self, status, headers, data):
        self.status, self.headers, self.data = status, headers, data
        self.text = data.decode("utf-8", "replace")
        try:
            self.json = json.loads(data.decode("utf-8")) if data else None
        except ValueError:
            self.json = None

    def get(self, key, default=None):
        return self.json.get(key, default) if isinstance(self.json, dict) else default

    def __repr__(self):
        t = self.text if len(self.text) < 300 else self.text[:300] + "..."
        return "%s %s" % (self.status, t)


_NOBODY = object()


class Client:
    """Keep-alive HTTP/1.1 client for one server. JSON bodies are encoded with ensure_ascii=False."""

    def __init__(self, url, headers=None, timeout=60):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def req(self, method, path, body=_NOBODY, raw=None, headers=None, ctype="application/json", retry=True,
            timeout=None):
        if raw is None and body is not _NOBODY:
            raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
        h = dict(self.headers)
        if raw is not None and ctype:
            h["Content-Type"] = ctype
        h.update(headers or {})
        for attempt in (0, 1):
            fresh = self.conn is None
            try:
                if fresh:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout)
                self.conn.request(method, path, body=raw, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                hdrs = {k.lower(): v for k, v in r.getheaders()}
                if r.will_close:
                    self.close()
                return Resp(r.status, hdrs, data)
            except (http.client.HTTPException, OSError):
                self.close()
                # Only a kept-alive connection the server closed while idle is retried.
                if attempt or fresh or not retry:
                    raise
        raise AssertionError("unreachable")

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, body=_NOBODY, **kw):
        return self.req("POST", path, body, **kw)

    def delete(self, path, **kw):
        return self.req("DELETE", path, **kw)


def raw_request(port, data, timeout=30, stop_when_answered=None):
    """Sends raw bytes on a fresh socket and returns (status, headers, body) or None if the server
    closed without answering. stop_when_answered: an iterable of further chunks, sent only while
    the server has not answered yet (a server may refuse a big body before reading it)."""
    import select
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
            for chunk in stop_when_answered or ():
                r, _, _ = select.select([s], [], [], 0)
                if r:
                    break
                s.sendall(chunk)
        except OSError:
            pass
        got = b""
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                b = s.recv(65536)
                if not b:
                    break
                got += b
                if b"\r\n\r\n" in got:
                    head, _, body = got.partition(b"\r\n\r\n")
                    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                    if m and len(body) >= int(m.group(1)):
                        break
        except OSError:
            pass
        if not got:
            return None
        head, _, body = got.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        return status, hdrs, body
    finally:
        s.close()


class ServerError(Exception):
    pass


class Server:
    """One `tierdb serve` process; start() again restarts it on the same data directory."""

    def __init__(self, binary, tmp, name="server", env=None, args=(), listen="127.0.0.1:0"):
        self.binary = binary
        self.name = name
        self.data = os.path.join(tmp, name + "-data")
        os.makedirs(self.data, exist_ok=True)
        self.logpath = os.path.join(tmp, name + ".log")
        self.env_extra = dict(env or {})
        self.args = list(args)
        self.listen = listen
        self.proc = None
        self.url = None
        self.port = None
        self.stdout_lines = []

    def command(self):
        return [self.binary, "serve", "--data", self.data, "--listen", self.listen] + self.args

    def start(self, timeout=60):
        env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIP_PREFIX)}
        env.update(self.env_extra)
        log = open(self.logpath, "ab")
        log.write(("--- start %s\n" % " ".join(self.command())).encode())
        log.flush()
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        log.close()
        found = threading.Event()
        lines = self.stdout_lines = []

        def pump(p=self.proc, path=self.logpath):
            with open(path, "ab") as out:
                for line in iter(p.stdout.readline, b""):
                    out.write(line)
                    out.flush()
                    lines.append(line.decode("utf-8", "replace"))
                    if line.startswith(b"listening on "):
                        found.set()
            found.set()
        threading.Thread(target=pump, daemon=True).start()
        deadline = time.time() + timeout
        while not found.wait(0.05):
            if time.time() > deadline:
                break
        m = None
        for ln in lines:
            m = re.match(r"listening on (http://(\S+):(\d+))$", ln.strip())
            if m:
                break
        if not m:
            rc = self.proc.poll()
            self.kill()
            raise ServerError("server %s did not print 'listening on ...' (exit %s); log tail:\n%s"
                              % (self.name, rc, self.log_tail()))
        self.url, self.port = m.group(1), int(m.group(3))
        c = Client(self.url)
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise ServerError("server exited with %s; log tail:\n%s" % (self.proc.returncode, self.log_tail()))
            try:
                if c.get("/health", timeout=5).status == 200:
                    c.close()
                    return self
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.02)
        raise ServerError("GET /health did not answer 200 within %ds" % timeout)

    def client(self, **kw):
        return Client(self.url, **kw)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit status (SIGKILL after timeout: returns None)."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def log_tail(self, n=3000):
        try:
            with open(self.logpath, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def log_text(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


class Ctx:
    """What a test function receives: parsed args, a temp dir, servers to start, failure checks."""

    def __init__(self, args):
        self.args = args
        self.binary = os.path.abspath(args.binary)
        base = os.environ.get("TDB_TEST_TMP")
        if base:
            os.makedirs(base, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="tdb-e2e-", dir=base or None)
        self.servers = []
        self.failures = []

    def server(self, name="server", env=None, args=(), start=True):
        s = Server(self.binary, self.tmp, name=name, env=env, args=args)
        self.servers.append(s)
        return s.start() if start else s

    def check(self, cond, what, got=None, expected=None):
        """Records a failed expectation without stopping the test."""
        if not cond:
            detail = what
            if got is not None and expected is not None:
                detail += " (got %s, expected %s)" % (short(got), short(expected))
            elif got is not None:
                detail += " (got %s)" % short(got)
            self.failures.append(detail)
        return bool(cond)

    def close(self):
        for s in self.servers:
            if s.alive():
                s.stop(timeout=20)
        if self.args.keep:
            sys.stderr.write("kept %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def short(v, n=400):
    if isinstance(v, Resp):
        v = repr(v)
    if not isinstance(v, str):
        try:
            v = json.dumps(v, ensure_ascii=False, default=repr)
        except (TypeError, ValueError):
            v = repr(v)
    return v if len(v) <= n else v[:n] + "...(%d chars)" % len(v)


def f32(x):
    """x rounded to the nearest float32, as the server stores vector values."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def vec_close(got, want):
    """got equals want after float32 rounding (each value within 1e-6 relative)."""
    if not isinstance(got, list) or len(got) != len(want):
        return False
    for g, w in zip(got, want):
        if not isinstance(g, (int, float)) or isinstance(g, bool):
            return False
        w = f32(w)
        if abs(g - w) > 1e-6 * max(1.0, abs(w)):
            return False
    return True


def json_same(a, b):
    """Value-for-value JSON equality that, unlike ==, tells 1 from 1.0 from True and keeps key sets exact."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(json_same(a[k], b[k]) for k in a)
    return False


def list_all(client, name, limit=100, include_vectors=False, max_pages=100000):
    """Every document of GET .../documents, page by page: (docs, problems)."""
    docs, probs, cursor = [], [], None
    for _ in range(max_pages):
        path = "/v1/collections/%s/documents?limit=%d&include_vectors=%s" % (
            q(name), limit, "true" if include_vectors else "false")
        if cursor is not None:
            path += "&cursor=" + q(cursor)
        r = client.get(path)
        if r.status != 200 or not isinstance(r.get("documents"), list) or "next_cursor" not in r.json:
            probs.append("page -> %r" % r)
            return docs, probs
        page = r.json["documents"]
        if len(page) > limit:
            probs.append("page of %d > limit %d" % (len(page), limit))
        docs.extend(page)
        cursor = r.json["next_cursor"]
        if cursor is None:
            return docs, probs
        if not page:
            probs.append("empty page with a non-null next_cursor")
            return docs, probs
    probs.append("more than %d pages" % max_pages)
    return docs, probs


def wait_for(cond, timeout, interval=0.05):
    """Polls cond() until it returns a true value or timeout seconds pass; returns the last value."""
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v or time.time() >= deadline:
            return v
        time.sleep(interval)


def expect_error(ctx, resp, status, what, code=None):
    """The response is `status` with exactly {"error": {"code": snake_case, "message": non-empty}}."""
    b = resp.json
    ok = (resp.status == status and isinstance(b, dict) and set(b) == {"error"} and isinstance(b["error"], dict)
          and set(b["error"]) == {"code", "message"} and isinstance(b["error"]["code"], str)
          and re.match(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$", b["error"]["code"]) is not None
          and isinstance(b["error"]["message"], str) and b["error"]["message"].strip() != "")
    if ok and code is not None:
        ok = b["error"]["code"] == code
    return ctx.check(ok, "%s -> %d%s with the error body" % (what, status, " " + code if code else ""),
                     got=resp, expected=status)


def main(tests, add_arguments=None, description=None):
    """Runs `tests` (functions taking a Ctx) in order; exit status 1 if any failed."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--binary", required=True, help="path to the tierdb executable")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory and server logs")
    ap.add_argument("--only", default="", help="comma-separated test names to run")
    if add_arguments:
        add_arguments(ap)
    args = ap.parse_args()
    only = {x for x in args.only.split(",") if x}
    ctx = Ctx(args)
    failed = passed = 0
    t_all = time.time()
    try:
        for t in tests:
            if only and t.__name__ not in only:
                continue
            ctx.failures = []
            t0 = time.time()
            try:
                t(ctx)
            except Exception:  # noqa: BLE001 - a crashed test is a failed test, the next one runs
                ctx.failures.append("exception:\n" + traceback.format_exc())
            dt = time.time() - t0
            if ctx.failures:
                failed += 1
                print("FAIL %s (%.1fs)" % (t.__name__, dt))
                for f in ctx.failures[:20]:
                    print("    " + f.replace("\n", "\n    "))
                if len(ctx.failures) > 20:
                    print("    ... %d more" % (len(ctx.failures) - 20))
                for s in ctx.servers:
                    if s.proc is not None and s.proc.poll() not in (None, 0, -9, -15):
                        print("    server %s exited with %s; log tail:\n%s" % (s.name, s.proc.returncode, s.log_tail()))
            else:
                passed += 1
                print("PASS %s (%.1fs)" % (t.__name__, dt))
            sys.stdout.flush()
    finally:
        ctx.close()
    print("%d passed, %d failed (%.1fs)" % (passed, failed, time.time() - t_all))
    sys.exit(1 if failed else 0)

#!/usr/bin/env python3
"""Test proxy between tierdb's S3 client and s3rver (tests/objstore/test_s3.c starts it).

s3rver does not check SigV4 signatures, so this proxy does, on every request, with the
independent botocore-based checker beside the shared team docs (../shared/s3/sigv4_verify.py,
Debian package python3-botocore). It answers what AWS answers:
  403 InvalidAccessKeyId     when the access key id is not the configured one
  403 SignatureDoesNotMatch  when the signature is wrong (e.g. a wrong secret)
  400 XAmzContentSHA256Mismatch when x-amz-content-sha256 is not the body's SHA-256
and forwards everything else to s3rver unchanged (Host header included, so virtual-host
addressing reaches s3rver as sent), except AbortMultipartUpload, which s3rver 3.7.1 lacks:
the proxy answers it 204 as AWS does (the upload's parts stay invisible in s3rver).

It also injects faults on command, so tests can prove retries and clean failure. Control
requests (never forwarded, never signed) live under /__proxy/ (no bucket name can start with '_'):
  GET /__proxy/fault?mode=M[&code=N][&every=K][&skip=S][&limit=L][&method=X][&match=SUB][&delay_ms=D]
      mode: status    answer HTTP code (default 503) with an S3 error body, not forwarded
            drop      close the connection without an answer, not forwarded
            drop_after forward, then close without an answer (the reply is lost)
            slow      wait delay_ms, then forward
            truncate  forward, then send the headers and half the body, and close
            corrupt   forward, then flip one byte of a non-empty body
      Faults hit requests that match method (if given) and contain SUB in path?query
      (if given): skip the first S of those, then one in every K (default 1), at most L
      times (default 0 = no limit). One fault rule at a time; a new one replaces it.
  GET /__proxy/reset   clears the rule and the counters
  GET /__proxy/stats   JSON: requests, verified, sig_failures, faults, connections (TCP
                       connections accepted), log (last requests)
Prints "listening on 127.0.0.1:PORT" once ready. Stops on SIGTERM or when stdin closes.
"""
import argparse
import hashlib
import http.client
import http.server
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "te",
              "upgrade"}
LOG_MAX = 20000  # requests remembered for /__proxy/stats (a test makes a few thousand)


def load_verifier(path):
    try:
        import botocore  # noqa: F401
    except ImportError:
        sys.stderr.write("s3proxy: python3 cannot import botocore: install the Debian package "
                         "python3-botocore (apt-get install python3-botocore)\n")
        sys.exit(2)
    if not os.path.exists(path):
        sys.stderr.write("s3proxy: signature checker %s not found (the shared team docs must sit "
                         "beside the repository)\n" % path)
        sys.exit(2)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    import sigv4_verify
    return sigv4_verify.verify


class State:
    def __init__(self):
        self.lock = threading.Lock()  # guards everything below
        self.reset()

    def reset(self):
        self.rule = None
        self.matched = 0
        self.faults = 0
        self.requests = 0
        self.verified = 0
        self.sig_failures = 0
        self.connections = 0
        self.log = []

    def pick_fault(self, method, target):
        """Returns the fault mode to apply to this request, or None."""
        with self.lock:
            self.requests += 1
            r = self.rule
            if r is None:
                return None
            if r["method"] and r["method"] != method:
                return None
            if r["match"] and r["match"] not in target:
                return None
            index = self.matched
            self.matched += 1
            if index < r["skip"]:
                return None
            if (index - r["skip"]) % r["every"] != 0:
                return None
            if r["limit"] and self.faults >= r["limit"]:
                return None
            self.faults += 1
            return r

    def record(self, line):
        with self.lock:
            self.log.append(line)
            if len(self.log) > LOG_MAX:
                del self.log[: len(self.log) - LOG_MAX]


def error_xml(code, message):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
            '<RequestId>s3proxy</RequestId></Error>' % (code, message)).encode()


def make_handler(args, state, verify):
    verify_lock = threading.Lock()
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "s3proxy"

        def log_message(self, fmt, *a):
            pass

        def setup(self):
            super().setup()
            with state.lock:  # one per TCP connection: shows connection reuse
                state.connections += 1

        def read_body(self):
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()
            n = int(self.headers.get("Content-Length", "0") or 0)
            return self.rfile.read(n) if n else b""

        def reply(self, status, body, headers=(), head_only=False):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head_only and body:
                self.wfile.write(body)

        def drop(self):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def control(self):
            u = urllib.parse.urlsplit(self.path)
            q = dict(urllib.parse.parse_qsl(u.query))
            if u.path == "/__proxy/reset":
                with state.lock:
                    state.reset()
                return self.reply(200, b"{}")
            if u.path == "/__proxy/stats":
                with state.lock:
                    body = json.dumps({"requests": state.requests, "verified": state.verified,
                                       "connections": state.connections,
                                       "sig_failures": state.sig_failures, "faults": state.faults,
                                       "log": state.log}).encode()
                return self.reply(200, body, [("Content-Type", "application/json")])
            if u.path == "/__proxy/fault":
                rule = {"mode": q.get("mode", "status"), "code": int(q.get("code", "503")),
                        "every": max(1, int(q.get("every", "1"))), "skip": int(q.get("skip", "0")),
                        "limit": int(q.get("limit", "0")), "method": q.get("method"),
                        "match": q.get("match"), "delay_ms": int(q.get("delay_ms", "0"))}
                with state.lock:
                    state.rule = rule
                    state.matched = 0
                    state.faults = 0
                return self.reply(200, b"{}")
            return self.reply(404, b"unknown control path")

        def check_signature(self, body):
            """None when the request is signed right, else (status, code, message)."""
            h = {k: v for k, v in self.headers.items()}
            auth = h.get("Authorization", "")
            if not auth.startswith("AWS4-HMAC-SHA256 "):
                return 403, "AccessDenied", "Request is not signed with SigV4"
            try:
                fields = dict(p.strip().split("=", 1) for p in auth[17:].split(","))
                access_key = fields["Credential"].split("/")[0]
            except (ValueError, KeyError):
                return 400, "AuthorizationHeaderMalformed", "Malformed Authorization header"
            if access_key != args.access_key:
                return 403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."
            want = h.get("x-amz-content-sha256") or h.get("X-Amz-Content-Sha256")
            if want is None:
                return 400, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256"
            if want != "UNSIGNED-PAYLOAD" and want != hashlib.sha256(body).hexdigest():
                return 400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed."
            try:
                # verify() patches botocore's clock for the request's date:
                # a module-wide patch, so one check at a time.
                with verify_lock:
                    ok, _ = verify(self.command, self.path, h, body, args.secret, args.region)
            except Exception as e:  # a header the checker needs is missing
                sys.stderr.write("s3proxy: signature check failed to run: %r\n" % (e,))
                ok = False
            if not ok:
                return 403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method."
            return None

        def forward(self, body):
            conn = http.client.HTTPConnection("127.0.0.1", args.upstream, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                headers["Content-Length"] = str(len(body))
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for k, v in headers.items():
                    conn.putheader(k, v)
                conn.endheaders(body if body else None)
                resp = conn.getresponse()
                data = resp.read()
                rh = [(k, v) for k, v in resp.getheaders()
                      if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"]
                length = resp.getheader("Content-Length")
                return resp.status, rh, data, length
            finally:
                conn.close()

        def handle_any(self):
            if self.path.startswith("/__proxy/"):
                self.read_body()
                return self.control()
            body = self.read_body()
            head_only = self.command == "HEAD"
            bad = self.check_signature(body)
            if bad is not None:
                with state.lock:
                    state.requests += 1
                    state.sig_failures += 1
                state.record("%s %s -> %d %s" % (self.command, self.path, bad[0], bad[1]))
                return self.reply(bad[0], b"" if head_only else error_xml(bad[1], bad[2]),
                                  [("Content-Type", "application/xml")], head_only)
            with state.lock:
                state.verified += 1
            rule = state.pick_fault(self.command, self.path)
            if rule is None and self.command == "DELETE" and "uploadId=" in self.path:
                # s3rver 3.7.1 lacks AbortMultipartUpload (it answers 405).
                # Its unfinished uploads are invisible anyway, so answer as
                # AWS does; the test sees the (signed) abort in the log.
                state.record("%s %s -> 204 (abort answered by the proxy)" % (self.command, self.path))
                return self.reply(204, b"")
            mode = rule["mode"] if rule else None
            if mode == "status":
                code = rule["code"]
                name = {500: "InternalError", 503: "SlowDown", 429: "TooManyRequests"}.get(code, "InternalError")
                state.record("%s %s -> %d (injected)" % (self.command, self.path, code))
                return self.reply(code, b"" if head_only else error_xml(name, "injected by the test proxy"),
                                  [("Content-Type", "application/xml")], head_only)
            if mode == "drop":
                state.record("%s %s -> dropped (injected)" % (self.command, self.path))
                return self.drop()
            if mode == "slow":
                time.sleep(rule["delay_ms"] / 1000.0)
            status, rh, data, length = self.forward(body)
            if mode == "drop_after":
                state.record("%s %s -> %d, reply dropped (injected)" % (self.command, self.path, status))
                return self.drop()
            if mode == "corrupt" and data and not head_only:
                data = bytes([data[0] ^ 0x01]) + data[1:]
            state.record("%s %s -> %d%s" % (self.command, self.path, status,
                                            " (%s injected)" % mode if mode else ""))
            self.send_response(status)
            for k, v in rh:
                self.send_header(k, v)
            if head_only:
                self.send_header("Content-Length", length or "0")
                self.end_headers()
                return
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if mode == "truncate":
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                return self.drop()
            self.wfile.write(data)

        def safe(self):
            try:
                self.handle_any()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (timeouts do that)
            except Exception as e:
                sys.stderr.write("s3proxy: %s %s failed: %r\n" % (self.command, self.path, e))
                self.close_connection = True

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = safe

    return Handler


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_verifier = os.path.normpath(os.path.join(here, "..", "..", "..", "shared", "s3",
                                                     "sigv4_verify.py"))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--upstream", type=int, required=True, help="s3rver's port on 127.0.0.1")
    p.add_argument("--access-key", default="S3RVER")
    p.add_argument("--secret", default="S3RVER")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--verifier", default=default_verifier)
    args = p.parse_args()
    verify = load_verifier(args.verifier)
    state = State()

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = Server(("127.0.0.1", 0), make_handler(args, state, verify))
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))

    def watch_stdin():
        # The test keeps our stdin open; when it exits (even by a crash)
        # the pipe closes and we go too: no stray processes.
        try:
            while sys.stdin.buffer.read(1):
                pass
        except OSError:
            pass
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    print("listening on 127.0.0.1:%d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()

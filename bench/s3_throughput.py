#!/usr/bin/python3
"""Upload and download throughput of tierdb's S3 client against s3rver on loopback, beside plain
curl PUT/GET of the same bytes (issue goal: how close tierdb gets to curl).

Starts s3rver (scripts/test-peers.sh installs it into build-peers/) on a free port, writes a file of
random bytes per size, then alternates, R rounds each:
  tierdb put   bench/objstore_io put: CRC32C + SHA-256 passes over the file, then one PUT (below
               the 64 MiB multipart threshold) or a multipart upload in 16 MiB parts;
  curl put     curl -T with --aws-sigv4 and x-amz-content-sha256: UNSIGNED-PAYLOAD (no hashing);
  tierdb get   bench/objstore_io get: streamed to a temporary file, CRC32C checked, fsync'd, renamed;
  curl get     curl -o (no checksum, no fsync).
Each side's own transfer time is used (process start-up excluded). Prints medians in MB/s and
tierdb's share of curl's throughput, with the load average (the machine may be shared), and each
client's CPU seconds per transfer (what hashing and checking cost, whatever the load). s3rver
(Node, writing to its directory) is usually the bottleneck on loopback: the ratio is the figure.

With --part-delay-ms D, tests/objstore/s3proxy.py (Debian python3-botocore) sits in front of s3rver
for both clients and holds every multipart part D ms before forwarding it: a stand-in for a store
far away or one that limits each connection, where the parts in flight at once
(objstore_options.part_concurrency) set the multipart throughput. curl's single PUT is not held.

Run: python3 bench/s3_throughput.py --objstore-io build-bench/objstore_io [--sizes 16,128] [--rounds 3]
     [--part-delay-ms 500]
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import test_s3_server as P  # noqa: E402  (its peer start/stop helpers)

BUCKET = "bench"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


CPU = {}


def run(argv, env=None, what=None):
    """Runs argv; returns its stdout. Adds its user + system CPU seconds to CPU[what]."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(argv, capture_output=True, env=env, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s" % (argv[0], (r.stderr or r.stdout).decode()[-500:]))
    if what:
        CPU.setdefault(what, []).append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return r.stdout.decode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objstore-io", required=True, help="path to the built bench/objstore_io.c")
    ap.add_argument("--sizes", default="16,128", help="object sizes in MiB")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--multipart-mib", type=int, default=0,
                    help="tierdb's multipart threshold in MiB (default: the library's, 64)")
    ap.add_argument("--part-delay-ms", type=int, default=0,
                    help="hold each multipart part this long in a proxy before s3rver (default: no proxy)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tdb-s3bench-")
    data = os.path.join(tmp, "s3rver")
    os.makedirs(data)
    s3rver = os.path.join(P.peers_dir(), "node_modules", "s3rver", "bin", "s3rver.js")
    proc, port = P._start_peer(["node", "--openssl-legacy-provider", s3rver, "-d", data, "-a", "127.0.0.1",
                                "-p", "0", "--service-endpoint", "localhost", "--configure-bucket", BUCKET,
                                "--silent"], "s3rver")
    endpoint = "http://127.0.0.1:%d" % port
    proxy = None
    if args.part_delay_ms:
        here = os.path.dirname(os.path.abspath(__file__))
        python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        proxy, pport = P._start_peer([python, os.path.join(here, "..", "tests", "objstore", "s3proxy.py"),
                                      "--upstream", str(port)], "s3proxy.py (needs python3-botocore)")
        endpoint = "http://127.0.0.1:%d" % pport
        urllib.request.urlopen("%s/__proxy/fault?mode=slow&delay_ms=%d&match=partNumber="
                               % (endpoint, args.part_delay_ms), timeout=10).read()
    env = dict(os.environ, TIERDB_S3_ENDPOINT=endpoint, TIERDB_S3_PATH_STYLE="1",
               AWS_ACCESS_KEY_ID="S3RVER", AWS_SECRET_ACCESS_KEY="S3RVER", AWS_REGION="us-east-1")
    if args.multipart_mib:
        env["TDB_BENCH_MULTIPART_MIB"] = str(args.multipart_mib)
    curl = ["curl", "-sS", "--fail", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", "S3RVER:S3RVER",
            "-w", "%{time_total}"]
    try:
        for mib in [int(x) for x in args.sizes.split(",")]:
            src = os.path.join(tmp, "src-%d" % mib)
            with open(src, "wb") as f:
                for _ in range(mib):
                    f.write(os.urandom(1 << 20))
            size = mib << 20
            t = {"tierdb put": [], "curl put": [], "tierdb get": [], "curl get": []}
            for k in range(args.rounds):
                key = "t%d-%d" % (mib, k)
                out = run([args.objstore_io, "put", "s3://" + BUCKET, key, src], env, "tierdb put").split()
                t["tierdb put"].append(float(out[0]))
                t["curl put"].append(float(run(curl + ["-o", "/dev/null", "-T", src, "-H",
                                                       "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                                                       "%s/%s/c%s" % (endpoint, BUCKET, key)], None, "curl put")))
                dst = os.path.join(tmp, "dst")
                out = run([args.objstore_io, "get", "s3://" + BUCKET, key, dst], env, "tierdb get").split()
                t["tierdb get"].append(float(out[0]))
                if os.path.getsize(dst) != size:
                    raise RuntimeError("tierdb get: wrong size")
                t["curl get"].append(float(run(curl + ["-o", dst, "-H", "x-amz-content-sha256: " + EMPTY_SHA256,
                                                       "%s/%s/c%s" % (endpoint, BUCKET, key)], None, "curl get")))
                if os.path.getsize(dst) != size:
                    raise RuntimeError("curl get: wrong size")
                os.unlink(dst)
            mbps = {k: size / 1e6 / statistics.median(v) for k, v in t.items()}
            load = os.getloadavg()
            if args.part_delay_ms:
                print("      (through s3proxy.py, each multipart part held %d ms)" % args.part_delay_ms)
            print("%4d MiB, %d rounds, load %.1f: put tierdb %6.1f MB/s, curl %6.1f MB/s (%.0f%%);"
                  " get tierdb %6.1f MB/s, curl %6.1f MB/s (%.0f%%)"
                  % (mib, args.rounds, load[0], mbps["tierdb put"], mbps["curl put"],
                     100 * mbps["tierdb put"] / mbps["curl put"], mbps["tierdb get"], mbps["curl get"],
                     100 * mbps["tierdb get"] / mbps["curl get"]))
            cpu = {k: statistics.median(v) for k, v in CPU.items()}
            print("      client CPU seconds (user + system, process start included): put tierdb %.3f, curl %.3f;"
                  " get tierdb %.3f, curl %.3f" % (cpu["tierdb put"], cpu["curl put"], cpu["tierdb get"], cpu["curl get"]))
            CPU.clear()
            os.unlink(src)
    finally:
        if proxy:
            P._stop(proxy)
        P._stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

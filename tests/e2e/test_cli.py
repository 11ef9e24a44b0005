#!/usr/bin/python3
"""End-to-end tests of the `tierdb` command line: help and version, flag errors (exit 2), settings
from a config file, the environment and flags in that order of precedence, and bad values stopping
start-up with a message that names the setting (docs/configuration.md).

Run: python3 tests/e2e/test_cli.py --binary build/tierdb [--keep]
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdbtest as T  # noqa: E402


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERDB_")}
    env.update(extra)
    return env


def run(ctx, args, env=None, timeout=30):
    return subprocess.run([ctx.binary] + args, capture_output=True, text=True, env=env or clean_env(), timeout=timeout,
                          stdin=subprocess.DEVNULL)


def serve_once(ctx, args, env):
    """Starts `tierdb serve ARGS`, waits for the listening line, creates a collection, stops it.
    Returns (listening line or None, stderr text)."""
    p = subprocess.Popen([ctx.binary, "serve"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, env=env, text=True)
    line = p.stdout.readline().strip()
    if line.startswith("listening on http://"):
        c = T.Client(line[len("listening on "):])
        c.post("/v1/collections", {"name": "cli", "dimension": 2, "metric": "l2"})
        c.close()
        p.terminate()
    try:
        _, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    return (line if line.startswith("listening on") else None), err, p.returncode


def write(ctx, name, text):
    path = os.path.join(ctx.tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def test_help_and_version(ctx):
    r = run(ctx, ["version"])
    ctx.check(r.returncode == 0 and re.match(r"^tierdb \d+\.\d+\.\d+\n$", r.stdout), "tierdb version", r.stdout)
    r = run(ctx, ["--version"])
    ctx.check(r.returncode == 0 and r.stdout.startswith("tierdb "), "tierdb --version", r.stdout)
    for args in (["--help"], ["-h"], ["help"], ["serve", "--help"], ["version", "--help"]):
        r = run(ctx, args)
        ctx.check(r.returncode == 0 and r.stdout.startswith("usage: tierdb"), "tierdb %s" % " ".join(args), r.stdout[:80])
    r = run(ctx, ["serve", "--help"])
    for flag in ("--config", "--data", "--listen", "--test-clock"):
        ctx.check(flag in r.stdout, "serve --help mentions %s" % flag)
    r = run(ctx, [])
    ctx.check(r.returncode == 2 and "usage" in r.stderr, "no command -> exit 2 with usage", r.returncode)


def test_usage_errors(ctx):
    for args, needle in ((["frobnicate"], "unknown command"), (["--frob"], "unknown flag"),
                         (["serve", "--bogus"], "unknown flag --bogus"), (["serve", "--data"], "--data needs a value"),
                         (["serve", "extra"], "unexpected argument"), (["version", "x"], "no argument"),
                         (["serve", "--listen", "nonsense"], "--listen"), (["serve", "--listen", "1.2.3.4:99999"], "--listen"),
                         (["serve", "--listen", "::1:80"], "--listen"), (["serve", "--config", "/nonexistent/x.toml"], "--config")):
        r = run(ctx, args)
        ctx.check(r.returncode == 2 and needle in r.stderr, "tierdb %s -> exit 2 naming %r" % (" ".join(args), needle),
                  [r.returncode, r.stderr[:200]])


def test_bad_env_values(ctx):
    for var, val in (("TIERDB_FSYNC", "sometimes"), ("TIERDB_LISTEN", "7700"), ("TIERDB_LOG_LEVEL", "loud"),
                     ("TIERDB_MEMTABLE_MAX_DOCS", "0"), ("TIERDB_MEMTABLE_MAX_DOCS", "12x"),
                     ("TIERDB_MEMTABLE_MAX_BYTES", "-5"), ("TIERDB_COMPACTION_MIN_SEGMENTS", "1"),
                     ("TIERDB_MAX_BODY_BYTES", "lots"), ("TIERDB_OBJECT_STORE", "ftp://x"), ("TIERDB_DATA", ""),
                     ("TIERDB_HOT_MEMORY_BUDGET", "5T"), ("TIERDB_S3_PATH_STYLE", "yes")):
        r = run(ctx, ["serve", "--data", os.path.join(ctx.tmp, "never"), "--listen", "127.0.0.1:0"],
                env=clean_env(**{var: val}))
        ctx.check(r.returncode == 2 and var in r.stderr, "%s=%r -> exit 2 naming %s" % (var, val, var),
                  [r.returncode, r.stderr[:200]])
    ctx.check(not os.path.exists(os.path.join(ctx.tmp, "never")), "no data directory was created by a refused start")


def test_config_file(ctx):
    data_file = os.path.join(ctx.tmp, "from-file")
    cfg = write(ctx, "good.toml", '''# tierdb test config
[server]
listen = "127.0.0.1:0"   # a free port
max_body_bytes = "2M"

[storage]
data = '%s'
fsync = "always"
memtable_max_docs = 1_000
compaction_min_segments = 4

[log]
level = "warn"

[tiering]
hot_ttl = "6h"
promotion_threshold = 10
''' % data_file)
    line, err, rc = serve_once(ctx, ["--config", cfg], clean_env())
    ctx.check(line is not None and rc == 0, "serve --config FILE starts and stops", [line, rc, err[-300:]])
    ctx.check(os.path.exists(data_file), "the data directory came from the file")
    ctx.check(" info " not in err, "[log] level = warn silences info lines", err[-300:])
    # the environment overrides the file, flags override the environment
    data_env = os.path.join(ctx.tmp, "from-env")
    data_flag = os.path.join(ctx.tmp, "from-flag")
    line, err, rc = serve_once(ctx, ["--config", cfg], clean_env(TIERDB_DATA=data_env, TIERDB_LOG_LEVEL="info"))
    ctx.check(line is not None and os.path.exists(data_env), "TIERDB_DATA overrides the file's data", [line, err[-300:]])
    ctx.check(" info " in err, "TIERDB_LOG_LEVEL overrides the file's level")
    line, err, rc = serve_once(ctx, ["--config=" + cfg, "--data=" + data_flag], clean_env(TIERDB_DATA=data_env + "-unused"))
    ctx.check(line is not None and os.path.exists(data_flag) and not os.path.exists(data_env + "-unused"),
              "--data overrides TIERDB_DATA", [line, err[-300:]])
    # errors name the file, the line and the key
    for name, text, needle in (("unknown-key.toml", "[server]\nlisten = \"127.0.0.1:0\"\nlissten = 1\n", ":3: unknown key 'lissten'"),
                               ("unknown-section.toml", "[servr]\n", ":1: unknown section [servr]"),
                               ("bad-value.toml", "[storage]\n\nfsync = \"sometimes\"\n", ":3: storage.fsync"),
                               ("unquoted.toml", "[storage]\ndata = /tmp/x\n", ":2: storage.data"),
                               ("array.toml", "[server]\nlisten = [1, 2]\n", "arrays"),
                               ("unterminated.toml", "[server]\nlisten = \"127.0.0.1:0\n", "unterminated"),
                               ("trailing.toml", "[log]\nlevel = \"info\" extra\n", "unexpected text")):
        path = write(ctx, name, text)
        r = run(ctx, ["serve", "--config", path])
        ctx.check(r.returncode == 2 and path in r.stderr and needle in r.stderr, "%s -> exit 2 with %r" % (name, needle),
                  [r.returncode, r.stderr[:200]])


def test_listen_forms(ctx):
    for listen, prefix in (("127.0.0.1:0", "http://127.0.0.1:"), ("localhost:0", "http://localhost:"),
                           ("[::1]:0", "http://[::1]:")):
        line, err, rc = serve_once(ctx, ["--data", os.path.join(ctx.tmp, "lf"), "--listen", listen], clean_env())
        if listen.startswith("[") and line is None and "cannot listen" in err:
            continue  # a host without IPv6
        ctx.check(line is not None and line.startswith("listening on " + prefix) and re.search(r":\d+$", line)
                  and not line.endswith(":0"), "--listen %s prints the real port" % listen, [line, err[-200:]])


if __name__ == "__main__":
    T.main([test_help_and_version, test_usage_errors, test_bad_env_values, test_config_file, test_listen_forms],
           description=__doc__)

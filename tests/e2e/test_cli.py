#!/usr/bin/python3
"""End-to-end tests of the `tierdb` command line: help and version, flag errors (exit 2), settings
from a config file, the environment and flags in that order of precedence, and bad values stopping
start-up with a message that names the setting (docs/configuration.md).

Also: every setting of docs/configuration.md's table round-trips through `serve --print-config`
(printed, read back as a config file, printed again: the same), each environment variable wins
over the file, secrets are never printed, bad config files fail clearly; and the client commands
(collections, query, tier) print what the server answered with the documented exit statuses.

Run: python3 tests/e2e/test_cli.py --binary build/tierdb [--keep]
"""
import json
import os
import re
import subprocess
import sys
import tomllib

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


# ------------------------------------------------------------------------------------------ print-config

DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "configuration.md")

# A value for every key that differs from its default, as written in a file, and as --print-config
# shows it (sizes and durations in their largest exact unit).
EVERY_KEY = {
    ("server", "listen"): ('"127.0.0.1:0"', "127.0.0.1:0"),
    ("server", "max_body_bytes"): ("2097152", "2M"),
    ("server", "api_key"): ('"file-admin-key"', None),
    ("server", "readonly_api_key"): ('"file-read-key"', None),
    ("storage", "data"): (None, None),      # filled in with a temp path
    ("storage", "fsync"): ('"interval"', "interval"),
    ("storage", "fsync_interval"): ('"250ms"', "250ms"),
    ("storage", "object_store"): ('"file:///tmp/tdb-objects"', "file:///tmp/tdb-objects"),
    ("storage", "memtable_max_docs"): ("5_000", 5000),
    ("storage", "memtable_max_bytes"): ('"16384K"', "16M"),
    ("storage", "compaction_min_segments"): ("6", 6),
    ("storage", "compaction_idle_merge"): ('"90s"', "90s"),
    ("server", "query_memory_budget"): ('"512M"', "512M"),
    ("log", "level"): ('"debug"', "debug"),
    ("tiering", "hot_memory_budget"): ('"1G"', "1G"),
    ("tiering", "hot_ttl"): ('"120m"', "2h"),
    ("tiering", "warm_ttl"): ('"3d"', "3d"),
    ("tiering", "access_window"): ('"1800s"', "30m"),
    ("tiering", "worker_interval"): ('"90s"', "90s"),
    ("tiering", "promotion_threshold"): ("4", 4),
    ("tiering", "max_migrations_per_cycle"): ("9", 9),
    ("s3", "endpoint"): ('"http://127.0.0.1:9000"', "http://127.0.0.1:9000"),
    ("s3", "path_style"): ("true", True),
}

# The same keys through the environment, with other values again.
EVERY_ENV = {
    "TIERDB_LISTEN": ("127.0.0.1:7799", ("server", "listen"), "127.0.0.1:7799"),
    "TIERDB_MAX_BODY_BYTES": ("3M", ("server", "max_body_bytes"), "3M"),
    "TIERDB_API_KEY": ("env-admin-key", ("server", "api_key"), None),
    "TIERDB_READONLY_API_KEY": ("env-read-key", ("server", "readonly_api_key"), None),
    "TIERDB_DATA": ("/tmp/tdb-env-data", ("storage", "data"), "/tmp/tdb-env-data"),
    "TIERDB_FSYNC": ("none", ("storage", "fsync"), "none"),
    "TIERDB_FSYNC_INTERVAL": ("2s", ("storage", "fsync_interval"), "2s"),
    "TIERDB_OBJECT_STORE": ("s3://bucket/prefix", ("storage", "object_store"), "s3://bucket/prefix"),
    "TIERDB_MEMTABLE_MAX_DOCS": ("777", ("storage", "memtable_max_docs"), 777),
    "TIERDB_MEMTABLE_MAX_BYTES": ("1025", ("storage", "memtable_max_bytes"), 1025),
    "TIERDB_COMPACTION_MIN_SEGMENTS": ("3", ("storage", "compaction_min_segments"), 3),
    "TIERDB_COMPACTION_IDLE_MERGE": ("0", ("storage", "compaction_idle_merge"), "0s"),
    "TIERDB_QUERY_MEMORY_BUDGET": ("2G", ("server", "query_memory_budget"), "2G"),
    "TIERDB_LOG_LEVEL": ("error", ("log", "level"), "error"),
    "TIERDB_HOT_MEMORY_BUDGET": ("512M", ("tiering", "hot_memory_budget"), "512M"),
    "TIERDB_HOT_TTL": ("5h", ("tiering", "hot_ttl"), "5h"),
    "TIERDB_WARM_TTL": ("2d", ("tiering", "warm_ttl"), "2d"),
    "TIERDB_ACCESS_WINDOW": ("10m", ("tiering", "access_window"), "10m"),
    "TIERDB_WORKER_INTERVAL": ("0", ("tiering", "worker_interval"), "0s"),
    "TIERDB_PROMOTION_THRESHOLD": ("2", ("tiering", "promotion_threshold"), 2),
    "TIERDB_MAX_MIGRATIONS_PER_CYCLE": ("1", ("tiering", "max_migrations_per_cycle"), 1),
    "TIERDB_S3_ENDPOINT": ("https://s3.example.com", ("s3", "endpoint"), "https://s3.example.com"),
    "TIERDB_S3_PATH_STYLE": ("0", ("s3", "path_style"), False),
}


def documented_settings():
    """(section, key) -> environment variable, from docs/configuration.md's settings table."""
    out = {}
    with open(DOCS, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^\| `\[(\w+)\] (\w+)` \| `(TIERDB_\w+)` \|", line)
            if m:
                out[(m.group(1), m.group(2))] = m.group(3)
    return out


def print_config(ctx, args, env=None):
    r = run(ctx, ["serve"] + args + ["--print-config"], env=env)
    parsed = None
    if r.returncode == 0:
        try:
            parsed = tomllib.loads(r.stdout)
        except tomllib.TOMLDecodeError as e:
            ctx.check(False, "--print-config output is TOML", [str(e), r.stdout[:300]])
    return r, parsed


def settings_lines(text):
    """The key = value lines of a --print-config output, without their source comments."""
    return [ln.split("#")[0].rstrip() for ln in text.splitlines() if ln and not ln.startswith("#")]


def test_print_config_round_trip(ctx):
    documented = documented_settings()
    ctx.check(set(documented) == set(EVERY_KEY), "docs/configuration.md lists exactly the keys this test sets",
              sorted(set(documented) ^ set(EVERY_KEY)))
    ctx.check(set(documented.values()) == set(EVERY_ENV), "docs/configuration.md names every environment variable",
              sorted(set(documented.values()) ^ set(EVERY_ENV)))
    data_dir = os.path.join(ctx.tmp, "pc-data")
    sections = {}
    for (sec, key), (text, _) in EVERY_KEY.items():
        sections.setdefault(sec, []).append("%s = %s" % (key, text if text is not None else "'%s'" % data_dir))
    path = write(ctx, "every.toml", "".join("[%s]\n%s\n\n" % (sec, "\n".join(lines)) for sec, lines in sections.items()))
    r, parsed = print_config(ctx, ["--config", path])
    ctx.check(r.returncode == 0 and parsed is not None, "serve --config every.toml --print-config exits 0",
              [r.returncode, r.stderr[:300]])
    ctx.check(not os.path.exists(data_dir), "--print-config does not create the data directory")
    parsed = parsed or {}
    for (sec, key), (_, shown) in EVERY_KEY.items():
        got = parsed.get(sec, {}).get(key, "<absent>")
        want = data_dir if (sec, key) == ("storage", "data") else shown
        if want is None:   # a secret: never printed, only a comment
            ctx.check(got == "<absent>" and re.search(r"^# %s = \(set, masked\)\s+# from %s$" % (key, re.escape(path)),
                                                       r.stdout, re.M), "%s.%s is masked" % (sec, key), got)
        else:
            ctx.check(got == want, "%s.%s round-trips" % (sec, key), got, want)
            ctx.check(re.search(r"^%s = .*# from %s$" % (key, re.escape(path)), r.stdout, re.M),
                      "%s.%s says it came from the file" % (sec, key))
    ctx.check("file-admin-key" not in r.stdout and "file-read-key" not in r.stdout, "no secret is printed")
    # the output is a config file: read back, it prints the same settings
    again = write(ctx, "again.toml", r.stdout)
    r2, _ = print_config(ctx, ["--config", again])
    ctx.check(r2.returncode == 0 and settings_lines(r2.stdout) == settings_lines(r.stdout),
              "the printed settings read back as the same settings",
              [r2.returncode, r2.stderr[:200], sorted(set(settings_lines(r2.stdout)) ^ set(settings_lines(r.stdout)))])
    # defaults: every key is printed (secrets and unset optional keys as comments)
    r3, defaults = print_config(ctx, [])
    ctx.check(r3.returncode == 0, "--print-config with nothing set", r3.stderr[:200])
    for (sec, key) in EVERY_KEY:
        ctx.check(re.search(r"^(# )?%s( =| unset)" % key, r3.stdout, re.M), "default %s.%s is shown" % (sec, key))
    want_defaults = {("server", "listen"): "127.0.0.1:7700", ("server", "max_body_bytes"): "64M",
                     ("storage", "fsync"): "always", ("storage", "fsync_interval"): "100ms",
                     ("storage", "memtable_max_docs"): 100000, ("storage", "memtable_max_bytes"): "64M",
                     ("storage", "compaction_min_segments"): 4, ("log", "level"): "info",
                     ("storage", "compaction_idle_merge"): "1m", ("server", "query_memory_budget"): 0,
                     ("tiering", "hot_ttl"): "6h", ("tiering", "warm_ttl"): "7d", ("tiering", "access_window"): "1h",
                     ("tiering", "worker_interval"): "5m", ("tiering", "promotion_threshold"): 10,
                     ("tiering", "max_migrations_per_cycle"): 16, ("tiering", "hot_memory_budget"): 0,
                     ("s3", "path_style"): False, ("storage", "data"): "./data"}
    for (sec, key), want in want_defaults.items():
        ctx.check((defaults or {}).get(sec, {}).get(key) == want, "default of %s.%s is as documented" % (sec, key),
                  (defaults or {}).get(sec, {}).get(key), want)


def test_print_config_long_values(ctx):
    """String values far past 1,190 bytes (with bytes that need escaping) print whole and read back the same."""
    for n in (1189, 1191, 1300, 4000, 20000):
        # a path stays under PATH_MAX; the other strings grow to n bytes
        data_dir = os.path.join(ctx.tmp, "q\"b\\t\tx-") + "d" * max(0, min(n, 3000) - len(ctx.tmp) - 8)
        endpoint = "http://127.0.0.1:9000/" + ("e" * n)
        body = '[storage]\ndata = %s\nobject_store = "file://%s"\n[s3]\nendpoint = "%s"\n' % (
            json.dumps(data_dir), "/o" * (n // 2), endpoint)
        path = write(ctx, "long-%d.toml" % n, body)
        r, parsed = print_config(ctx, ["--config", path])
        parsed = parsed or {}
        ctx.check(r.returncode == 0, "--print-config with %d-byte values exits 0" % n, [r.returncode, r.stderr[:200]])
        ctx.check(parsed.get("storage", {}).get("data") == data_dir, "a %d-byte data path prints whole" % len(data_dir),
                  len(parsed.get("storage", {}).get("data", "")))
        ctx.check(parsed.get("storage", {}).get("object_store") == "file://" + "/o" * (n // 2),
                  "a long object_store prints whole")
        ctx.check(parsed.get("s3", {}).get("endpoint") == endpoint, "a %d-byte endpoint prints whole" % len(endpoint),
                  len(parsed.get("s3", {}).get("endpoint", "")))
        again = write(ctx, "long-again-%d.toml" % n, r.stdout)
        r2, _ = print_config(ctx, ["--config", again])
        ctx.check(r2.returncode == 0 and settings_lines(r2.stdout) == settings_lines(r.stdout),
                  "long values read back as the same settings (%d)" % n, [r2.returncode, r2.stderr[:200]])
        ctx.check(not os.path.exists(data_dir), "--print-config does not create the long data directory")


def test_env_overrides(ctx):
    data_dir = os.path.join(ctx.tmp, "env-file-data")
    sections = {}
    for (sec, key), (text, _) in EVERY_KEY.items():
        sections.setdefault(sec, []).append("%s = %s" % (key, text if text is not None else "'%s'" % data_dir))
    path = write(ctx, "env-base.toml", "".join("[%s]\n%s\n\n" % (sec, "\n".join(lines)) for sec, lines in sections.items()))
    env = clean_env(**{var: val for var, (val, _, _) in EVERY_ENV.items()})
    r, parsed = print_config(ctx, ["--config", path], env=env)
    ctx.check(r.returncode == 0 and parsed is not None, "every TIERDB_* set at once", [r.returncode, r.stderr[:300]])
    parsed = parsed or {}
    for var, (val, (sec, key), shown) in EVERY_ENV.items():
        if shown is None:
            ctx.check(re.search(r"^# %s = \(set, masked\)\s+# from %s$" % (key, var), r.stdout, re.M) and val not in r.stdout,
                      "%s wins over the file and stays masked" % var)
            continue
        ctx.check(parsed.get(sec, {}).get(key) == shown, "%s wins over the file's %s.%s" % (var, sec, key),
                  parsed.get(sec, {}).get(key), shown)
        ctx.check(re.search(r"^%s = .*# from %s$" % (key, var), r.stdout, re.M), "%s.%s says it came from %s" % (sec, key, var))
    # flags win over the environment
    r, parsed = print_config(ctx, ["--config", path, "--data", "/tmp/from-flag", "--listen", "127.0.0.1:9"], env=env)
    ctx.check((parsed or {}).get("storage", {}).get("data") == "/tmp/from-flag" and
              (parsed or {}).get("server", {}).get("listen") == "127.0.0.1:9" and
              re.search(r"^data = .*# from --data$", r.stdout, re.M), "--data and --listen win over the environment",
              r.stdout[:400])
    # an unknown TIERDB_ variable is a warning, not an error; a bad value is still an error
    r = run(ctx, ["serve", "--print-config"], env=clean_env(TIERDB_FSYNCC="always"))
    ctx.check(r.returncode == 0 and "TIERDB_FSYNCC" in r.stderr and "warning" in r.stderr,
              "an unknown TIERDB_ variable is named in a warning", [r.returncode, r.stderr[:200]])
    r = run(ctx, ["serve", "--print-config"], env=clean_env(TIERDB_HOT_TTL="soon"))
    ctx.check(r.returncode == 2 and "TIERDB_HOT_TTL" in r.stderr, "--print-config checks values like a start",
              [r.returncode, r.stderr[:200]])


def test_bad_config_files(ctx):
    cases = []
    d = os.path.join(ctx.tmp, "a-directory.toml")
    os.makedirs(d, exist_ok=True)
    cases.append((d, "--config %s" % d))
    p = os.path.join(ctx.tmp, "binary.toml")
    with open(p, "wb") as f:
        f.write(b"[server]\x00\x01\x02")
    cases.append((p, "NUL byte"))
    p = os.path.join(ctx.tmp, "huge.toml")
    with open(p, "w") as f:
        f.write("# padding\n" * 120000)
    cases.append((p, "larger than"))
    cases.append((write(ctx, "toplevel.toml", "fsync = \"always\"\n"), "unknown key 'fsync' in [top level]"))
    cases.append((write(ctx, "float.toml", "[storage]\nmemtable_max_docs = 1.5\n"), ":2: storage.memtable_max_docs"))
    cases.append((write(ctx, "negative.toml", "[storage]\nmemtable_max_docs = -3\n"), ":2: storage.memtable_max_docs"))
    cases.append((write(ctx, "dotted.toml", "[server]\nlisten.port = 1\n"), ":2: expected key = value"))
    cases.append((write(ctx, "nested.toml", "[server.tls]\n"), ":1: a section header"))
    cases.append((write(ctx, "badduration.toml", "[tiering]\nhot_ttl = \"6 hours\"\n"), ":2: tiering.hot_ttl"))
    cases.append((write(ctx, "badsize.toml", "[tiering]\nhot_memory_budget = \"5T\"\n"), ":2: tiering.hot_memory_budget"))
    cases.append((write(ctx, "badescape.toml", "[storage]\ndata = \"a\\qb\"\n"), "unknown escape"))
    for path, needle in cases:
        for extra in ([], ["--print-config"]):
            r = run(ctx, ["serve", "--config", path] + extra)
            ctx.check(r.returncode == 2 and needle in r.stderr, "%s%s -> exit 2 with %r" % (os.path.basename(path),
                      " --print-config" if extra else "", needle), [r.returncode, r.stderr[:200]])
    r = run(ctx, ["serve", "--config", write(ctx, "empty.toml", ""), "--print-config"])
    ctx.check(r.returncode == 0, "an empty config file is fine", r.stderr[:200])


# ------------------------------------------------------------------------------------------ client commands

def test_client_commands(ctx):
    s = ctx.server("clients")
    url = s.url
    c = s.client()
    c.post("/v1/collections", {"name": "cc_one", "dimension": 2, "metric": "l2", "attributes": {"k": {"type": "string"}}})
    c.post("/v1/collections/cc_one/documents", {"documents": [{"id": "a", "vector": [0, 0], "attributes": {"k": "x"}},
                                                              {"id": "b", "vector": [3, 4], "attributes": {"k": "y"}}]})
    r = run(ctx, ["collections", "--url", url])
    ctx.check(r.returncode == 0 and re.search(r"^cc_one\s+hot\s+no\s+2\s", r.stdout, re.M), "tierdb collections",
              [r.returncode, r.stdout, r.stderr])
    r = run(ctx, ["collections", "--json"], env=clean_env(TIERDB_URL=url))
    ctx.check(r.returncode == 0 and json.loads(r.stdout)["collections"][0]["name"] == "cc_one",
              "tierdb collections --json (server from TIERDB_URL)", r.stdout[:200])
    r = run(ctx, ["query", "cc_one", "--vector", "[3, 4]", "--top-k", "1", "--url", url])
    ctx.check(r.returncode == 0 and re.search(r"^\s+1\s+b\s+distance 0\b", r.stdout, re.M) and "1 result " in r.stdout,
              "tierdb query --vector", [r.returncode, r.stdout, r.stderr])
    r = run(ctx, ["query", "cc_one", "--filter", '{"k": "x"}', "--json", "--url", url])
    ctx.check(r.returncode == 0 and [x["id"] for x in json.loads(r.stdout)["results"]] == ["a"], "tierdb query --filter --json",
              [r.returncode, r.stdout[:200], r.stderr])
    r = run(ctx, ["tier", "status", "cc_one", "--url", url])
    ctx.check(r.returncode == 0 and re.search(r"^tier\s+hot$", r.stdout, re.M), "tierdb tier status", r.stdout)
    r = run(ctx, ["tier", "pin", "cc_one", "--url", url])
    ctx.check(r.returncode == 0 and "hot (pinned)" in r.stdout, "tierdb tier pin", r.stdout)
    r = run(ctx, ["tier", "demote", "cc_one", "--url", url])
    ctx.check(r.returncode == 3 and "409" in r.stderr, "demoting a pinned collection: exit 3 with the server's message",
              [r.returncode, r.stderr])
    run(ctx, ["tier", "unpin", "cc_one", "--url", url])
    r = run(ctx, ["tier", "demote", "cc_one", "--to", "warm", "--json", "--url", url])
    ctx.check(r.returncode == 0 and json.loads(r.stdout).get("tier") == "warm", "tierdb tier demote --to warm",
              [r.returncode, r.stdout, r.stderr])
    r = run(ctx, ["tier", "promote", "cc_one", "--url", url])
    ctx.check(r.returncode == 0 and re.search(r"^tier\s+hot$", r.stdout, re.M), "tierdb tier promote (to hot)",
              [r.returncode, r.stdout, r.stderr])
    # refusals and failures
    r = run(ctx, ["query", "cc_nope", "--vector", "[1, 2]", "--url", url])
    ctx.check(r.returncode == 3 and "collection_not_found" in r.stderr, "unknown collection: exit 3", [r.returncode, r.stderr])
    r = run(ctx, ["query", "cc_one", "--vector", "[1, 2, 3]", "--url", url])
    ctx.check(r.returncode == 3 and "dimension" in r.stderr, "wrong dimension: exit 3", [r.returncode, r.stderr])
    r = run(ctx, ["collections", "--url", "http://127.0.0.1:1"])
    ctx.check(r.returncode == 1 and "cannot reach" in r.stderr, "no server: exit 1", [r.returncode, r.stderr])
    for args, needle in ((["query"], "which collection"), (["query", "cc_one", "--vector", "[1,"], "--vector"),
                         (["query", "cc_one", "--filter", "[]"], "--filter"), (["query", "cc_one", "--top-k", "0"], "--top-k"),
                         (["tier"], "which action"), (["tier", "status"], "which collection"),
                         (["tier", "fly", "cc_one"], "unknown action"), (["tier", "pin", "cc_one", "--to", "hot"], "--to"),
                         (["collections", "--tier", "lukewarm"], "--tier"), (["collections", "--url", "ftp://x"], "--url")):
        r = run(ctx, args + (["--url", url] if "--url" not in args else []))
        ctx.check(r.returncode == 2 and needle in r.stderr, "tierdb %s -> exit 2 naming %r" % (" ".join(args), needle),
                  [r.returncode, r.stderr[:200]])
    for cmd in ("import", "collections", "query", "tier"):
        r = run(ctx, [cmd, "--help"])
        ctx.check(r.returncode == 0 and r.stdout.startswith("usage: tierdb %s" % cmd), "tierdb %s --help" % cmd, r.stdout[:80])
    # with a key: the client sends TIERDB_API_KEY
    k = ctx.server("clients-auth", env={"TIERDB_API_KEY": "cli-key"})
    r = run(ctx, ["collections", "--url", k.url])
    ctx.check(r.returncode == 3 and "unauthorized" in r.stderr, "no key: exit 3 unauthorized", [r.returncode, r.stderr])
    r = run(ctx, ["collections", "--url", k.url], env=clean_env(TIERDB_API_KEY="cli-key"))
    ctx.check(r.returncode == 0, "TIERDB_API_KEY is sent", [r.returncode, r.stderr])
    r = run(ctx, ["collections", "--url", k.url, "--api-key", "cli-key"])
    ctx.check(r.returncode == 0, "--api-key is sent", [r.returncode, r.stderr])


if __name__ == "__main__":
    T.main([test_help_and_version, test_usage_errors, test_bad_env_values, test_config_file, test_listen_forms,
            test_print_config_round_trip, test_print_config_long_values, test_env_overrides, test_bad_config_files, test_client_commands],
           description=__doc__)

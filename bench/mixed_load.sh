#!/usr/bin/env bash
# mixed_load.sh: a mixed query/upsert load on `tierdb serve` (90% queries, 10% upserts, 16
# connections, 60 s, on 100,000 documents of 128 dimensions). A benchmark, not a test.
#
#   bench/mixed_load.sh BINARY       e.g. bench/mixed_load.sh build-bench/tierdb
#
# Steps: build bench/mixed_load and bench/import_gen next to BINARY (when missing or stale); start
# BINARY on a fresh temp data dir and a free port; `tierdb import` IDS documents of DIM dimensions
# (l2) and print its rate; wait until the background flushes and compactions have indexed every
# document (so queries run on built HNSW indexes, as in steady state); then run mixed_load for
# DURATION seconds after WARMUP with CONNECTIONS connections and WRITE_RATIO upserts (each replaces one
# existing document, so the collection keeps its size), and print its key=value lines: requests,
# errors, throughput, p50/p90/p99/max latency per kind, and the CPU used by the server and the
# client. The load average is printed first: on a shared machine the figures mean little without it.
#
# Settings (environment): IDS=100000 DIM=128 CONNECTIONS=16 DURATION=60 WARMUP=5 WRITE_RATIO=0.10
# TOP_K=10 FSYNC=always MEMTABLE_DOCS=25000 TMPDIR. Other TIERDB_* settings pass through.
set -euo pipefail

BIN=$(realpath "${1:?usage: bench/mixed_load.sh BINARY}")
HERE=$(cd "$(dirname "$0")" && pwd)
IDS=${IDS:-100000}
DIM=${DIM:-128}
CONNECTIONS=${CONNECTIONS:-16}
SECONDS_RUN=${DURATION:-60}
WARMUP=${WARMUP:-5}
WRITE_RATIO=${WRITE_RATIO:-0.10}
TOP_K=${TOP_K:-10}
FSYNC=${FSYNC:-always}
MEMTABLE_DOCS=${MEMTABLE_DOCS:-25000}
OUT=$(dirname "$BIN")
if [ ! -x "$OUT/mixed_load" ] || [ "$HERE/mixed_load.c" -nt "$OUT/mixed_load" ]; then
  cc -O2 -std=c17 -D_GNU_SOURCE -Wall -Wextra "$HERE/mixed_load.c" -lpthread -lm -o "$OUT/mixed_load"
fi
if [ ! -x "$OUT/import_gen" ] || [ "$HERE/import_gen.c" -nt "$OUT/import_gen" ]; then
  cc -O2 -std=c17 -D_GNU_SOURCE -Wall -Wextra "$HERE/import_gen.c" -o "$OUT/import_gen"
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tdb-mixed-bench.XXXXXX")
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

TIERDB_FSYNC=$FSYNC TIERDB_MEMTABLE_MAX_DOCS=$MEMTABLE_DOCS "$BIN" serve --data "$WORK/data" \
  --listen 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
URL=""
for _ in $(seq 1 200); do
  URL=$(sed -n 's/^listening on //p' "$WORK/server.out")
  [ -n "$URL" ] && break
  sleep 0.05
done
[ -n "$URL" ] || { echo "server did not start:"; cat "$WORK/server.log"; exit 1; }
PORT=${URL##*:}

echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (nproc $(nproc)); fsync $FSYNC; memtable $MEMTABLE_DOCS docs"
"$OUT/import_gen" --count "$IDS" --dim "$DIM" > "$WORK/docs.ndjson"
"$BIN" import "$WORK/docs.ndjson" --collection mixed --create --dimension "$DIM" --metric l2 --quiet --url "$URL"

# Steady state: every document indexed and the segment count unchanged for 5 s (compactions done).
echo "waiting for the background flushes and compactions..."
t0=$(date +%s)
last=""; stable=0
while :; do
  info=$(curl -s "$URL/v1/collections/mixed")
  docs=$(sed -n 's/.*"documents":\([0-9]*\).*/\1/p' <<<"$info")
  indexed=$(sed -n 's/.*"indexed_documents":\([0-9]*\).*/\1/p' <<<"$info")
  segs=$(sed -n 's/.*"segments":\([0-9]*\).*/\1/p' <<<"$info")
  if [ "$docs" = "$indexed" ] && [ "$segs" = "$last" ]; then stable=$((stable + 1)); else stable=0; fi
  last=$segs
  [ "$stable" -ge 5 ] && break
  if [ $(( $(date +%s) - t0 )) -gt 1200 ]; then echo "not settled after 20 min: $info"; break; fi
  sleep 1
done
echo "settled after $(( $(date +%s) - t0 ))s: documents=$docs indexed=$indexed segments=$segs"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$OUT/mixed_load" --port "$PORT" --collection mixed --connections "$CONNECTIONS" --seconds "$SECONDS_RUN" \
  --warmup "$WARMUP" --dim "$DIM" --ids "$IDS" --write-ratio "$WRITE_RATIO" --top-k "$TOP_K" \
  --server-pid "$SERVER_PID" || true
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

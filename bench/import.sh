#!/usr/bin/env bash
# import.sh: throughput of `tierdb import` (CLI -> HTTP import route -> database), and the
# server's memory during a long streamed import. A benchmark, not a test.
#
#   bench/import.sh BINARY [BASELINE]   e.g. bench/import.sh build-bench/tierdb
#
# With BASELINE (another build's tierdb), each run imports with BINARY then with BASELINE
# (bin=new / bin=base, same file, same machine) and the end prints the medians and the ratio
# new/base: on a shared machine that ratio is the figure to read.
#
# For each of REPS runs: start BINARY on a fresh temp data dir and a free port, then
# `tierdb import FILE --collection bench --create --dimension DIM --metric l2 --quiet` of a file of
# DOCS documents made by bench/import_gen (DIM random floats, two attributes; built next to BINARY
# when missing). Prints one key=value line per run: docs/s and MB/s (wall clock, as the CLI reports
# them), the server's CPU seconds during the import (all threads: parsing, WAL, memtable, and any
# background flush) and docs per server CPU second, the figure that survives a busy machine. The
# load average is printed before each run: figures mean little without it.
#
# With STREAM_GIB=N (e.g. 2) it also streams N GiB of generated NDJSON through
# `import_gen | tierdb import -` (chunked, no file) into a text-only collection (dimension 0, so
# the run measures the import path, not index builds), each document padded to about STREAM_PAD
# bytes, and samples the server's anonymous memory every second: flat memory means the peak stays
# near the memtable size however big the stream. (With tiny documents the peak grows with the
# document count instead: a hot collection keeps a few dozen bytes per document in memory.)
#
# Settings (environment): DOCS=200000 DIM=128 REPS=3 BATCH=1000 FSYNC=always STREAM_GIB=0 STREAM_PAD=4000
# TMPDIR (where data dirs and the file go). Server settings pass through (TIERDB_MEMTABLE_MAX_DOCS...).
set -euo pipefail

BIN=$(realpath "${1:?usage: bench/import.sh BINARY [BASELINE]}")
BASE=${2:+$(realpath "$2")}
HERE=$(cd "$(dirname "$0")" && pwd)
DOCS=${DOCS:-200000}
DIM=${DIM:-128}
REPS=${REPS:-3}
BATCH=${BATCH:-1000}
FSYNC=${FSYNC:-always}
STREAM_GIB=${STREAM_GIB:-0}
STREAM_PAD=${STREAM_PAD:-4000}
GEN=$(dirname "$BIN")/import_gen
if [ ! -x "$GEN" ] || [ "$HERE/import_gen.c" -nt "$GEN" ]; then
  cc -O2 -std=c17 -D_GNU_SOURCE -Wall -Wextra "$HERE/import_gen.c" -o "$GEN"
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tdb-import-bench.XXXXXX")
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

start_server() { # $1: data dir, $2: binary (default BINARY); sets SERVER_PID and URL
  TIERDB_FSYNC=$FSYNC "${2:-$BIN}" serve --data "$1" --listen 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 1 200); do
    URL=$(sed -n 's/^listening on //p' "$WORK/server.out")
    [ -n "$URL" ] && return 0
    sleep 0.05
  done
  echo "server did not start:"; cat "$WORK/server.log"; exit 1
}
stop_server() {
  kill "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""
}
cpu_s() { # CPU seconds (user + system, all threads) of pid $1
  awk -v t="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / t }' "/proc/$1/stat"
}

FILE="$WORK/docs.ndjson"
"$GEN" --count "$DOCS" --dim "$DIM" > "$FILE"
echo "file: $DOCS documents of dimension $DIM, $(($(stat -c %s "$FILE") / 1000000)) MB; fsync $FSYNC; batch $BATCH"
RESULTS="$WORK/results.txt"
: > "$RESULTS"
BINS="new"
[ -n "$BASE" ] && BINS="new base"
for rep in $(seq 1 "$REPS"); do
 for which in $BINS; do
  bin=$BIN
  [ "$which" = base ] && bin=$BASE
  rm -rf "$WORK/data"
  start_server "$WORK/data" "$bin"
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (nproc $(nproc))"
  c0=$(cpu_s "$SERVER_PID")
  t0=$(date +%s.%N)
  out=$("$bin" import "$FILE" --collection bench --create --dimension "$DIM" --metric l2 --batch "$BATCH" \
        --quiet --url "$URL")
  t1=$(date +%s.%N)
  c1=$(cpu_s "$SERVER_PID")
  echo "$out"
  awk -v n="$DOCS" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v bytes="$(stat -c %s "$FILE")" -v rep="$rep" \
    -v which="$which" \
    'BEGIN { w = t1 - t0; c = c1 - c0;
             printf "bin=%s run=%d docs=%d wall_s=%.2f docs_per_s=%.0f mb_per_s=%.1f server_cpu_s=%.2f docs_per_server_cpu_s=%.0f\n",
                    which, rep, n, w, n / w, bytes / 1e6 / w, c, (c > 0 ? n / c : 0) }' | tee -a "$RESULTS"
  stop_server
 done
done
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for which in $BINS; do
  sel=$(grep "^bin=$which " "$RESULTS")
  echo "median bin=$which docs_per_s=$(field docs_per_s <<<"$sel" | median)" \
       "docs_per_server_cpu_s=$(field docs_per_server_cpu_s <<<"$sel" | median)"
done
if [ -n "$BASE" ]; then
  n=$(grep "^bin=new " "$RESULTS"); b=$(grep "^bin=base " "$RESULTS")
  awk -v nd="$(field docs_per_s <<<"$n" | median)" -v bd="$(field docs_per_s <<<"$b" | median)" \
      -v nc="$(field docs_per_server_cpu_s <<<"$n" | median)" -v bc="$(field docs_per_server_cpu_s <<<"$b" | median)" \
      'BEGIN { printf "ratio new/base docs_per_s x%.2f docs_per_server_cpu_s x%.2f\n", nd / bd, nc / bc }'
fi

if [ "$STREAM_GIB" != "0" ]; then
  rm -rf "$WORK/data"
  start_server "$WORK/data"
  curl -s -XPOST "$URL/v1/collections" -H 'Content-Type: application/json' \
       -d '{"name":"stream","dimension":0}' >/dev/null
  bytes=$((STREAM_GIB * 1024 * 1024 * 1024))
  echo "streaming $STREAM_GIB GiB of NDJSON (dimension 0, ~$STREAM_PAD-byte documents) through tierdb import -; load: $(cut -d' ' -f1-3 /proc/loadavg)"
  peak=0
  ( while kill -0 "$SERVER_PID" 2>/dev/null; do
      awk '/^RssAnon:/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null; sleep 1
    done ) > "$WORK/rss.txt" &
  SAMPLER=$!
  t0=$(date +%s.%N)
  "$GEN" --count 0 --dim 0 --pad "$STREAM_PAD" | head -c "$bytes" | "$BIN" import - --collection stream --on-error skip --quiet --url "$URL" || true
  t1=$(date +%s.%N)
  stop_server
  wait "$SAMPLER" 2>/dev/null || true
  peak=$(sort -n "$WORK/rss.txt" | tail -1)
  awk -v t0="$t0" -v t1="$t1" -v b="$bytes" -v peak="$peak" \
    'BEGIN { printf "stream_gib=%.1f wall_s=%.1f mb_per_s=%.1f server_rss_anon_peak_mb=%.0f\n", b / 2^30, t1 - t0, b / 1e6 / (t1 - t0), peak / 1024 }'
  echo "server anonymous memory (MB), sampled every second:"
  awk '{ printf "%d ", $1 / 1024 } END { print "" }' "$WORK/rss.txt" | fold -w 120
fi

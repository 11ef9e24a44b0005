#!/usr/bin/env bash
# run_restart.sh: time to ready after a restart (docs/benchmarks.md).
#
#   bench/run_restart.sh BINARY           e.g. bench/run_restart.sh build-bench/tierdb
#
# 1. Builds build-bench/restart (bench/Makefile) next to BINARY when missing
#    or stale, and runs it on a fresh temp dir: fills DOCS documents into
#    segments plus WAL_DOCS left only in the WAL, then measures tdb_open ->
#    first query through the library, REPS times, warm and cold page cache.
# 2. On the same data dir, REPS times: starts `BINARY serve` and measures
#    the time to its `listening on` line, then the first query over HTTP
#    (which opens the collection and replays the WAL), then a second one
#    (the search alone), then stops it (SIGTERM: a graceful stop flushes
#    nothing, so every run replays the same WAL). The memtable limits are
#    raised so that replay never flushes.
#
# Settings (environment): DOCS=1000000 WAL_DOCS=100000 DIM=128 REPS=3
# TMPDIR (where the data dir goes; it is removed at the end).
set -euo pipefail

BIN=${1:?usage: bench/run_restart.sh BINARY}
BIN=$(realpath "$BIN")
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=$(dirname "$BIN")
DOCS=${DOCS:-1000000}
WAL_DOCS=${WAL_DOCS:-100000}
DIM=${DIM:-128}
REPS=${REPS:-3}

make -s -C "$ROOT" -f bench/Makefile BUILD="$BUILD" restart

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tierdb-bench-restart.XXXXXX")
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "# commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores," \
     "load:$(uptime | sed 's/.*load average://')"
echo "## library (bench/restart.c): $DOCS docs in segments + $WAL_DOCS in the WAL, ${DIM}-d"
"$BUILD/restart" --dir "$WORK/data" --docs "$DOCS" --wal-docs "$WAL_DOCS" --dim "$DIM" \
    --reps "$REPS" --keep 2> >(grep -v ' info ' >&2)

# The same limits as restart.c sets: replay must not flush.
export TIERDB_MEMTABLE_MAX_DOCS=$((WAL_DOCS * 4 + 200000))
export TIERDB_MEMTABLE_MAX_BYTES=$(((WAL_DOCS * 4 + 200000) * (DIM * 4 + 256)))
export TIERDB_LOG_LEVEL=${TIERDB_LOG_LEVEL:-warn}

QUERY=$WORK/query.json
awk -v dim="$DIM" 'BEGIN { srand(7); printf "{\"top_k\":10,\"vector\":[";
    for (i = 0; i < dim; i++) printf "%s%.6f", (i ? "," : ""), rand() * 2 - 1; print "]}" }' >"$QUERY"

ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "## server (tierdb serve + curl)"
: >"$WORK/results"
for rep in $(seq 1 "$REPS"); do
    rm -f "$WORK/fifo"
    mkfifo "$WORK/fifo"
    t0=$(date +%s%N)
    "$BIN" serve --data "$WORK/data" --listen 127.0.0.1:0 >"$WORK/fifo" 2>"$WORK/server.err" &
    SERVER_PID=$!
    exec 3<"$WORK/fifo"
    if ! read -r -t 60 line <&3; then
        echo "server did not start:" >&2
        cat "$WORK/server.err" >&2
        exit 1
    fi
    listen_ms=$(ms_since "$t0")
    port=${line##*:}
    t1=$(date +%s%N)
    out=$(curl -sS -X POST "http://127.0.0.1:$port/v1/collections/bench/query" \
        -H 'Content-Type: application/json' --data-binary @"$QUERY")
    first_ms=$(ms_since "$t1")
    ready_ms=$(ms_since "$t0")
    if [[ $out != *'"results":[{'* ]]; then
        echo "the first query failed: $out" >&2
        exit 1
    fi
    t2=$(date +%s%N)
    curl -sS -o /dev/null -X POST "http://127.0.0.1:$port/v1/collections/bench/query" \
        -H 'Content-Type: application/json' --data-binary @"$QUERY"
    second_ms=$(ms_since "$t2")
    docs=$(curl -sS "http://127.0.0.1:$port/v1/collections/bench" | sed -n 's/.*"documents":\([0-9]*\).*/\1/p')
    kill "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=
    exec 3<&-
    echo "server rep=$rep listening_ms=$listen_ms first_query_ms=$first_ms second_query_ms=$second_ms" \
         "ready_ms=$ready_ms documents=$docs"
    echo "$listen_ms $first_ms $second_ms $ready_ms" >>"$WORK/results"
done
printf 'median server listening_ms=%s first_query_ms=%s second_query_ms=%s ready_ms=%s\n' \
    "$(awk '{print $1}' "$WORK/results" | median)" "$(awk '{print $2}' "$WORK/results" | median)" \
    "$(awk '{print $3}' "$WORK/results" | median)" "$(awk '{print $4}' "$WORK/results" | median)"
echo "# load after:$(uptime | sed 's/.*load average://')"

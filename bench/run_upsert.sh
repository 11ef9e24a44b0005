#!/usr/bin/env bash
# run_upsert.sh: HTTP upsert throughput of `tierdb serve` (docs/benchmarks.md).
#
#   bench/run_upsert.sh BINARY [BASELINE]  e.g. bench/run_upsert.sh build-bench/tierdb
#
# With BASELINE (another build's tierdb, e.g. of the previous commit), each
# repetition runs BINARY then BASELINE back to back (label bin=new / bin=base),
# so both see the same machine, and the end prints the ratio new/base of the
# medians: on a shared machine that ratio is the figure to read.
#
# For each fsync policy (FSYNCS) and client thread count (THREADS), REPS
# times: start BINARY on a fresh temp data dir and a free port, create a
# DIM-d cosine collection, run bench/upsert_http (built next to BINARY by
# bench/Makefile when missing or stale) for SECONDS_PER_RUN after a WARMUP,
# stop the server. Each run prints one key=value line; the end prints the
# median of the REPS runs per setting. The load average is printed before each run: the figures mean
# little without it.
#
# Settings (environment): FSYNCS="always interval" THREADS="4 8" REPS=3
# SECONDS_PER_RUN=20 WARMUP=2 BATCH=1000 DIM=128 TMPDIR (where data dirs go).
# Extra server settings pass through (TIERDB_MEMTABLE_MAX_DOCS, ...).
set -euo pipefail

BIN=${1:?usage: bench/run_upsert.sh BINARY [BASELINE]}
BIN=$(realpath "$BIN")
BASE=${2:+$(realpath "$2")}
HERE=$(cd "$(dirname "$0")" && pwd)
FSYNCS=${FSYNCS:-"always interval"}
THREADS=${THREADS:-"4 8"}
REPS=${REPS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-20}
WARMUP=${WARMUP:-2}
BATCH=${BATCH:-1000}
DIM=${DIM:-128}

GEN=$(dirname "$BIN")/upsert_http
make -s -C "$(dirname "$HERE")" -f bench/Makefile BUILD="$(dirname "$BIN")" upsert_http
BINS="new"
[[ -n $BASE ]] && BINS="new base"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tierdb-bench-upsert.XXXXXX")
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Starts the server ($2: new or base) on a fresh data dir; sets SERVER_PID and PORT.
start_server() {
    local fsync=$1 data=$WORK/data out=$WORK/server.out bin=$BIN
    [[ $2 == base ]] && bin=$BASE
    rm -rf "$data"
    mkdir -p "$data"
    : >"$out"
    TIERDB_FSYNC=$fsync TIERDB_LOG_LEVEL=${TIERDB_LOG_LEVEL:-warn} \
        "$bin" serve --data "$data" --listen 127.0.0.1:0 >"$out" 2>"$WORK/server.err" &
    SERVER_PID=$!
    local deadline=$((SECONDS + 30))
    until grep -q '^listening on http://' "$out"; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null || ((SECONDS > deadline)); then
            echo "server did not start:" >&2
            cat "$WORK/server.err" >&2
            exit 1
        fi
        sleep 0.05
    done
    PORT=$(sed -n 's|^listening on http://[^ ]*:\([0-9]*\)$|\1|p' "$out" | head -1)
}

stop_server() {
    kill "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=
}

RESULTS=$WORK/results.txt
: >"$RESULTS"
echo "# $("$BIN" --version 2>/dev/null || true), commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo '?')" \
     "on $(nproc) cores, data in ${TMPDIR:-/tmp}${BASE:+; baseline $BASE}"
for fsync in $FSYNCS; do
    for threads in $THREADS; do
        for rep in $(seq 1 "$REPS"); do
          for which in $BINS; do
            start_server "$fsync" "$which"
            curl -sf -X POST "http://127.0.0.1:$PORT/v1/collections" \
                -H 'Content-Type: application/json' \
                -d "{\"name\":\"bench\",\"dimension\":$DIM,\"metric\":\"cosine\"}" >/dev/null
            echo "# load:$(uptime | sed 's/.*load average://')"
            line=$("$GEN" --port "$PORT" --collection bench --threads "$threads" \
                --seconds "$SECONDS_PER_RUN" --warmup "$WARMUP" --batch "$BATCH" --dim "$DIM" \
                --server-pid "$SERVER_PID" --label "bin=$which fsync=$fsync rep=$rep")
            echo "$line"
            echo "$line" >>"$RESULTS"
            stop_server
          done
        done
    done
done

# Median per (fsync, threads) of docs/s, MB/s, p50 and p99.
echo "# median of $REPS runs:"
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for fsync in $FSYNCS; do
    for threads in $THREADS; do
        for which in $BINS; do
            sel=$(grep "^bin=$which fsync=$fsync .*threads=$threads " "$RESULTS" || true)
            [[ -z $sel ]] && continue
            printf 'bin=%-4s fsync=%-8s threads=%-2s docs_per_s=%s mb_per_s=%s p50_ms=%s p99_ms=%s server_cores=%s docs_per_server_cpu_s=%s\n' \
                "$which" "$fsync" "$threads" \
                "$(field docs_per_s <<<"$sel" | median)" "$(field mb_per_s <<<"$sel" | median)" \
                "$(field p50_ms <<<"$sel" | median)" "$(field p99_ms <<<"$sel" | median)" \
                "$(field server_cores <<<"$sel" | median)" "$(field docs_per_server_cpu_s <<<"$sel" | median)"
        done
        if [[ -n $BASE ]]; then
            new=$(grep "^bin=new fsync=$fsync .*threads=$threads " "$RESULTS" || true)
            base=$(grep "^bin=base fsync=$fsync .*threads=$threads " "$RESULTS" || true)
            [[ -z $new || -z $base ]] && continue
            awk -v f="$fsync" -v t="$threads" \
                -v nd="$(field docs_per_s <<<"$new" | median)" -v bd="$(field docs_per_s <<<"$base" | median)" \
                -v nc="$(field docs_per_server_cpu_s <<<"$new" | median)" \
                -v bc="$(field docs_per_server_cpu_s <<<"$base" | median)" \
                'BEGIN { printf "ratio new/base fsync=%-8s threads=%-2s docs_per_s x%.2f docs_per_server_cpu_s x%.2f\n", f, t, (bd > 0 ? nd / bd : 0), (bc > 0 ? nc / bc : 0) }'
        fi
    done
done

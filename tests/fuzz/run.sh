#!/usr/bin/env bash
# run.sh OUTDIR SECONDS: runs every fuzz target built in OUTDIR (by
# build.sh) for SECONDS each, one at a time, starting from a scratch copy
# of its seed corpus tests/fuzz/corpus/<target>/ (so runs never grow the
# repository), then replays the whole committed corpus of every target
# (-runs=0), committed crash reproducers included. Exits non-zero when any
# run or replay crashes, leaks, times out or fails a property check.
#
# SECONDS=0 skips fuzzing and only replays the committed corpora (quick;
# what a regression check wants).
#
# Environment:
#   FUZZ_TARGETS  space-separated targets to run (default: all in OUTDIR)
#   FUZZ_ARGS     extra libFuzzer flags for the fuzzing runs
#   FUZZ_KEEP=1   keep the scratch corpora (printed) to inspect or merge
#
# The targets run with -close_fd_mask=2: the library's own stderr log (a
# line per corrupt input) is dropped; libFuzzer's output, sanitizer
# reports and failed property checks still show. Run a crash input by hand
# to see the log. Crash artifacts go to OUTDIR/artifacts/<target>-crash-<sha1>;
# see docs/fuzzing.md for minimizing one and committing it as a reproducer.
set -uo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 OUTDIR SECONDS" >&2
  exit 2
fi
OUT=$(cd "$1" && pwd) || exit 2
SECS=$2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CORPUS=$HERE/corpus
DICTS=$HERE/dict

targets=${FUZZ_TARGETS:-$(cd "$OUT" && ls fuzz_* 2>/dev/null | grep -v '\.' || true)}
if [ -z "$targets" ]; then
  echo "run.sh: no fuzz targets in $OUT (run tests/fuzz/build.sh $OUT first)" >&2
  exit 2
fi

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/tdbfuzz-run.XXXXXX")
# The targets' own scratch files (databases, WAL dirs) go here too, so a
# crashed target leaves nothing behind after this script; on tmpfs when
# there is one, since the storage targets fsync on every input.
SHM_BASE=${TMPDIR:-/tmp}
[ -d /dev/shm ] && [ -w /dev/shm ] && SHM_BASE=/dev/shm
export FUZZ_TMPDIR=$(mktemp -d "$SHM_BASE/tdbfuzz-tmp.XXXXXX")
mkdir -p "$OUT/artifacts"
cleanup() {
  rm -rf "$FUZZ_TMPDIR"
  if [ "${FUZZ_KEEP:-0}" = 1 ]; then echo "run.sh: scratch kept in $SCRATCH" >&2; else rm -rf "$SCRATCH"; fi
}
trap cleanup EXIT

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0
failed=0
failures=()

run_one() { # name log cmd...
  local name=$1 log=$2; shift 2
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    echo "ok      $name"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAILED  $name (log: $log)"
    grep -E 'ERROR: |runtime error|fuzz property failed|Test unit written|SUMMARY' "$log" | head -8 | sed 's/^/        /'
    if [ "${FUZZ_KEEP:-0}" != 1 ]; then cp "$log" "$OUT/artifacts/$(basename "$log")"; fi
  fi
}

for t in $targets; do
  bin=$OUT/$t
  if [ ! -x "$bin" ]; then
    echo "run.sh: $bin missing" >&2
    failed=$((failed + 1))
    failures+=("$t (not built)")
    continue
  fi
  dict=()
  [ -f "$DICTS/$t.dict" ] && dict=(-dict="$DICTS/$t.dict")
  if [ "$SECS" -gt 0 ]; then
    work=$SCRATCH/corpus-$t
    mkdir -p "$work"
    # Seeds only: committed crash reproducers would stop the run at once;
    # the replay below runs them.
    if [ -d "$CORPUS/$t" ]; then
      find "$CORPUS/$t" -maxdepth 1 -type f ! -name 'crash-*' -exec cp {} "$work/" \;
    fi
    # shellcheck disable=SC2086
    run_one "fuzz $t ${SECS}s" "$SCRATCH/$t.fuzz.log" \
      "$bin" -max_total_time="$SECS" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 -close_fd_mask=2 \
      -artifact_prefix="$OUT/artifacts/$t-" "${dict[@]}" ${FUZZ_ARGS:-} "$work"
    grep -E '^stat::number_of_executed_units|^Done ' "$SCRATCH/$t.fuzz.log" | tail -1 | sed 's/^/        /'
  fi
  if [ -d "$CORPUS/$t" ]; then
    run_one "replay $t ($(find "$CORPUS/$t" -type f | wc -l) inputs)" "$SCRATCH/$t.replay.log" \
      "$bin" -runs=0 -timeout=20 -rss_limit_mb=2048 -close_fd_mask=2 -artifact_prefix="$SCRATCH/replay-$t-" "$CORPUS/$t"
  fi
done

if [ "$failed" -gt 0 ]; then
  echo "run.sh: failures:"
  for f in "${failures[@]}"; do echo "  $f"; done
fi
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

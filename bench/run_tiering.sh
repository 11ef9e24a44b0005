#!/usr/bin/env bash
# run_tiering.sh: the tiering benchmarks of issue 7 (docs/benchmarks.md,
# "Tiering").
#
#   bench/run_tiering.sh BUILD_DIR [track|cycle|moves ...]   e.g. bench/run_tiering.sh build-bench
#
# Builds BUILD_DIR/tiering and BUILD_DIR/tiering_notouch (bench/Makefile;
# the libraries must already be built in BUILD_DIR), then runs each part
# asked for (all three by default) on a fresh temp dir, with the load
# average printed before and after each:
#   track  access tracking per request: tiering track, then the gets again
#          with tracking compiled out (tiering_notouch), twice each,
#          alternating, so both see the same machine; the medians of both
#          and their difference are printed last;
#   cycle  one policy cycle over COLLECTIONS collections (and their creation);
#   moves  DOCS x DIM documents: hot -> warm -> cold -> first query -> hot,
#          and query latency in the hot and warm tiers.
#
# Settings (environment): REPS (default: 5 for track and cycle, 3 for moves)
# OPS=2000000 GETS=100000 COLLECTIONS=10000 DOCS=100000 DIM=512
# QUERIES=1000 TAIL=10000 TAIL_REPS=1; TMPDIR (where the data dirs go; removed
# after). MOVES_DIR=dir keeps the filled collection there and reuses it on the
# next run (filling 100,000 x 512-d builds every graph: ~10 min CPU).
set -euo pipefail

BUILD=${1:?usage: bench/run_tiering.sh BUILD_DIR [track|cycle|moves ...]}
shift
PARTS=${*:-track cycle moves}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
OPS=${OPS:-2000000}
GETS=${GETS:-100000}
COLLECTIONS=${COLLECTIONS:-10000}
DOCS=${DOCS:-100000}
DIM=${DIM:-512}
QUERIES=${QUERIES:-1000}
TAIL=${TAIL:-10000}
TAIL_REPS=${TAIL_REPS:-1}
export TIERDB_LOG_LEVEL=${TIERDB_LOG_LEVEL:-warn}

make -s -C "$ROOT" -f bench/Makefile BUILD="$BUILD" tiering

reps() { if [[ -n ${REPS:-} ]]; then echo "--reps $REPS"; fi; }
echo "# commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') + working tree," \
     "$(nproc) cores, $(date -u +%FT%TZ), load:$(uptime | sed 's/.*load average://')"

for part in $PARTS; do
    case $part in
    track)
        out=$(mktemp "${TMPDIR:-/tmp}/tierdb-bench-track.XXXXXX")
        # shellcheck disable=SC2046
        for _ in 1 2; do
            "$BUILD/tiering" track --ops "$OPS" --gets "$GETS" $(reps) | tee -a "$out"
            "$BUILD/tiering_notouch" track --gets "$GETS" $(reps) | tee -a "$out"
        done
        # Medians over both rounds of every rep line, then on - off for the gets.
        awk '
            $1 == "track" {
                label = ""; for (i = 2; i < NF - 2; i++) label = label (i > 2 ? " " : "") $i
                split($(NF - 1), c, "="); split($NF, w, "=")
                n[label]++; cpu[label, n[label]] = c[2]; wall[label, n[label]] = w[2]
            }
            function med(arr, label, k,   i, j, t, v) {
                for (i = 1; i <= k; i++) v[i] = arr[label, i]
                for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
                return v[int((k + 1) / 2)]
            }
            END {
                for (l in n) {
                    mc[l] = med(cpu, l, n[l]); mw[l] = med(wall, l, n[l])
                    printf "overall %s reps=%d ns_per_call_cpu=%.1f ns_per_call_wall=%.1f\n", l, n[l], mc[l], mw[l]
                }
                for (l in n) if (l ~ /tracking=on/) {
                    off = l; sub(/tracking=on/, "tracking=off", off)
                    if (off in n)
                        printf "tracking adds to %s: cpu %+.1f ns, wall %+.1f ns\n", off, mc[l] - mc[off], mw[l] - mw[off]
                }
            }' "$out" | sort
        rm -f "$out"
        ;;
    cycle)
        # shellcheck disable=SC2046
        "$BUILD/tiering" cycle --collections "$COLLECTIONS" $(reps)
        ;;
    moves)
        args=(--docs "$DOCS" --dim "$DIM" --queries "$QUERIES" --tail "$TAIL" --tail-reps "$TAIL_REPS")
        if [[ -n ${MOVES_DIR:-} ]]; then
            if [[ ! -e $MOVES_DIR/catalog.db ]]; then
                "$BUILD/tiering" moves --dir "$MOVES_DIR" --fill-only "${args[@]}"
            fi
            # shellcheck disable=SC2046
            "$BUILD/tiering" moves --dir "$MOVES_DIR" --no-fill "${args[@]}" $(reps)
        else
            # shellcheck disable=SC2046
            "$BUILD/tiering" moves "${args[@]}" $(reps)
        fi
        ;;
    *)
        echo "unknown part: $part (track, cycle, moves)" >&2
        exit 2
        ;;
    esac
done
echo "# load after:$(uptime | sed 's/.*load average://')"

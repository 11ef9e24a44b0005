#!/usr/bin/env bash
# build.sh OUTDIR: builds every libFuzzer target tests/fuzz/fuzz_*.c into
# OUTDIR with clang, AddressSanitizer and UndefinedBehaviorSanitizer.
#
# The library sources of the layers the targets use are compiled once into
# OUTDIR/obj (instrumented for coverage, -fsanitize=fuzzer-no-link) and
# archived into OUTDIR/libtdb_fuzz.a; each target links that archive, so it
# pulls in only the objects it needs. Objects are rebuilt when their source
# or any header is newer. CMakeLists.txt is not involved.
#
# Environment:
#   CC            compiler (default: clang)
#   FUZZ_JOBS     parallel compiles (default: 2)
#   FUZZ_TARGETS  space-separated target names to build (default: all)
#   FUZZ_CFLAGS   extra compiler flags
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
OUT=$1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CC=${CC:-clang}
JOBS=${FUZZ_JOBS:-2}

if ! command -v "$CC" >/dev/null 2>&1; then
  echo "build.sh: $CC not found (apt-get install clang libclang-rt-dev)" >&2
  exit 1
fi

mkdir -p "$OUT/obj"
OUT=$(cd "$OUT" && pwd)

# UB is fatal so the fuzzer stops at it like at an ASan report.
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS="-std=c17 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Wno-unused-parameter -fno-strict-aliasing $SAN ${FUZZ_CFLAGS:-}"
INC="-I$ROOT/include -I$ROOT/src"

# Layers below the HTTP server, lowest first (DESIGN.md); missing or empty
# layers are skipped. The server and the CLI have main-level code of their own.
LAYERS="util vec text filter storage objstore snapshot tier db"
# Single sources of the layers above that a target needs (their layer's
# other files have main-level code): the config file parser.
EXTRA_SOURCES="cli/config.c"

# The newest header decides whether every object is stale (cheap and safe).
newest_header=$(find "$ROOT/include" "$ROOT/src" -name '*.h' -printf '%T@\n' | sort -n | tail -1)

compile_one() { # src obj extra-flags...
  local src=$1 obj=$2; shift 2
  if [ -f "$obj" ]; then
    local o s
    o=$(stat -c %Y "$obj")
    s=$(stat -c %Y "$src")
    if [ "$o" -ge "$s" ] && [ "$o" -ge "${newest_header%.*}" ]; then return 0; fi
  fi
  # shellcheck disable=SC2086
  $CC $CFLAGS -fsanitize=fuzzer-no-link $INC "$@" -c "$src" -o "$obj.tmp" && mv "$obj.tmp" "$obj"
}
export -f compile_one
export CC CFLAGS INC newest_header

jobs_file=$OUT/obj/jobs.txt
: >"$jobs_file"
objs=()
for layer in $LAYERS; do
  for src in "$ROOT"/src/"$layer"/*.c; do
    [ -e "$src" ] || continue
    obj=$OUT/obj/${layer}_$(basename "${src%.c}").o
    extra=""
    case $src in
      *_avx2.c) extra="-mavx2 -mfma" ;;
      *_avx512.c) extra="-mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512vpopcntdq -mfma -mavx2" ;;
    esac
    # No trailing blank: xargs -L would join the next line to this one.
    printf '%s %s%s\n' "$src" "$obj" "${extra:+ $extra}" >>"$jobs_file"
    objs+=("$obj")
  done
done

for rel in $EXTRA_SOURCES; do
  src=$ROOT/src/$rel
  [ -e "$src" ] || continue
  obj=$OUT/obj/$(dirname "$rel")_$(basename "${src%.c}").o
  printf '%s %s\n' "$src" "$obj" >>"$jobs_file"
  objs+=("$obj")
done

echo "build.sh: compiling ${#objs[@]} library sources into $OUT/obj" >&2
if ! xargs -P "$JOBS" -L 1 bash -c 'compile_one "$@"' _ <"$jobs_file"; then
  echo "build.sh: a library source failed to compile" >&2
  exit 1
fi
rm -f "$OUT/libtdb_fuzz.a"
ar rcs "$OUT/libtdb_fuzz.a" "${objs[@]}"

# External libraries, as CMakeLists.txt links them per layer; the archive
# pulls in only the objects a target needs, so unused ones cost nothing.
LIBS="-lsqlite3 -lroaring -lstemmer -lm -lpthread"
for pc in libcurl libcrypto libzstd zlib libutf8proc; do
  if pkg-config --exists "$pc" 2>/dev/null; then LIBS="$LIBS $(pkg-config --libs "$pc")"; fi
done
for lib in snappy; do
  if [ -e "/usr/lib/x86_64-linux-gnu/lib$lib.so" ] || ldconfig -p 2>/dev/null | grep -q "lib$lib.so"; then
    LIBS="$LIBS -l$lib"
  fi
done

# The seed generator is a plain ASan program (no fuzzer runtime).
targets=${FUZZ_TARGETS:-$(cd "$HERE" && ls fuzz_*.c | sed 's/\.c$//')}
status=0
for t in $targets; do
  echo "build.sh: $t" >&2
  # shellcheck disable=SC2086
  if ! $CC $CFLAGS -fsanitize=fuzzer $INC -I"$HERE" "$HERE/$t.c" "$OUT/libtdb_fuzz.a" $LIBS -o "$OUT/$t"; then
    echo "build.sh: target $t failed to build" >&2
    status=1
  fi
done
if [ -f "$HERE/gen_seeds.c" ] && [ -z "${FUZZ_TARGETS:-}" ]; then
  # shellcheck disable=SC2086
  $CC $CFLAGS $INC -I"$HERE" "$HERE/gen_seeds.c" "$OUT/libtdb_fuzz.a" $LIBS -o "$OUT/gen_seeds" || status=1
fi
exit $status

#!/usr/bin/env bash
# gen_duckdb_seeds.sh CORPUS_DIR: writes the Parquet seeds of fuzz_parquet
# that another implementation made: DuckDB (through
# tests/snapshot/duckdb_check.mjs, so scripts/test-peers.sh must have run)
# writes seven rows with every attribute type and nulls, as V1 and V2
# files, uncompressed, ZSTD and SNAPPY. DuckDB's V2 files use encodings
# tierdb's writer never does (DELTA_BINARY_PACKED, DELTA_LENGTH_BYTE_ARRAY,
# BYTE_STREAM_SPLIT), so the fuzzer starts inside those decoders too.
# Outputs CORPUS_DIR/fuzz_parquet/seed-duckdb-*; run once, commit them.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 CORPUS_DIR" >&2
  exit 2
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=$1/fuzz_parquet
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp/rows.jsonl" <<'PY'
import json, struct, sys
titles = ["red shoes", "red shoes", "h\u00e9llo \u65e5\u672c", None, "red shoes", "blue", "x" * 40]
rows = []
for i in range(7):
    vec = ''.join('%08x' % struct.unpack('<I', struct.pack('<f', v))[0] for v in (float(i), 0.5, -1.0 - i))
    price = None if i % 3 == 2 else '%016x' % struct.unpack('<Q', struct.pack('<d', i * 1.25 - 3))[0]
    rows.append(dict(id="doc-%d" % i, vector=vec, title=titles[i], year=None if i == 3 else 2000 + i * 7 - i * i,
                     price=price, ok=None if i == 4 else i % 2 == 0, tags=None if i == 1 else ["sale", "new"][:i % 3],
                     nums=None if i == 5 else list(range(i)), attributes=json.dumps({"k": i})))
open(sys.argv[1], 'w').write(''.join(json.dumps(r) + '\n' for r in rows))
PY
for spec in "UNCOMPRESSED V2 3" "UNCOMPRESSED V1 4" "ZSTD V2 100" "SNAPPY V1 100"; do
  set -- $spec
  name=seed-duckdb-$(echo "$1-$2" | tr 'A-Z' 'a-z')
  node "$HERE/../snapshot/duckdb_check.mjs" write "$tmp/rows.jsonl" "$OUT/$name" "$1" "$2" "$3" >/dev/null
done
ls "$OUT"/seed-duckdb-*

#!/usr/bin/env bash
# test-peers.sh: installs the npm packages the tests start as peers (never
# linked into the product): s3rver (an S3 server for tests/objstore) and
# @duckdb/node-api (reads our Parquet snapshots).
#
# Where: $TDB_NODE_PEERS, default <repo>/build-peers (ignored by git). The
# tests look in the same place.
# Idempotent and offline-safe: when both packages are already there at the
# pinned versions it touches nothing and needs no network; otherwise one
# `npm install` of what is pinned below.
# Needs node and npm on PATH (Debian: nodejs, npm); exits non-zero with a
# message saying what is missing.
set -euo pipefail

S3RVER_VERSION=3.7.1
DUCKDB_VERSION=1.5.6-r.1

repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${TDB_NODE_PEERS:-$repo/build-peers}"

# Prints the version field of an installed package, or nothing.
installed_version() {
  local pj="$dir/node_modules/$1/package.json"
  [ -f "$pj" ] || return 0
  node -e 'try { process.stdout.write(require(process.argv[1]).version || "") } catch (e) {}' "$pj"
}

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "test-peers.sh: '$tool' not found on PATH; install Node.js and npm (Debian: apt-get install nodejs npm)" >&2
    exit 1
  fi
done

if [ "$(installed_version s3rver)" = "$S3RVER_VERSION" ] &&
   [ "$(installed_version @duckdb/node-api)" = "$DUCKDB_VERSION" ] &&
   [ -x "$dir/node_modules/.bin/s3rver" ]; then
  exit 0
fi

mkdir -p "$dir"
if [ ! -f "$dir/package.json" ]; then
  # A private manifest so npm installs here and not in a parent directory.
  printf '{\n  "name": "tierdb-test-peers",\n  "private": true\n}\n' > "$dir/package.json"
fi
echo "test-peers.sh: installing s3rver@$S3RVER_VERSION and @duckdb/node-api@$DUCKDB_VERSION into $dir"
npm install --prefix "$dir" --no-audit --no-fund --save-exact --loglevel=error \
  "s3rver@$S3RVER_VERSION" "@duckdb/node-api@$DUCKDB_VERSION"

if [ "$(installed_version s3rver)" != "$S3RVER_VERSION" ] ||
   [ "$(installed_version @duckdb/node-api)" != "$DUCKDB_VERSION" ]; then
  echo "test-peers.sh: npm finished but the pinned versions are not in $dir/node_modules" >&2
  exit 1
fi

#!/usr/bin/env bash
# deps.sh: install every Debian package the build, the tests and the benchmarks need.
# Idempotent: when every package is present it does nothing; otherwise one
# `apt-get update`, then `apt-get install -y` of what is missing.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config clang
  libsqlite3-dev libmicrohttpd-dev libcurl4-openssl-dev
  libzstd-dev libsnappy-dev libroaring-dev libstemmer-dev libutf8proc-dev
  libcmocka-dev libclang-rt-14-dev libssl-dev zlib1g-dev
  python3 python3-numpy python3-botocore python3-prometheus-client
  zstd unicode-data sqlite3 curl ca-certificates
)
# Node.js runs the test peers (s3rver, DuckDB); a machine may already have
# a newer one outside Debian's packages, which is fine.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PKGS+=(nodejs npm)
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

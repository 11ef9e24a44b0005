#!/usr/bin/env bash
# deps.sh: install every Debian package the build, the tests and the benchmarks need.
# Idempotent: when every package is present it does nothing; otherwise one
# `apt-get update`, then `apt-get install -y` of what is missing.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config clang
  libsqlite3-dev libmicrohttpd-dev libcurl4-openssl-dev
  libzstd-dev libsnappy-dev libroaring-dev libstemmer-dev libutf8proc-dev
  libcmocka-dev
  python3 python3-numpy zstd unicode-data sqlite3 curl ca-certificates
)

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

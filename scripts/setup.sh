#!/usr/bin/env bash
# Installs everything sglc needs on Debian 12, non-interactively.
# Idempotent: packages already present are left alone. Needs root (or sudo).
set -euo pipefail

PKGS=(
  build-essential pkg-config meson ninja-build re2c bison
  libcmocka-dev libffi-dev libjansson-dev libpcre2-dev libopenblas-dev
  libmicrohttpd-dev libedit-dev libcurl4-openssl-dev libicu-dev
  clang libclang-rt-14-dev python3 curl
)

missing=()
# Node.js + npm run the official openai client in tests/http (any existing
# node/npm, e.g. a nodesource build that bundles npm, is kept).
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || PKGS+=(npm)

for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# tests/http: the openai npm package, pinned by package-lock.json.
HTTP_TESTS="$(cd "$(dirname "$0")/.." && pwd)/tests/http"
if [ -f "$HTTP_TESTS/package-lock.json" ] && [ ! -f "$HTTP_TESTS/node_modules/openai/package.json" ]; then
  (cd "$HTTP_TESTS" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "setup: all packages present"

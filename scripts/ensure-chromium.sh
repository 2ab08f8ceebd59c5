#!/usr/bin/env bash
# Debian's Chromium for the real-browser tests (Playwright drives it; no browser is downloaded),
# installing the package first when it is missing. Prints the browser's path; fails loudly when
# it cannot be installed, so that the browser tests fail rather than skip.
set -euo pipefail
find_chromium() { command -v chromium || command -v chromium-browser || true; }
path=$(find_chromium)
if [ -z "$path" ]; then
  echo "installing Chromium (Debian package)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq chromium >&2
  path=$(find_chromium)
fi
if [ -z "$path" ]; then
  echo "Chromium is not installed and could not be installed" >&2
  exit 1
fi
echo "$path"

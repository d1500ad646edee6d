#!/usr/bin/env bash
# Installs what protomodel needs on a fresh Debian 12 machine (idempotent, needs root or sudo):
# OpenMPI, OpenBLAS, pkg-config, rsvg-convert (plots to PNG), strace (the tests' durability check), and the King
# James Bible text used as the default corpus.
set -euo pipefail
pkgs=(libopenmpi-dev openmpi-bin libopenblas-dev pkg-config bible-kjv bible-kjv-text librsvg2-bin strace)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "setup: swift not found on PATH (need Swift 5.9+)" >&2; exit 1; }
pkg-config --exists openblas ompi-c || { echo "setup: pkg-config cannot find openblas/ompi-c" >&2; exit 1; }
echo "setup: system packages ok"
# Default corpus: the King James Bible from Debian's bible-kjv (public domain), as plain text.
cd "$(dirname "$0")/.."
if [ ! -s data/kjv.txt ]; then
  mkdir -p data
  bible -l 100000 "gen1:1-rev22:21" > data/kjv.txt.tmp && mv data/kjv.txt.tmp data/kjv.txt
  echo "setup: wrote data/kjv.txt ($(wc -c < data/kjv.txt) bytes)"
fi

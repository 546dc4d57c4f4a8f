#!/usr/bin/env bash
# Packs what the benchmarks need into DIR (default .bench-pack/, ignored by
# git) for a bare x86-64 Linux box with no compiler and no package registry
# (how the 16-CPU runs in bench-results/2026-11-29-16cpu*/ were made):
# the stripped release heavylift, wrk, nginx and taskset with the shared
# libraries they load beyond glibc's, the actix-web peer when ACTIX_BIN names
# it, and bare-box-run.sh. Copy the repository with DIR in it, then there:
#
#   OUT=/some/dir DIR/run.sh          # scaling, worker round trips, rows beside nginx
#   SKIP_SCALING=1 PAIRS=5 OUT=... DIR/run.sh
#   OUT=/some/dir DIR/ab.sh           # A-B against OLD_BIN (packed when set)
#
# The box needs python3 and a kernel with io_uring (5.19+ for the ring flags).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${1:-.bench-pack}
rm -rf "$DIR"
mkdir -p "$DIR/bin" "$DIR/real" "$DIR/lib" "$DIR/fallback"
bin=$(scripts/release-bin.sh)
strip -o "$DIR/real/heavylift" "$bin"
PATH=$PATH:/usr/sbin:/sbin
for tool in wrk nginx; do
  path=$(command -v "$tool") || { echo "bare-box-pack.sh: $tool is not installed here" >&2; exit 2; }
  cp "$path" "$DIR/real/"
  # Its libraries, glibc's own left to the box.
  ldd "$path" | awk '/=> \// {print $3}' | grep -Ev '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
    while read -r lib; do cp -L "$lib" "$DIR/lib/"; done
  printf '#!/bin/sh\nD=$(cd "$(dirname "$0")/.." && pwd)\nLD_LIBRARY_PATH=$D/lib exec "$D/real/%s" "$@"\n' "$tool" >"$DIR/bin/$tool"
  chmod +x "$DIR/bin/$tool"
done
cp "$(command -v taskset)" "$DIR/fallback/"
if [ -n "${ACTIX_BIN:-}" ]; then cp "$ACTIX_BIN" "$DIR/real/peer-actix"; fi
if [ -n "${OLD_BIN:-}" ]; then strip -o "$DIR/real/heavylift-old" "$OLD_BIN"; fi
cp scripts/bench/bare-box-run.sh "$DIR/run.sh"
cp scripts/bench/bare-box-ab.sh "$DIR/ab.sh"
du -sh "$DIR"

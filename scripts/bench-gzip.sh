#!/usr/bin/env bash
# POST /gzip through the server against `gzip -6` on the same CPU, for the
# same bytes (issue #12's target: within 10 %). Usage:
#   scripts/bench-gzip.sh [MiB]      # default 1
# Starts a release `serve` with I/O on CPU 0 and compute on CPU 1 (the last
# CPU when there are more), sends the body 20 times on one keep-alive
# connection, and times `taskset -c <compute> gzip -6` on the same file 20
# times, less a process start (gzip on an empty input). Prints MB/s of each,
# their ratio and the machine; exits 1 when the server is more than 10 %
# slower. Needs python3, gzip and taskset (util-linux).
set -euo pipefail
cd "$(dirname "$0")/.."
mib="${1:-1}"
bin=$(scripts/release-bin.sh)
cpus=$(nproc)
compute=$((cpus - 1))
io=0
[ "$cpus" -ge 2 ] || { echo "bench-gzip.sh: needs 2 CPUs (one for I/O, one for the job)" >&2; exit 2; }
exec python3 scripts/bench/gzip_vs_cli.py "$bin" "$io" "$compute" "$mib"

#!/usr/bin/env bash
# Runs every test: installs what the tests need on a fresh machine (Debian
# packages and prometheus_client's real Prometheus parser), then cargo test,
# then the Python worker module's unit tests, then the multi-instance
# deployment behind a real nginx (scripts/test-nginx.sh, which installs nginx
# and builds a release binary), then a 1-second smoke run of
# scripts/bench-scaling.sh (installs wrk). Arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

# glommio's build script needs git, sh and a C compiler.
need_apt=()
command -v git >/dev/null || need_apt+=(git)
command -v cc >/dev/null || need_apt+=(gcc)
command -v python3 >/dev/null || need_apt+=(python3 python3-pip)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi
python3 -c 'import prometheus_client' 2>/dev/null \
  || python3 -m pip install --quiet prometheus_client \
  || python3 -m pip install --quiet --break-system-packages prometheus_client

# io_uring rings need locked memory: glommio refuses to start below 512 KiB.
if [ "$(ulimit -l)" != unlimited ] && [ "$(ulimit -l)" -lt 1024 ]; then
  ulimit -l 1024 || echo "warning: RLIMIT_MEMLOCK is $(ulimit -l) KiB; glommio needs 512" >&2
fi

cargo test "$@"
# The Python worker module (docs/worker-protocol.md) on its own.
python3 -m unittest discover -s python
scripts/test-nginx.sh
# The scaling benchmark, end to end in 1-second runs (a smoke test: on a
# 2-CPU machine its one step shares a CPU and measures nothing).
OUT=$(mktemp -d) scripts/bench-scaling.sh --smoke

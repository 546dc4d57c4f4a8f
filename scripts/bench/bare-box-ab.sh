#!/usr/bin/env bash
# Run on a bare box from the folder bare-box-pack.sh made with OLD_BIN set:
# /fast and churn A-B pairs of the packed heavylift against OLD_BIN's, with
# the server on CPU 0 and wrk on CPUs 2-5 of its own (so the server, not
# wrk, is the bound and req/s follows its CPU cost per request), then
# bench-conns.sh's rows beside nginx for the packed build. OUT must exist.
# Knobs: PAIRS (8), CPAIRS (6), SECS (4), GEN (2-5), WT (4), IDLE (15000).
set -uo pipefail
D=$(cd "$(dirname "$0")" && pwd)
cd "$D/.."
export PATH=$D/bin:$PATH:$D/fallback HEAVYLIFT_BIN=$D/real/heavylift PYTHONUNBUFFERED=1
exec > >(tee "$OUT/log.txt") 2>&1
echo "== machine"; date -Is; uname -r; nproc
ulimit -l unlimited 2>/dev/null; ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ -x "$D/real/heavylift-old" ] || { echo "no heavylift-old in the pack (OLD_BIN)"; exit 2; }
ab() {
  SERVER_CPU=0 COMPUTE_CPU=1 GEN_CPUS=${GEN:-2-5} WRK_THREADS=${WT:-4} SECS=${SECS:-4} \
    timeout 200 scripts/bench-ab.sh "$D/real/heavylift-old" "$D/real/heavylift" "$1"
}
echo "== A-B /fast"; T0=$SECONDS; ab "${PAIRS:-8}"; echo "($((SECONDS - T0)) s)"
echo "== A-B churn"; T0=$SECONDS; CHURN=1 ab "${CPAIRS:-6}"; echo "($((SECONDS - T0)) s)"
echo "== conns"; T0=$SECONDS
A=; [ -x "$D/real/peer-actix" ] && A=$D/real/peer-actix
OUT=/tmp/res-conns PAIRS=4 SECS=4 IDLE_CONNS=${IDLE:-15000} SERVER_CPU=0 COMPUTE_CPU=1 GEN_CPUS=2,3,4,5 \
  WRK_THREADS=4 ACTIX_BIN=$A timeout 240 scripts/bench-conns.sh
echo "rc=$? ($((SECONDS - T0)) s)"
tar czf "$OUT/conns.tgz" -C /tmp res-conns 2>/dev/null
echo "== done $(date -Is)"

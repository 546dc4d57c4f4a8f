#!/usr/bin/env bash
# Run on a bare box from the folder bare-box-pack.sh made: the scaling table,
# the worker round trips and the rows beside nginx/actix, each part packed
# into $OUT as it ends (OUT must exist). Knobs: SKIP_SCALING, DURATION,
# PAIRS, and for a smaller box CLIENT (2), GEN (2,3,4,5), WT (4).
set -uo pipefail
D=$(cd "$(dirname "$0")" && pwd)
cd "$D/.."
export PATH=$D/bin:$PATH:$D/fallback HEAVYLIFT_BIN=$D/real/heavylift PYTHONUNBUFFERED=1
R=/tmp/res; mkdir -p $R
exec > >(tee $OUT/log.txt) 2>&1
echo "== machine"; date -Is; uname -a; nproc; lscpu | head -25; free -g | head -2; ulimit -n -Hn -l
for t in taskset curl awk python3 lscpu getconf; do printf '%s: %s\n' $t "$(command -v $t || echo MISSING)"; done
python3 -V
ulimit -l unlimited 2>/dev/null; ulimit -n 20000 2>/dev/null || ulimit -n $(ulimit -Hn)
echo "== sanity"
timeout 10 $HEAVYLIFT_BIN serve --listen 127.0.0.1:18999 --log-level info > $R/sanity.log 2>&1 &
SP=$!
ok=0; for i in $(seq 50); do python3 -c 'import urllib.request;print(urllib.request.urlopen("http://127.0.0.1:18999/fast?id=7",timeout=2).read())' 2>/dev/null && { ok=1; break; }; sleep 0.1; done
kill $SP 2>/dev/null; wait $SP; cat $R/sanity.log | head -20
[ $ok = 1 ] || { echo "SANITY FAILED: heavylift does not serve here"; exit 3; }
pack() { tar czf $OUT/$1.tgz -C $R $1 2>/dev/null; ls -la $OUT; }
if [ -z "${SKIP_SCALING:-}" ]; then echo "== scaling"; T0=$SECONDS
DURATION=${DURATION:-8} OUT=$R/scaling timeout 200 scripts/bench-scaling.sh; echo "rc=$? ($((SECONDS-T0)) s)"; pack scaling; fi
echo "== workers"; T0=$SECONDS
OUT=$R/workers SECS=${WSECS:-3} ROUNDS=${ROUNDS:-3} JOBS=5 IO_CPU=0 COMPUTE_CPU=1 CLIENT_CPUS=${CLIENT:-2} PEERS=/nonexistent timeout 120 scripts/bench-workers.sh; echo "rc=$? ($((SECONDS-T0)) s)"; pack workers
echo "== conns"; T0=$SECONDS
A=; [ -x $D/real/peer-actix ] && A=$D/real/peer-actix
OUT=$R/conns PAIRS=${PAIRS:-4} SECS=${CSECS:-4} IDLE_CONNS=${IDLE:-15000} SERVER_CPU=0 COMPUTE_CPU=1 GEN_CPUS=${GEN:-2,3,4,5} WRK_THREADS=${WT:-4} ACTIX_BIN=$A timeout 240 scripts/bench-conns.sh; echo "rc=$? ($((SECONDS-T0)) s)"; pack conns
echo "== done $(date -Is)"

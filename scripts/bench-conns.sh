#!/usr/bin/env bash
# Issue 16's rows beside nginx (and actix-web when ACTIX_BIN names its
# binary, built from ../shared/peers/actix): server CPU and p99 per /fast
# request, Connection: close churn, and memory per idle keep-alive
# connection.
#
#   scripts/bench-conns.sh            # about 3 minutes
#   PAIRS=3 SECS=2 IDLE_CONNS=2000 scripts/bench-conns.sh
#
# Two layouts (LAYOUT):
#   pinned  (default) as scripts/bench.sh: each server's request-handling
#           process or I/O core on CPU 0 (heavylift: --io-cores 0
#           --compute-cores 1), wrk and the idle-connection client on CPU 1.
#   shared  issue 16's own: every server and wrk under `taskset -c
#           SHARED_CPUS` (0,1), so they compete for both CPUs and a server's
#           CPU per request also decides how much CPU wrk gets; heavylift
#           keeps its I/O core on SERVER_CPU and compute on COMPUTE_CPU (its
#           defaults on 2 CPUs).
#   cpu/req  `wrk -t1 -c32 -d SECS /fast?id=1`: the serving process's
#            utime+stime over the run (from /proc, 100 Hz ticks) divided by
#            its requests; PAIRS interleaved runs per server, medians;
#            also wrk's p99 latency of those runs (median), and the
#            geometric mean of each run's ratio to nginx's run of the same
#            round (issue 16's "paired geomean").
#   churn    the same with `-H "Connection: close"` (one request per
#            connection): req/s and server CPU per connection, medians.
#   idle     scripts/bench/idle_conns.py: IDLE_CONNS (default 15000)
#            keep-alive connections, one request each, held; RSS growth of
#            the serving process per connection, and every one served again.
#            Measured first, on fresh servers.
#   RSS after  each serving process's RSS once all runs are done (a heap
#            that grows with the connections served shows here).
# Knobs: LAYOUT (pinned), PAIRS (5), SECS (4), IDLE_CONNS (15000),
# SHARED_CPUS (0,1), ACTIX_BIN, OUT; on a box
# with CPUs to spare, SERVER_CPU (0), COMPUTE_CPU (1, heavylift's compute
# core), GEN_CPUS (1) and WRK_THREADS (1) give the generator CPUs of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PAIRS=${PAIRS:-5} SECS=${SECS:-4} IDLE_CONNS=${IDLE_CONNS:-15000}
SERVER_CPU=${SERVER_CPU:-0} COMPUTE_CPU=${COMPUTE_CPU:-1} WRK_THREADS=${WRK_THREADS:-1}
LAYOUT=${LAYOUT:-pinned}
case $LAYOUT in
  # Where each server process may run (heavylift's threads pin themselves
  # within it), and where the generator runs.
  pinned) SERVER_SET=$SERVER_CPU HL_SET=$SERVER_CPU,$COMPUTE_CPU GEN_CPUS=${GEN_CPUS:-1} ;;
  shared) SERVER_SET=${SHARED_CPUS:-0,1} HL_SET=${SHARED_CPUS:-0,1} GEN_CPUS=${GEN_CPUS:-${SHARED_CPUS:-0,1}} ;;
  *) echo "bench-conns.sh: LAYOUT must be pinned or shared, not '$LAYOUT'" >&2; exit 2 ;;
esac
OUT=${OUT:-$ROOT/bench-results/conns-$(date +%Y-%m-%d)-$(hostname)}
mkdir -p "$OUT/raw"
log() { printf '[bench-conns %s] %s\n' "$(date +%T)" "$*" >&2; }
PATH=$PATH:/usr/sbin:/sbin
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx)
[ ${#need[@]} -eq 0 ] || { apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }
if [ "$(ulimit -l)" != unlimited ] && [ "$(ulimit -l)" -lt 1024 ]; then ulimit -l 1024 || true; fi
ulimit -n "$(ulimit -Hn)" || true
bin=$(scripts/release-bin.sh)

. scripts/bench/servers.sh
. scripts/bench/nginx-conf.sh

conns=$((IDLE_CONNS + 1000))
# heavylift: the process (its I/O core's thread serves; compute idles).
taskset -c "$HL_SET" "$bin" serve --listen 127.0.0.1:18601 \
  --io-cores "$SERVER_CPU" --compute-cores "$COMPUTE_CPU" \
  --max-connections "$conns" --log-level warn 2>>"$OUT/raw/servers.log" &
pids+=($!)
HL_PID=$!
wait_port 18601

NGX_DIR=$(mktemp -d /tmp/bench-conns-nginx.XXXXXX)
chmod 755 "$NGX_DIR"
nginx_conf "$NGX_DIR" 18602 "$conns" $((conns + 100))
cp "$NGX_DIR/nginx.conf" "$OUT/raw/nginx.conf"
taskset -c "$SERVER_SET" nginx -p "$NGX_DIR" -e "$NGX_DIR/error.log" -c "$NGX_DIR/nginx.conf" &
pids+=($!)
NGX_MASTER=$!
wait_port 18602
# nginx's worker: the master's child, read from /proc (no procps needed).
NGX_PID=$(for st in /proc/[0-9]*/stat; do
  rest=$(sed 's/.*) //' "$st" 2>/dev/null) || continue
  set -- $rest
  [ "${2:-}" = "$NGX_MASTER" ] && { echo "${st//[^0-9]/}"; break; }
done)
[ -n "$NGX_PID" ] || { log "no nginx worker process under $NGX_MASTER"; exit 1; }

servers="heavylift:18601:$HL_PID nginx:18602:$NGX_PID"
if [ -n "${ACTIX_BIN:-}" ]; then
  taskset -c "$SERVER_SET" "$ACTIX_BIN" 18603 >>"$OUT/raw/servers.log" 2>&1 &
  pids+=($!)
  wait_port 18603
  servers="$servers actix:18603:$!"
fi

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Idle memory first, on fresh servers: memory a server's heap kept from the
# runs below would absorb the connections and hide their cost.
: >"$OUT/idle.txt"
for spec in $servers; do
  IFS=: read -r who port pid <<<"$spec"
  log "$who: $IDLE_CONNS idle keep-alive connections"
  echo "$who $(taskset -c "$GEN_CPUS" python3 scripts/bench/idle_conns.py "127.0.0.1:$port" "$pid" "$IDLE_CONNS")" | tee -a "$OUT/idle.txt" >&2
done

: >"$OUT/runs.txt"
for i in $(seq "$PAIRS"); do
  for spec in $servers; do
    IFS=: read -r who port pid <<<"$spec"
    t0=$(ticks "$pid")
    taskset -c "$GEN_CPUS" wrk -t"$WRK_THREADS" -c32 -d"${SECS}s" --latency "http://127.0.0.1:$port/fast?id=1" >"$OUT/raw/$who-fast-$i.txt" 2>&1
    t1=$(ticks "$pid")
    reqs=$(awk '/requests in/ {print $1}' "$OUT/raw/$who-fast-$i.txt")
    rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/raw/$who-fast-$i.txt")
    p99=$(awk '$1 == "99%" {print $2}' "$OUT/raw/$who-fast-$i.txt")
    t2=$(ticks "$pid")
    taskset -c "$GEN_CPUS" wrk -t"$WRK_THREADS" -c32 -d"${SECS}s" -H "Connection: close" "http://127.0.0.1:$port/fast?id=1" >"$OUT/raw/$who-churn-$i.txt" 2>&1
    t3=$(ticks "$pid")
    churn=$(awk '/Requests\/sec/ {print $2}' "$OUT/raw/$who-churn-$i.txt")
    creqs=$(awk '/requests in/ {print $1}' "$OUT/raw/$who-churn-$i.txt")
    echo "$who $i $rps $(python3 -c "print(round(($t1 - $t0) * 10000 / $reqs, 2))") $churn $(python3 -c "print(round(($t3 - $t2) * 10000 / $creqs, 2))") ${p99:--}" | tee -a "$OUT/runs.txt" >&2
  done
done

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
: >"$OUT/rss.txt"
for spec in $servers; do
  IFS=: read -r who _port pid <<<"$spec"
  echo "$who $(rss_kib "$pid")" >>"$OUT/rss.txt"
done

python3 - "$OUT" "$ROOT/scripts/bench" "$LAYOUT" <<'EOF' | tee "$OUT/table.txt"
import json, math, statistics, sys
out, layout = sys.argv[1], sys.argv[3]
sys.path.insert(0, sys.argv[2])
from wrk_parse import to_ms
def ms(text):
    # wrk's "456.00us", "1.23ms", ...; NaN when wrk printed none ("-").
    v = to_ms(text)
    return float("nan") if v is None else v
rows = {}
by_run = {}
p99s = {}
for line in open(f"{out}/runs.txt"):
    who, i, rps, us, churn, churn_us, p99 = line.split()
    rows.setdefault(who, []).append((float(rps), float(us), float(churn), float(churn_us)))
    by_run.setdefault(who, {})[i] = (float(rps), float(us), float(churn), float(churn_us))
    p99s.setdefault(who, []).append(ms(p99))
idle = {}
for line in open(f"{out}/idle.txt"):
    who, doc = line.split(" ", 1)
    idle[who] = json.loads(doc)
med = {w: [statistics.median(r[k] for r in v) for k in range(4)] for w, v in rows.items()}
p99 = {w: statistics.median(v) for w, v in p99s.items()}
rss = dict(line.split() for line in open(f"{out}/rss.txt"))
print(f"{'server':<10} {'/fast req/s':>12} {'p99 ms':>7} {'CPU us/req':>11} {'churn req/s':>12} {'CPU us/conn':>12} {'KiB/idle conn':>14} {'served again':>13} {'RSS after, MiB':>15}")
for w, (rps, us, churn, churn_us) in med.items():
    d = idle.get(w, {})
    print(f"{w:<10} {rps:>12.0f} {p99[w]:>7.2f} {us:>11.2f} {churn:>12.0f} {churn_us:>12.2f} {d.get('kib_per_conn', float('nan')):>14.2f} "
          f"{str(d.get('served_again')) + '/' + str(d.get('n')):>13} {int(rss.get(w, 0)) / 1024:>15.1f}")
if "nginx" in med:
    n = med["nginx"]
    for w, (rps, us, churn, churn_us) in med.items():
        if w != "nginx":
            print(f"{w} / nginx: req/s {rps/n[0]:.3f}, p99 {p99[w]/p99['nginx']:.3f}, CPU per request {us/n[1]:.3f}, "
                  f"churn {churn/n[2]:.3f}, CPU per churned connection {churn_us/n[3]:.3f}")
    # Issue 16's measure: each run against nginx's run of the same round.
    for w in by_run:
        if w == "nginx":
            continue
        runs = [i for i in by_run[w] if i in by_run["nginx"]]
        g = [math.exp(statistics.fmean(math.log(by_run[w][i][k] / by_run["nginx"][i][k]) for i in runs)) for k in range(4)]
        print(f"{w} / nginx, paired geometric mean of {len(runs)} rounds: req/s {g[0]:.3f}, CPU per request {g[1]:.3f}, "
              f"churn {g[2]:.3f}, CPU per churned connection {g[3]:.3f}")
print(f"layout {layout}; medians of {len(next(iter(rows.values())))} runs each, interleaved; idle: one run of {next(iter(idle.values()))['n']} connections")
EOF
log "results in $OUT"

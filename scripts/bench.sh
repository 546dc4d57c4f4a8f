#!/usr/bin/env bash
# The benchmark suite of issue #7 ("Fast stays fast, measured").
#
#   scripts/bench.sh            # full run, about 6-8 minutes on 2 cores
#   QUICK=1 scripts/bench.sh    # smoke run, about 2 minutes
#
# Release build, fixed core layout (default, as on the 2-core reference
# machine: heavylift's I/O core and nginx on CPU 0, the compute core on CPU 1,
# wrk and the heavylift client on CPU 1 too: server and client share the two
# cores). Runs scenarios a-f of the issue in ROUNDS (default 2) rounds, so
# every scenario runs twice, then prints one table. Everything lands in
# bench-results/<date>-<host>[-quick]/: table.txt, summary.json, runs.tsv
# (every single measurement), machine.txt, commands.txt (every command, as
# run), timeline.svg, and raw/ (full tool outputs and server logs; not
# committed, see .gitignore).
#
# Scenarios:
#   a  fast only: `wrk -t1 -c32 --latency /fast?id=1` against heavylift and
#      nginx (`return 200 "fast result $arg_id"`, one worker, pinned to the
#      I/O CPU), interleaved A B B A in PAIRS pairs; paired geomean of the
#      req/s ratios, median p99.
#   b  the same fast load while a second wrk keeps 2 connections per compute
#      core on /slow_threaded (default n = 2000).
#   bi b again with `serve --compute-priority idle`: the compute thread only
#      takes CPU time wrk leaves, so wrk (which shares the compute CPU here)
#      is never held off for a scheduler tick; slow throughput pays for it.
#   b0 control for b: nginx under the same fast load while a plain busy loop
#      holds the compute CPU (which wrk shares): what the layout allows.
#   c  the same with /slow (the job runs inline on the I/O core).
#   d  the seed scenario: `heavylift load` (3 slow at ~1 s, n = D_N, + 20 fast).
#   e  offload overhead: wrk -c1 on /fast and on /slow_threaded?id=1&n=1; the
#      p50 difference is the round trip to a compute core and back.
#   f  the heavy job in-process (`cargo bench --bench heavy`) beside CPython's
#      math.factorial loop (scripts/python_baseline.py), both on the compute CPU.
# Also: the server's idle CPU use (after a load, 2 s), and one
# `heavylift bench --svg` timeline (SVG=0 skips it; QUICK=1 implies SVG=0).
# Then issue 16's rows beside nginx and actix-web (scripts/bench-conns.sh
# into $OUT/conns/: server CPU per /fast request, Connection: close churn
# and CPU per churned connection, memory per idle connection). The actix
# peer is built from ../shared/peers/actix when that folder is there (or
# given as ACTIX_BIN); CONNS=0 skips the rows, QUICK=1 shortens them.
#
# Knobs (environment): QUICK, ROUNDS, PAIRS, A_SECS, B_SECS, E_SECS, D_N,
# IO_CPU, COMPUTE_CPU, CLIENT_CPUS, OUT (results folder), SVG.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  PAIRS=${PAIRS:-3} A_SECS=${A_SECS:-2} B_SECS=${B_SECS:-2} E_SECS=${E_SECS:-1}
else
  PAIRS=${PAIRS:-10} A_SECS=${A_SECS:-4} B_SECS=${B_SECS:-5} E_SECS=${E_SECS:-3}
fi
ROUNDS=${ROUNDS:-2}
# Job size for (d): one job takes about a second on the reference machine.
D_N=${D_N:-10000}
SVG=${SVG:-$([ "$QUICK" = 1 ] && echo 0 || echo 1)}

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'bench.sh: error: %s\n' "$*" >&2; exit 2; }

# ---------------------------------------------------------------- tools
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root to run: $*"; fi; }
PATH=$PATH:/usr/sbin:/sbin
need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v nginx >/dev/null || need_apt+=(nginx)
command -v python3 >/dev/null || need_apt+=(python3)
command -v taskset >/dev/null || need_apt+=(util-linux)
command -v git >/dev/null || need_apt+=(git)
command -v cc >/dev/null || need_apt+=(gcc)
[ -x /usr/bin/time ] || need_apt+=(time)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]} with apt-get"
  # Others may hold the dpkg lock (another install): wait for it instead of failing.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs)"

# io_uring rings need locked memory: glommio refuses to start below 512 KiB.
if [ "$(ulimit -l)" != unlimited ] && [ "$(ulimit -l)" -lt 1024 ]; then
  ulimit -l 1024 || log "warning: RLIMIT_MEMLOCK is $(ulimit -l) KiB; glommio needs 512"
fi

# ---------------------------------------------------------------- layout
usable=$(taskset -pc $$ | sed 's/.*: //')
ncpu=$(nproc)
if [ "$ncpu" -ge 2 ]; then
  IO_CPU=${IO_CPU:-0} COMPUTE_CPU=${COMPUTE_CPU:-1} CLIENT_CPUS=${CLIENT_CPUS:-1}
  [ "$IO_CPU" != "$COMPUTE_CPU" ] || die "IO_CPU and COMPUTE_CPU must differ"
  LAYOUT=(--io-cores "$IO_CPU" --compute-cores "$COMPUTE_CPU")
  N_COMPUTE=1
else
  log "warning: only one usable CPU ($usable): server roles and client all share it"
  IO_CPU=${IO_CPU:-$usable} COMPUTE_CPU=$IO_CPU CLIENT_CPUS=${CLIENT_CPUS:-$usable}
  LAYOUT=()
  N_COMPUTE=1
fi

# ---------------------------------------------------------------- output
host=$(hostname -s 2>/dev/null || hostname)
OUT=${OUT:-bench-results/$(date +%F)-$host$([ "$QUICK" = 1 ] && echo -quick || true)}
RAW=$OUT/raw
mkdir -p "$RAW"
rm -f "$RAW"/* "$OUT"/{table.txt,summary.json,runs.tsv,machine.txt,commands.txt,timeline.svg}
RUNS=$OUT/runs.tsv
printf 'round\tscenario\tsubject\trun\tmetric\tvalue\n' >"$RUNS"
CMDS=$OUT/commands.txt
printf '# every command bench.sh ran, in order (cwd: the repository root)\n' >"$CMDS"

# record ROUND SCENARIO SUBJECT RUN METRIC VALUE
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RUNS"; }
# logcmd ARGV...: log the exact command line; cmd ARGV...: log it, then run it.
logcmd() { printf '%s\n' "$(printf '%q ' "$@")" >>"$CMDS"; }
cmd() { logcmd "$@"; "$@"; }

log "building (release)"
logcmd scripts/release-bin.sh
BIN=$(scripts/release-bin.sh)
cmd cargo bench --bench heavy --no-run --quiet 2>/dev/null

# ---------------------------------------------------------------- machine notes
{
  echo "date (UTC):   $(date -u '+%F %T')"
  echo "host:         $host"
  echo "kernel:       $(uname -srm)"
  echo "cpu:          $(lscpu | sed -n 's/^Model name: *//p' | head -1), $ncpu CPUs usable ($usable), $(lscpu | sed -n 's/^Thread(s) per core: *//p') thread(s)/core, $(lscpu | sed -n 's/^Hypervisor vendor: *//p' | sed 's/^$/bare metal/;s/^\(.\)/\1/') hypervisor"
  echo "memory:       $(free -g | awk '/^Mem:/{print $2" GiB"}')"
  echo "commit:       $(git rev-parse HEAD)$(git diff --quiet HEAD -- src benches scripts Cargo.toml Cargo.lock || echo ' + uncommitted changes')"
  echo "branch:       $(git rev-parse --abbrev-ref HEAD)"
  echo "rustc:        $(rustc -V)"
  echo "glommio:      $(awk '/name = "(heavylift-)?glommio"/{getline; print $3}' Cargo.lock | tr -d '"')$([ -f vendor/glommio/HEAVYLIFT.md ] && echo ' (vendored with ring-flag patch: vendor/glommio/HEAVYLIFT.md)')"
  echo "wrk:          $(wrk -v 2>&1 | head -1)"
  echo "nginx:        $(nginx -v 2>&1)"
  echo "python3:      $(python3 -V 2>&1)"
  echo "layout:       heavylift I/O CPU $IO_CPU, compute CPU $COMPUTE_CPU; nginx CPU $IO_CPU; wrk and heavylift client CPU(s) $CLIENT_CPUS"
  echo "settings:     QUICK=$QUICK ROUNDS=$ROUNDS PAIRS=$PAIRS A_SECS=$A_SECS B_SECS=$B_SECS E_SECS=$E_SECS D_N=$D_N"
  echo "load at start: $(cat /proc/loadavg)"
  echo "other busy processes at start (top 5 by CPU):"
  ps -eo pcpu,comm --sort=-pcpu | sed -n '2,6p' | sed 's/^/  /'
} >"$OUT/machine.txt"

# ---------------------------------------------------------------- servers
HL_PID='' NGX_PID='' NGX_DIR=''
cleanup() {
  [ -n "$HL_PID" ] && kill -TERM "$HL_PID" 2>/dev/null && wait "$HL_PID" 2>/dev/null
  [ -n "$NGX_PID" ] && kill -TERM "$NGX_PID" 2>/dev/null && wait "$NGX_PID" 2>/dev/null
  [ -n "$NGX_DIR" ] && rm -rf "$NGX_DIR"
  true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits until HOST:PORT accepts connections (or the process PID died).
wait_listening() {
  local addr=$1 pid=$2
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# start_heavylift NAME: heavylift on a free loopback port (port 0); sets HL_ADDR.
# start_heavylift NAME [SERVE_FLAGS...]
start_heavylift() {
  local log=$RAW/$1.server.log
  shift
  : >"$log" # exists before the server's own redirection does, for the poll below
  logcmd "$BIN" serve --listen 127.0.0.1:0 "${LAYOUT[@]}" --log-level info "$@"
  "$BIN" serve --listen 127.0.0.1:0 "${LAYOUT[@]}" --log-level info "$@" >"$log" 2>&1 &
  HL_PID=$!
  for _ in $(seq 200); do
    HL_ADDR=$(sed -n 's|.*listening on http://\([0-9.:]*\).*|\1|p' "$log" | head -1 || true)
    [ -n "$HL_ADDR" ] && break
    kill -0 "$HL_PID" 2>/dev/null || { cat "$log" >&2; die "heavylift did not start"; }
    sleep 0.05
  done
  [ -n "$HL_ADDR" ] || die "heavylift did not report its address"
}
stop_heavylift() {
  kill -TERM "$HL_PID" 2>/dev/null || true
  wait "$HL_PID" 2>/dev/null || true
  HL_PID=''
}

. scripts/bench/nginx-conf.sh
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One nginx worker on the I/O CPU, paths in a temp dir, a free loopback port.
start_nginx() {
  NGX_DIR=$(mktemp -d /tmp/bench-nginx.XXXXXX)
  chmod 755 "$NGX_DIR"
  local port
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    nginx_conf "$NGX_DIR" "$port" 1024
    logcmd taskset -c "$IO_CPU" nginx -p "$NGX_DIR" -e "$NGX_DIR/error.log" -c "$NGX_DIR/nginx.conf"
    taskset -c "$IO_CPU" nginx -p "$NGX_DIR" -e "$NGX_DIR/error.log" -c "$NGX_DIR/nginx.conf" &
    NGX_PID=$!
    if wait_listening "127.0.0.1:$port" "$NGX_PID"; then
      NGX_ADDR=127.0.0.1:$port
      cp "$NGX_DIR/nginx.conf" "$RAW/nginx.conf"
      return 0
    fi
    kill "$NGX_PID" 2>/dev/null || true
    wait "$NGX_PID" 2>/dev/null || true
  done
  cat "$NGX_DIR/error.log" >&2
  die "nginx did not start"
}
stop_nginx() {
  kill -TERM "$NGX_PID" 2>/dev/null || true
  wait "$NGX_PID" 2>/dev/null || true
  rm -rf "$NGX_DIR"
  NGX_PID='' NGX_DIR=''
}

# CPU time (clock ticks) used so far by PID and its children's threads.
cpu_ticks() {
  local total=0 p
  for p in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    [ -r /proc/"$p"/stat ] || continue
    total=$((total + $(awk '{print $14+$15}' /proc/"$p"/stat)))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)
# Busy clock ticks of the whole machine so far (all CPUs, idle and iowait
# excluded), minus those of our own helper processes listed in OURS (the slow
# wrk of b/c, the busy loop of b0).
OURS=''
busy_ticks() {
  local total p
  total=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat)
  for p in $OURS; do total=$((total - $(cpu_ticks "$p"))); done
  echo "$total"
}

# wrk_run NAME SERVER_PID WRK_ARGS...: one pinned wrk run; prints its JSON with
# the server's and wrk's CPU use added (100 = one CPU busy for the whole run).
wrk_run() {
  local name=$1 pid=$2
  shift 2
  local t0 t1 s0 s1 m0 m1
  t0=$(cpu_ticks "$pid") m0=$(busy_ticks) s0=$(date +%s.%N)
  cmd taskset -c "$CLIENT_CPUS" /usr/bin/time -f '%P' -o "$RAW/$name.time" wrk "$@" >"$RAW/$name.txt" 2>&1 || true
  t1=$(cpu_ticks "$pid") m1=$(busy_ticks) s1=$(date +%s.%N)
  python3 - "$RAW/$name.txt" "$t0" "$t1" "$s0" "$s1" "$hz" "$RAW/$name.time" "$m0" "$m1" <<'EOF'
import json, subprocess, sys
f, t0, t1, s0, s1, hz, timef, m0, m1 = sys.argv[1:]
d = json.loads(subprocess.check_output([sys.executable, "scripts/bench/wrk_parse.py", f]))
secs = float(s1) - float(s0)
d["server_cpu_pct"] = round(100 * (int(t1) - int(t0)) / int(hz) / secs, 1)
try:
    d["client_cpu_pct"] = float(open(timef).read().split()[-1].rstrip("%"))
except (OSError, ValueError, IndexError):
    d["client_cpu_pct"] = None
# Everything else the machine ran meanwhile (other people's builds and
# tests): the noise indicator of this run.
busy = 100 * (int(m1) - int(m0)) / int(hz) / secs
d["others_cpu_pct"] = round(max(0.0, busy - d["server_cpu_pct"] - (d["client_cpu_pct"] or 0)), 1)
print(json.dumps(d))
EOF
}

# record_wrk ROUND SCENARIO SUBJECT RUN JSON
record_wrk() {
  local k v
  for k in rps p50_ms p99_ms server_cpu_pct client_cpu_pct others_cpu_pct errors non_2xx; do
    v=$(python3 -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print("" if v is None else v)' "$5" "$k")
    record "$1" "$2" "$3" "$4" "$k" "$v"
  done
}

fast_url() { echo "http://$1/fast?id=1"; }

# note_load ROUND SCENARIO: the 1-minute load average as the scenario starts
# (this machine is shared: other people's builds and tests show up here).
note_load() { record "$1" env "$2" 1 loadavg1 "$(cut -d' ' -f1 /proc/loadavg)"; }

# ---------------------------------------------------------------- scenarios
scenario_a() {
  local r=$1 i
  note_load "$r" a
  start_heavylift "a$r"
  start_nginx
  log "round $r (a): $PAIRS pairs of ${A_SECS}s runs, heavylift $HL_ADDR vs nginx $NGX_ADDR"
  for i in $(seq "$PAIRS"); do
    local order=(heavylift nginx)
    [ $((i % 2)) = 0 ] && order=(nginx heavylift)
    for who in "${order[@]}"; do
      local addr=$HL_ADDR pid=$HL_PID
      [ "$who" = nginx ] && addr=$NGX_ADDR pid=$NGX_PID
      local j
      j=$(wrk_run "a$r-p$(printf %02d "$i")-$who" "$pid" -t1 -c32 -d"${A_SECS}s" --latency "$(fast_url "$addr")")
      record_wrk "$r" a "$who" "$i" "$j"
    done
  done
  stop_nginx
  stop_heavylift
}

# scenario_bc ROUND LETTER SLOW_ROUTE [SERVE_FLAGS...]
scenario_bc() {
  local r=$1 s=$2 route=$3
  shift 3
  note_load "$r" "$s"
  start_heavylift "$s$r" "$@"
  log "round $r ($s): fast wrk -c32 while wrk -c$((2 * N_COMPUTE)) keeps /$route busy $*"
  local slow_cmd=(taskset -c "$CLIENT_CPUS" wrk -t1 -c$((2 * N_COMPUTE)) -d"$((B_SECS + 2))s" --latency
    --timeout 10s "http://$HL_ADDR/$route?id=1")
  logcmd "${slow_cmd[@]}"
  "${slow_cmd[@]}" >"$RAW/$s$r-slow.txt" 2>&1 &
  local slow=$!
  sleep 1 # the compute core (or, for /slow, the I/O core) is busy from here on
  local j
  OURS=$slow
  j=$(wrk_run "$s$r-fast" "$HL_PID" -t1 -c32 -d"${B_SECS}s" --latency "$(fast_url "$HL_ADDR")")
  OURS=''
  record_wrk "$r" "$s" fast 1 "$j"
  wait "$slow" || true
  j=$(python3 scripts/bench/wrk_parse.py "$RAW/$s$r-slow.txt")
  record_wrk "$r" "$s" slow 1 "$j"
  stop_heavylift
}

# The layout's own limit for (b): nginx with the compute CPU (where wrk also
# runs) kept busy by a plain busy loop instead of jobs.
scenario_b0() {
  local r=$1
  note_load "$r" b0
  start_nginx
  log "round $r (b0): nginx fast wrk -c32 while a busy loop holds CPU $COMPUTE_CPU"
  logcmd taskset -c "$COMPUTE_CPU" sh -c 'while :; do :; done'
  taskset -c "$COMPUTE_CPU" sh -c 'while :; do :; done' &
  local hog=$!
  sleep 0.5
  local j
  OURS=$hog
  j=$(wrk_run "b0$r-nginx" "$NGX_PID" -t1 -c32 -d"${B_SECS}s" --latency "$(fast_url "$NGX_ADDR")")
  OURS=''
  record_wrk "$r" b0 nginx 1 "$j"
  kill "$hog" 2>/dev/null || true
  wait "$hog" 2>/dev/null || true
  stop_nginx
}

scenario_d() {
  local r=$1
  note_load "$r" d
  start_heavylift "d$r"
  log "round $r (d): heavylift load, 3 slow (n=$D_N) + 20 fast"
  cmd taskset -c "$CLIENT_CPUS" "$BIN" load --target "$HL_ADDR" --slow 3 --fast 20 --n "$D_N" --json \
    >"$RAW/d$r-load.json" 2>"$RAW/d$r-load.stderr" || true
  python3 - "$RAW/d$r-load.json" <<'EOF' | while IFS=$'\t' read -r k v; do record "$r" d load 1 "$k" "$v"; done
import json, re, sys
d = json.load(open(sys.argv[1]))
reqs = d["requests"]
fast = [q for q in reqs if q["kind"] == "fast"]
slow = [q for q in reqs if q["kind"] == "slow"]
ok = all(q["status"] == 200 for q in reqs)
print(f"fast_done_ms\t{max(q['finished_ms'] for q in fast)}")
print(f"fast_before_slow\t{str(d['summary']['fast_before_slow']).lower()}")
print(f"first_slow_ms\t{min(q['finished_ms'] for q in slow)}")
print(f"last_slow_ms\t{max(q['finished_ms'] for q in slow)}")
secs = [float(m.group(1)) for q in slow for m in [re.search(r"<--- ([0-9.]+) s", q["body"] or "")] if m]
print(f"job_seconds_median\t{sorted(secs)[len(secs) // 2] if secs else ''}")
print(f"all_ok\t{str(ok).lower()}")
EOF
  stop_heavylift
}

scenario_e() {
  local r=$1 i
  note_load "$r" e
  start_heavylift "e$r"
  log "round $r (e): one connection, /fast vs /slow_threaded?n=1, A B B A"
  local order=(fast offload offload fast) k=0
  for who in "${order[@]}"; do
    k=$((k + 1))
    local url
    url=$(fast_url "$HL_ADDR")
    [ "$who" = offload ] && url="http://$HL_ADDR/slow_threaded?id=1&n=1"
    local j
    j=$(wrk_run "e$r-$k-$who" "$HL_PID" -t1 -c1 -d"${E_SECS}s" --latency "$url")
    record_wrk "$r" e "$who" "$k" "$j"
  done
  # Idle CPU of the server after a load: what parking (or spinning) costs.
  sleep 0.5
  local t0 t1
  t0=$(cpu_ticks "$HL_PID")
  sleep 2
  t1=$(cpu_ticks "$HL_PID")
  record "$r" idle heavylift 1 cpu_pct "$(python3 -c "print(round(100 * ($t1 - $t0) / $hz / 2, 1))")"
  stop_heavylift
}

scenario_f() {
  local r=$1
  note_load "$r" f
  log "round $r (f): cargo bench --bench heavy, python baseline (on CPU $COMPUTE_CPU)"
  cmd taskset -c "$COMPUTE_CPU" cargo bench --quiet --bench heavy >"$RAW/f$r-heavy.txt" 2>"$RAW/f$r-heavy.stderr" || true
  cmd taskset -c "$COMPUTE_CPU" python3 scripts/python_baseline.py 2000 3500 >"$RAW/f$r-python.txt" 2>&1 || true
  local n ms
  for n in 2000 3500; do
    ms=$(sed -n "s/^heavy_lifting n=$n: \([0-9.]*\) ms\/op/\1/p" "$RAW/f$r-heavy.txt")
    record "$r" f heavylift 1 "n${n}_ms" "$ms"
    ms=$(sed -n "s/^cpython heavy_lifting n=$n: \([0-9.]*\) ms\/op/\1/p" "$RAW/f$r-python.txt")
    record "$r" f cpython 1 "n${n}_ms" "$ms"
  done
}

started=$(date +%s)
for r in $(seq "$ROUNDS"); do
  scenario_a "$r"
  scenario_bc "$r" b slow_threaded
  scenario_bc "$r" bi slow_threaded --compute-priority idle
  scenario_b0 "$r"
  scenario_bc "$r" c slow
  scenario_d "$r"
  scenario_e "$r"
  scenario_f "$r"
done

if [ "$SVG" = 1 ]; then
  start_heavylift svg
  log "timeline: heavylift bench --duration 5 --svg"
  cmd taskset -c "$CLIENT_CPUS" "$BIN" bench --target "$HL_ADDR" --duration 5 --connections 32 \
    --slow-concurrency 2 --svg "$OUT/timeline.svg" --json >"$RAW/svg-bench.json" 2>"$RAW/svg-bench.stderr" || true
  stop_heavylift
fi

if [ "${CONNS:-1}" = 1 ]; then
  actix=${ACTIX_BIN:-}
  peers=$ROOT/../shared/peers/actix
  if [ -z "$actix" ] && [ -f "$peers/Cargo.toml" ]; then
    log "building the actix-web peer"
    if cmd env CARGO_TARGET_DIR="$ROOT/target/peers" cargo build --release --quiet \
      --manifest-path "$peers/Cargo.toml" >"$RAW/actix-build.log" 2>&1; then
      actix=$ROOT/target/peers/release/peer-actix
    else
      log "the actix peer did not build (see $RAW/actix-build.log): its row is left out"
    fi
  fi
  log "issue 16's rows: scripts/bench-conns.sh"
  if [ "$QUICK" = 1 ]; then conns_env=(PAIRS=2 SECS=2 IDLE_CONNS=3000); else conns_env=(PAIRS=5 SECS=4 IDLE_CONNS=15000); fi
  cmd env "${conns_env[@]}" OUT="$OUT/conns" HEAVYLIFT_BIN="$BIN" ACTIX_BIN="$actix" \
    SERVER_CPU="$IO_CPU" COMPUTE_CPU="$COMPUTE_CPU" GEN_CPUS="$CLIENT_CPUS" \
    scripts/bench-conns.sh 2>"$RAW/conns.stderr" >/dev/null || log "bench-conns.sh failed (see $RAW/conns.stderr)"
fi

echo "load at end:  $(cat /proc/loadavg)" >>"$OUT/machine.txt"
echo "wall time:    $(($(date +%s) - started)) s (scenarios only)" >>"$OUT/machine.txt"
{
  python3 scripts/bench/table.py "$OUT"
  if [ -f "$OUT/conns/table.txt" ]; then
    echo
    echo "Issue 16's rows (scripts/bench-conns.sh, same layout; $OUT/conns/):"
    cat "$OUT/conns/table.txt"
  fi
} | tee "$OUT/table.txt"
log "results in $OUT"

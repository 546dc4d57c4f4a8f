#!/usr/bin/env bash
# Round trip of an empty offloaded job in every place a job can run, measured
# in one run (issues 13 and 14), and the Python job's own time beside the
# same loop run directly in Python.
#
#   scripts/bench-workers.sh              # about 2 minutes
#   SECS=2 ROUNDS=1 scripts/bench-workers.sh
#
# Round trip = p50 of `wrk -t1 -c1 --latency` on the job route with n=1
# minus p50 on /fast, same server, same run:
#   thread   serve                                   /slow_threaded?id=1&n=1
#   process  serve --isolation process               /slow_threaded?id=1&n=1
#   python   serve --worker-cmd seed_worker.py       /slow_py?id=1&n=1
#   tornado  Tornado + ProcessPoolExecutor(1) peer   /slow_threaded?id=1&n=1
# (the tornado row needs ../shared/peers/tornado and PyPI for its venv; it is
# skipped, with a note, when either is missing.)
# Replacement: scripts/bench/respawn.py on the process-mode server, RESPAWNS
# rounds (20): a worker SIGKILLed while idle, and one killed by its job
# (`/crash?how=abort`), each timed from the kill (or the crash request) until
# its replacement has answered a job.
# Job time: `seconds` of /slow_py?n=2000 (median of JOBS) against the seed's
# loop run directly in python3 on the same CPU (median of JOBS), the two
# interleaved so that machine noise hits both alike.
#
# Layout as scripts/bench.sh: servers' I/O on IO_CPU (0), compute on
# COMPUTE_CPU (1), wrk on CLIENT_CPUS (1). Knobs: SECS (3), ROUNDS (3),
# JOBS (15), RESPAWNS (20), OUT (results folder), PEERS (../shared/peers).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${SECS:-3} ROUNDS=${ROUNDS:-3} JOBS=${JOBS:-15} RESPAWNS=${RESPAWNS:-20}
IO_CPU=${IO_CPU:-0} COMPUTE_CPU=${COMPUTE_CPU:-1} CLIENT_CPUS=${CLIENT_CPUS:-1}
PEERS=${PEERS:-$ROOT/../shared/peers}
OUT=${OUT:-$ROOT/bench-results/workers-$(date +%Y-%m-%d)-$(hostname)}
mkdir -p "$OUT/raw"
log() { printf '[bench-workers %s] %s\n' "$(date +%T)" "$*" >&2; }

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
if [ "$(ulimit -l)" != unlimited ] && [ "$(ulimit -l)" -lt 1024 ]; then ulimit -l 1024 || true; fi
bin=$(scripts/release-bin.sh)
SEED="python3 $ROOT/examples/python/seed_worker.py"

. scripts/bench/servers.sh

# p50 in microseconds of one wrk run.
p50_us() {
  local name=$1 url=$2
  taskset -c "$CLIENT_CPUS" wrk -t1 -c1 -d"${SECS}s" --latency "$url" >"$OUT/raw/$name.txt" 2>&1
  python3 - "$OUT/raw/$name.txt" <<'EOF'
import json, subprocess, sys
d = json.loads(subprocess.check_output([sys.executable, "scripts/bench/wrk_parse.py", sys.argv[1]]))
if d.get("non_2xx") or d.get("errors") or d.get("p50_ms") is None:
    sys.exit(f"bad run {sys.argv[1]}: {d}")
print(round(d["p50_ms"] * 1000, 1))
EOF
}

# measure SUBJECT PORT JOB_PATH: appends "subject round fast_us job_us rt_us".
measure() {
  local who=$1 port=$2 job=$3 r=$4
  local fast jobp
  fast=$(p50_us "$who-r$r-fast" "http://127.0.0.1:$port/fast?id=1")
  jobp=$(p50_us "$who-r$r-job" "http://127.0.0.1:$port$job")
  echo "$who $r $fast $jobp $(python3 -c "print(round($jobp - $fast, 1))")" | tee -a "$OUT/runs.txt" >&2
}

start_hl() {
  local port=$1
  shift
  taskset -c "$IO_CPU,$COMPUTE_CPU" "$bin" serve --listen "127.0.0.1:$port" \
    --io-cores "$IO_CPU" --compute-cores "$COMPUTE_CPU" --log-level warn "$@" \
    2>>"$OUT/raw/servers.log" &
  pids+=($!)
  wait_port "$port"
}

tornado_py=""
if [ -f "$PEERS/tornado/server.py" ]; then
  venv=$OUT/raw/tornado-venv
  if [ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q -r "$PEERS/tornado/requirements.txt"; } >>"$OUT/raw/venv.log" 2>&1; then
    tornado_py=$venv/bin/python
  else
    log "no tornado venv (see $OUT/raw/venv.log): tornado row skipped"
  fi
else
  log "no $PEERS/tornado: tornado row skipped"
fi

: >"$OUT/runs.txt"
start_hl 18101
start_hl 18102 --isolation process
start_hl 18103 --worker-cmd "$SEED"
if [ -n "$tornado_py" ]; then
  taskset -c "$IO_CPU,$COMPUTE_CPU" "$tornado_py" "$PEERS/tornado/server.py" 18104 >>"$OUT/raw/servers.log" 2>&1 &
  pids+=($!)
  wait_port 18104
fi
for r in $(seq "$ROUNDS"); do
  measure thread 18101 "/slow_threaded?id=1&n=1" "$r"
  measure process 18102 "/slow_threaded?id=1&n=1" "$r"
  measure python 18103 "/slow_py?id=1&n=1" "$r"
  [ -z "$tornado_py" ] || measure tornado 18104 "/slow_threaded?id=1&n=1" "$r"
done

log "replacement: $RESPAWNS rounds of a killed and a crashed worker"
taskset -c "$CLIENT_CPUS" python3 scripts/bench/respawn.py 127.0.0.1:18102 "$RESPAWNS" >"$OUT/raw/respawn.json"

log "job time: /slow_py?n=2000 x $JOBS against the loop in python3 on CPU $COMPUTE_CPU, interleaved"
: >"$OUT/raw/slow_py.jsonl"
: >"$OUT/raw/direct.txt"
for i in $(seq "$JOBS"); do
  curl -fsS -H 'Accept: application/json' "http://127.0.0.1:18103/slow_py?id=$i&n=2000" >>"$OUT/raw/slow_py.jsonl"
  echo >>"$OUT/raw/slow_py.jsonl"
  taskset -c "$COMPUTE_CPU" python3 -c '
import math, time
t0 = time.perf_counter()
for k in range(2000):
    math.factorial(k)
print(time.perf_counter() - t0)' >>"$OUT/raw/direct.txt"
done

python3 - "$OUT" <<'EOF' | tee "$OUT/table.txt"
import json, statistics, sys
out = sys.argv[1]
rows = {}
for line in open(f"{out}/runs.txt"):
    who, _r, fast, job, rt = line.split()
    rows.setdefault(who, []).append((float(fast), float(job), float(rt)))
print("Round trip of an empty job (p50 job route - p50 /fast, wrk -t1 -c1), medians over rounds:")
print(f"{'where the job runs':<48} {'/fast p50':>10} {'job p50':>10} {'round trip':>11}")
names = {
    "thread": "thread (compute executor's thread)",
    "process": "process (--isolation process, Rust worker)",
    "python": "python (--worker-cmd seed_worker.py)",
    "tornado": "tornado + ProcessPoolExecutor(1) (the seed's answer)",
}
for who in ["thread", "process", "python", "tornado"]:
    if who not in rows:
        continue
    med = [statistics.median(x[i] for x in rows[who]) for i in range(3)]
    print(f"{names[who]:<48} {med[0]:>8.1f}us {med[1]:>8.1f}us {med[2]:>9.1f}us")
jobs = [json.loads(l)["seconds"] for l in open(f"{out}/raw/slow_py.jsonl") if l.strip()]
direct = [float(l) for l in open(f"{out}/raw/direct.txt") if l.strip()]
a, b = statistics.median(jobs), statistics.median(direct)
print()
print(f"/slow_py?n=2000 job time (its 'seconds', median of {len(jobs)}): {a*1000:.1f} ms")
print(f"the same loop directly in python3, same CPU (median of {len(direct)}):  {b*1000:.1f} ms")
print(f"ratio: {a/b:.3f}")
r = json.load(open(f"{out}/raw/respawn.json"))
print()
print(f"From a worker's kill (or the request that crashes it) to its replacement answering a job ({r['rounds']} rounds, ms):")
for kind, what in [("kill", "SIGKILL while idle"), ("crash", "/crash?how=abort (its job killed it)")]:
    k = r[kind]
    print(f"  {what:<40} p50 {k['p50_ms']:>7.2f}  p90 {k['p90_ms']:>7.2f}  max {k['max_ms']:>7.2f}")
EOF
log "results in $OUT"

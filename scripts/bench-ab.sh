#!/usr/bin/env bash
# /fast A/B of two heavylift binaries on the same layout, interleaved pairs:
#   scripts/bench-ab.sh OLD_BIN NEW_BIN [PAIRS]   (default 5)
# I/O on CPU 0, compute on CPU 1, `wrk -t1 -c32 -d4s` on CPU 1; prints req/s,
# p99 and the server's CPU time per request (utime+stime from /proc over
# the run, divided by its requests) for each run, then the medians.
# CHURN=1 sends `Connection: close` (one request per connection).
# Another layout (a box with CPUs to spare, so that wrk is not the bound):
#   SERVER_CPU=0 COMPUTE_CPU=1 GEN_CPUS=2-5 WRK_THREADS=4 scripts/bench-ab.sh OLD NEW 8
# SECS sets each run's length. Ends with the geometric mean of the pairs'
# new/old req/s ratios. Needs wrk and 2 CPUs.
set -u
SERVER_CPU=${SERVER_CPU:-0} COMPUTE_CPU=${COMPUTE_CPU:-1} GEN_CPUS=${GEN_CPUS:-1}
WRK_THREADS=${WRK_THREADS:-1} SECS=${SECS:-4}
HDR=()
[ "${CHURN:-0}" = 1 ] && HDR=(-H "Connection: close")
LOG=$(mktemp)
OLD=$1; NEW=$2; PAIRS=${3:-5}
run() { # bin label
  local bin=$1 label=$2 port=$((20000 + RANDOM % 20000))
  $bin serve --listen 127.0.0.1:$port --io-cores "$SERVER_CPU" --compute-cores "$COMPUTE_CPU" --log-level warn >/dev/null 2>&1 &
  local pid=$!; sleep 0.7
  local t0; t0=$(awk '{print $14+$15}' /proc/$pid/stat)
  local out; out=$(taskset -c "$GEN_CPUS" wrk -t"$WRK_THREADS" -c32 -d"${SECS}s" --latency "${HDR[@]}" "http://127.0.0.1:$port/fast?id=1" 2>&1)
  local t1; t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  kill $pid; wait $pid 2>/dev/null
  local rps p99 reqs
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  if [ -z "$rps" ] || [ -z "$reqs" ]; then
    echo "$label: no result from wrk; its output:" >&2
    echo "$out" >&2
    return
  fi
  local us; us=$(python3 -c "print(round(($t1-$t0)*10000/$reqs, 2))")
  echo "$label rps=$rps p99=$p99 cpu_us_per_req=$us" | tee -a "$LOG"
}
for i in $(seq 1 "$PAIRS"); do
  if [ $((i % 2)) = 1 ]; then run "$OLD" old; run "$NEW" new; else run "$NEW" new; run "$OLD" old; fi
done
python3 - "$LOG" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, *kv = line.split()
    d = dict(x.split("=") for x in kv)
    runs.setdefault(label, []).append((float(d["rps"]), float(d["cpu_us_per_req"])))
for label in ("old", "new"):
    r = runs.get(label, [])
    if r:
        print(f"{label} median: rps={statistics.median(x[0] for x in r):.0f} "
              f"cpu_us_per_req={statistics.median(x[1] for x in r):.2f}")
pairs = list(zip([x[0] for x in runs.get("old", [])], [x[0] for x in runs.get("new", [])]))
if pairs:
    ratios = [n / o for o, n in pairs]
    print(f"new/old req/s, geometric mean of {len(pairs)} pairs: "
          f"{statistics.geometric_mean(ratios):.3f} "
          f"(pairs {min(ratios):.2f}-{max(ratios):.2f})")
EOF
rm -f "$LOG"

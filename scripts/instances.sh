#!/usr/bin/env bash
# Runs several `heavylift serve` instances on one machine, each on its own
# loopback port and its own --io-cores/--compute-cores, for a reverse proxy
# to spread load over (scripts/nginx/run.sh). Stays in the foreground until
# SIGINT/SIGTERM, which it passes on to every instance (each then finishes
# its in-flight requests and exits 0), or until every instance has exited.
#
#   scripts/instances.sh [--fast N] [--slow M] [--ports P,P,...] [--dir DIR]
#                        [--bin PATH] [--cpus LIST] [--fast-args ARGS] [--slow-args ARGS]
#
# --fast N / --slow M   instances for nginx's fast and slow pools (default 1 and 2)
# --ports               their ports, fast ones first (default: free ports)
# --dir                 where the logs and the `instances` file go (default: a temp dir)
# --bin                 the heavylift binary (default: HEAVYLIFT_BIN, else the
#                       release build, wherever cargo puts it: scripts/release-bin.sh)
# --cpus                CPUs to lay the instances out on (default: every usable CPU)
# --fast-args/--slow-args  extra `serve` flags, e.g. --slow-args '--queue-depth 1'
#
# It prints, and writes to DIR/instances, one line per instance once it
# listens: `NAME POOL ADDRESS PID IO_CPUS COMPUTE_CPUS`; and
# `NAME exited STATUS` when one exits.
#
# Core layout. A slow instance runs heavy jobs on its compute CPU; a fast
# instance only reads sockets (nginx sends it no jobs), and I/O is light. So:
# - with 2 CPUs per instance or more, every instance gets its own I/O CPU and
#   its own compute CPU (heavylift's default layout, once per instance);
# - with fewer, the CPUs are split into a compute set (one CPU per slow
#   instance, as far as they go, leaving at least one CPU for I/O) and an I/O
#   set, and instances share them round-robin: every I/O executor on the I/O
#   set, every compute executor on the compute set. On a 2-CPU machine that
#   is I/O on CPU 0 and compute on CPU 1 for all three instances: heavy jobs
#   never run where requests are read, but the slow instances' jobs share
#   one CPU, so two jobs running at once each take about twice as long.
# - with one CPU everything shares it (--reserve 0: jobs yield between steps).
set -euo pipefail
cd "$(dirname "$0")/.."

nfast=1 nslow=2 ports="" dir="" bin="" cpus="" fast_args="" slow_args=""
while [ $# -gt 0 ]; do
  case "$1" in
    --fast) nfast=$2; shift 2 ;;
    --slow) nslow=$2; shift 2 ;;
    --ports) ports=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --fast-args) fast_args=$2; shift 2 ;;
    --slow-args) slow_args=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "instances.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
total=$((nfast + nslow))
[ "$total" -ge 1 ] || { echo "instances.sh: no instances asked for" >&2; exit 2; }
bin=${bin:-$(scripts/release-bin.sh)}
[ -x "$bin" ] || { echo "instances.sh: $bin is not an executable" >&2; exit 2; }
dir=${dir:-$(mktemp -d -t heavylift-instances.XXXXXX)}
mkdir -p "$dir"
: >"$dir/instances"

# Usable CPUs: the process's affinity mask (taskset, cgroups), as heavylift sees it.
if [ -z "$cpus" ]; then
  cpus=$(python3 -c 'import os; print(",".join(map(str, sorted(os.sched_getaffinity(0)))))')
fi
IFS=, read -r -a cpu <<<"$(python3 - "$cpus" <<'PY'
import sys
out = []
for item in sys.argv[1].split(","):
    lo, _, hi = item.partition("-")
    out += range(int(lo), int(hi or lo) + 1)
print(",".join(map(str, out)))
PY
)"
ncpu=${#cpu[@]}

# Free ports: bound at once (so distinct), then released for heavylift to take.
if [ -z "$ports" ]; then
  ports=$(python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(",".join(str(s.getsockname()[1]) for s in socks))' "$total")
fi
IFS=, read -r -a port <<<"$ports"
[ ${#port[@]} -eq "$total" ] || { echo "instances.sh: --ports names ${#port[@]} ports for $total instances" >&2; exit 2; }

# io[i] / compute[i]: the CPU lists of instance i (fast ones first).
io=() compute=()
if [ "$ncpu" -ge $((2 * total)) ]; then
  for ((i = 0; i < total; i++)); do
    io[i]=${cpu[2 * i]} compute[i]=${cpu[2 * i + 1]}
  done
  note="each instance has its own I/O and compute CPU"
elif [ "$ncpu" -ge 2 ]; then
  kc=$((nslow > 0 ? nslow : 1))
  [ "$kc" -le $((ncpu - 1)) ] || kc=$((ncpu - 1))
  ki=$((ncpu - kc))
  for ((i = 0; i < total; i++)); do
    io[i]=${cpu[i % ki]}
    # Slow instance j gets compute CPU j; fast ones reuse them (they run no jobs).
    if [ "$i" -ge "$nfast" ]; then j=$((i - nfast)); else j=$i; fi
    compute[i]=${cpu[ki + j % kc]}
  done
  note="only $ncpu usable CPUs for $total instances: they share CPUs (I/O on ${cpu[*]:0:ki}, compute on ${cpu[*]:ki})"
else
  for ((i = 0; i < total; i++)); do io[i]=${cpu[0]} compute[i]=shared; done
  note="one usable CPU: every instance shares CPU ${cpu[0]} for I/O and jobs"
fi
echo "instances.sh: $note" >&2

pids=()
stop() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
}
trap stop INT TERM

for ((i = 0; i < total; i++)); do
  if [ "$i" -lt "$nfast" ]; then pool=fast name=fast$i extra=$fast_args
  else pool=slow name=slow$((i - nfast)) extra=$slow_args; fi
  addr=127.0.0.1:${port[i]}
  if [ "${compute[i]}" = shared ]; then layout=(--io-cores "${io[i]}" --reserve 0)
  else layout=(--io-cores "${io[i]}" --compute-cores "${compute[i]}"); fi
  # shellcheck disable=SC2086 # $extra is a list of flags
  "$bin" serve --listen "$addr" "${layout[@]}" $extra >"$dir/$name.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  # Ready once it logs its address; a bad flag or a taken port exits instead.
  for _ in $(seq 100); do
    grep -q "listening on" "$dir/$name.log" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q "listening on" "$dir/$name.log" 2>/dev/null; then
    echo "instances.sh: $name did not start:" >&2
    cat "$dir/$name.log" >&2
    stop
    wait
    exit 1
  fi
  line="$name $pool $addr $pid ${io[i]} ${compute[i]}"
  echo "$line"
  echo "$line" >>"$dir/instances"
done

# Report each exit as it happens, until every instance has exited. `wait -n`
# returns early when a signal arrives (then no pid is set) and the loop goes on.
declare -A name_of
for ((i = 0; i < total; i++)); do
  name_of[${pids[i]}]=$(awk -v p="${pids[i]}" '$4 == p {print $1}' "$dir/instances")
done
live=("${pids[@]}")
while [ ${#live[@]} -gt 0 ]; do
  done_pid=""
  set +e
  wait -n -p done_pid "${live[@]}"
  status=$?
  set -e
  [ -n "${done_pid:-}" ] || continue
  echo "${name_of[$done_pid]} exited $status" | tee -a "$dir/instances"
  rest=()
  for p in "${live[@]}"; do [ "$p" = "$done_pid" ] || rest+=("$p"); done
  live=("${rest[@]}")
done

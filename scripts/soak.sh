#!/usr/bin/env bash
# Soak: `scripts/soak.sh [minutes]` (default 10). Builds the release binary,
# serves on a free loopback port with short timeouts, holds the mixed load of
# scripts/soak.py (fast, pipelined, slow_threaded, /fail, malformed requests,
# hang-ups mid-job, clients that stop reading, slowloris heads), samples the
# server's RSS and open fds every 10 s into soak-results/<date>-<host>/samples.csv,
# then checks: zero unanswered requests, the /stats job identity,
# open_connections back to 1, RSS and fds flat after warm-up, and a clean exit
# on SIGTERM. Prints PASS or FAIL; exits 1 on FAIL. ISOLATION=process runs the
# server with --isolation process and adds a client of /crash and /spin.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes="${1:-10}"
idle_timeout=3
header_timeout=3
job_timeout=10
isolation="${ISOLATION:-thread}"

bin=$(scripts/release-bin.sh)

# io_uring rings need locked memory: glommio refuses to start below 512 KiB.
if [ "$(ulimit -l)" != unlimited ] && [ "$(ulimit -l)" -lt 1024 ]; then
  ulimit -l 1024 || echo "warning: RLIMIT_MEMLOCK is $(ulimit -l) KiB; glommio needs 512" >&2
fi

out="soak-results/$(date +%Y-%m-%d)-$(hostname -s)"
mkdir -p "$out"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

"$bin" serve --listen "127.0.0.1:$port" --idle-timeout "$idle_timeout" \
  --header-timeout "$header_timeout" --job-timeout "$job_timeout" --queue-depth 16 \
  --isolation "$isolation" --log-level error 2>"$out/server.log" &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; }
trap cleanup EXIT

for _ in $(seq 50); do
  if python3 - "$port" <<'EOF' 2>/dev/null; then break; fi
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
assert s.recv(1024).startswith(b"HTTP/1.1 200")
EOF
  sleep 0.2
done

{
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "host: $(hostname -s), $(nproc) usable cores, $(uname -r)"
  echo "server: $bin serve --idle-timeout $idle_timeout --header-timeout $header_timeout --job-timeout $job_timeout --queue-depth 16 --isolation $isolation (default cores)"
  echo "minutes: $minutes"
} >"$out/machine.txt"

status=0
python3 scripts/soak.py --port "$port" --pid "$server" --minutes "$minutes" \
  --csv "$out/samples.csv" --idle-timeout "$idle_timeout" \
  --header-timeout "$header_timeout" --job-timeout "$job_timeout" --isolation "$isolation" | tee "$out/report.txt" \
  || status=1

kill -TERM "$server"
if wait "$server"; then
  echo "server: exited 0 on SIGTERM" | tee -a "$out/report.txt"
else
  echo "server: exit code $? on SIGTERM (want 0)" | tee -a "$out/report.txt"
  status=1
fi
trap - EXIT
echo "samples: $out/samples.csv"
if [ "$status" -ne 0 ]; then
  echo "soak: FAIL"
fi
exit "$status"

# Sourced by scripts/bench-workers.sh and scripts/bench-conns.sh: the servers
# a script starts are killed when it exits, and wait_port waits for one.
#   pids+=($!)      after starting a server in the background
#   wait_port PORT  until GET /fast?id=0 on 127.0.0.1:PORT answers (10 s)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_port() {
  for _ in $(seq 200); do
    curl -fsS -o /dev/null "http://127.0.0.1:$1/fast?id=0" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "$(basename "$0"): nothing answers on port $1" >&2
  return 1
}

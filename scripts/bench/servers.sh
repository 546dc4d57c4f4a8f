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

# Where curl is missing (a bare benchmark box with no package registry), a
# stand-in for the two forms these scripts use: `curl -fsS [-o FILE]
# [-H 'Name: value'] URL`, on python3's urllib.
if ! command -v curl >/dev/null; then
  curl() {
    python3 - "$@" <<'EOF'
import sys, urllib.request
args, out, headers, url = sys.argv[1:], None, {}, None
i = 0
while i < len(args):
    a = args[i]
    if a == "-o":
        out, i = args[i + 1], i + 2
        continue
    if a == "-H":
        name, _, value = args[i + 1].partition(":")
        headers[name.strip()] = value.strip()
        i += 2
        continue
    if not a.startswith("-"):
        url = a
    i += 1
try:
    body = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30).read()
except Exception as e:
    sys.exit(f"curl (python stand-in): {url}: {e}")
if out:
    open(out, "wb").write(body)
else:
    sys.stdout.buffer.write(body)
EOF
  }
fi

#!/usr/bin/env bash
# Renders a real `heavylift bench --svg` timeline in headless Chromium (Debian's
# package; installed if missing) and checks that it drew something: a run with
# an overloaded queue, so 503 marks are in the picture too.
# Usage: scripts/check-svg.sh [OUT_DIR]   (default: a temp dir; keeps run.svg and run.png)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d)}
mkdir -p "$out"
if ! command -v chromium >/dev/null; then
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
bin=$(scripts/release-bin.sh)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --listen "127.0.0.1:$port" --queue-depth 1 --log-level error &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

# 4 slow loops against one compute core with room for one waiting job: 503s.
"$bin" bench --target "127.0.0.1:$port" --duration 3 --connections 8 --slow-concurrency 4 \
  --n 3000 --svg "$out/run.svg" >"$out/bench.txt" || true
grep -q '<svg' "$out/run.svg"
python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' "$out/run.svg"

timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$(mktemp -d)" --window-size=1100,640 \
  --screenshot="$out/run.png" "file://$(realpath "$out/run.svg")" >/dev/null 2>&1
size=$(stat -c %s "$out/run.png")
# A blank 1100x640 page compresses to a few KiB; the timeline is far larger.
if [ "$size" -lt 15000 ]; then
  echo "FAIL: $out/run.png is only $size bytes: the SVG did not render" >&2
  exit 1
fi
echo "PASS: Chromium rendered $out/run.svg to $out/run.png ($size bytes)"
grep -E '^(fast|slow) ' "$out/bench.txt" || true

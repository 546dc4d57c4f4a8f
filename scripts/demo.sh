#!/usr/bin/env bash
# The README's demo: start the server in the background on defaults, run the
# seed's 3 slow + 20 fast (`heavylift load`), stop the server with SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(scripts/release-bin.sh)   # builds it; HEAVYLIFT_BIN=path skips that
addr=${HEAVYLIFT_ADDR:-127.0.0.1:8888}
"$bin" serve --listen "$addr" --log-level warn &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
host=${addr%:*} port=${addr##*:}
for _ in $(seq 100); do   # wait until it accepts connections
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && break
  sleep 0.1
done
"$bin" load --target "$addr" "$@"

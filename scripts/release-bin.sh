#!/usr/bin/env bash
# Prints the path of the release `heavylift` binary, building it first, at
# whatever path cargo puts it (CARGO_TARGET_DIR, build.target-dir in a
# .cargo/config.toml, or target/): the path comes from cargo's own build
# report, never from a guess. With HEAVYLIFT_BIN set, prints that instead
# and builds nothing. The other scripts use it as
#   bin=$(scripts/release-bin.sh)
# Build output and errors go to stderr; stdout is only the path.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${HEAVYLIFT_BIN:-}" ]; then
  [ -x "$HEAVYLIFT_BIN" ] || { echo "release-bin.sh: HEAVYLIFT_BIN=$HEAVYLIFT_BIN is not an executable" >&2; exit 2; }
  echo "$HEAVYLIFT_BIN"
  exit 0
fi
cargo build --release --quiet --bin heavylift --message-format=json-render-diagnostics \
  | python3 -c '
import json, sys
found = [m["executable"] for m in map(json.loads, sys.stdin)
         if m.get("reason") == "compiler-artifact" and m.get("executable")
         and m["target"]["name"] == "heavylift"]
if not found:
    sys.exit("release-bin.sh: cargo built no heavylift executable")
print(found[-1])
'

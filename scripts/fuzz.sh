#!/usr/bin/env bash
# Bounded fuzz run: `scripts/fuzz.sh [seconds]` (default 60). Runs the
# cargo-fuzz (libFuzzer) target fuzz/fuzz_targets/connection_bytes.rs, the
# whole per-connection byte path, from the seed corpus for that long; exits
# non-zero and leaves the crashing input in fuzz/artifacts/connection_bytes/
# if any invariant breaks. Reproduce one with
#   (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run connection_bytes artifacts/connection_bytes/crash-...)
#
# Works on stable Rust: cargo-fuzz passes -Z flags (-Zsanitizer=...), which
# RUSTC_BOOTSTRAP=1 lets a stable rustc accept; stable's rust-std ships the
# ASan runtime. FUZZ_SANITIZER=none skips ASan (about 3x the executions).
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1

command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
# libFuzzer's C++ runtime is built by the libfuzzer-sys crate.
command -v c++ >/dev/null || { apt-get update -qq && apt-get install -y -qq g++; }

# New inputs go to a scratch directory; the committed seeds stay as they are.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

cd fuzz
cargo fuzz build -s "$sanitizer" connection_bytes
cargo fuzz run -s "$sanitizer" connection_bytes "$scratch" corpus/connection_bytes -- \
  -max_total_time="$secs" -max_len=12000 -print_final_stats=1

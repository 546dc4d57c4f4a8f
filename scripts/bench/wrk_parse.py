#!/usr/bin/env python3
"""Turns one `wrk --latency` output into one JSON object on stdout.

    scripts/bench/wrk_parse.py raw/a1-p03-heavylift.txt
    -> {"rps": 61234.5, "p50_ms": 0.41, "p75_ms": ..., "p90_ms": ..., "p99_ms": 0.93,
        "requests": 245000, "errors": 0, "non_2xx": 0}

Latencies are converted to milliseconds whatever unit wrk printed (us, ms, s).
A run that printed no `Requests/sec` line gives rps = null, so a failed run
shows up in the table instead of being silently dropped.
"""

import json
import re
import sys

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def to_ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def parse(text):
    out = {"rps": None, "requests": None, "errors": 0, "non_2xx": 0}
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"(50|75|90|99)%\s+(\S+)", line)
        if m:
            out[f"p{m.group(1)}_ms"] = to_ms(m.group(2))
        m = re.match(r"Requests/sec:\s+([0-9.]+)", line)
        if m:
            out["rps"] = float(m.group(1))
        m = re.match(r"(\d+) requests in", line)
        if m:
            out["requests"] = int(m.group(1))
        m = re.match(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", line)
        if m:
            out["errors"] = sum(int(g) for g in m.groups())
        m = re.match(r"Non-2xx or 3xx responses: (\d+)", line)
        if m:
            out["non_2xx"] = int(m.group(1))
    return out


def main(argv):
    with open(argv[1]) as f:
        print(json.dumps(parse(f.read())))


if __name__ == "__main__":
    main(sys.argv)

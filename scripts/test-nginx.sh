#!/usr/bin/env bash
# Integration test of the deployment in README "Running more than one
# instance": a real nginx (scripts/nginx/run.sh) in front of three heavylift
# instances (scripts/instances.sh) on free loopback ports, one in the fast
# pool and two in the slow pool. Prints one PASS/FAIL line per check and
# exits 1 when any check fails. Every phase runs under a timeout and a trap
# stops everything it started, so it never hangs or leaves processes behind.
#
#   scripts/test-nginx.sh    (HEAVYLIFT_BIN=path skips the release build;
#                             KEEP_LOGS=1 keeps the logs of a passing run)
#
# Needs: nginx (installed with apt-get when missing), python3, a release
# build (made here when missing: a few minutes, outside the timed phases).
set -euo pipefail
cd "$(dirname "$0")/.."

# Job size for bursts: about 1 s of compute here, so every request of a burst
# arrives while the first jobs still run. Burst requests start STAGGER_MS
# apart so each compute core has picked up its job before the next arrives.
BURST_N=10000
STAGGER_MS=100
# The slow instances' --job-timeout, which nginx's read timeout follows; it
# also bounds how long a stopped instance may take to drain.
JOB_TIMEOUT=10

bin=$(scripts/release-bin.sh)   # HEAVYLIFT_BIN, or the build's own path
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  apt-get update -qq && apt-get install -y -qq nginx >/dev/null
fi
if [ "$(ulimit -l)" != unlimited ] && [ "$(ulimit -l)" -lt 1024 ]; then
  ulimit -l 1024 || echo "warning: RLIMIT_MEMLOCK is $(ulimit -l) KiB; glommio needs 512" >&2
fi

started=$SECONDS
work=$(mktemp -d -t heavylift-test-nginx.XXXXXX)
inst_pid="" nginx_pid="" failed=0

# Stops instances.sh and every instance it started (SIGKILL after 10 s: an
# instance that hangs on SIGTERM must not outlive the test).
stop_instances() {
  [ -n "$inst_pid" ] || return 0
  local pids p
  pids=$(awk 'NF == 6 {print $4}' "$work/instances/instances" 2>/dev/null || true)
  kill -TERM "$inst_pid" 2>/dev/null || true
  for p in $pids $inst_pid; do
    timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
  done
  inst_pid=""
}

cleanup() {
  local rc=$?
  if [ -n "$nginx_pid" ]; then
    kill -TERM "$nginx_pid" 2>/dev/null || true
    timeout 10 tail --pid="$nginx_pid" -f /dev/null 2>/dev/null || kill -KILL "$nginx_pid" 2>/dev/null || true
  fi
  stop_instances
  if [ "$failed" -ne 0 ] || [ "$rc" -ne 0 ] || [ -n "${KEEP_LOGS:-}" ]; then
    echo "--- logs kept in $work (instances/*.log, nginx.out, nginx/access.log)" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failed=1; }
check() { # check DESCRIPTION COMMAND...: PASS/FAIL on the command's status
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

# ---- the HTTP side of the checks, in python3 (always there; curl may not be)
cat >"$work/check.py" <<'PY'
"""HTTP helpers for scripts/test-nginx.sh; every socket has a timeout."""
import http.client, json, os, re, signal, sys, threading, time

def get(addr, path, timeout=30):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Retry-After"), resp.read().decode()
    except OSError as err:
        return 0, None, str(err)
    finally:
        conn.close()

def wait_ok(addr, path, secs):
    deadline = time.monotonic() + float(secs)
    while time.monotonic() < deadline:
        if get(addr, path, timeout=1)[0] == 200:
            return 0
        time.sleep(0.1)
    print(f"{addr}{path}: no 200 within {secs} s", file=sys.stderr)
    return 1

def stats(addr):
    return json.loads(get(addr, "/stats", timeout=5)[2])

def burst(nginx, size, n, stagger_ms, tag):
    """`size` concurrent /slow_threaded requests, started stagger_ms apart."""
    results = [None] * size
    def one(i):
        time.sleep(i * stagger_ms / 1000)
        results[i] = get(nginx, f"/slow_threaded?id={tag}-{size}-{i}&n={n}")
    threads = [threading.Thread(target=one, args=(i,)) for i in range(size)]
    for t in threads: t.start()
    for t in threads: t.join()
    ok = sum(1 for s, _, _ in results if s == 200)
    busy = [r for r in results if r[0] == 503]
    other = [r for r in results if r[0] not in (200, 503)]
    return {"size": size, "ok": ok, "503": len(busy),
            # Retry-After is whole seconds from measured run times: ~1 s jobs
            # with one queued ahead give 1 or 2 (more on a loaded machine).
            "503_retry_after_1": sum(1 for _, ra, _ in busy if ra and ra.isdigit() and 1 <= int(ra) <= 5),
            "other": other}

def series(nginx, max_size, n, stagger_ms, tag):
    """Bursts of 1, 2, ... until one gets a 503: that size is where 503s start."""
    for size in range(1, int(max_size) + 1):
        r = burst(nginx, size, int(n), int(stagger_ms), tag)
        print(json.dumps(r), file=sys.stderr)
        if r["503"] or r["other"]:
            return size, r
    return None, r

def absorb(nginx, full, n, stagger_ms):
    """Fills instance `full` directly (2 jobs: one running, one queued at
    --queue-depth 1), then sends 2 jobs through nginx while it is full."""
    results = {}
    def one(key, addr, delay):
        time.sleep(delay)
        results[key] = get(addr, f"/slow_threaded?id={key}&n={n}")[0]
    step = int(stagger_ms) / 1000
    plan = [("direct-0", full, 0), ("direct-1", full, step),
            ("absorb-0", nginx, 3 * step), ("absorb-1", nginx, 4 * step)]
    threads = [threading.Thread(target=one, args=p) for p in plan]
    for t in threads: t.start()
    for t in threads: t.join()
    return results

def stream(nginx, count, n, victim_addr, victim_pid):
    """`count` sequential /slow_threaded requests, one in flight at a time.
    SIGTERMs the victim instance while it runs one of them (seen in its
    /stats), once, after the first few. Returns every status and which
    request was in flight on the victim when it was stopped."""
    statuses, stopped_during = [], None
    for i in range(int(count)):
        box = []
        t = threading.Thread(target=lambda: box.append(get(nginx, f"/slow_threaded?id=stream-{i}&n={n}")))
        t.start()
        while stopped_during is None and i >= 3 and t.is_alive():
            try:
                s = stats(victim_addr)
                if any(c["running"] or c["queued"] for c in s["compute_cores"]):
                    os.kill(int(victim_pid), signal.SIGTERM)
                    stopped_during = i
            except (OSError, ValueError):
                pass
            time.sleep(0.005)
        t.join()
        statuses.append(box[0][0])
    return statuses, stopped_during

def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "wait-ok":
        return wait_ok(*args)
    if cmd == "accepted":
        print(stats(args[0])["jobs"]["accepted"])
        return 0
    if cmd == "get":
        status, ra, body = get(args[0], args[1])
        print(json.dumps({"status": status, "retry_after": ra, "body": body}))
        return 0
    if cmd == "series":
        size, last = series(*args)
        print(json.dumps({"starts_at": size, "last": last}))
        return 0
    if cmd == "burst":
        print(json.dumps(burst(args[0], int(args[1]), int(args[2]), int(args[3]), args[4])))
        return 0
    if cmd == "absorb":
        print(json.dumps(absorb(*args)))
        return 0
    if cmd == "stream":
        statuses, at = stream(*args)
        print(json.dumps({"statuses": statuses, "stopped_during": at}))
        return 0
    return 2

sys.exit(main())
PY
# field JSON EXPR: prints EXPR evaluated with v = the parsed JSON ("error" if it cannot).
field() {
  python3 -c '
import json, sys
try: print(eval(sys.argv[2], {}, {"v": json.loads(sys.argv[1])}))
except Exception as err: print("error:", err)' "$@"
}

# ---- start: three instances, then nginx with the fast and slow pools
ports=$(python3 -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
read -r p_nginx p_fast p_slow0 p_slow1 <<<"$ports"
nginx_addr=127.0.0.1:$p_nginx fast=127.0.0.1:$p_fast
slow0=127.0.0.1:$p_slow0 slow1=127.0.0.1:$p_slow1

start_instances() { # start_instances [more serve flags for the slow instances]
  if [ -d "$work/instances" ]; then rm -rf "$work/instances.0"; mv "$work/instances" "$work/instances.0"; fi
  scripts/instances.sh --bin "$bin" --dir "$work/instances" --fast 1 --slow 2 \
    --ports "$p_fast,$p_slow0,$p_slow1" --slow-args "--job-timeout $JOB_TIMEOUT $*" >>"$work/instances.out" 2>&1 &
  inst_pid=$!
  for _ in $(seq 150); do
    [ "$(grep -c ' 127\.0\.0\.1:' "$work/instances/instances" 2>/dev/null)" = 3 ] && return 0
    kill -0 "$inst_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$work/instances.out" >&2
  return 1
}
pid_of() { awk -v n="$1" '$1 == n && NF == 6 {print $4}' "$work/instances/instances"; }

echo "== start (instances: fast $fast, slow $slow0 $slow1; nginx $nginx_addr; logs $work)"
check "three instances listen" start_instances
scripts/nginx/run.sh --listen "$nginx_addr" --fast "$fast" --slow "$slow0,$slow1" \
  --job-timeout "$JOB_TIMEOUT" --dir "$work/nginx" >"$work/nginx.out" 2>&1 &
nginx_pid=$!
check "nginx proxies /healthz to the fast pool" timeout 20 python3 "$work/check.py" wait-ok "$nginx_addr" /healthz 15
[ "$failed" -eq 0 ] || exit 1

# ---- 1. the seed's load through nginx: fast requests never wait for slow ones
echo "== 1. heavylift load through nginx"
if timeout 60 "$bin" load --target "$nginx_addr" >"$work/load.out" 2>&1; then
  pass "load exits 0 (every request 2xx)"
else
  fail "load exits 0 (every request 2xx)"; tail -n 8 "$work/load.out"
fi
check "every fast request finished before the first slow one" \
  grep -q "every fast request finished before the first slow one: yes" "$work/load.out"
sed -n '/^Summary/,$p' "$work/load.out"

# ---- 2. slow requests land only on the slow pool
echo "== 2. routing (/stats of each instance, asked directly)"
a_fast=$(timeout 10 python3 "$work/check.py" accepted "$fast" || echo -1)
a_slow0=$(timeout 10 python3 "$work/check.py" accepted "$slow0" || echo -1)
a_slow1=$(timeout 10 python3 "$work/check.py" accepted "$slow1" || echo -1)
echo "accepted jobs: fast $a_fast, slow0 $a_slow0, slow1 $a_slow1"
check "the fast instance accepted no job" [ "$a_fast" -eq 0 ]
check "each slow instance accepted jobs" [ $((a_slow0 > 0 && a_slow1 > 0)) = 1 ]
r=$(timeout 10 python3 "$work/check.py" get "$nginx_addr" "/fail?id=routing" || true)
check "/fail goes to the slow pool and its 500 passes through" \
  [ "$(field "$r" 'v["status"] == 500 and v["body"].startswith("Caught an exception: ")')" = True ]
check "that 500 was not retried (one upstream tried)" \
  grep -q 'GET /fail?id=routing HTTP/1.1" 500 up=[0-9.:]* ustatus=500 ' "$work/nginx/access.log"

# ---- 3. overload moves between slow instances; only a full pool answers 503
# The slow instances restart with --queue-depth 1: each takes 2 jobs (one
# running, one queued), the pool 4. (Phase 1 ran at the default depth: three
# slow requests arriving together can find a compute core that has not yet
# picked up its first job, and at depth 1 that counts as full.)
echo "== 3. bursts of ~1 s jobs (n=$BURST_N), requests ${STAGGER_MS} ms apart, slow instances at --queue-depth 1"
stop_instances
check "instances restart with --queue-depth 1" start_instances --queue-depth 1
timeout 20 python3 "$work/check.py" wait-ok "$nginx_addr" "/slow_threaded?id=warm&n=10" 15 || true
r=$(timeout 30 python3 "$work/check.py" absorb "$nginx_addr" "$slow0" "$BURST_N" "$STAGGER_MS" || true)
echo "slow0 filled directly with 2 jobs, then 2 more through nginx: $r"
check "while slow0 is full, jobs sent through nginx all get 200" \
  [ "$(field "$r" 'set(v.values()) == {200} and len(v) == 4')" = True ]
check "nginx got that by retrying slow0's 503 on slow1" \
  grep -q "id=absorb-.* 200 up=$slow0, $slow1 ustatus=503, 200 " "$work/nginx/access.log"
r=$(timeout 60 python3 "$work/check.py" series "$nginx_addr" 6 "$BURST_N" "$STAGGER_MS" two 2>"$work/series-two.out" || true)
cat "$work/series-two.out"
two=$(field "$r" 'v["starts_at"]')
echo "two slow instances: 503s start at a burst of $two"
check "a burst of 4 (the pool's capacity) gets no 503" \
  [ "$(field "$r" 'v["starts_at"] is None or v["starts_at"] > 4')" = True ]
check "503s start just past the pool's capacity (5)" [ "$two" = 5 ]
r=$(timeout 30 python3 "$work/check.py" burst "$nginx_addr" 8 "$BURST_N" "$STAGGER_MS" eight || true)
echo "burst of 8: $r"
check "a burst of 8 gets 503s, each with Retry-After of 1 to 5 s" \
  [ "$(field "$r" 'v["503"] > 0 and v["503"] == v["503_retry_after_1"] and not v["other"]')" = True ]
r=$(timeout 30 python3 "$work/check.py" burst "$nginx_addr" 4 "$BURST_N" "$STAGGER_MS" after || true)
echo "burst of 4 right after: $r"
check "the 503s marked no instance failed: a burst of 4 right after gets no 503" \
  [ "$(field "$r" 'v["ok"] == 4')" = True ]

# ---- 4. stopping a slow instance mid-run loses no request
echo "== 4. SIGTERM to slow1 while it runs one of 16 sequential requests"
victim_pid=$(pid_of slow1)
r=$(timeout 60 python3 "$work/check.py" stream "$nginx_addr" 16 5000 "$slow1" "$victim_pid" || true)
echo "stream: $r"
check "slow1 was stopped while it ran a request" [ "$(field "$r" 'v["stopped_during"] is not None')" = True ]
check "every request of the stream got 200" [ "$(field "$r" 'set(v["statuses"]) == {200}')" = True ]
# SIGTERM lets in-flight requests finish, bounded by the job timeout.
for _ in $(seq $((JOB_TIMEOUT * 10 + 20))); do
  grep -q '^slow1 exited' "$work/instances/instances" && break
  sleep 0.1
done
check "slow1 drained and exited 0 (within --job-timeout + 2 s)" grep -q '^slow1 exited 0$' "$work/instances/instances"
if [ -d "/proc/$victim_pid" ]; then
  echo "slow1 (pid $victim_pid) still runs; its threads:"
  for t in /proc/"$victim_pid"/task/*; do echo "  $(cat "$t/comm") waiting in $(cat "$t/wchan")"; done
fi
retried=$(grep -c "id=stream-.* 200 up=.*$slow1, $slow0 ustatus=502, 200" "$work/nginx/access.log" || true)
echo "stream requests nginx sent to the stopped slow1 first and retried on slow0: $retried"

# ---- 5. one slow instance left
echo "== 5. bursts with one slow instance left (slow1 stopped, still in nginx's list)"
r=$(timeout 30 python3 "$work/check.py" series "$nginx_addr" 4 "$BURST_N" "$STAGGER_MS" one 2>"$work/series-one.out" || true)
cat "$work/series-one.out"
one=$(field "$r" 'v["starts_at"]')
echo "one slow instance: 503s start at a burst of $one"
check "503s start just past one instance's capacity (3)" [ "$one" = 3 ]
check "those 503s carry Retry-After of 1 to 5 s" \
  [ "$(field "$r" 'v["last"]["503"] > 0 and v["last"]["503"] == v["last"]["503_retry_after_1"] and not v["last"]["other"]')" = True ]
a_fast=$(timeout 10 python3 "$work/check.py" accepted "$fast" || echo -1)
check "the fast instance still accepted no job" [ "$a_fast" -eq 0 ]

# Every job here takes well under --job-timeout; a 504 means a job waited
# that long without running (a compute core that missed its wake-up).
timeouts=$(grep -c '" 504 up=' "$work/nginx/access.log" || true)
if [ "$timeouts" -gt 0 ]; then
  echo "NOTE nginx logged $timeouts response(s) 504: a job waited past --job-timeout without running"
  grep '" 504 up=' "$work/nginx/access.log" | head -n 3
fi
echo "== $((SECONDS - started)) s; summary: 503s start at a burst of $two with two slow instances, $one with one"
if [ "$failed" -ne 0 ]; then echo "FAILED"; exit 1; fi
echo "ALL PASSED"

#!/usr/bin/env python3
"""Time from a worker's death to its replacement answering a job (issue 13).

    scripts/bench/respawn.py HOST:PORT [ROUNDS]

Needs a server started with `--isolation process` and one compute core.
Each round:
  kill   reads the compute core's `worker_pid` from /stats, SIGKILLs it (t0),
         polls /stats until another pid is there, then sends
         `/slow_threaded?id=R&n=1` and times its 200 (t1): the supervisor
         notices the death of an idle worker, reaps it and starts a new one,
         which takes the job. (A job sent within the instant between the
         kill and the worker's exit goes to the dying worker and is answered
         500 `worker died: SIGKILL`, as any job its worker dies under.)
  crash  sends `/crash?how=abort` (t0: the job aborts its worker at once;
         the 500 comes after the supervisor has reaped it and started a
         new one), then the same job (t1).
and waits until /stats shows a live worker again before the next round.
Prints one JSON object: rounds, and for each kind the p50, p90 and max of
t1 - t0 in milliseconds. A job answered other than 200 fails the run.
"""

import http.client
import json
import os
import signal
import statistics
import sys
import time


def get(conn, path):
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.status, resp.read()


def worker_pid(conn):
    status, body = get(conn, "/stats")
    if status != 200:
        raise SystemExit(f"/stats answered {status}")
    cores = json.loads(body).get("compute_cores", [])
    if len(cores) != 1:
        raise SystemExit(f"needs one compute core, the server has {len(cores)}")
    if "worker_pid" not in cores[0]:
        raise SystemExit("/stats has no worker_pid: is this heavylift with process isolation?")
    return cores[0]["worker_pid"]


def wait_worker(conn, old, limit=10.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        pid = worker_pid(conn)
        if pid and pid != old:
            return pid
        time.sleep(0.0005)
    raise SystemExit(f"no new worker within {limit} s (old pid {old})")


def job(conn, rnd):
    status, body = get(conn, f"/slow_threaded?id={rnd}&n=1")
    if status != 200:
        raise SystemExit(f"job after a death answered {status}: {body[:200]!r}")


def summary(ms):
    ms = sorted(ms)
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 2),
        "max_ms": round(ms[-1], 2),
    }


def main():
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    host, port = sys.argv[1].rsplit(":", 1)
    rounds = int(sys.argv[2]) if len(sys.argv) == 3 else 20
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    pid = worker_pid(conn)
    if not pid:
        raise SystemExit("no worker_pid in /stats: start the server with --isolation process")
    job(conn, 0)
    kill_ms, crash_ms = [], []
    for rnd in range(1, rounds + 1):
        pid = worker_pid(conn)
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        pid = wait_worker(conn, pid)
        job(conn, rnd)
        kill_ms.append((time.monotonic() - t0) * 1000)

        t0 = time.monotonic()
        status, _ = get(conn, f"/crash?id={rnd}&how=abort")
        if status != 500:
            raise SystemExit(f"/crash answered {status}, not 500")
        job(conn, rnd)
        crash_ms.append((time.monotonic() - t0) * 1000)
        wait_worker(conn, pid)
    print(json.dumps({"rounds": rounds, "kill": summary(kill_ms), "crash": summary(crash_ms)}))


if __name__ == "__main__":
    main()

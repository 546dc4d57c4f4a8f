#!/usr/bin/env python3
"""How often deadline-aware admission is wrong, on a mixed workload (issue 15).

    scripts/bench-admission.py [--target 127.0.0.1:8888] [--secs 60] [--load 1.3] [--seed 1]

Against a server with ONE compute core (the default layout on 2 CPUs) it
sends `/slow_threaded` jobs with n drawn log-uniformly from 1 to 20000 (run
times from microseconds to seconds: the hard case for a per-route estimate),
each with a deadline header `x-envoy-expected-rq-timeout-ms` drawn uniformly
from 0.2 to 5 s, at Poisson arrivals whose mean offered load is LOAD times
what the core can run (measured first). Then, from the trace alone, it judges
every decision as a clairvoyant would:

- a job's would-be start is when the last job admitted before it, still
  unfinished at its arrival, finished (one core, first in first out);
- its run time is the median measured run time of the finished jobs of the
  nearest sizes (`seconds` in their JSON);
- false refusal: a 503 for the deadline whose would-be start was before its
  deadline (admission refused a job that could have started in time);
- false admission: an admitted job whose would-be start was after its
  deadline (it waited, then got 504 without ever being useful).

Prints the rates, counts, and the server's /metrics lines for the route.
Standard library only.
"""

import argparse
import bisect
import http.client
import json
import math
import random
import statistics
import threading
import time


def request(host, port, path, headers, timeout=120):
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="127.0.0.1:8888")
    ap.add_argument("--secs", type=float, default=60.0)
    ap.add_argument("--load", type=float, default=1.3)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    host, port = a.target.rsplit(":", 1)
    port = int(port)
    rnd = random.Random(a.seed)
    json_accept = {"Accept": "application/json"}

    # Mean run time of the mix, from a sample run one at a time.
    sample = [int(math.exp(rnd.uniform(0, math.log(20000)))) for _ in range(40)]
    runs = []
    for n in sample:
        st, body = request(host, port, f"/slow_threaded?id=w&n={max(1, n)}", json_accept)
        if st == 200:
            runs.append(json.loads(body)["seconds"])
    mean_run = statistics.mean(runs)
    rate = a.load / mean_run
    print(f"mix: mean run {mean_run*1000:.1f} ms; offered load {a.load} -> {rate:.2f} jobs/s for {a.secs:.0f} s")

    trace = []
    lock = threading.Lock()
    threads = []
    t0 = time.monotonic()
    i = 0
    next_at = 0.0
    while next_at < a.secs:
        delay = t0 + next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        n = max(1, int(math.exp(rnd.uniform(0, math.log(20000)))))
        deadline = rnd.uniform(0.2, 5.0)
        i += 1

        def one(i=i, n=n, deadline=deadline):
            sent = time.monotonic() - t0
            headers = dict(json_accept)
            headers["x-envoy-expected-rq-timeout-ms"] = str(int(deadline * 1000))
            try:
                st, body = request(host, port, f"/slow_threaded?id={i}&n={n}", headers)
            except OSError:
                st, body = 0, b""
            done = time.monotonic() - t0
            rec = {"n": n, "deadline": deadline, "sent": sent, "done": done, "status": st}
            if st == 200:
                d = json.loads(body)
                rec["seconds"] = d["seconds"]
                rec["queued"] = d["queued_seconds"]
            elif st == 503:
                rec["reason"] = "deadline" if b"deadline" in body else "full"
            with lock:
                trace.append(rec)

        th = threading.Thread(target=one)
        th.start()
        threads.append(th)
        next_at += rnd.expovariate(rate)
    for th in threads:
        th.join()

    trace.sort(key=lambda r: r["sent"])
    ok = sorted((r["n"], r["seconds"]) for r in trace if r["status"] == 200)
    ns = [n for n, _ in ok]

    def run_time(n):
        k = bisect.bisect_left(ns, n)
        near = [s for _, s in ok[max(0, k - 3):k + 3]]
        return statistics.median(near) if near else mean_run

    admitted = [r for r in trace if r["status"] in (200, 504)]
    false_refusals = false_admissions = 0
    deadline_refusals = [r for r in trace if r.get("reason") == "deadline"]
    for r in trace:
        ahead = [p["done"] for p in admitted if p["sent"] < r["sent"] and p["done"] > r["sent"]]
        start = max(ahead) if ahead else r["sent"]
        in_time = start <= r["sent"] + r["deadline"]
        r["would_start"] = start
        if r.get("reason") == "deadline" and in_time:
            false_refusals += 1
        if r["status"] in (200, 504) and not in_time:
            false_admissions += 1
    by = {}
    for r in trace:
        key = r["status"] if r["status"] != 503 else f"503 {r['reason']}"
        by[key] = by.get(key, 0) + 1
    print(f"requests: {len(trace)}; by answer: {dict(sorted(by.items(), key=str))}")
    print(f"false refusals: {false_refusals} of {len(deadline_refusals)} deadline refusals "
          f"({100*false_refusals/max(1,len(deadline_refusals)):.1f}%), "
          f"{100*false_refusals/max(1,len(trace)):.2f}% of all requests")
    print(f"false admissions: {false_admissions} of {len(admitted)} admitted "
          f"({100*false_admissions/max(1,len(admitted)):.1f}%)")
    late = [r for r in admitted if r["status"] == 504]
    print(f"admitted but 504 (started in time, ran past the deadline, or started late): {len(late)}")
    _, metrics = request(host, port, "/metrics", {})
    print("/metrics excerpt:")
    for line in metrics.decode().splitlines():
        if ("admission_refusals_total{" in line or "route=\"slow_threaded\"" in line) and (
                "_sum" in line or "_count" in line or "refusals" in line or "le=\"1.0\"" in line):
            if "requests_total" not in line:
                print("  " + line)


if __name__ == "__main__":
    main()

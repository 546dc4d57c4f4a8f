#!/usr/bin/env python3
"""Soak driver for scripts/soak.sh (python3 stdlib only, loopback only).

Holds a bounded mixed load on a running `heavylift serve` for a while:
well-behaved clients (fast keep-alive, pipelined fast, slow_threaded, /fail,
malformed requests that must get their 4xx/5xx) whose every request must get
an answer, and misbehaving ones (hang-ups mid-job, clients that stop reading,
slowloris heads) that the server must close within its timeouts. Every
SAMPLE_SECS it records the server's RSS, open fds, /stats and the latencies
of the last window into a CSV. At the end it lets the server go idle and
checks: zero unanswered requests, the /stats job identity, open_connections
back to 1 (the asking connection), RSS and fds flat after warm-up. Prints
PASS or FAIL; exits 1 on FAIL.
"""

import argparse
import contextlib
import csv
import json
import os
import random
import socket
import struct
import sys
import threading
import time

SAMPLE_SECS = 10
TCP_ESTABLISHED = 1
MALFORMED = [
    (b"NONSENSE\r\n\r\n", 400),
    (b"GET /fast?id=1 HTTP/2.0\r\n\r\n", 505),
    (b"GET /fast?id=1 HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400),
    (b"GET /fast?id=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"POST /fast?id=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n", 413),
    (b"GET /fast?id=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
    (b"GET /fast?id=1 HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
    (b"GET /fast?id=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"GET /fast?id=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
]


class Unanswered(Exception):
    """A request that got no complete answer."""


class Soak:
    def __init__(self, args):
        self.addr = ("127.0.0.1", args.port)
        self.args = args
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent = {}
        self.answered = {}
        self.problems = []  # (kind, text): unanswered or wrong answers
        self.window = {"fast": [], "slow": []}
        self.all_lat = {"fast": [], "slow": []}
        self.misbehaved = {}  # kind -> [closed by server, seconds to close]

    def note(self, kind, latency=None, problem=None, lat_kind=None):
        with self.lock:
            if problem is not None:
                if len(self.problems) < 1000:
                    self.problems.append((kind, problem))
                self.problems_total = getattr(self, "problems_total", 0) + 1
                return
            self.answered[kind] = self.answered.get(kind, 0) + 1
            if lat_kind:
                self.window[lat_kind].append(latency)
                self.all_lat[lat_kind].append(latency)

    def count_sent(self, kind, n=1):
        with self.lock:
            self.sent[kind] = self.sent.get(kind, 0) + n

    def closed_by_server(self, kind, ok, secs):
        with self.lock:
            row = self.misbehaved.setdefault(kind, [0, 0, 0.0])
            row[0 if ok else 1] += 1
            row[2] = max(row[2], secs)


def connect(addr, timeout, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(addr)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def tcp_state(s):
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def reset_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def read_response(f):
    line = f.readline(65536)
    if not line:
        raise Unanswered("EOF before a status line")
    if not line.startswith(b"HTTP/1.1 "):
        raise Unanswered("bad status line %r" % line[:40])
    status = int(line.split(b" ", 2)[1])
    headers = {}
    while True:
        h = f.readline(65536)
        if not h:
            raise Unanswered("EOF in the headers")
        if h in (b"\r\n", b"\n"):
            break
        k, _, v = h.partition(b":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get(b"content-length", b"0"))
    body = f.read(n)
    if len(body) < n:
        raise Unanswered("short body")
    return status, headers, body


@contextlib.contextmanager
def conversation(soak, kind, timeout):
    """A connection and its reader for one client of `kind`. A request that
    goes unanswered (EOF, reset, timeout) is noted as that kind's problem;
    both ends are closed however the block ends."""
    s = connect(soak.addr, timeout)
    f = s.makefile("rb")
    try:
        yield s, f
    except (OSError, Unanswered) as e:
        soak.note(kind, problem="unanswered: %r" % e)
    finally:
        f.close()
        s.close()


def request(path, close=False, extra=b""):
    conn = b"Connection: close\r\n" if close else b""
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: soak\r\n" + conn + extra + b"\r\n"


def fast_client(soak, idx):
    n = 0
    while not soak.stop.is_set():
        with conversation(soak, "fast", 10) as (s, f):
            for k in range(50):
                if soak.stop.is_set():
                    break
                n += 1
                rid = "f%d-%d" % (idx, n)
                t0 = time.monotonic()
                soak.count_sent("fast")
                s.sendall(request("/fast?id=" + rid, close=(k == 49)))
                status, _, body = read_response(f)
                if status != 200 or body != ("fast result " + rid).encode():
                    soak.note("fast", problem="wrong answer %d %r" % (status, body[:60]))
                else:
                    soak.note("fast", time.monotonic() - t0, lat_kind="fast")
                time.sleep(soak.args.pace)


def pipelined_client(soak):
    n = 0
    while not soak.stop.is_set():
        ids = ["p%d-%d" % (n, i) for i in range(8)]
        n += 1
        batch = b"".join(request("/fast?id=" + i) for i in ids) + request("/healthz", close=True)
        with conversation(soak, "pipelined", 10) as (s, f):
            soak.count_sent("pipelined", 9)
            s.sendall(batch)
            for want in [("fast result " + i).encode() for i in ids] + [b"ok"]:
                status, _, body = read_response(f)
                if status != 200 or body != want:
                    soak.note("pipelined", problem="out of order: %r for %r" % (body, want))
                else:
                    soak.note("pipelined")
        time.sleep(soak.args.pace * 4)


def job_client(soak, kind):
    """slow_threaded (200, or 503/504 under overload) or /fail (500)."""
    rng = random.Random(kind)
    n = 0
    while not soak.stop.is_set():
        with conversation(soak, kind, soak.args.job_timeout + 15) as (s, f):
            for _ in range(10):
                if soak.stop.is_set():
                    break
                n += 1
                if kind == "slow":
                    path = "/slow_threaded?id=s%d&n=%d" % (n, rng.randint(100, 3000))
                    extra = b"Accept: application/json\r\n" if n % 2 else b""
                else:
                    path, extra = "/fail?id=x%d" % n, b""
                t0 = time.monotonic()
                soak.count_sent(kind)
                s.sendall(request(path, extra=extra))
                status, _, body = read_response(f)
                ok = status in (200, 503, 504) if kind == "slow" else (
                    status == 500 and body.startswith(b"Caught an exception: "))
                # Under process isolation a /spin past the job timeout holds
                # the core until its kill: a /fail queued behind it may time out.
                ok = ok or (kind == "fail" and soak.args.isolation == "process"
                            and status in (503, 504))
                if ok:
                    soak.note(kind, time.monotonic() - t0, lat_kind="slow" if kind == "slow" else None)
                else:
                    soak.note(kind, problem="wrong answer %d %r" % (status, body[:60]))
                time.sleep(rng.uniform(0.05, 0.3))


CRASHES = ["abort", "segv", "stack", "exit", "oom"]


def untrusted_client(soak):
    """Process isolation only: /crash of every kind (500 "worker died: ..."),
    short /spin (200) and now and then a /spin past the job timeout (504,
    then the worker is killed and replaced)."""
    rng = random.Random("untrusted")
    n = 0
    while not soak.stop.is_set():
        with conversation(soak, "untrusted", soak.args.job_timeout + 15) as (s, f):
            for _ in range(10):
                if soak.stop.is_set():
                    break
                n += 1
                if n % 25 == 0:
                    path, want = "/spin?id=u%d&secs=%g" % (n, soak.args.job_timeout + 2), (504,)
                elif n % 2:
                    path, want = "/crash?id=u%d&how=%s" % (n, CRASHES[n // 2 % len(CRASHES)]), (500,)
                else:
                    path, want = "/spin?id=u%d&secs=0.05" % n, (200, 503, 504)
                soak.count_sent("untrusted")
                s.sendall(request(path))
                status, _, body = read_response(f)
                ok = status in want and (status != 500 or body.startswith(b"Caught an exception: worker died: "))
                if ok:
                    soak.note("untrusted")
                else:
                    soak.note("untrusted", problem="wrong answer %d %r to %s" % (status, body[:60], path))
                time.sleep(rng.uniform(0.1, 0.5))


def malformed_client(soak):
    i = 0
    while not soak.stop.is_set():
        data, want = MALFORMED[i % len(MALFORMED)]
        i += 1
        soak.count_sent("malformed")
        with conversation(soak, "malformed", 5) as (s, f):
            s.sendall(data)
            status, _, _ = read_response(f)
            if status != want:
                soak.note("malformed", problem="got %d, want %d for %r" % (status, want, data[:30]))
            elif f.read(1) != b"":
                soak.note("malformed", problem="not closed after %d" % status)
            else:
                soak.note("malformed")
        time.sleep(0.1)


def hangup_client(soak):
    rng = random.Random(7)
    n = 0
    while not soak.stop.is_set():
        n += 1
        s = connect(soak.addr, 5)
        s.sendall(request("/slow_threaded?id=h%d&n=20000" % n))
        time.sleep(rng.uniform(0.02, 1.0))
        reset_close(s) if n % 2 else s.close()
        time.sleep(0.3)


def wait_closed(s, limit):
    """Seconds until the server closed `s` (FIN or RST), without reading; None past `limit`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if tcp_state(s) != TCP_ESTABLISHED:
            return time.monotonic() - t0
        time.sleep(0.1)
    return None


def nonreader_client(soak):
    batch = b"GET /metrics HTTP/1.1\r\nHost: soak\r\n\r\n" * 100
    while not soak.stop.is_set():
        s = connect(soak.addr, 0.5, rcvbuf=16 * 1024)
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < 30:
                s.sendall(batch)
        except socket.timeout:
            pass  # our writes block: the server stopped reading
        except OSError:
            pass  # already closed
        secs = wait_closed(s, soak.args.idle_timeout + 10)
        soak.closed_by_server("stopped reading", secs is not None, secs or 0.0)
        reset_close(s)
        time.sleep(1)


def slowloris_client(soak):
    while not soak.stop.is_set():
        s = connect(soak.addr, 1)
        t0 = time.monotonic()
        secs = None
        try:
            s.sendall(b"GET /fast?id=loris HTTP/1.1\r\nHost: t\r\nX-Slow: ")
            while time.monotonic() - t0 < soak.args.header_timeout + 10:
                if tcp_state(s) != TCP_ESTABLISHED:
                    secs = time.monotonic() - t0
                    break
                s.sendall(b"a")
                time.sleep(0.5)
        except OSError:
            secs = time.monotonic() - t0
        soak.closed_by_server("slowloris", secs is not None, secs or 0.0)
        s.close()


def get_stats(addr):
    s = connect(addr, 10)
    f = s.makefile("rb")
    try:
        s.sendall(request("/stats", close=True))
        status, _, body = read_response(f)
        assert status == 200, status
        return json.loads(body)
    finally:
        f.close()
        s.close()


def proc_sample(pid):
    rss = 0
    with open("/proc/%d/status" % pid) as st:
        for line in st:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir("/proc/%d/fd" % pid))


def settled_sample(pid, secs):
    """RSS and the fewest open fds seen over `secs`: a connection the
    server is just closing does not count."""
    best = proc_sample(pid)
    t0 = time.monotonic()
    while time.monotonic() - t0 < secs:
        time.sleep(0.25)
        rss, fds = proc_sample(pid)
        best = (rss, min(fds, best[1]))
    return best


def pct(values, p):
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(p * (len(v) - 1) + 0.5))] * 1000


def open_connections(stats):
    return sum(c["open_connections"] for c in stats["io_cores"])


def identity(stats):
    j = stats["jobs"]
    return j["accepted"] == j["completed"] + j["failed"] + j["timed_out"] + j["cancelled"]


def idle(stats):
    return identity(stats) and all(c["queued"] == 0 and not c["running"] for c in stats["compute_cores"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--csv", required=True)
    ap.add_argument("--idle-timeout", type=float, default=3)
    ap.add_argument("--header-timeout", type=float, default=3)
    ap.add_argument("--job-timeout", type=float, default=10)
    ap.add_argument("--pace", type=float, default=0.005, help="pause between a client's requests (s)")
    ap.add_argument("--isolation", default="thread", help="the server's --isolation (process adds /crash and /spin)")
    args = ap.parse_args()
    soak = Soak(args)
    base_rss, base_fds = settled_sample(args.pid, 1.5)
    plan = [(fast_client, (soak, i)) for i in range(3)] + [
        (pipelined_client, (soak,)), (job_client, (soak, "slow")), (job_client, (soak, "slow")),
        (job_client, (soak, "fail")), (malformed_client, (soak,)), (hangup_client, (soak,)),
        (nonreader_client, (soak,)), (slowloris_client, (soak,)), (slowloris_client, (soak,))]
    if args.isolation == "process":
        plan.append((untrusted_client, (soak,)))
    threads = [threading.Thread(target=f, args=a, daemon=True) for f, a in plan]
    for t in threads:
        t.start()
    t_start = time.monotonic()
    duration = args.minutes * 60
    rows = []
    out = open(args.csv, "w", newline="")
    w = csv.writer(out)
    w.writerow(["elapsed_s", "rss_kib", "fds", "open_connections", "requests", "fast_n",
                "fast_p50_ms", "fast_p99_ms", "fast_max_ms", "slow_n", "slow_p50_ms", "slow_p99_ms",
                "problems"])
    w.writerow([0, base_rss, base_fds, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    while time.monotonic() - t_start < duration:
        time.sleep(min(SAMPLE_SECS, max(0.1, duration - (time.monotonic() - t_start))))
        rss, fds = proc_sample(args.pid)
        stats = get_stats(soak.addr)
        with soak.lock:
            fast, slow = soak.window["fast"], soak.window["slow"]
            soak.window = {"fast": [], "slow": []}
            problems = getattr(soak, "problems_total", 0)
        row = [round(time.monotonic() - t_start), rss, fds, open_connections(stats),
               sum(c["requests"] for c in stats["io_cores"]), len(fast), round(pct(fast, .5), 2),
               round(pct(fast, .99), 2), round(max(fast, default=0) * 1000, 2), len(slow),
               round(pct(slow, .5), 1), round(pct(slow, .99), 1), problems]
        rows.append(row)
        w.writerow(row)
        out.flush()
        print("soak: %4ds rss %6d KiB fds %4d conns %3d fast p50 %.2f ms p99 %.2f ms problems %d"
              % (row[0], rss, fds, row[3], row[6], row[7], problems), flush=True)
    soak.stop.set()
    for t in threads:
        t.join(args.job_timeout + args.idle_timeout + 20)
    # Let the server go idle: jobs finish or are cancelled, lingering connections close.
    deadline = time.monotonic() + args.job_timeout + args.idle_timeout + 20
    while True:
        stats = get_stats(soak.addr)
        if (idle(stats) and open_connections(stats) == 1) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    end_rss, end_fds = settled_sample(args.pid, 3)
    w.writerow(["idle", end_rss, end_fds, open_connections(stats),
                sum(c["requests"] for c in stats["io_cores"]), 0, 0, 0, 0, 0, 0, 0,
                getattr(soak, "problems_total", 0)])
    out.close()
    report(soak, stats, rows, (base_rss, base_fds), (end_rss, end_fds), threads)


def report(soak, stats, rows, base, end, threads):
    failures = []
    sent, answered = sum(soak.sent.values()), sum(soak.answered.values())
    problems = getattr(soak, "problems_total", 0)
    print("\nrequests from well-behaved clients: sent %d, answered correctly %d, problems %d"
          % (sent, answered, problems))
    for kind in sorted(soak.sent):
        print("  %-10s sent %7d  answered %7d" % (kind, soak.sent[kind], soak.answered.get(kind, 0)))
    for kind, text in soak.problems[:20]:
        print("  problem (%s): %s" % (kind, text))
    if problems or sent != answered:
        failures.append("%d unanswered or wrong answers" % max(problems, sent - answered))
    for kind, (ok, bad, worst) in sorted(soak.misbehaved.items()):
        print("misbehaving %-16s closed by the server %4d, still open %d, slowest close %.1f s"
              % (kind, ok, bad, worst))
        if bad:
            failures.append("%d %s connections were not closed" % (bad, kind))
    j = stats["jobs"]
    print("jobs: %s" % json.dumps(j))
    if not identity(stats):
        failures.append("accepted != completed + failed + timed_out + cancelled")
    if open_connections(stats) != 1:
        failures.append("open_connections is %d once idle, want 1" % open_connections(stats))
    if any(t.is_alive() for t in threads):
        failures.append("a client thread did not finish")
    for kind in ("fast", "slow"):
        lat = soak.all_lat[kind]
        print("%s latency: n %d  p50 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms"
              % (kind, len(lat), pct(lat, .5), pct(lat, .99), pct(lat, .999), max(lat, default=0) * 1000))
    # Flat after warm-up: the first fifth of the run (at least one sample) warms up.
    warm = max(1, len(rows) // 5)
    after = rows[warm:] or rows[-1:]
    rss_warm = sorted(r[1] for r in after[:3])[len(after[:3]) // 2]
    rss_last = sorted(r[1] for r in after[-3:])[len(after[-3:]) // 2]
    print("rss: start %d KiB, after warm-up %d KiB, end of load %d KiB, idle at end %d KiB"
          % (base[0], rss_warm, rss_last, end[0]))
    print("fds: start %d, max under load %d, idle at end %d" % (base[1], max(r[2] for r in rows), end[1]))
    if rss_last > rss_warm * 1.10 + 4096:
        failures.append("RSS grew after warm-up: %d -> %d KiB" % (rss_warm, rss_last))
    if end[1] > base[1]:
        failures.append("fds leaked: %d at start, %d idle at end" % (base[1], end[1]))
    print("\n" + ("PASS" if not failures else "FAIL: " + "; ".join(failures)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

"""POST /gzip through heavylift against `gzip -6` on the same CPU.

Called by scripts/bench-gzip.sh with: BIN IO_CPU COMPUTE_CPU MIB. The body
is the mix benches/gzip.rs uses (log lines, JSON, CSV, a fifth random
bytes), so the figures compare with that bench's.
"""

import http.client
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROUNDS = 20


def body(n):
    rng = random.Random(7)
    out = bytearray()
    i = 0
    while len(out) < n:
        kind = i % 5
        if kind == 0:
            out += b"2026-11-29T13:47:%02d INFO request id=%d path=/fast?id=%d status=200 us=%d\n" % (
                i % 60, i, i * 7, rng.randrange(40, 900))
        elif kind == 1:
            out += b'{"id": %d, "user": "u%d", "score": %d, "tags": ["a", "b"]}\n' % (i, i % 97, rng.randrange(1000))
        elif kind == 2:
            out += b"%d,%d,%d.%02d,name%d\n" % (i, rng.randrange(10**6), rng.randrange(100), rng.randrange(100), i % 13)
        else:
            out += bytes(rng.randrange(256) for _ in range(64))
        i += 1
    return bytes(out[:n])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    binary, io, compute, mib = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    data = body(int(mib * (1 << 20)))
    port = free_port()
    server = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--io-cores", io,
         "--compute-cores", compute, "--log-level", "warn", "--max-job-body", "64M"],
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    sys.exit("bench-gzip: the server did not start")
                time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        served = []
        for i in range(ROUNDS + 2):
            t0 = time.perf_counter()
            conn.request("POST", "/gzip?level=6", body=data)
            reply = conn.getresponse()
            out = reply.read()
            took = time.perf_counter() - t0
            if reply.status != 200:
                sys.exit(f"bench-gzip: POST /gzip answered {reply.status}: {out[:200]!r}")
            if i >= 2:  # two warm-up rounds
                served.append(took)
        size_server = len(out)
    finally:
        server.terminate()
        server.wait(timeout=40)

    with tempfile.NamedTemporaryFile() as f, tempfile.NamedTemporaryFile() as empty:
        f.write(data)
        f.flush()

        def timed(path):
            t0 = time.perf_counter()
            with open(path, "rb") as src:
                res = subprocess.run(["taskset", "-c", compute, "gzip", "-6", "-c"],
                                     stdin=src, stdout=subprocess.PIPE, check=True)
            return time.perf_counter() - t0, len(res.stdout)

        start = statistics.median(timed(empty.name)[0] for _ in range(ROUNDS))
        runs = [timed(f.name) for _ in range(ROUNDS)]
        cli = [max(t - start, 1e-6) for t, _ in runs]
        size_cli = runs[-1][1]

    mb = len(data) / 1e6
    s_med, c_med = statistics.median(served), statistics.median(cli)
    ratio = (mb / s_med) / (mb / c_med)
    print(f"body: {len(data)} bytes (log lines, JSON, CSV, a fifth random), {ROUNDS} rounds each, medians")
    print(f"heavylift POST /gzip (level 6, I/O CPU {io}, compute CPU {compute}, whole request): "
          f"{s_med * 1e3:.1f} ms, {mb / s_med:.1f} MB/s, {size_server} bytes out")
    print(f"gzip -6 on CPU {compute} (process start of {start * 1e3:.1f} ms taken off): "
          f"{c_med * 1e3:.1f} ms, {mb / c_med:.1f} MB/s, {size_cli} bytes out")
    print(f"heavylift / gzip -6 throughput: {ratio:.2f} (target >= 0.90)")
    print(f"machine: {os.cpu_count()} CPUs, {os.uname().release}")
    sys.exit(0 if ratio >= 0.9 else 1)


if __name__ == "__main__":
    main()

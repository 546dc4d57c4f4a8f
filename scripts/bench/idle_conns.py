#!/usr/bin/env python3
"""Memory per idle keep-alive connection of one server process (issue 16).

    scripts/bench/idle_conns.py HOST:PORT PID N

Reads PID's resident memory (VmRSS), opens N connections to HOST:PORT and
sends `GET /fast?id=1` (keep-alive) on each, reads every answer, waits 2 s,
reads VmRSS again, then sends a second request on every connection and
counts the answers (every connection must still be served). Prints one JSON
object: n, rss_before_kib, rss_after_kib, kib_per_conn, served_again.
Non-blocking sockets and one selector, so one client process holds them
all; RLIMIT_NOFILE is raised to its hard limit first.
"""

import json
import resource
import selectors
import socket
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"no VmRSS for pid {pid}")


def round_trip(socks, request, limit):
    """Sends `request` on every socket, waits for one full answer on each
    (the Content-Length body included); returns how many answered."""
    sel = selectors.DefaultSelector()
    pending = {}
    for s in socks:
        try:
            s.send(request)
        except OSError:
            continue
        pending[s.fileno()] = (s, bytearray())
        sel.register(s, selectors.EVENT_READ)
    done = 0
    deadline = time.monotonic() + limit
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1.0):
            s, buf = pending[key.fd]
            try:
                chunk = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                sel.unregister(s)
                del pending[key.fd]
                continue
            buf += chunk
            head, sep, body = bytes(buf).partition(b"\r\n\r\n")
            if not sep:
                continue
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(body) >= length:
                sel.unregister(s)
                del pending[key.fd]
                done += 1
    sel.close()
    return done


def main():
    target, pid, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    host, port = target.rsplit(":", 1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    before = rss_kib(pid)
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect((host, int(port)))
        s.setblocking(False)
        socks.append(s)
    request = f"GET /fast?id=1 HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    first = round_trip(socks, request, 60)
    time.sleep(2)
    after = rss_kib(pid)
    again = round_trip(socks, request, 60)
    for s in socks:
        s.close()
    print(json.dumps({
        "n": n,
        "answered_first": first,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_conn": round((after - before) / n, 2),
        "served_again": again,
    }))


if __name__ == "__main__":
    main()

"""A heavylift worker that can fail in every way, for integration tests.

    heavylift serve --worker-cmd "python3 tests/workers/faulty_worker.py"

Routes (announced in this order):

- ``/pid``: this worker's pid, as text.
- ``/raise?msg=M``: raises ValueError(M or "bad value") -> Error frame.
- ``/abort``: os.abort() (SIGABRT).
- ``/exit?code=C``: sys.exit(C or 3).
- ``/spin``: loops forever and ignores cancels (killed after --kill-grace).
- ``/polite``: waits for a cancel (should_stop), then raises Cancelled.
- ``/sleep?secs=S``: sleeps S seconds, answers "slept".
- ``/garbage``: writes bytes that are not a frame, then sleeps 5 s.
- ``/wrong_id``: writes a Done for another job id (id + 1000), then sleeps 5 s.
- ``/twice``: writes a Done "first" itself, then returns "second".
- ``/exit_after``: writes a Done "bye" itself, then exits 0 between jobs.
- ``/print``: prints 1000 lines to stdout and some to stderr; "printed".
- ``/echo``: {"bytes": N, "sha256": hex} of the request body.
- ``/memory?mb=M``: allocates and touches M MiB; "allocated".
- ``/headers``: 201, text/x-test, X-From-Worker: yes, "ok".
- ``/bad_header``: a header named "Bad Name" (heavylift answers 500).
- ``/env``: {"core", "protocol", "affinity"} from the environment.
- ``/flood?kb=K``: writes K KiB (default 1024) to stderr during the job.
"""

import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "python"))

import heavylift_worker as hw  # noqa: E402
from heavylift_worker import Cancelled, Response, route, run, should_stop  # noqa: E402

# Printing at start-up, before run(), must not break the Hello either.
print("faulty worker starting")

if os.environ.get("FAULTY_SLOW_EXIT"):
    import signal

    def _slow_exit(signum, frame):
        # SIGTERM: the protocol socket closes at once, the process ends
        # 0.3 s later (a stop race in tests/external_workers.rs).
        os.close(0)
        os.close(1)
        time.sleep(0.3)
        os._exit(0)

    signal.signal(signal.SIGTERM, _slow_exit)

_TEXT = "text/plain; charset=utf-8"


@route("/pid")
def pid(request):
    return str(os.getpid())


@route("/raise")
def raise_(request):
    raise ValueError(request.arg("msg") or "bad value")


@route("/abort")
def abort(request):
    os.abort()


@route("/exit")
def exit_(request):
    sys.exit(int(request.arg("code") or 3))


@route("/spin")
def spin(request):
    while True:
        pass


@route("/polite")
def polite(request):
    while not should_stop():
        time.sleep(0.001)
    raise Cancelled()


@route("/sleep")
def sleep(request):
    time.sleep(float(request.arg("secs") or 1))
    return "slept"


@route("/garbage")
def garbage(request):
    hw._send_raw(b"\xff\xff\xff\xffnot a frame")
    time.sleep(5)
    return "late"


@route("/wrong_id")
def wrong_id(request):
    hw._send_raw(hw._encode_done(hw._current_job_id() + 1000, 200, _TEXT, [], b"stray"))
    time.sleep(5)
    return "late"


@route("/twice")
def twice(request):
    hw._send_raw(hw._encode_done(hw._current_job_id(), 200, _TEXT, [], b"first"))
    return "second"


@route("/exit_after")
def exit_after(request):
    hw._send_raw(hw._encode_done(hw._current_job_id(), 200, _TEXT, [], b"bye"))
    os._exit(0)


@route("/print")
def print_(request):
    for i in range(1000):
        print("line %d of /print: stdout must not reach the protocol" % i)
    sys.stdout.write("no newline at the end")
    sys.stdout.flush()
    for i in range(3):
        sys.stderr.write("stderr line %d of /print\n" % i)
    sys.stderr.flush()
    return "printed"


@route("/echo")
def echo(request):
    body = request.body
    return {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}


@route("/memory")
def memory(request):
    size = int(request.arg("mb") or 64) * 1024 * 1024
    block = bytearray(size)
    block[::4096] = b"\x01" * len(range(0, size, 4096))  # touch every page
    return "allocated"


@route("/headers")
def headers(request):
    return Response("ok", status=201, content_type="text/x-test",
                    headers=[("X-From-Worker", "yes")])


@route("/bad_header")
def bad_header(request):
    return Response("bad", headers=[("Bad Name", "x")])


@route("/env")
def env(request):
    return {
        "core": os.environ.get("HEAVYLIFT_COMPUTE_CORE"),
        "protocol": os.environ.get("HEAVYLIFT_PROTOCOL"),
        "affinity": sorted(os.sched_getaffinity(0)),
    }


@route("/flood")
def flood(request):
    # More than any socket buffer holds: heavylift must read stderr while
    # the job runs, or this write blocks and the job never ends.
    line = "x" * 99 + "\n"
    for _ in range(int(request.arg("kb") or 1024) * 1024 // 100):
        sys.stderr.write(line)
    sys.stderr.flush()
    return "flooded"


if __name__ == "__main__":
    run()

"""Tests of python/heavylift_worker.py and the workers built on it.

Run from the repository root::

    python3 -m unittest discover -s python -v

The workers (examples/python/seed_worker.py, tests/workers/faulty_worker.py)
run as child processes with one end of a socketpair on fd 0 and fd 1, as
heavylift starts them; this file speaks the server side of the protocol
with its own encoder and decoder, written from docs/worker-protocol.md.
"""

import hashlib
import importlib.util
import json
import os
import re
import resource
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import heavylift_worker as hw

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = os.path.join(REPO, "examples", "python", "seed_worker.py")
FAULTY = os.path.join(REPO, "tests", "workers", "faulty_worker.py")

FAULTY_ROUTES = [
    "/pid", "/raise", "/abort", "/exit", "/spin", "/polite", "/sleep", "/garbage",
    "/wrong_id", "/twice", "/exit_after", "/print", "/echo", "/memory", "/headers",
    "/bad_header", "/env", "/flood",
]
R = {path: i for i, path in enumerate(FAULTY_ROUTES)}

JOB, CANCEL, HELLO, DONE, ERROR, STOPPED = 1, 2, 3, 4, 5, 6


# --- the server side of the protocol, from the spec --------------------------


def u32(n):
    return struct.pack("<I", n)


def text(s):
    b = s.encode("utf-8") if isinstance(s, str) else s
    return u32(len(b)) + b


def frame(kind, payload):
    return u32(1 + len(payload)) + bytes([kind]) + payload


def encode_job(job_id, route, method="GET", path="/", params=(), query="", headers=(),
               body=b"", compute_core=1, shared_core=0, queued_micros=12, io_core=3):
    p = struct.pack("<QIIBQ", job_id, route, compute_core, shared_core, queued_micros)
    p += text(method) + text(path)
    p += u32(len(params)) + b"".join(text(n) + text(v) for n, v in params)
    p += text(query)
    p += u32(len(headers)) + b"".join(
        text(n) + text(v.encode("latin-1") if isinstance(v, str) else v) for n, v in headers)
    p += text(body) + u32(io_core)
    return frame(JOB, p)


def encode_cancel(job_id):
    return frame(CANCEL, struct.pack("<Q", job_id))


class Reader:
    """Reads fields off one frame's payload, checking that it fits exactly."""

    def __init__(self, payload):
        self.p = payload
        self.o = 0

    def take(self, n):
        if self.o + n > len(self.p):
            raise AssertionError("frame ends inside a field")
        v = self.p[self.o:self.o + n]
        self.o += n
        return v

    def int(self, fmt):
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def bytes(self):
        return self.take(self.int("I"))

    def text(self):
        return self.bytes().decode("utf-8")

    def end(self):
        if self.o != len(self.p):
            raise AssertionError("frame has trailing bytes")


def decode(kind, payload):
    """A worker's frame as a dict."""
    r = Reader(payload)
    if kind == HELLO:
        out = {"kind": "Hello", "version": r.int("I")}
        out["routes"] = [r.text() for _ in range(r.int("I"))]
    elif kind == DONE:
        out = {"kind": "Done", "id": r.int("Q"), "status": r.int("H"),
               "content_type": r.text()}
        out["headers"] = [(r.text(), r.text()) for _ in range(r.int("I"))]
        out["body"] = r.bytes()
    elif kind == ERROR:
        out = {"kind": "Error", "id": r.int("Q"), "message": r.text()}
    elif kind == STOPPED:
        out = {"kind": "Stopped", "id": r.int("Q")}
    else:
        raise AssertionError("a worker sent frame kind %d" % kind)
    r.end()
    return out


class Worker:
    """A worker process with the server's end of its socket."""

    def __init__(self, script, env=None, preexec_fn=None):
        self.sock, child = socket.socketpair()
        self.stderr = tempfile.TemporaryFile()
        # As heavylift starts a worker: the module then takes the protocol
        # off fds 0 and 1 at import, so start-up prints cannot break it.
        env = dict(os.environ if env is None else env, HEAVYLIFT_PROTOCOL="1")
        self.proc = subprocess.Popen(
            [sys.executable, script], stdin=child.fileno(), stdout=child.fileno(),
            stderr=self.stderr, env=env, preexec_fn=preexec_fn, close_fds=True)
        child.close()
        self.buf = bytearray()
        self.next_id = 1

    def send(self, data):
        self.sock.sendall(data)

    def read_exactly(self, n, timeout=5.0):
        if self.sock.gettimeout() != timeout:
            self.sock.settimeout(timeout)
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("worker closed its socket; stderr: %r" % self.stderr_text())
            self.buf += chunk
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def frame(self, timeout=5.0):
        length, kind = struct.unpack("<IB", self.read_exactly(5, timeout))
        return decode(kind, self.read_exactly(length - 1, timeout))

    def hello(self):
        f = self.frame(timeout=10)
        assert f["kind"] == "Hello", f
        return f

    def job(self, route, timeout=5.0, **fields):
        job_id = self.next_id
        self.next_id += 1
        self.send(encode_job(job_id, route, **fields))
        answer = self.frame(timeout)
        assert answer["id"] == job_id, (answer, job_id)
        return answer

    def wait(self, timeout=5.0):
        return self.proc.wait(timeout)

    def stderr_text(self):
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.stderr.close()


def no_core_dumps():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def load_seed_module():
    """examples/python/seed_worker.py as a module, without keeping its
    routes in this process's registry."""
    saved = list(hw._routes)
    try:
        spec = importlib.util.spec_from_file_location("seed_worker_under_test", SEED)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        hw._routes[:] = saved


# --- the seed worker ---------------------------------------------------------


class SeedWorkerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = Worker(SEED)
        cls.hello = cls.w.hello()

    @classmethod
    def tearDownClass(cls):
        cls.w.close()

    def slow(self, query, accept=None):
        headers = [("accept", accept)] if accept else []
        return self.w.job(0, path="/slow_py", query=query, headers=headers)

    def test_hello_names_the_routes_in_order(self):
        self.assertEqual(self.hello, {"kind": "Hello", "version": 1,
                                      "routes": ["/slow_py", "/sha256_py"]})

    def test_slow_py_text(self):
        a = self.slow("id=a+b&n=50")
        self.assertEqual((a["kind"], a["status"], a["content_type"], a["headers"]),
                         ("Done", 200, "text/plain; charset=utf-8", []))
        self.assertRegex(a["body"].decode(), r"^slow result a b <--- \d+\.\d{3} s$")

    def test_slow_py_json(self):
        a = self.slow("n=50&id=%E2%82%AC%22", accept="text/html, Application/JSON;q=0.9")
        self.assertEqual((a["status"], a["content_type"]), (200, "application/json"))
        body = a["body"].decode()
        self.assertRegex(
            body,
            r'^\{"id": "\u20ac\\"", "n": 50, "seconds": \d+\.\d{3}, "digits": 63, '
            r'"io_core": 3, "compute_core": 1, "queued_seconds": 0\.000012, '
            r'"cpu_seconds": \d+\.\d{6}\}$')
        doc = json.loads(body)
        self.assertEqual(list(doc), ["id", "n", "seconds", "digits", "io_core",
                                     "compute_core", "queued_seconds", "cpu_seconds"])
        self.assertEqual(doc["id"], "\u20ac\"")

    def test_slow_py_defaults_and_first_id(self):
        a = self.slow("id=1&id=2&n=00001", accept="application/json")
        doc = json.loads(a["body"])
        self.assertEqual((doc["id"], doc["n"], doc["digits"]), ("1", 1, 1))
        a = self.slow("id=x&n=10", accept="application/json")
        self.assertEqual(json.loads(a["body"])["digits"], 6)  # 9! = 362880

    def test_slow_py_bad_input_is_400(self):
        expect = 'bad n %s: expected a whole number from 1 to 20000'
        cases = [
            ("", "missing id: use ?id=X"),
            ("n=5", "missing id: use ?id=X"),
            ("idx=1&xid=2", "missing id: use ?id=X"),
            ("id=", "empty id: use ?id=X"),
            ("id", "empty id: use ?id=X"),
            ("id=%zz", "bad id: bad percent-escape: expected % and two hex digits"),
            ("id=a%2", "bad id: bad percent-escape: expected % and two hex digits"),
            ("id=%+1", "bad id: bad percent-escape: expected % and two hex digits"),
            ("id=%ff", "bad id: percent-decoded value is not valid UTF-8"),
            ("id=a&n=0", expect % '"0"'),
            ("id=a&n=20001", expect % '"20001"'),
            ("id=a&n=", expect % '""'),
            ("id=a&n", expect % '""'),
            ("id=a&n=+5", expect % '"+5"'),
            ("id=a&n=1e3", expect % '"1e3"'),
            ("id=a&n=%2B5", expect % '"%2B5"'),
            ("id=a&n=%3", "bad n: bad percent-escape: expected % and two hex digits"),
            ("id=a&n=a\"b\\", expect % '"a\\"b\\\\"'),
            ("id=a&n=" + "1" * 40, expect % ('"' + "1" * 32 + '"...')),
            ("id=a&n=" + "9" * 32, expect % ('"' + "9" * 32 + '"')),
        ]
        for query, body in cases:
            with self.subTest(query=query):
                a = self.slow(query)
                self.assertEqual((a["kind"], a["status"], a["content_type"], a["body"].decode()),
                                 ("Done", 400, "text/plain; charset=utf-8", body))

    def test_slow_py_decodes_names_and_values_as_a_form(self):
        # As heavylift's own routes (src/http/query.rs) and Tornado do.
        for query in ["%69d=1&n=%35", "id=1&%6E=5", "id=%31&n=5"]:
            with self.subTest(query=query):
                a = self.slow(query)
                self.assertEqual(a["status"], 200, a["body"])
                self.assertTrue(a["body"].decode().startswith("slow result 1 <--- "))

    def test_sha256_py(self):
        body = os.urandom(200_000)
        a = self.w.job(1, method="POST", path="/sha256_py", body=body)
        self.assertEqual(a["content_type"], "application/json")
        self.assertEqual(json.loads(a["body"]),
                         {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()})
        a = self.w.job(1, path="/sha256_py")
        self.assertEqual(a["body"], b'{"bytes": 0, "sha256": "%s"}'
                         % hashlib.sha256(b"").hexdigest().encode())


class SeedFunctionsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.seed = load_seed_module()

    def test_decimal_digits_equals_the_string_length(self):
        import math

        if hasattr(sys, "set_int_max_str_digits"):
            old = sys.get_int_max_str_digits()
            sys.set_int_max_str_digits(0)
            self.addCleanup(sys.set_int_max_str_digits, old)
        digits = self.seed.decimal_digits
        for k in [0, 1, 2, 3, 9, 10, 11, 24, 25, 99, 100, 101, 999, 1000, 1999, 3000]:
            f = math.factorial(k)
            self.assertEqual(digits(f), len(str(f)), "%d!" % k)
        for e in [1, 2, 15, 16, 17, 100, 1000, 5000]:
            for x in (10 ** e - 1, 10 ** e, 10 ** e + 1, 2 ** e - 1, 2 ** e):
                self.assertEqual(digits(x), len(str(x)), x)
        for x in range(0, 1200):
            self.assertEqual(digits(x), len(str(x)), x)
        self.assertEqual(digits(math.factorial(1999)), 5733)  # as heavylift's own job

    def test_query_helpers(self):
        s = self.seed
        self.assertEqual(s.query_param("id=1&n=5", "n"), "5")
        self.assertEqual(s.query_param("&&id=a=b&", "id"), "a=b")
        self.assertIsNone(s.query_param("", "id"))
        self.assertEqual(s.percent_decode("a%20b+c"), "a b c")
        self.assertEqual(s.percent_decode("%2B%25"), "+%")
        self.assertEqual(s.rust_debug('a"\\\n\t\x01\u00e9'), '"a\\"\\\\\\n\\t\\u{1}\u00e9"')


# --- the faulty worker -------------------------------------------------------


class FaultyWorkerTest(unittest.TestCase):
    """One worker for the tests that leave it running."""

    @classmethod
    def setUpClass(cls):
        env = dict(os.environ, HEAVYLIFT_PROTOCOL="1", HEAVYLIFT_COMPUTE_CORE="0")
        cls.w = Worker(FAULTY, env=env)
        cls.hello = cls.w.hello()

    @classmethod
    def tearDownClass(cls):
        cls.w.close()

    def test_hello_names_the_routes_in_order(self):
        self.assertEqual(self.hello["version"], 1)
        self.assertEqual(self.hello["routes"], FAULTY_ROUTES)

    def test_pid(self):
        a = self.w.job(R["/pid"])
        self.assertEqual((a["status"], a["body"]), (200, str(self.w.proc.pid).encode()))

    def test_an_exception_is_an_error_frame_and_the_worker_stays(self):
        a = self.w.job(R["/raise"], query="msg=boom+%F0%9F%92%A5")
        self.assertEqual((a["kind"], a["message"]), ("Error", "ValueError: boom \U0001f4a5"))
        a = self.w.job(R["/raise"])
        self.assertEqual(a["message"], "ValueError: bad value")
        self.assertEqual(self.w.job(R["/pid"])["body"], str(self.w.proc.pid).encode())
        self.assertIn("Traceback", self.w.stderr_text())

    def test_cancel_of_a_polite_job_is_stopped(self):
        job_id = 10_000
        self.w.send(encode_job(job_id, R["/polite"]))
        time.sleep(0.02)
        self.w.send(encode_cancel(job_id + 1))  # not the running job: ignored
        time.sleep(0.02)
        self.assertIsNone(self.w.proc.poll())
        started = time.monotonic()
        self.w.send(encode_cancel(job_id))
        self.assertEqual(self.w.frame(), {"kind": "Stopped", "id": job_id})
        self.assertLess(time.monotonic() - started, 0.5)
        self.assertEqual(self.w.job(R["/pid"])["status"], 200)

    def test_cancel_in_the_same_read_as_its_job(self):
        job_id = 10_001
        self.w.send(encode_job(job_id, R["/polite"]) + encode_cancel(job_id))
        self.assertEqual(self.w.frame(), {"kind": "Stopped", "id": job_id})

    def test_a_cancel_between_jobs_is_ignored(self):
        self.w.send(encode_cancel(424242))
        a = self.w.job(R["/sleep"], query="secs=0.01")
        self.assertEqual((a["kind"], a["body"]), ("Done", b"slept"))

    def test_print_does_not_reach_the_protocol(self):
        a = self.w.job(R["/print"])
        self.assertEqual((a["kind"], a["body"]), ("Done", b"printed"))
        self.assertEqual(self.w.job(R["/pid"])["status"], 200)
        err = self.w.stderr_text()
        self.assertIn("line 999 of /print", err)
        self.assertIn("stderr line 2 of /print", err)

    def test_echo_of_a_large_body_in_pieces(self):
        body = os.urandom(3 << 20)
        job = encode_job(77, R["/echo"], method="POST", path="/echo", body=body)
        for i in range(0, len(job), 1 << 20):  # the frame arrives in pieces
            self.w.send(job[i:i + (1 << 20)])
            time.sleep(0.005)
        a = self.w.frame()
        self.assertEqual((a["id"], a["content_type"]), (77, "application/json"))
        self.assertEqual(json.loads(a["body"]),
                         {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()})

    def test_a_frame_one_byte_at_a_time(self):
        job = encode_job(78, R["/pid"], headers=[("x", b"1")])
        for b in job:
            self.w.send(bytes([b]))
        self.assertEqual(self.w.frame()["id"], 78)

    def test_response_status_type_and_headers(self):
        a = self.w.job(R["/headers"])
        self.assertEqual((a["status"], a["content_type"], a["headers"], a["body"]),
                         (201, "text/x-test", [("X-From-Worker", "yes")], b"ok"))
        a = self.w.job(R["/bad_header"])  # passed on as is: heavylift judges it
        self.assertEqual((a["kind"], a["headers"]), ("Done", [("Bad Name", "x")]))

    def test_env(self):
        doc = json.loads(self.w.job(R["/env"])["body"])
        self.assertEqual((doc["core"], doc["protocol"]), ("0", "1"))
        self.assertEqual(doc["affinity"], sorted(os.sched_getaffinity(0)))

    def test_twice_sends_two_answers(self):
        a = self.w.job(R["/twice"])
        self.assertEqual(a["body"], b"first")
        b = self.w.frame()
        self.assertEqual((b["id"], b["body"]), (a["id"], b"second"))

    def test_round_trip_time(self):
        n = 2000
        pid = self.w.job(R["/pid"])["body"]
        job = encode_job(5, R["/pid"], path="/pid", headers=[
            ("host", b"127.0.0.1:8080"), ("user-agent", b"heavylift-load")])
        sock = self.w.sock
        sock.settimeout(5)
        recv, send, unpack = sock.recv, sock.sendall, struct.Struct("<I").unpack_from
        ticks = os.sysconf("SC_CLK_TCK")

        def answer():  # lean: the loop measures the worker, not this reader
            data = recv(65536)
            while len(data) < 4 or len(data) < 4 + unpack(data)[0]:
                more = recv(65536)
                if not more:
                    raise AssertionError("worker closed its socket")
                data += more
            return decode(data[4], data[5:])

        for _ in range(200):  # warm up
            send(job)
            answer()

        def cpu():
            with open("/proc/%d/stat" % self.w.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks

        cpu_before = cpu()
        started = time.perf_counter()
        for _ in range(n):
            send(job)
            a = answer()
        elapsed = time.perf_counter() - started
        worker_cpu = cpu() - cpu_before
        self.assertEqual(a["body"], pid)
        mean_us = elapsed / n * 1e6
        sys.stderr.write("\n  round trip of an empty job: %.1f us mean over %d "
                         "(worker CPU %.1f us/job, 10 ms ticks) ... " % (
                             mean_us, n, worker_cpu / n * 1e6))
        self.assertLess(mean_us, 2000)


class FaultyWorkerExitTest(unittest.TestCase):
    """Tests that end their worker."""

    def setUp(self):
        self.w = Worker(FAULTY, preexec_fn=no_core_dumps)
        self.addCleanup(self.w.close)
        self.w.hello()

    def assert_exits(self, code, reason=None, timeout=2.0):
        self.assertEqual(self.w.wait(timeout), code)
        if reason is not None:
            self.assertIn(reason, self.w.stderr_text())

    def test_eof_exits_0(self):
        self.assertEqual(self.w.job(R["/pid"])["status"], 200)
        started = time.monotonic()
        self.w.sock.shutdown(socket.SHUT_WR)
        self.assert_exits(0)
        self.assertLess(time.monotonic() - started, 2.0)

    def test_eof_during_a_polite_job_stops_it(self):
        self.w.send(encode_job(1, R["/polite"]))
        time.sleep(0.05)
        self.w.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(self.w.frame(), {"kind": "Stopped", "id": 1})
        self.assert_exits(0)

    def test_garbage_to_the_worker_exits_1(self):
        self.w.send(b"\xff\xff\xff\xffnot a frame")
        self.assert_exits(1, "protocol error: bad frame length 4294967295")

    def test_unknown_kind_exits_1(self):
        self.w.send(frame(9, b"x"))
        self.assert_exits(1, "protocol error: unknown frame kind 9")

    def test_a_worker_frame_sent_to_the_worker_exits_1(self):
        self.w.send(frame(DONE, b"\0" * 20))
        self.assert_exits(1, "unexpected Done frame")

    def test_zero_length_exits_1(self):
        self.w.send(b"\0\0\0\0\x01")
        self.assert_exits(1, "bad frame length 0")

    def test_a_short_job_exits_1(self):
        job = encode_job(1, R["/pid"])
        self.w.send(u32(len(job) - 4 - 3) + job[4:-3])
        self.assert_exits(1, "frame ends inside a field")

    def test_trailing_bytes_exit_1(self):
        job = encode_job(1, R["/pid"])
        self.w.send(u32(len(job) - 4 + 2) + job[4:] + b"\0\0")
        self.assert_exits(1, "frame has trailing bytes")

    def test_bad_utf8_exits_1(self):
        self.w.send(encode_job(1, R["/pid"], method=b"G\xffT"))
        self.assert_exits(1, "not UTF-8")

    def test_a_bad_cancel_exits_1(self):
        self.w.send(frame(CANCEL, b"\0" * 4))
        self.assert_exits(1, "Cancel frame of length 5")

    def test_an_unknown_route_exits_1(self):
        self.w.send(encode_job(1, len(FAULTY_ROUTES)))
        self.assert_exits(1, "Job for route %d" % len(FAULTY_ROUTES))

    def test_eof_inside_a_frame_exits_1(self):
        self.w.send(encode_job(1, R["/pid"])[:10])
        self.w.sock.shutdown(socket.SHUT_WR)
        self.assert_exits(1, "end of input inside a frame")

    def test_sys_exit_in_a_job_ends_the_worker(self):
        self.w.send(encode_job(1, R["/exit"], query="code=7"))
        self.assert_exits(7)

    def test_abort(self):
        self.w.send(encode_job(1, R["/abort"]))
        self.assert_exits(-signal.SIGABRT)

    def test_exit_after_answering(self):
        self.assertEqual(self.w.job(R["/exit_after"])["body"], b"bye")
        self.assert_exits(0)

    def test_wrong_id_and_garbage_from_the_worker(self):
        self.w.send(encode_job(5, R["/wrong_id"]))
        a = self.w.frame()
        self.assertEqual((a["id"], a["body"]), (1005, b"stray"))
        self.w.send(encode_job(6, R["/garbage"]))  # queued behind the 5 s sleep
        self.w.proc.kill()

    def test_garbage_from_the_worker(self):
        self.w.send(encode_job(6, R["/garbage"]))
        self.assertEqual(self.w.read_exactly(15), b"\xff\xff\xff\xffnot a frame")


class OutOfMemoryTest(unittest.TestCase):
    def test_memory_error_exits_1_with_the_line(self):
        limit = 1 << 30

        def cap():
            no_core_dumps()
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        w = Worker(FAULTY, preexec_fn=cap)
        self.addCleanup(w.close)
        w.hello()
        self.assertEqual(w.job(R["/memory"], query="mb=16")["body"], b"allocated")
        w.send(encode_job(99, R["/memory"], query="mb=2048"))
        self.assertEqual(w.wait(5), 1)
        self.assertIn("heavylift-worker: out of memory\n", w.stderr_text())


# --- the module in this process ----------------------------------------------


class ModuleTest(unittest.TestCase):
    def test_route_rejects_bad_and_repeated_paths(self):
        saved = list(hw._routes)
        self.addCleanup(hw._routes.__setitem__, slice(None), saved)
        hw._routes[:] = []
        hw.route("/a")(lambda r: "a")
        hw.route("/users/{id}")(lambda r: "u")
        self.assertEqual([p for p, _ in hw._routes], ["/a", "/users/{id}"])
        for bad in ["/a", "a", "", "/a b", "/a\x7f", b"/bytes", "/" + "x" * 1024]:
            with self.subTest(path=bad), self.assertRaises(ValueError):
                hw.route(bad)

    def test_decode_job(self):
        f = encode_job(2 ** 64 - 1, 0, method="POST", path="/users/%41",
                       params=[("id", "A")], query="a=1&a=2&b=&c",
                       headers=[("accept", b"x/y"), ("X-Dup", b"1"), ("x-dup", b"\xe9")],
                       body=b"\0body", compute_core=4, shared_core=1,
                       queued_micros=1_500_000, io_core=2)
        fields = hw._decode_job(bytearray(f), len(f))
        self.assertEqual(fields, (2 ** 64 - 1, 0, 4, 1, 1_500_000, "POST", "/users/%41",
                                  {"id": "A"}, "a=1&a=2&b=&c",
                                  {"accept": "x/y", "x-dup": "1, \u00e9"}, b"\0body", 2))
        r = hw.Request(*fields[:1], "/users/{id}", *fields[5:11], 4, 2, True, 1.5)
        self.assertEqual(r.args, {"a": ["1", "2"], "b": [""], "c": [""]})
        self.assertEqual((r.arg("a"), r.arg("b"), r.arg("zz"), r.arg("zz", "d")),
                         ("1", "", None, "d"))
        self.assertEqual((r.route, r.params, r.queued_seconds), ("/users/{id}", {"id": "A"}, 1.5))

    def answer(self, result, job_id=3):
        head, body = hw._encode_result(job_id, result)
        data = head + body
        length, kind = struct.unpack_from("<IB", data)
        self.assertEqual(length, len(data) - 4)
        return decode(kind, data[5:])

    def test_return_values(self):
        cases = [
            ("h\u00e9", 200, "text/plain; charset=utf-8", "h\u00e9".encode()),
            (b"\0\1", 200, "application/octet-stream", b"\0\1"),
            (bytearray(b"ba"), 200, "application/octet-stream", b"ba"),
            (memoryview(b"mv"), 200, "application/octet-stream", b"mv"),
            ({"a": [1]}, 200, "application/json", b'{"a": [1]}'),
            ([1, "x"], 200, "application/json", b'[1, "x"]'),
            (None, 204, "", b""),
            (hw.Response(), 200, "", b""),
            (hw.Response("x", 404), 404, "text/plain; charset=utf-8", b"x"),
            (hw.Response(b"x" * 100_000, 202, "image/png"), 202, "image/png", b"x" * 100_000),
            (hw.Response("x", content_type=""), 200, "", b"x"),
        ]
        for value, status, ct, body in cases:
            with self.subTest(value=repr(value)[:40]):
                a = self.answer(value)
                self.assertEqual((a["kind"], a["id"], a["status"], a["content_type"],
                                  a["headers"], a["body"]),
                                 ("Done", 3, status, ct, [], body))
        a = self.answer(hw.Response("", headers={"A": "1", "B": "\u00e9", "Retry-After": 5}))
        self.assertEqual(a["headers"], [("A", "1"), ("B", "\u00e9"), ("Retry-After", "5")])
        for bad in [42, object(), hw.Response(status=99), hw.Response(status="200")]:
            with self.subTest(bad=bad), self.assertRaises((TypeError, ValueError)):
                hw._encode_result(3, bad)

    def test_frame_helpers(self):
        self.assertEqual(hw._encode_hello(["/hello"]), bytes.fromhex(
            "13000000 03 01000000 01000000 06000000") + b"/hello")
        self.assertEqual(hw._encode_done(7, 200, "text/plain", [], b"hi"), bytes.fromhex(
            "23000000 04 0700000000000000 c800 0a000000") + b"text/plain"
            + bytes.fromhex("00000000 02000000") + b"hi")
        self.assertEqual(decode(ERROR, hw._encode_error(8, "E: \ud800")[5:]),
                         {"kind": "Error", "id": 8, "message": "E: ?"})
        self.assertEqual(hw._encode_stopped(9), frame(STOPPED, struct.pack("<Q", 9)))

    def test_should_stop_outside_a_worker(self):
        self.assertFalse(hw.should_stop())
        hw.check()
        self.assertIsNone(hw._current_job_id())


if __name__ == "__main__":
    unittest.main()

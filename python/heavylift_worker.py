"""Write heavylift's heavy jobs in Python: the worker side of the protocol.

``heavylift serve --worker-cmd "python3 my_worker.py"`` starts the command
once per compute core; this module speaks the binary protocol with the
server (see docs/worker-protocol.md, which is the source of truth for the
frames) and calls your handlers, one job at a time. Standard library only,
Python 3.9 or later. A complete worker::

    import math
    from heavylift_worker import route, run, should_stop, Cancelled

    @route("/factorial")
    def factorial(request):
        n = int(request.arg("n", "1000"))
        for k in range(n + 1):
            if should_stop():          # the client went away or timed out
                raise Cancelled()
            last = math.factorial(k)
        return {"n": n, "bits": last.bit_length()}   # -> application/json

    run()

Each route ``P`` becomes ``GET P`` and ``POST P`` on the server. A route
segment may be a parameter, ``/users/{id}``; its decoded value is in
``request.params["id"]``.

What a handler gets and returns:

- ``request`` is a :class:`Request` (method, path, params, query, args,
  headers, body, cores, time queued).
- Return a ``str`` (200 text/plain; charset=utf-8), ``bytes`` (200
  application/octet-stream), a ``dict`` or ``list`` (200 application/json),
  ``None`` (204, no body) or a :class:`Response` for anything else.
- An exception becomes a 500 ``Caught an exception: <Type>: <message>``
  (its traceback goes to stderr, which heavylift logs) and the worker keeps
  serving. ``MemoryError`` ends the worker with ``heavylift-worker: out of
  memory`` on stderr, so heavylift reports the cause. ``sys.exit()`` ends
  the worker too; heavylift starts another.
- Long jobs should call :func:`should_stop` (or :func:`check`) now and
  then; it is cheap (it looks at the socket at most once per 2 ms).

``print()`` and ``input()`` are safe, in handlers and at start-up: when
heavylift started the process (``HEAVYLIFT_PROTOCOL`` is set), importing
this module moves the protocol off fds 0 and 1, so stdout goes to stderr
(line-buffered) and stdin reads /dev/null. Import it before anything
prints.

heavylift runs a simple command such as ``python3 my_worker.py`` with
``exec``, so the worker is Python itself (its own exit, ``SIGABRT`` rather
than ``exit status 134``, and its pid). A compound command (``cd x &&
python3 w.py``, or one with ``VAR=1`` in front) keeps ``/bin/sh`` in
between; start its last part with ``exec`` to get the same.
"""

import os
import struct
import sys
import time

__all__ = [
    "Cancelled",
    "Request",
    "Response",
    "PROTOCOL_VERSION",
    "check",
    "route",
    "run",
    "should_stop",
]

#: The protocol version this module speaks (the ``Hello`` frame's version).
PROTOCOL_VERSION = 1

# Frame kinds (docs/worker-protocol.md, "Frames").
JOB = 1
CANCEL = 2
HELLO = 3
DONE = 4
ERROR = 5
STOPPED = 6
_KIND_NAMES = {JOB: "Job", CANCEL: "Cancel", HELLO: "Hello", DONE: "Done",
               ERROR: "Error", STOPPED: "Stopped"}

#: The largest frame length (the bytes after the length field).
MAX_FRAME = (1 << 30) + (1 << 20)
#: The most routes one worker may announce.
MAX_ROUTES = 1024
#: The longest route path, in UTF-8 bytes.
MAX_ROUTE_BYTES = 1024

_READ_CHUNK = 65536
_POLL_INTERVAL = 0.002  # seconds between two looks at the socket in should_stop()
_BIG_BODY = 65536  # bodies at least this long are written apart from their head

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_LEN_KIND = struct.Struct("<IB")
_JOB_FIXED = struct.Struct("<QIIBQ")  # id, route, compute_core, shared_core, queued_micros
_ID_FRAME = struct.Struct("<IBQ")  # Cancel and Stopped: len 9, kind, id
_DONE_HEAD = struct.Struct("<IBQH")  # len, kind, id, status
_ERROR_HEAD = struct.Struct("<IBQI")  # len, kind, id, message length
_JOB_FIELDS_AT = 5 + _JOB_FIXED.size  # offset of `method` in a Job frame

_u32_at = _U32.unpack_from
_u32 = _U32.pack
_monotonic = time.monotonic

_TEXT_PLAIN = "text/plain; charset=utf-8"
_OCTET_STREAM = "application/octet-stream"
_JSON = "application/json"

# --- state -----------------------------------------------------------------

_routes = []  # [(path, handler)], in registration (= Hello) order
_in = -1  # protocol fds, set by run()
_out = -1
_buf = bytearray()  # bytes read from the server, not yet consumed
_job_id = None  # the running job's id, or None between jobs
_stop = False  # a Cancel for the running job arrived, or the server is gone
_eof = False  # the server closed the socket
_next_poll = 0.0  # monotonic time before which should_stop() trusts _stop
_started = False  # run() was called
_poller = None
_parent_at_import = os.getppid()


class Cancelled(Exception):
    """Raise it (or call :func:`check`) to stop a job that was cancelled.

    The worker then answers ``Stopped`` and waits for the next job.
    """


class _ProtocolError(Exception):
    """Bytes from the server that are not a frame this worker accepts."""


# --- requests and responses ------------------------------------------------


class Request:
    """One job's request.

    Attributes:
        id: the job id (an int; unique per server I/O core, not globally).
        route: the matched route pattern, e.g. ``"/users/{id}"``.
        method: ``"GET"``, ``"HEAD"`` or ``"POST"``.
        path: the request path as sent (not percent-decoded).
        params: the path parameters, percent-decoded (dict name -> str).
        query: the raw query string without ``?`` (``""`` if none).
        args: the query parsed by ``urllib.parse.parse_qs`` with blank
            values kept (dict name -> list of str); built on first use.
        headers: dict lower-case name -> str (latin-1); repeated fields
            joined with ``", "``.
        body: the request body (bytes; normally empty for GET).
        compute_core: the CPU this worker is pinned to.
        io_core: the CPU of the I/O core that read the request.
        shared_core: True when the compute core also runs I/O.
        queued_seconds: how long the job waited from dispatch to its start.

    ``Request(...)`` with keywords builds one for testing a handler without
    a server, e.g. ``Request(path="/x", query="n=5")``.
    """

    __slots__ = ("id", "route", "method", "path", "params", "query", "headers",
                 "body", "compute_core", "io_core", "shared_core",
                 "queued_seconds", "_args")

    def __init__(self, id=0, route=None, method="GET", path="/", params=None,
                 query="", headers=None, body=b"", compute_core=0, io_core=0,
                 shared_core=False, queued_seconds=0.0):
        self.id = id
        self.route = path if route is None else route
        self.method = method
        self.path = path
        self.params = {} if params is None else params
        self.query = query
        self.headers = {} if headers is None else headers
        self.body = body
        self.compute_core = compute_core
        self.io_core = io_core
        self.shared_core = shared_core
        self.queued_seconds = queued_seconds
        self._args = None

    @property
    def args(self):
        """The query as a dict name -> list of values (blank values kept)."""
        args = self._args
        if args is None:
            from urllib.parse import parse_qs

            args = self._args = parse_qs(self.query, keep_blank_values=True)
        return args

    def arg(self, name, default=None):
        """The first value of query parameter ``name``, or ``default``."""
        values = self.args.get(name)
        return values[0] if values else default

    def __repr__(self):
        return "Request(id=%r, method=%r, path=%r, query=%r, body=<%d bytes>)" % (
            self.id, self.method, self.path, self.query, len(self.body))


class Response:
    """A response with a status, content type or extra headers of your choice.

    Args:
        body: ``bytes``-like, ``str`` (sent as UTF-8), ``dict``/``list``
            (sent as JSON) or ``None`` (empty).
        status: 200..=599.
        content_type: the ``Content-Type``; ``None`` picks it from the body
            as a plain return value would (text/plain; charset=utf-8 for
            str, application/octet-stream for bytes, application/json for
            dict/list, none for an empty body); ``""`` sends none.
        headers: extra header fields, a list of ``(name, value)`` or a
            dict. Names must be tokens and values free of CR, LF and NUL;
            heavylift answers 500 otherwise. ``Content-Length``,
            ``Transfer-Encoding`` and ``Connection`` are heavylift's.
            Values that are not str are sent as ``str(value)``.
    """

    __slots__ = ("body", "status", "content_type", "headers")

    def __init__(self, body=b"", status=200, content_type=None, headers=None):
        self.body = body
        self.status = status
        self.content_type = content_type
        self.headers = headers

    def __repr__(self):
        return "Response(status=%r, content_type=%r, headers=%r, body=%r)" % (
            self.status, self.content_type, self.headers, self.body)


def _body_and_type(value):
    """(body bytes, default content type) of a plain return value."""
    if isinstance(value, str):
        return value.encode("utf-8"), _TEXT_PLAIN
    if isinstance(value, (bytes, bytearray)):
        return value, _OCTET_STREAM
    if isinstance(value, memoryview):
        return value.tobytes(), _OCTET_STREAM
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value).encode("utf-8"), _JSON
    if value is None:
        return b"", ""
    raise TypeError(
        "a handler must return str, bytes, dict, list, None or Response, not %s"
        % type(value).__name__)


# --- encoding --------------------------------------------------------------

_text_cache = {}  # content type -> u32 length + UTF-8 bytes
_NO_HEADERS = _u32(0)


def _text_field(s):
    b = s.encode("utf-8")
    return _u32(len(b)) + b


def _headers_field(headers):
    if not headers:
        return _NO_HEADERS
    if isinstance(headers, dict):
        headers = headers.items()
    parts = []
    count = 0
    for name, value in headers:
        parts.append(_text_field(name if isinstance(name, str) else str(name)))
        parts.append(_text_field(value if isinstance(value, str) else str(value)))
        count += 1
    return _u32(count) + b"".join(parts)


def _done_parts(job_id, status, content_type, headers, body):
    """A Done frame as (head, body): head ends with the body's length."""
    ct = _text_cache.get(content_type)
    if ct is None:
        ct = _text_field(content_type)
        if len(_text_cache) < 64:
            _text_cache[content_type] = ct
    hf = _NO_HEADERS if not headers else _headers_field(headers)
    n = len(body)
    length = 15 + len(ct) + len(hf) + n  # kind 1 + id 8 + status 2 + body length 4
    return b"".join((_DONE_HEAD.pack(length, DONE, job_id, status), ct, hf, _u32(n))), body


def _encode_done(job_id, status, content_type, headers, body):
    """A whole Done frame as bytes.

    ``headers`` is a list of (name, value) or a dict; ``body`` bytes or str.
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    head, body = _done_parts(job_id, status, content_type or "", headers, bytes(body))
    return head + body


def _encode_error(job_id, message):
    """An Error frame as bytes."""
    m = message.encode("utf-8", "replace")
    return _ERROR_HEAD.pack(13 + len(m), ERROR, job_id, len(m)) + m


def _encode_stopped(job_id):
    """A Stopped frame as bytes."""
    return _ID_FRAME.pack(9, STOPPED, job_id)


def _encode_hello(paths):
    """The Hello frame announcing ``paths`` (protocol version 1)."""
    fields = b"".join(_text_field(p) for p in paths)
    return _LEN_KIND.pack(9 + len(fields), HELLO) + _u32(PROTOCOL_VERSION) + _u32(len(paths)) + fields


def _encode_result(job_id, result):
    """The (head, body) of the Done frame for a handler's return value."""
    if result.__class__ is str:  # the common case first
        body = result.encode("utf-8")
        return _done_parts(job_id, 200, _TEXT_PLAIN, None, body)
    if isinstance(result, Response):
        status = result.status
        if not isinstance(status, int) or not 200 <= status <= 599:
            raise ValueError("Response status %r is not in 200..=599" % (status,))
        body, ct = _body_and_type(result.body)
        if result.content_type is not None:
            ct = result.content_type
        elif not body:
            ct = ""
        return _done_parts(job_id, status, ct, result.headers, body)
    body, ct = _body_and_type(result)
    return _done_parts(job_id, 204 if result is None else 200, ct, None, body)


# --- I/O -------------------------------------------------------------------


def _server_gone():
    raise SystemExit(0)


def _write_all(data):
    """Writes all of ``data`` to the protocol socket."""
    try:
        n = os.write(_out, data)
        if n < len(data):
            view = memoryview(data).cast("B")[n:]
            while view:
                view = view[os.write(_out, view):]
    except (BrokenPipeError, ConnectionResetError):
        _server_gone()


def _send(head, body):
    if len(body) < _BIG_BODY:
        _write_all(head + body if body else head)
    else:
        _write_all(head)
        _write_all(body)


def _send_raw(data):
    """Writes raw bytes to the protocol socket (for tests of broken workers)."""
    _write_all(bytes(data))


def _current_job_id():
    """The running job's id, or None between jobs."""
    return _job_id


def _fill(need):
    """Reads until the buffer holds ``need`` bytes; False at EOF."""
    global _eof
    buf = _buf
    while len(buf) < need:
        if _eof:
            return False
        try:
            chunk = os.read(_in, max(_READ_CHUNK, min(need - len(buf), 1 << 22)))
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            _eof = True
            return False
        buf += chunk
    return True


def _next_frame():
    """(kind, total bytes) of the frame at the head of the buffer, reading
    as needed; None at EOF. Checks the length and the kind."""
    buf = _buf
    if len(buf) < 5 and not _fill(5):
        if buf:
            raise _ProtocolError("end of input inside a frame (%d bytes)" % len(buf))
        return None
    length, kind = _LEN_KIND.unpack_from(buf, 0)
    if length < 1 or length > MAX_FRAME:
        raise _ProtocolError("bad frame length %d" % length)
    if kind != JOB and kind != CANCEL:
        if kind in _KIND_NAMES:
            raise _ProtocolError("unexpected %s frame (kind %d) from the server"
                                 % (_KIND_NAMES[kind], kind))
        raise _ProtocolError("unknown frame kind %d" % kind)
    total = 4 + length
    if len(buf) < total and not _fill(total):
        raise _ProtocolError("end of input inside a frame (%d of %d bytes)" % (len(buf), total))
    return kind, total


def _truncated():
    raise _ProtocolError("frame ends inside a field")


def _span(buf, o, end):
    """The (start, stop) of the length-prefixed field at ``buf[o:]``."""
    if o + 4 > end:
        _truncated()
    n = _u32_at(buf, o)[0]
    o += 4
    if o + n > end:
        _truncated()
    return o, o + n


def _pairs(buf, o, end, value_encoding):
    """A ``u32`` count of (text name, value) pairs at ``buf[o:]``: the
    pairs as a list and the offset after them."""
    if o + 4 > end:
        _truncated()
    count = _u32_at(buf, o)[0]
    o += 4
    pairs = []
    for _ in range(count):
        a, o = _span(buf, o, end)
        name = buf[a:o].decode()
        a, o = _span(buf, o, end)
        pairs.append((name, buf[a:o].decode(value_encoding)))
    return pairs, o


def _decode_job(buf, end):
    """The fields of the Job frame at buf[:end], as a tuple."""
    if end < _JOB_FIELDS_AT:
        _truncated()
    job_id, route, compute_core, shared, queued_micros = _JOB_FIXED.unpack_from(buf, 5)
    o = _JOB_FIELDS_AT
    try:
        a, o = _span(buf, o, end)
        method = buf[a:o].decode()
        a, o = _span(buf, o, end)
        path = buf[a:o].decode()
        params, o = _pairs(buf, o, end, "utf-8")
        a, o = _span(buf, o, end)
        query = buf[a:o].decode() if o > a else ""
        fields, o = _pairs(buf, o, end, "latin-1")
        headers = {}
        for name, value in fields:
            name = name.lower()
            headers[name] = headers[name] + ", " + value if name in headers else value
        a, o = _span(buf, o, end)
        n = o - a
        if n < 4096:
            body = bytes(buf[a:o]) if n else b""
        else:  # one copy, not two: a large body may be most of the memory
            view = memoryview(buf)
            body = view[a:o].tobytes()
            view.release()
        if o + 4 > end:
            _truncated()
        io_core = _u32_at(buf, o)[0]
        o += 4
    except UnicodeDecodeError:
        raise _ProtocolError("text field is not UTF-8") from None
    if o != end:
        raise _ProtocolError("frame has trailing bytes")
    return (job_id, route, compute_core, shared, queued_micros, method, path,
            dict(params), query, headers, body, io_core)


# --- cancellation ----------------------------------------------------------


def _take_cancels():
    """Consumes the Cancel frames at the head of the buffer; one for the
    running job sets the stop flag. Anything else stays for the main loop."""
    global _stop
    buf = _buf
    while len(buf) >= 13 and buf[4] == CANCEL and _u32_at(buf, 0)[0] == 9:
        cancel_id = _U64.unpack_from(buf, 5)[0]
        del buf[:13]
        if cancel_id == _job_id and _job_id is not None:
            _stop = True


def _make_poller(fd):
    """A function timeout -> non-empty when ``fd`` is readable (or at EOF)."""
    import select

    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return poller.poll  # any fd number, unlike select()
    return lambda timeout: select.select([fd], [], [], timeout)[0]


def _poll():
    """Reads what the socket has without blocking, then looks for Cancel."""
    global _stop, _eof, _poller
    if _in >= 0 and not _eof:
        try:
            if _poller is None:
                _poller = _make_poller(_in)
            ready = _poller(0)
        except (OSError, ValueError):
            ready = None
        if ready:
            try:
                chunk = os.read(_in, _READ_CHUNK)
            except OSError:
                chunk = b""
            if chunk:
                _buf.extend(chunk)
            else:
                _eof = True
    if _eof:
        _stop = True
    _take_cancels()
    return _stop


def should_stop():
    """True once the running job was cancelled (or the server went away).

    Call it between steps of a long job and return (or raise
    :class:`Cancelled`) when it is true. It looks at the socket at most
    once per 2 ms and otherwise returns a cached flag, so calling it in a
    tight loop is fine. Call it from the thread that runs the handler.
    """
    global _next_poll
    if _stop:
        return True
    now = _monotonic()
    if now < _next_poll:
        return False
    _next_poll = now + _POLL_INTERVAL
    return _poll()


def check():
    """Raises :class:`Cancelled` if :func:`should_stop` is true."""
    if should_stop():
        raise Cancelled()


# --- routes and the loop ---------------------------------------------------


def route(path):
    """Registers the decorated ``handler(request)`` for route ``path``.

    Routes are announced in registration order. ``path`` must start with
    ``/`` and be visible ASCII without ``?`` or ``#`` (requests are matched
    on their raw path: write ``/caf%C3%A9`` as clients send it); a segment
    may be a parameter, ``{name}``. Raises ValueError for a bad or repeated
    path.
    """
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError("route %r must be a str starting with /" % (path,))
    if any(not ("!" <= c <= "~") or c in "?#" for c in path):
        raise ValueError("route %r must be visible ASCII without ? or # "
                         "(percent-encode the rest as clients send it)" % (path,))
    if len(path.encode("utf-8")) > MAX_ROUTE_BYTES:
        raise ValueError("route %r is longer than %d bytes" % (path, MAX_ROUTE_BYTES))
    if any(p == path for p, _ in _routes):
        raise ValueError("route %r is registered twice" % (path,))
    if len(_routes) >= MAX_ROUTES:
        raise ValueError("at most %d routes" % MAX_ROUTES)

    def register(handler):
        _routes.append((path, handler))
        return handler

    return register


def _out_of_memory():
    try:
        os.write(2, b"heavylift-worker: out of memory\n")
    finally:
        os._exit(1)


def _die(reason):
    try:
        os.write(2, ("heavylift-worker: %s\n" % reason).encode("utf-8", "replace"))
    finally:
        os._exit(1)


def _error_message(exc):
    try:
        return "%s: %s" % (type(exc).__name__, exc)
    except Exception:
        return "%s: <unprintable>" % type(exc).__name__


def _log_traceback(exc):
    try:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        sys.stderr.flush()
    except Exception:
        pass


def _run_job(job_id, handler, request):
    """Runs one job and writes its answer."""
    global _job_id, _stop, _next_poll
    _job_id = job_id
    _stop = _eof
    _next_poll = 0.0
    try:
        try:
            result = handler(request)
            if _stop:
                head, body = _encode_stopped(job_id), b""
            else:
                head, body = _encode_result(job_id, result)
        except Cancelled:
            head, body = _encode_stopped(job_id), b""
        except MemoryError:
            _out_of_memory()
        except Exception as exc:  # SystemExit and KeyboardInterrupt pass
            _log_traceback(exc)
            head, body = _encode_error(job_id, _error_message(exc)), b""
    finally:
        _job_id = None
    _send(head, body)


def _serve():
    patterns = [p for p, _ in _routes]
    handlers = [h for _, h in _routes]
    n_routes = len(handlers)
    buf = _buf
    while True:
        got = _next_frame()
        if got is None:
            raise SystemExit(0)
        kind, total = got
        if kind == CANCEL:
            if total != 13:
                raise _ProtocolError("Cancel frame of length %d (expected 9)" % (total - 4))
            del buf[:13]  # no job is running: a Cancel that crossed an answer
            continue
        (job_id, route_index, compute_core, shared, queued_micros, method, path,
         params, query, headers, body, io_core) = _decode_job(buf, total)
        del buf[:total]
        if route_index >= n_routes:
            raise _ProtocolError("Job for route %d; this worker has %d" % (route_index, n_routes))
        request = Request(job_id, patterns[route_index], method, path, params, query,
                          headers, body, compute_core, io_core, shared != 0,
                          queued_micros / 1e6)
        _run_job(job_id, handlers[route_index], request)


def _take_protocol_fds():
    """Moves the protocol off fds 0 and 1; stdin reads /dev/null and stdout
    goes to stderr."""
    global _in, _out
    _in = os.dup(0)  # os.dup makes non-inheritable (close-on-exec) fds
    _out = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    if null != 0:
        os.dup2(null, 0)
        os.close(null)
    try:
        os.dup2(2, 1)
    except OSError:  # no stderr: discard stdout instead
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    stdout = sys.stdout
    if stdout is not None and hasattr(stdout, "reconfigure"):
        try:
            stdout.reconfigure(line_buffering=True)
        except Exception:
            pass


def _die_with_parent():
    """Best effort: SIGKILL on the parent's death; exit if it is gone already."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
        except Exception:
            pass
    if os.getppid() != _parent_at_import:
        _die("parent process gone before start-up")


def run():
    """Serves jobs until the server closes the socket, then exits 0.

    Call it once, after the ``@route`` handlers are defined. It never
    returns: it exits 0 at the end of input and 1 (with the reason on
    stderr) when the server sends bytes that are not a frame.
    """
    global _started
    if _started:
        raise RuntimeError("run() was called already")
    _started = True
    if not _routes:
        _die("no routes: decorate a handler with @route(\"/path\") before run()")
    if os.isatty(0) or os.isatty(1):
        os.write(2, b"heavylift-worker: this program is a heavylift worker: run it with\n"
                    b"  heavylift serve --worker-cmd \"python3 %s\"\n"
                 % os.fsencode(sys.argv[0] if sys.argv and sys.argv[0] else "worker.py"))
        raise SystemExit(2)
    if _in < 0:
        _take_protocol_fds()
    _die_with_parent()
    try:
        _write_all(_encode_hello([p for p, _ in _routes]))
        _serve()
    except _ProtocolError as exc:
        _die("protocol error: %s" % exc)
    except MemoryError:
        _out_of_memory()


# Started by heavylift: take the protocol off fds 0 and 1 now, so that
# whatever the worker prints before run() cannot break the Hello.
if os.environ.get("HEAVYLIFT_PROTOCOL") and not os.isatty(1):
    _take_protocol_fds()

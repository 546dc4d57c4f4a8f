"""The seed's own job, heavy_lifting, as a Python worker behind heavylift.

Run it with::

    heavylift serve --worker-cmd "python3 examples/python/seed_worker.py"
    heavylift load --slow-path slow_py

Routes (each is GET and POST on the server):

- ``/slow_py?id=X[&n=N]``: the seed's job, ``math.factorial(k)`` for k in
  0..n, with exactly the rules and bodies of heavylift's built-in
  ``/slow_threaded``: ``id`` is required, ``n`` is 1..=20000 (default
  2000); the body is ``slow result X <--- S.SSS s``, or with ``Accept:
  application/json`` the JSON document (id, n, seconds, digits, io_core,
  compute_core, queued_seconds, cpu_seconds). A cancelled job stops
  between two factorials.
- ``/sha256_py``: ``{"bytes": N, "sha256": "<hex>"}`` of the request body.

The protocol module is python/heavylift_worker.py (docs/worker-protocol.md).
"""

import hashlib
import json
import math
import os
import sys
import time
import unicodedata

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "python"))

from heavylift_worker import Cancelled, Response, route, run, should_stop  # noqa: E402

DEFAULT_N = 2000
MAX_N = 20000
_TEXT = "text/plain; charset=utf-8"
_LOG10_2 = math.log10(2)
_HEX = {c: int(c, 16) for c in "0123456789abcdefABCDEF"}


class BadRequest(Exception):
    """A one-line reason for a 400 body."""


def query_param(query, name):
    """The raw value of the first ``name=value`` pair whose name, once
    percent-decoded, is ``name`` (a bare ``name`` gives ""), or None."""
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        try:
            if percent_decode(key) == name:
                return value
        except BadRequest:
            pass
    return None


def percent_decode(raw):
    """``%XX`` escapes (either case) and ``+`` as a space; the result must be
    UTF-8. Raises BadRequest with heavylift's reasons."""
    if "%" not in raw and "+" not in raw:
        return raw
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "+":
            out.append(0x20)
            i += 1
        elif c == "%":
            hi = _HEX.get(raw[i + 1:i + 2])
            lo = _HEX.get(raw[i + 2:i + 3])
            if hi is None or lo is None:
                raise BadRequest("bad percent-escape: expected % and two hex digits")
            out.append(hi * 16 + lo)
            i += 3
        else:
            out += c.encode("utf-8")
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("percent-decoded value is not valid UTF-8") from None


def parse_id(query):
    raw = query_param(query, "id")
    if raw is None:
        raise BadRequest("missing id: use ?id=X")
    try:
        value = percent_decode(raw)
    except BadRequest as why:
        raise BadRequest("bad id: %s" % why) from None
    if not value:
        raise BadRequest("empty id: use ?id=X")
    return value


def rust_debug(s):
    """``s`` quoted as Rust's ``{:?}`` does (close: Python's Unicode tables
    decide which non-ASCII characters are escaped)."""
    out = ['"']
    for c in s:
        if c == '"' or c == "\\":
            out.append("\\" + c)
        elif " " <= c <= "~":
            out.append(c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif c == "\0":
            out.append("\\0")
        elif c < "\x80" or unicodedata.category(c)[0] in "CZ" or unicodedata.category(c) in ("Mn", "Me"):
            out.append("\\u{%x}" % ord(c))
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def parse_whole(query, name, default, lo, hi):
    """Query parameter ``name``: absent gives ``default``; present must be,
    once percent-decoded, ASCII decimal digits with a value in lo..=hi."""
    raw = query_param(query, name)
    if raw is None:
        return default
    try:
        decoded = percent_decode(raw)
    except BadRequest as why:
        raise BadRequest("bad %s: %s" % (name, why)) from None
    if decoded and decoded.isascii() and decoded.isdigit():
        value = int(decoded)
        if lo <= value <= hi:
            return value
    shown = raw[:32]
    cut = "..." if len(shown) < len(raw) else ""
    raise BadRequest("bad %s %s%s: expected a whole number from %d to %d"
                     % (name, rust_debug(shown), cut, lo, hi))


def parse_n(query):
    return parse_whole(query, "n", DEFAULT_N, 1, MAX_N)


def decimal_digits(x):
    """The number of decimal digits of ``x`` (len(str(abs(x)))), without
    str(): Python 3.11 refuses int -> str past 4300 digits."""
    x = abs(x)
    bits = x.bit_length()
    if bits <= 1:
        return 1  # 0 or 1
    # 2**(bits-1) <= x, so floor(log10 x) >= floor((bits-1) * log10 2); the
    # guess is at most one off and the loops settle it.
    e = int((bits - 1) * _LOG10_2)
    p = 10 ** e
    while e > 0 and x < p:
        e -= 1
        p //= 10
    while True:
        nxt = p * 10
        if x < nxt:
            return e + 1
        p = nxt
        e += 1


def heavy_lifting(n):
    """The seed's loop: k! for k in 0..n, each from scratch, stopping at a
    cancel. Returns (seconds, digits of (n-1)!)."""
    started = time.perf_counter()
    last = None
    for k in range(n):
        if should_stop():
            raise Cancelled()
        last = math.factorial(k)
    digits = 0 if last is None else decimal_digits(last)
    return time.perf_counter() - started, digits


def _wants_json(request):
    return "application/json" in request.headers.get("accept", "").lower()


@route("/slow_py")
def slow_py(request):
    query = request.query
    try:
        ident = parse_id(query)
        n = parse_n(query)
    except BadRequest as why:
        return Response(str(why), 400, _TEXT)
    cpu_started = time.thread_time()
    seconds, digits = heavy_lifting(n)
    cpu_seconds = time.thread_time() - cpu_started
    if _wants_json(request):
        return Response(
            '{"id": %s, "n": %d, "seconds": %.3f, "digits": %d, "io_core": %d, '
            '"compute_core": %d, "queued_seconds": %.6f, "cpu_seconds": %.6f}'
            % (json.dumps(ident, ensure_ascii=False), n, seconds, digits, request.io_core,
               request.compute_core, request.queued_seconds, cpu_seconds),
            200, "application/json")
    return "slow result %s <--- %.3f s" % (ident, seconds)


@route("/sha256_py")
def sha256_py(request):
    body = request.body
    return {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}


if __name__ == "__main__":
    run()

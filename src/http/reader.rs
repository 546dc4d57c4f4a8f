//! `RequestReader`: one connection's inbound byte path, without any I/O.
//!
//! It owns the read buffer: the connection reads socket bytes into
//! [`RequestReader::spare`] and reports them with [`RequestReader::filled`];
//! [`RequestReader::next_event`] then yields each complete request head in
//! order. The connection routes it and says how to read its body with
//! [`RequestReader::begin_body`] (the route's limit; collected or skipped);
//! the reader then yields the body whole, asks for a `100 Continue` when a
//! client waits for one, or reports the first protocol error. Because it is
//! pure, the fuzz target and the unit tests drive exactly the code the
//! server runs, split at any byte.

use std::time::Instant;

use super::{BodyKind, BodyReader, ParseError, RequestHead, MAX_BODY_BYTES};

/// Initial size of the read buffer; it doubles up to [`MAX_READ_BUFFER`].
/// Small, because every idle keep-alive connection holds one (issue 16:
/// 4 KiB here was 40 % of an idle connection's memory) and a typical head
/// fits; a body grows it at once to what it needs ([`RequestReader::begin_body`]).
pub const INITIAL_READ_BUFFER: usize = 512;
/// Enough for one maximal head (8 KiB) plus pipelined requests behind it.
pub const MAX_READ_BUFFER: usize = 64 * 1024;

/// What the buffered bytes hold next.
#[derive(Debug)]
pub enum Next {
    /// A complete request head. Call [`RequestReader::begin_body`] before
    /// asking for the next event (else the body is skipped under the default
    /// limit).
    Head(RequestHead),
    /// The whole body of the last head: its data when collected, else empty.
    Body(Vec<u8>),
    /// The client sent `Expect: 100-continue` and waits before sending its body.
    Continue,
    /// The bytes are not valid HTTP/1.1; answer `err.status()` and close.
    Error(ParseError),
    /// Nothing complete yet: read more.
    NeedMore,
}

/// See the module docs.
#[derive(Debug)]
pub struct RequestReader {
    /// `buf[start..end]` holds bytes not yet consumed.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The body being read, once `begin_body` has been called.
    body: Option<BodyReader>,
    /// A head was yielded and its body not begun: (framing, Expect).
    awaiting: Option<(BodyKind, bool)>,
    /// A `100 Continue` is owed for the head in `body`.
    owes_continue: bool,
    /// When the first byte of the current, incomplete head was seen.
    head_since: Option<Instant>,
    /// When the head of the body in `body` was complete.
    body_since: Instant,
    /// Once the stream is broken it stays broken.
    failed: Option<ParseError>,
}

impl Default for RequestReader {
    fn default() -> Self {
        RequestReader::new()
    }
}

impl RequestReader {
    /// An empty reader with a 4 KiB buffer ([`INITIAL_READ_BUFFER`]).
    pub fn new() -> RequestReader {
        RequestReader {
            buf: vec![0; INITIAL_READ_BUFFER],
            start: 0,
            end: 0,
            body: None,
            awaiting: None,
            owes_continue: false,
            head_since: None,
            body_since: Instant::now(),
            failed: None,
        }
    }

    /// Free space to read into (compacting or growing the buffer first).
    /// Empty only when [`MAX_READ_BUFFER`] bytes are waiting unconsumed.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            // Back to the small buffer once a large body is done.
            if self.buf.len() > INITIAL_READ_BUFFER && self.is_idle() {
                self.buf = vec![0; INITIAL_READ_BUFFER];
            }
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < MAX_READ_BUFFER {
                let len = (self.buf.len() * 2).min(MAX_READ_BUFFER);
                self.buf.resize(len, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Records that `n` bytes were written into the slice `spare` returned.
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// True when no request is partly received (a keep-alive boundary).
    pub fn is_idle(&self) -> bool {
        self.start == self.end && self.body.is_none() && self.awaiting.is_none()
    }

    /// Whether the bytes not yet consumed begin, after any blank lines, with
    /// `method` and a space: the method of a head that could not be parsed
    /// (an answer to HEAD never carries content, RFC 9112 section 6.3).
    pub fn unparsed_method_is(&self, method: &[u8]) -> bool {
        let mut rest = self.buf.get(self.start..self.end).unwrap_or_default();
        while let Some(after) = rest
            .strip_prefix(b"\r\n")
            .or_else(|| rest.strip_prefix(b"\n"))
        {
            rest = after;
        }
        rest.strip_prefix(method)
            .is_some_and(|after| after.first() == Some(&b' '))
    }

    /// When the first byte of the current incomplete head arrived, if any.
    pub fn head_since(&self) -> Option<Instant> {
        self.head_since
    }

    /// While a body is being read: when it began (its head was complete)
    /// and how many of its bytes, framing included, have arrived. The
    /// connection derives the body deadline from these (`--body-min-rate`).
    pub fn body_progress(&self) -> Option<(Instant, u64)> {
        self.body
            .as_ref()
            .map(|reader| (self.body_since, reader.taken()))
    }

    /// Says how to read the body of the head just yielded: at most `limit`
    /// bytes (framing included), its data kept when `collect`. A declared
    /// length over the limit is a 413 now, before any body byte is read.
    pub fn begin_body(&mut self, limit: u64, collect: bool) -> Result<(), ParseError> {
        let Some((kind, expects_continue)) = self.awaiting.take() else {
            return Ok(());
        };
        let reader = match BodyReader::new(kind, limit) {
            Ok(reader) => reader,
            Err(err) => {
                self.failed = Some(err);
                return Err(err);
            }
        };
        self.owes_continue = expects_continue && !reader.is_done();
        if !reader.is_done() {
            // Read a body in large reads, not 512-byte ones.
            let buffered = self.end - self.start;
            let want = match kind {
                BodyKind::Length(n) => usize::try_from(n)
                    .unwrap_or(usize::MAX)
                    .saturating_add(buffered),
                _ => MAX_READ_BUFFER,
            }
            .min(MAX_READ_BUFFER);
            if want > self.buf.len() {
                self.buf.resize(want, 0);
            }
        }
        self.body_since = Instant::now();
        self.body = Some(if collect { reader.collecting() } else { reader });
        Ok(())
    }

    /// Drops everything buffered (used while lingering before a close).
    pub fn discard(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// The next complete thing in the buffer; see [`Next`].
    pub fn next_event(&mut self) -> Next {
        if let Some(err) = self.failed {
            return Next::Error(err);
        }
        match self.advance() {
            Next::Error(err) => {
                self.failed = Some(err);
                Next::Error(err)
            }
            other => other,
        }
    }

    fn advance(&mut self) -> Next {
        if self.awaiting.is_some() {
            if let Err(err) = self.begin_body(MAX_BODY_BYTES, false) {
                return Next::Error(err);
            }
        }
        if let Some(reader) = self.body.as_mut() {
            match reader.consume(&self.buf[self.start..self.end]) {
                Ok(used) => self.start += used,
                Err(err) => return Next::Error(err),
            }
            if !reader.is_done() {
                if self.owes_continue {
                    self.owes_continue = false;
                    return Next::Continue;
                }
                return Next::NeedMore;
            }
            self.owes_continue = false;
            return match self.body.take() {
                Some(reader) => Next::Body(reader.into_data()),
                None => Next::NeedMore,
            };
        }
        if self.start == self.end {
            return Next::NeedMore;
        }
        match RequestHead::parse(&self.buf[self.start..self.end]) {
            Ok(None) => {
                self.head_since.get_or_insert_with(Instant::now);
                Next::NeedMore
            }
            Err(err) => Next::Error(err),
            Ok(Some((head, used))) => {
                self.start += used;
                self.head_since = None;
                self.awaiting = Some((head.body, head.expects_continue));
                Next::Head(head)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new reader fed `head` (one whole request head) that has yielded it.
    fn at_head(head: &[u8]) -> RequestReader {
        let mut r = RequestReader::new();
        r.spare()[..head.len()].copy_from_slice(head);
        r.filled(head.len());
        assert!(matches!(r.next_event(), Next::Head(_)));
        r
    }

    /// Feeds `input` in pieces of `step` bytes; returns what `next` yielded, as text.
    fn drive(input: &[u8], step: usize) -> Vec<String> {
        let mut r = RequestReader::new();
        let mut seen = Vec::new();
        for piece in input.chunks(step.max(1)) {
            let mut rest = piece;
            while !rest.is_empty() {
                let spare = r.spare();
                let n = spare.len().min(rest.len());
                assert!(n > 0, "buffer full");
                spare[..n].copy_from_slice(&rest[..n]);
                r.filled(n);
                rest = &rest[n..];
                loop {
                    match r.next_event() {
                        Next::Head(h) => {
                            seen.push(format!("{} {}", h.method, h.target));
                            if let Err(e) = r.begin_body(MAX_BODY_BYTES, true) {
                                seen.push(format!("error {}", e.status()));
                                return seen;
                            }
                        }
                        Next::Body(b) if b.is_empty() => {}
                        Next::Body(b) => seen.push(format!("body {}", String::from_utf8_lossy(&b))),
                        Next::Continue => seen.push("100".into()),
                        Next::Error(e) => {
                            seen.push(format!("error {}", e.status()));
                            return seen;
                        }
                        Next::NeedMore => break,
                    }
                }
            }
        }
        seen
    }

    #[test]
    fn the_method_of_an_unparsed_head() {
        let fed = |bytes: &[u8]| {
            let mut r = RequestReader::new();
            r.spare()[..bytes.len()].copy_from_slice(bytes);
            r.filled(bytes.len());
            r
        };
        assert!(fed(b"HEAD /fast HTTP/1.1\r\n\r\n").unparsed_method_is(b"HEAD"));
        assert!(fed(b"\r\n\nHEAD / HTTP/2.0\r\n").unparsed_method_is(b"HEAD"));
        assert!(!fed(b"HEADER / HTTP/1.1\r\n").unparsed_method_is(b"HEAD"));
        assert!(!fed(b"GET / HTTP/1.1\r\n").unparsed_method_is(b"HEAD"));
        assert!(!fed(b"HEAD").unparsed_method_is(b"HEAD"));
        assert!(!fed(b"").unparsed_method_is(b"HEAD"));
    }

    #[test]
    fn pipelined_requests_with_bodies_at_every_split() {
        let input = b"GET /a HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc\
                      GET /b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n\
                      GET /c HTTP/1.1\r\nHost: t\r\n\r\n";
        let want = vec!["GET /a", "body abc", "GET /b", "body xy", "GET /c"];
        for step in 1..=input.len() {
            assert_eq!(drive(input, step), want, "step {step}");
        }
    }

    #[test]
    fn continue_is_owed_only_while_the_body_is_missing() {
        let head =
            b"GET /a HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
        let mut r = at_head(head);
        assert!(!r.is_idle());
        assert_eq!(r.begin_body(2, true), Ok(()));
        assert!(matches!(r.next_event(), Next::Continue));
        assert!(matches!(r.next_event(), Next::NeedMore));
        r.spare()[..2].copy_from_slice(b"hi");
        r.filled(2);
        assert!(matches!(r.next_event(), Next::Body(b) if b == b"hi"));
        assert!(r.is_idle());
        let whole = [&head[..], b"hi"].concat();
        assert_eq!(
            drive(&whole, whole.len()),
            vec!["GET /a", "body hi"],
            "body already here: no 100"
        );
        // A route's smaller limit refuses a declared length before the 100.
        let mut r = at_head(head);
        assert_eq!(r.begin_body(1, true), Err(ParseError::BodyTooLarge));
        assert!(matches!(
            r.next_event(),
            Next::Error(ParseError::BodyTooLarge)
        ));
    }

    #[test]
    fn errors_are_sticky_and_limits_hold() {
        assert_eq!(
            drive(b"BAD\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n", 3),
            vec!["error 400"]
        );
        let big = format!(
            "GET /a HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            2 << 20
        );
        assert_eq!(drive(big.as_bytes(), 7), vec!["GET /a", "error 413"]);
        let long = [&b"GET /"[..], &[b'a'; 70_000]].concat();
        assert_eq!(drive(&long, 1000), vec!["error 414"], "never a full buffer");
        assert_eq!(
            drive(&long[5..], 1000),
            vec!["error 400"],
            "a method that long"
        );
    }

    #[test]
    fn buffer_grows_and_compacts() {
        let mut r = RequestReader::new();
        assert_eq!(r.spare().len(), INITIAL_READ_BUFFER);
        r.filled(INITIAL_READ_BUFFER);
        assert_eq!(r.spare().len(), INITIAL_READ_BUFFER, "doubled");
        r.discard();
        assert!(r.is_idle());
        // Idle again: back to the small buffer an idle connection holds.
        assert_eq!(r.spare().len(), INITIAL_READ_BUFFER);
    }

    #[test]
    fn a_body_is_read_in_large_reads() {
        let head = b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n";
        let mut r = at_head(head);
        r.begin_body(1 << 20, true).unwrap();
        assert!(
            r.spare().len() >= MAX_READ_BUFFER / 2,
            "{}",
            r.spare().len()
        );
        // A small body asks for no more than it needs.
        let head = b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 600\r\n\r\n";
        let mut r = at_head(head);
        r.begin_body(1 << 20, true).unwrap();
        assert!(r.buf.len() <= 600 + head.len(), "{}", r.buf.len());
        assert!(r.spare().len() >= 600 - (r.end - r.start).min(600));
    }
}

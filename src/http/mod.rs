//! The HTTP/1.1 subset heavylift speaks, and its limits. The connection loop
//! (`server::connection`) calls [`RequestHead::parse`] on its receive buffer,
//! skips any request body with a [`BodyReader`], routes, and appends each
//! [`Response`] with [`Response::encode_into`]. Nothing here does I/O.
//!
//! What is spoken: HTTP/1.0 and HTTP/1.1 requests, keep-alive (1.1 by
//! default, 1.0 when asked), pipelining (`parse` reports how many bytes the
//! head used, `BodyReader::consume` how many the body used; the rest is the
//! next request), `Expect: 100-continue` (see [`response::CONTINUE`]), and
//! request bodies framed by `Content-Length` or `chunked`, which are read and
//! ignored. What is refused, each with one status ([`ParseError::status`]):
//! a request line over [`MAX_REQUEST_LINE_BYTES`] (414); a method over
//! [`target::MAX_METHOD_BYTES`] (400); a head over [`MAX_HEAD_BYTES`] or with
//! more than [`MAX_HEADERS`] fields (431); a body over [`MAX_BODY_BYTES`],
//! declared or read, framing bytes included (413); a bad or conflicting
//! `Content-Length`, or `Content-Length` together with `Transfer-Encoding`
//! (400); a transfer coding other than `chunked` (501); a
//! `Transfer-Encoding` that is not exactly one `chunked` (400); an HTTP/1.1
//! request without exactly one valid `Host` (400, RFC 9112 section 3.2); a
//! target that is not origin-form, absolute-form or `OPTIONS *`, or holds a
//! byte outside printable ASCII or a `#` (400, [`target`]); `CONNECT` (501);
//! an HTTP version other than 1.0/1.1 on an otherwise well-formed request
//! line (505); anything else that is not HTTP/1.x (400). Responses always
//! carry `Content-Length`; they are never chunked.

pub mod body;
pub mod date;
pub mod error;
pub mod query;
pub mod reader;
pub mod request;
pub mod response;
pub mod target;

pub use body::BodyReader;
pub use error::ParseError;
pub use reader::{Next, RequestReader};
pub use request::{BodyKind, RequestHead, Version};
pub use response::Response;

/// Request line plus headers (with the blank line ending them and any blank
/// lines before the request line), else 431.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// The request line alone (RFC 9112 section 3's request-line: its CRLF
/// and any blank lines before it not counted), else 414.
pub const MAX_REQUEST_LINE_BYTES: usize = 8 * 1024;
/// Header fields per request: 100 are fine, 101 -> 431.
pub const MAX_HEADERS: usize = 100;
/// Request body bytes, declared (`Content-Length`) or read (chunked), else 413.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    /// The connection loop's use of this module, minus the I/O: append
    /// what was read, then parse heads and skip bodies while bytes allow.
    #[derive(Default)]
    struct Conn {
        buf: Vec<u8>,
        body: Option<BodyReader>,
        /// "METHOD target" of every head parsed so far.
        seen: Vec<String>,
    }

    impl Conn {
        fn read(&mut self, bytes: &[u8]) -> Result<(), ParseError> {
            self.buf.extend_from_slice(bytes);
            loop {
                if let Some(body) = &mut self.body {
                    let used = body.consume(&self.buf)?;
                    assert!(used == self.buf.len() || body.is_done());
                    self.buf.drain(..used);
                    if !body.is_done() {
                        return Ok(());
                    }
                    self.body = None;
                }
                let Some((head, used)) = RequestHead::parse(&self.buf)? else {
                    return Ok(());
                };
                assert!(used <= self.buf.len());
                self.buf.drain(..used);
                self.seen.push(format!("{} {}", head.method, head.target));
                self.body = Some(BodyReader::new(head.body, MAX_BODY_BYTES)?);
            }
        }
    }

    /// A head's fate in a few words: "none" (need more bytes), the error's
    /// status, or the body kind of a complete head.
    fn outcome(buf: &[u8]) -> String {
        match RequestHead::parse(buf) {
            Ok(None) => "none".to_owned(),
            Ok(Some((head, _))) => format!("{:?}", head.body),
            Err(e) => e.status().to_string(),
        }
    }

    #[test]
    fn header_count_limit() {
        let many = |n: usize| {
            let headers: String = (1..n).map(|i| format!("X-H{i}: v\r\n")).collect();
            format!("GET / HTTP/1.1\r\nHost: t\r\n{headers}\r\n").into_bytes()
        };
        assert_eq!(outcome(&many(MAX_HEADERS)), "Empty");
        let too_many = RequestHead::parse(&many(MAX_HEADERS + 1));
        assert_eq!(too_many.map(|_| ()), Err(ParseError::TooManyHeaders));
    }

    #[test]
    fn size_limits_at_8_kib() {
        // A request line of `len` bytes, RFC 9112 section 3's request-line
        // (its CRLF not counted), then its CRLF.
        let line = |len: usize| {
            let mut s = b"GET /".to_vec();
            s.resize(len - " HTTP/1.1".len(), b'a');
            [s, b" HTTP/1.1\r\n".to_vec()].concat()
        };
        // A line of exactly 8192 bytes is fine as a line, but the head is
        // then over its own limit: 431, known once the line has ended.
        let req = [line(MAX_REQUEST_LINE_BYTES), b"Host: t\r\n\r\n".to_vec()].concat();
        assert_eq!(outcome(&req[..MAX_HEAD_BYTES - 1]), "none");
        assert_eq!(outcome(&req[..MAX_REQUEST_LINE_BYTES + 1]), "none");
        assert_eq!(
            (
                outcome(&req[..MAX_REQUEST_LINE_BYTES + 2]),
                outcome(&req),
                outcome(&[line(MAX_REQUEST_LINE_BYTES - 1), b"\r\n".to_vec()].concat())
            ),
            ("431".into(), "431".into(), "431".into())
        );
        // Over by one: 414, with or without its CRLF here yet.
        let over = line(MAX_REQUEST_LINE_BYTES + 1);
        assert_eq!(outcome(&over), "414");
        assert_eq!(outcome(&over[..MAX_REQUEST_LINE_BYTES + 1]), "414");
        assert_eq!(outcome(&over[..MAX_REQUEST_LINE_BYTES]), "none");
        // A line that never ends: wait until it is 8193 bytes, then 414.
        let endless = [b"GET /".to_vec(), vec![b'a'; 3 * MAX_REQUEST_LINE_BYTES]].concat();
        assert_eq!(outcome(&endless[..MAX_REQUEST_LINE_BYTES]), "none");
        assert_eq!(outcome(&endless[..MAX_REQUEST_LINE_BYTES + 1]), "414");
        assert_eq!(outcome(&endless), "414");
        // Blank lines before the request line count in the head: once they
        // fill it, 431 without waiting for a line.
        let blank = vec![b'\n'; MAX_HEAD_BYTES + 10];
        assert_eq!(outcome(&blank[..MAX_HEAD_BYTES - 1]), "none");
        assert_eq!(outcome(&blank), "431");
        // A head of exactly 8192 bytes is fine; 8193 is 431, complete or not.
        let padded = |total: usize| {
            let mut s = b"GET / HTTP/1.1\r\nHost: t\r\nX: ".to_vec();
            s.resize(total - 4, b'v');
            [s, b"\r\n\r\n".to_vec()].concat()
        };
        assert_eq!(outcome(&padded(MAX_HEAD_BYTES)), "Empty");
        assert_eq!(outcome(&padded(MAX_HEAD_BYTES + 1)), "431");
        let partial = padded(MAX_HEAD_BYTES + 100);
        assert_eq!(outcome(&partial[..MAX_HEAD_BYTES - 1]), "none");
        assert_eq!(outcome(&partial[..MAX_HEAD_BYTES]), "431");
        // Blank lines before the request count towards the head.
        assert_eq!(outcome(&vec![b'\n'; MAX_HEAD_BYTES]), "431");
        assert_eq!(
            outcome(&[b"\r\n".repeat(10), line(MAX_HEAD_BYTES)].concat()),
            "431"
        );
    }

    #[test]
    fn versions() {
        for v in ["HTTP/2.0", "HTTP/1.2", "HTTP/3.0", "HTTP/0.9"] {
            let req = format!("GET /fast?id=1 {v}\r\nHost: x\r\n\r\n");
            assert_eq!(outcome(req.as_bytes()), "505", "{v}");
            for i in 0..req.find('\n').unwrap_or_default() {
                assert_eq!(outcome(&req.as_bytes()[..i]), "none", "{v} split at {i}");
            }
        }
        assert_eq!(outcome(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "505");
        assert_eq!(outcome(b"GET / HTTP/2.0\n"), "505");
        let garbage =
            "GET / http/1.1|GET / HTTP/10.0|GET / HTTP/2.0x|GET / HTTP/2.|GET / HTTP/a.b|\
            GET / FOO/1.1|GET /  HTTP/1.1|GET  / HTTP/1.1|GET / HTTP/2.0 |GET /|garbage|\
            \x16\x03\x01\x02\x00\x01|GET / HTTP/1.1 x|G\0T / HTTP/1.1";
        for bad in garbage.split('|') {
            assert_eq!(
                outcome(format!("{bad}\r\n\r\n").as_bytes()),
                "400",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn malformed_heads() {
        for header in "Bad Name: x|Name : x|: x|X: a\0b|X: a\rb|X: a\r\n folded".split('|') {
            let req = format!("GET / HTTP/1.1\r\n{header}\r\n\r\n");
            assert_eq!(outcome(req.as_bytes()), "400", "{header:?}");
        }
        for bad in [
            "GET / HTTP/1.1\rX: y\r\n\r\n",
            "\r\r\nGET / HTTP/1.1\r\n\r\n",
            " GET / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(outcome(bad.as_bytes()), "400", "{bad:?}");
        }
    }

    #[test]
    fn pipeline_of_mixed_bodies_split_anywhere() {
        let buf = b"GET /fast?id=1 HTTP/1.1\r\nHost: x\r\n\r\n\
            POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
            POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n\
            \r\nGET /healthz HTTP/1.0\r\n\r\nGET /partial HTTP/1.1\r\n";
        let want = ["GET /fast?id=1", "POST /a", "POST /b", "GET /healthz"];
        let mut byte_by_byte = Conn::default();
        buf.iter()
            .try_for_each(|b| byte_by_byte.read(&[*b]))
            .expect("valid");
        for i in 0..=buf.len() {
            let mut conn = Conn::default();
            conn.read(&buf[..i])
                .and_then(|()| conn.read(&buf[i..]))
                .expect("valid");
            assert_eq!(conn.seen, want, "split at {i}");
            assert_eq!(conn.buf, b"GET /partial HTTP/1.1\r\n", "split at {i}");
        }
        assert_eq!(
            (byte_by_byte.seen, byte_by_byte.buf.len()),
            (want.map(String::from).to_vec(), 23)
        );
    }

    /// xorshift64*: deterministic, so a failure reproduces.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn fuzz_never_panics_and_never_over_consumes() {
        let seeds: [&[u8]; 4] = [
            b"GET /fast?id=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.0\r\n\r\n",
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4\r\nwxyz\r\n0\r\n\r\n",
            b"\r\nHEAD /x HTTP/2.0\r\nAccept: application/json\r\nExpect: 100-continue\r\n\r\n",
        ];
        let alphabet = b"\r\n :;,0123456789abcdefHTTP/1.chunkedContent-LengthTransfer\x00\xff\t-";
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..20_000 {
            let mut buf = seeds[round % seeds.len()].to_vec();
            for _ in 0..rng.below(8) {
                let i = rng.below(buf.len() + 1);
                let b = if rng.below(4) == 0 {
                    rng.next() as u8
                } else {
                    alphabet[rng.below(alphabet.len())]
                };
                match rng.below(3) {
                    0 if i < buf.len() => buf[i] = b,
                    1 if i < buf.len() => {
                        buf.remove(i);
                    }
                    _ => buf.insert(i, b),
                }
            }
            if round % 7 == 0 {
                buf = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
            }
            // Conn asserts it never over-consumes; a split must not matter.
            let (mut whole, mut split) = (Conn::default(), Conn::default());
            let whole_err = whole.read(&buf).err();
            let cut = rng.below(buf.len() + 1);
            let split_err = split
                .read(&buf[..cut])
                .and_then(|()| split.read(&buf[cut..]))
                .err();
            assert_eq!(
                (whole.seen, whole_err),
                (split.seen, split_err),
                "{buf:?} cut at {cut}"
            );
            if let Ok(Some((_, n))) = RequestHead::parse(&buf) {
                assert!(n <= buf.len() && n <= MAX_HEAD_BYTES);
            }
            let mut body =
                BodyReader::new(BodyKind::Chunked, MAX_BODY_BYTES).expect("chunked is always fine");
            let mut at = 0;
            while at < buf.len() && !body.is_done() {
                let end = (at + 1 + rng.below(16)).min(buf.len());
                let offered = end - at;
                match body.consume(&buf[at..end]) {
                    Ok(n) => {
                        assert!(n <= offered);
                        assert!(n == offered || body.is_done(), "stalled on {buf:?}");
                        at += n;
                    }
                    Err(_) => break,
                }
            }
        }
    }
}

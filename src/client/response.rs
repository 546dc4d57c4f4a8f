//! Parsing the server's responses: one complete HTTP/1.1 response from the
//! start of a buffer, with httparse.
//!
//! [`parse_response`] is pure and never panics on peer bytes: "need more
//! bytes" is `Ok(None)`, every other problem a [`ResponseError`]. It returns
//! byte ranges rather than borrowed slices so that the reading loop in
//! `http.rs` can keep filling the same buffer. The server always sends
//! `Content-Length`, so chunked bodies are refused rather than decoded.

use std::fmt;
use std::ops::Range;

/// A response head (status line and headers) longer than this is refused.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// A response body longer than this is refused (the server's are tiny).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Headers parsed per response; the server sends about five.
const MAX_HEADERS: usize = 32;

/// Why a response could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// httparse rejected the status line or a header.
    Malformed(String),
    /// No complete head within [`MAX_HEAD_BYTES`].
    HeadTooLarge,
    /// Missing, duplicate-and-different or non-numeric Content-Length.
    BadContentLength,
    /// A body over [`MAX_BODY_BYTES`].
    BodyTooLarge(usize),
    /// `Transfer-Encoding` (chunked): the server never sends it.
    UnsupportedTransferEncoding,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Malformed(e) => write!(f, "malformed response: {e}"),
            ResponseError::HeadTooLarge => {
                write!(f, "response head over {MAX_HEAD_BYTES} bytes")
            }
            ResponseError::BadContentLength => write!(f, "missing or bad Content-Length"),
            ResponseError::BodyTooLarge(n) => {
                write!(f, "response body of {n} bytes is over {MAX_BODY_BYTES}")
            }
            ResponseError::UnsupportedTransferEncoding => {
                write!(f, "Transfer-Encoding responses are not supported")
            }
        }
    }
}

/// Where a complete response lies in the buffer it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// Byte range of the reason phrase.
    pub reason: Range<usize>,
    /// Byte range of the body; `body.end` is the length of the whole response.
    pub body: Range<usize>,
    /// False when the server said `Connection: close` (or spoke HTTP/1.0
    /// without asking for keep-alive).
    pub keep_alive: bool,
}

/// Parses one complete response from the start of `buf`: `Ok(None)` while
/// the head or the body is still incomplete.
pub fn parse_response(buf: &[u8]) -> Result<Option<ResponseHead>, ResponseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let head_len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
            return Err(ResponseError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ResponseError::Malformed(e.to_string())),
    };
    if head_len > MAX_HEAD_BYTES {
        return Err(ResponseError::HeadTooLarge);
    }
    let status = res.code.unwrap_or(0);
    let reason = res.reason.map_or(0..0, |r| {
        let start = r.as_ptr() as usize - buf.as_ptr() as usize;
        start..start + r.len()
    });
    let mut keep_alive = res.version == Some(1);
    let mut content_length: Option<usize> = None;
    for h in res.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value).map_err(|_| ResponseError::BadContentLength)?;
            let text = text.trim();
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ResponseError::BadContentLength);
            }
            let n: usize = text.parse().map_err(|_| ResponseError::BadContentLength)?;
            if content_length.is_some_and(|old| old != n) {
                return Err(ResponseError::BadContentLength);
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ResponseError::UnsupportedTransferEncoding);
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    let body_len = match content_length {
        Some(n) => n,
        None if status == 204 || status == 304 || (100..200).contains(&status) => 0,
        None => return Err(ResponseError::BadContentLength),
    };
    if body_len > MAX_BODY_BYTES {
        return Err(ResponseError::BodyTooLarge(body_len));
    }
    let end = head_len + body_len;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some(ResponseHead {
        status,
        reason,
        body: head_len..end,
        keep_alive,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nfast result 7";

    #[test]
    fn parses_a_complete_response() {
        let head = parse_response(OK).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(&OK[head.reason.clone()], b"OK");
        assert_eq!(&OK[head.body.clone()], b"fast result 7");
        assert_eq!(head.body.end, OK.len());
        assert!(head.keep_alive);
    }

    #[test]
    fn every_split_point_is_incomplete_then_complete() {
        for cut in 0..OK.len() {
            assert_eq!(parse_response(&OK[..cut]), Ok(None), "cut at {cut}");
        }
        // Two responses back to back: the first one is found and ends where the second starts.
        let two = [OK, OK].concat();
        for cut in OK.len()..two.len() {
            let head = parse_response(&two[..cut]).unwrap().unwrap();
            assert_eq!(head.body.end, OK.len());
        }
    }

    #[test]
    fn connection_close_and_http10() {
        let close = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 4\r\n\r\nbusy";
        let head = parse_response(close).unwrap().unwrap();
        assert_eq!(head.status, 503);
        assert_eq!(&close[head.reason.clone()], b"Service Unavailable");
        assert!(!head.keep_alive);
        let old = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(!parse_response(old).unwrap().unwrap().keep_alive);
        let old_ka = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n";
        assert!(parse_response(old_ka).unwrap().unwrap().keep_alive);
    }

    #[test]
    fn rejects_bad_responses() {
        let cases: &[(&[u8], ResponseError)] = &[
            (b"HTTP/1.1 200 OK\r\n\r\n", ResponseError::BadContentLength),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                ResponseError::BadContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                ResponseError::BadContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
                ResponseError::BodyTooLarge(99_999_999_999),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                ResponseError::UnsupportedTransferEncoding,
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse_response(bytes).as_ref(), Err(want));
        }
        assert!(matches!(
            parse_response(b"HTTP/9 x\r\n\r\n"),
            Err(ResponseError::Malformed(_))
        ));
        let endless = [
            b"HTTP/1.1 200 OK\r\nX: ".as_slice(),
            &[b'a'; MAX_HEAD_BYTES],
        ]
        .concat();
        assert_eq!(parse_response(&endless), Err(ResponseError::HeadTooLarge));
    }

    #[test]
    fn no_content_length_is_fine_for_204() {
        let head = parse_response(b"HTTP/1.1 204 No Content\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(head.body.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic generator (xorshift) over printable and control bytes.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let mut bytes = b"HTTP/1.1 200 OK\r\n".to_vec();
            for _ in 0..(x % 64) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let alphabet = b"\r\n:0123 ContentLgth-\x00\xff";
                bytes.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let _ = parse_response(&bytes);
        }
    }
}

//! Why a request could not be read, and the one mapping from that reason to
//! an HTTP status. `RequestHead::parse` and `BodyReader` produce these; the
//! connection loop turns one into an automatic response (via
//! [`ParseError::to_response`]) and then closes the connection. "Need more
//! bytes" is never an error here: the parsers answer `Ok(None)` for it.

use std::fmt;

use super::response::Response;

/// A request the server will not serve; each variant maps to one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Bytes that are not HTTP/1.x (400); the text says what was wrong.
    Malformed(&'static str),
    /// The request line alone is over `MAX_REQUEST_LINE_BYTES` (414).
    UriTooLong,
    /// Request line plus headers are over `MAX_HEAD_BYTES` (431).
    HeadTooLarge,
    /// More than `MAX_HEADERS` header fields (431).
    TooManyHeaders,
    /// Negative, non-numeric, overflowing or conflicting Content-Length (400).
    BadContentLength,
    /// A body over `MAX_BODY_BYTES`, declared or read (413).
    BodyTooLarge,
    /// A chunk-size line over `body::MAX_CHUNK_LINE_BYTES` (413: its
    /// extensions count toward the body limit; RFC 9112 section 7.1.1
    /// asks a server to bound them and answer a 4xx past the bound).
    ChunkLineTooLong,
    /// A well-formed request line naming a version other than 1.0/1.1 (505).
    UnsupportedVersion,
    /// A Transfer-Encoding naming a coding other than `chunked` (501).
    UnsupportedTransferEncoding,
    /// A well-formed request for something heavylift does not implement,
    /// such as `CONNECT` (501); the text says what.
    NotImplemented(&'static str),
}

impl ParseError {
    /// The status of the automatic response: the one place this is decided.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::Malformed(_) | ParseError::BadContentLength => 400,
            ParseError::UriTooLong => 414,
            ParseError::HeadTooLarge | ParseError::TooManyHeaders => 431,
            ParseError::BodyTooLarge | ParseError::ChunkLineTooLong => 413,
            ParseError::UnsupportedVersion => 505,
            ParseError::UnsupportedTransferEncoding | ParseError::NotImplemented(_) => 501,
        }
    }

    /// A one-line human reason, sent as the body of the automatic response.
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::Malformed(why) | ParseError::NotImplemented(why) => why,
            ParseError::UriTooLong => "request line longer than 8192 bytes",
            ParseError::HeadTooLarge => "request head larger than 8192 bytes",
            ParseError::TooManyHeaders => "more than 100 request headers",
            ParseError::BadContentLength => {
                "invalid Content-Length: expected one non-negative decimal number"
            }
            ParseError::BodyTooLarge => "request body larger than 1048576 bytes",
            ParseError::ChunkLineTooLong => "chunk-size line longer than 1024 bytes",
            ParseError::UnsupportedVersion => {
                "HTTP version not supported: use HTTP/1.0 or HTTP/1.1"
            }
            ParseError::UnsupportedTransferEncoding => {
                "unsupported Transfer-Encoding: only chunked is accepted"
            }
        }
    }

    /// The automatic `text/plain` response: `status()` with `reason()` as
    /// the body. The caller sends it with `Connection: close` and closes.
    pub fn to_response(&self) -> Response {
        Response::text(self.status(), self.reason())
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::super::{MAX_BODY_BYTES, MAX_HEADERS, MAX_HEAD_BYTES, MAX_REQUEST_LINE_BYTES};
    use super::*;

    const ALL: [ParseError; 10] = [
        ParseError::Malformed("malformed request line"),
        ParseError::UriTooLong,
        ParseError::HeadTooLarge,
        ParseError::TooManyHeaders,
        ParseError::BadContentLength,
        ParseError::BodyTooLarge,
        ParseError::ChunkLineTooLong,
        ParseError::UnsupportedVersion,
        ParseError::UnsupportedTransferEncoding,
        ParseError::NotImplemented("CONNECT is not supported"),
    ];

    #[test]
    fn status_mapping() {
        let statuses: Vec<u16> = ALL.iter().map(ParseError::status).collect();
        assert_eq!(statuses, [400, 414, 431, 431, 400, 413, 413, 505, 501, 501]);
    }

    #[test]
    fn reasons_are_one_line_and_name_the_limits() {
        for e in ALL {
            let r = e.reason();
            assert!(
                !r.is_empty() && !r.contains('\n') && !r.contains('\r'),
                "{r:?}"
            );
            assert_eq!(e.to_string(), r);
            let resp = e.to_response();
            assert_eq!(
                (resp.status, resp.body.as_slice()),
                (e.status(), r.as_bytes())
            );
        }
        let has = |e: ParseError, n: u64| e.reason().contains(&n.to_string());
        assert!(has(ParseError::UriTooLong, MAX_REQUEST_LINE_BYTES as u64));
        assert!(has(ParseError::HeadTooLarge, MAX_HEAD_BYTES as u64));
        assert!(has(ParseError::TooManyHeaders, MAX_HEADERS as u64));
        assert!(has(ParseError::BodyTooLarge, MAX_BODY_BYTES));
        assert!(has(
            ParseError::ChunkLineTooLong,
            super::super::body::MAX_CHUNK_LINE_BYTES as u64
        ));
        assert_eq!(ParseError::Malformed("bad thing").reason(), "bad thing");
    }
}

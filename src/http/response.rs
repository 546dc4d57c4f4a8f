//! A response as the routes build it, and its encoding onto the wire. Routes
//! and the job path construct a [`Response`]; the connection loop appends it
//! to the connection's output buffer with [`Response::encode_into`], choosing
//! the `Connection` header from the request's version and keep-alive state.
//! Bodies are always sent with `Content-Length`, never chunked.

use std::borrow::Cow;

use super::date;
use super::request::Version;

/// The interim answer to `Expect: 100-continue`, written as is before
/// reading the body.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The content type of [`Response::text`]: route bodies and error reasons.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
/// The content type of [`Response::json`].
pub const APPLICATION_JSON: &str = "application/json";

/// One complete response; `Send`, so it can come back from a compute core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code; its reason phrase comes from [`reason_phrase`].
    pub status: u16,
    /// Sent as `Content-Type`: a constant, or a type chosen at run time.
    /// CR and LF are sent as spaces.
    pub content_type: Cow<'static, str>,
    /// Extra headers (e.g. `Allow`, `Retry-After`), written in this order
    /// after the standard ones. CR and LF in names and values are sent as
    /// spaces, so a job cannot split the response.
    pub headers: Vec<(Cow<'static, str>, String)>,
    /// Sent as is, with its length as `Content-Length`: any bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type: Cow::Borrowed(TEXT_PLAIN),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// An `application/json` response.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            content_type: Cow::Borrowed(APPLICATION_JSON),
            ..Response::text(status, body)
        }
    }

    /// A response with a binary body and its `Content-Type`, e.g.
    /// `Response::bytes(200, "image/png", png)`.
    pub fn bytes(
        status: u16,
        content_type: impl Into<Cow<'static, str>>,
        body: impl Into<Vec<u8>>,
    ) -> Response {
        Response {
            content_type: content_type.into(),
            ..Response::text(status, body)
        }
    }

    /// The same response with another `Content-Type` (a `&'static str` or
    /// a `String` chosen at run time).
    pub fn with_content_type(self, ct: impl Into<Cow<'static, str>>) -> Response {
        Response {
            content_type: ct.into(),
            ..self
        }
    }

    /// The same response with one more header, after those already added.
    pub fn with_header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
    ) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Appends the status line, `Server`, `Date`, `Content-Type` (unless
    /// empty), `Content-Length` (the body's length, also for HEAD; none,
    /// and no body, for 204 and 304), the extra
    /// headers, `Connection: close` when `!keep_alive` or
    /// `Connection: keep-alive` for a kept HTTP/1.0 connection, the blank
    /// line, and the body unless `head_only`. The status line always says
    /// HTTP/1.1, as RFC 9110 asks of a 1.1 server answering 1.0.
    pub fn encode_into(
        &self,
        out: &mut Vec<u8>,
        version: Version,
        keep_alive: bool,
        head_only: bool,
    ) {
        let extra: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum();
        out.reserve(160 + extra + if head_only { 0 } else { self.body.len() });
        out.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(out, u64::from(self.status));
        out.push(b' ');
        out.extend_from_slice(reason_phrase(self.status).as_bytes());
        out.extend_from_slice(b"\r\nServer: heavylift\r\nDate: ");
        date::with_date(|d| out.extend_from_slice(d));
        // An empty content type sends none (a 204, a worker's choice).
        if !self.content_type.is_empty() {
            out.extend_from_slice(b"\r\nContent-Type: ");
            match &self.content_type {
                // The constants are ours: no CR or LF to look for.
                Cow::Borrowed(constant) => out.extend_from_slice(constant.as_bytes()),
                Cow::Owned(chosen) => push_field_text(out, chosen),
            }
        }
        // No Content-Length on a 204 (RFC 9110 section 8.6) or a 304 (whose
        // length would be the 200's); neither has a body.
        if !matches!(self.status, 204 | 304) {
            out.extend_from_slice(b"\r\nContent-Length: ");
            push_decimal(out, self.body.len() as u64);
        }
        out.extend_from_slice(b"\r\n");
        for (name, value) in &self.headers {
            push_field_text(out, name);
            out.extend_from_slice(b": ");
            push_field_text(out, value);
            out.extend_from_slice(b"\r\n");
        }
        if !keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if version == Version::Http10 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !head_only && !matches!(self.status, 204 | 304) {
            out.extend_from_slice(&self.body);
        }
    }
}

/// Appends `n` in decimal without allocating.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        if let Some(d) = digits.get_mut(start) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || start == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

/// Appends a header name or value with CR and LF sent as spaces.
fn push_field_text(out: &mut Vec<u8>, text: &str) {
    let start = out.len();
    out.extend_from_slice(text.as_bytes());
    if let Some(written) = out.get_mut(start..) {
        written
            .iter_mut()
            .filter(|b| **b == b'\r' || **b == b'\n')
            .for_each(|b| *b = b' ');
    }
}

/// The reason phrase for `status` (RFC 9110 wording), or its class's name.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => match status / 100 {
            1 => "Informational",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Unknown",
        },
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn no_content_has_no_length_and_an_empty_type_no_field() {
        let encode = |r: Response| {
            let mut out = Vec::new();
            r.encode_into(&mut out, Version::Http11, true, false);
            String::from_utf8(out).unwrap()
        };
        let no_content = encode(Response::bytes(204, "", b"ignored".to_vec()));
        assert!(no_content.starts_with("HTTP/1.1 204 "), "{no_content}");
        assert!(!no_content.contains("Content-Length"), "{no_content}");
        assert!(!no_content.contains("Content-Type"), "{no_content}");
        assert!(no_content.ends_with("\r\n\r\n"), "no body: {no_content}");
        let not_modified = encode(Response::text(304, ""));
        assert!(!not_modified.contains("Content-Length"), "{not_modified}");
        let untyped = encode(Response::bytes(200, "", b"x".to_vec()));
        assert!(!untyped.contains("Content-Type"), "{untyped}");
        assert!(untyped.contains("Content-Length: 1\r\n"), "{untyped}");
        assert!(untyped.ends_with("\r\n\r\nx"), "{untyped}");
    }
    use super::*;

    /// Encodes and splits into (head with the Date value masked, body).
    fn encode(
        r: &Response,
        version: Version,
        keep_alive: bool,
        head_only: bool,
    ) -> (String, Vec<u8>) {
        let mut out = b"previous bytes stay|".to_vec();
        r.encode_into(&mut out, version, keep_alive, head_only);
        let out = out
            .strip_prefix(b"previous bytes stay|")
            .expect("appends")
            .to_vec();
        let text = String::from_utf8(out).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("blank line");
        let date_at = head.find("Date: ").expect("date") + 6;
        let date = &head[date_at..date_at + 29];
        assert!(
            date.ends_with(" GMT") && date.as_bytes()[3] == b',',
            "{date}"
        );
        let masked = head.replacen(date, "<date>", 1);
        (masked, body.as_bytes().to_vec())
    }

    #[test]
    fn keep_alive_matrix_and_head() {
        let r = Response::text(200, "fast result 1");
        let base = "HTTP/1.1 200 OK\r\nServer: heavylift\r\nDate: <date>\r\n\
            Content-Type: text/plain; charset=utf-8\r\nContent-Length: 13";
        let cases = [
            (Version::Http11, true, ""),
            (Version::Http11, false, "\r\nConnection: close"),
            (Version::Http10, true, "\r\nConnection: keep-alive"),
            (Version::Http10, false, "\r\nConnection: close"),
        ];
        for (version, keep_alive, connection) in cases {
            let (head, body) = encode(&r, version, keep_alive, false);
            assert_eq!(
                head,
                format!("{base}{connection}"),
                "{version:?} {keep_alive}"
            );
            assert_eq!(body, b"fast result 1");
            let (head_only, body) = encode(&r, version, keep_alive, true);
            assert_eq!((head_only, body.len()), (head, 0));
        }
    }

    #[test]
    fn extra_headers_json_and_statuses() {
        let r = Response::json(503, r#"{"a": 1}"#)
            .with_header("Retry-After", "1")
            .with_header("X-Evil", "a\r\nSet-Cookie: x");
        let (head, body) = encode(&r, Version::Http11, false, false);
        assert!(
            head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nContent-Type: application/json\r\nContent-Length: 8\r\n"));
        assert!(
            head.ends_with("\r\nRetry-After: 1\r\nX-Evil: a  Set-Cookie: x\r\nConnection: close")
        );
        assert_eq!(body, br#"{"a": 1}"#);
        let r = Response::text(405, Vec::new())
            .with_content_type("text/html")
            .with_header("Allow", "GET");
        let (head, body) = encode(&r, Version::Http11, true, false);
        assert!(head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(head.contains("Content-Type: text/html\r\nContent-Length: 0\r\nAllow: GET"));
        assert!(body.is_empty());
        let big = Response::text(413, vec![b'x'; 1_234_567]);
        assert!(encode(&big, Version::Http11, false, true)
            .0
            .contains("Content-Length: 1234567\r\n"));
    }

    #[test]
    fn reason_phrases() {
        let used = [
            100, 200, 400, 404, 405, 408, 413, 414, 431, 500, 501, 503, 504, 505,
        ];
        for status in used {
            let reason = reason_phrase(status);
            assert!(
                !reason.is_empty()
                    && !["Success", "Client Error", "Server Error"].contains(&reason)
            );
        }
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
        assert_eq!(
            (reason_phrase(299), reason_phrase(499), reason_phrase(0)),
            ("Success", "Client Error", "Unknown")
        );
        let mut out = Vec::new();
        for n in [0, 7, 10, 99, 100, 65_535, u64::MAX] {
            out.clear();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
        fn is_send<T: Send>() {}
        is_send::<Response>();
        assert_eq!(CONTINUE, b"HTTP/1.1 100 Continue\r\n\r\n");
    }
}

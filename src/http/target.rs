//! The request-target and the `Host` field, judged by URI grammar (RFC 3986,
//! as RFC 9112 section 3.2 uses it). `request::interpret` calls
//! [`parse_target`] and [`is_valid_host`] on every complete head; nothing
//! here allocates or does I/O.
//!
//! Accepted targets: origin-form (`/path?query`), absolute-form
//! (`scheme://authority/path?query`, scheme `http` or `https` in any case,
//! no userinfo; its authority is the request's host) and asterisk-form (`*`, for
//! `OPTIONS` only). The authority-form belongs to `CONNECT`, which heavylift
//! does not implement (501). A target byte outside printable ASCII, or a `#`
//! (a fragment, which a client never sends: RFC 9110 section 7.1), is a 400.

use std::net::Ipv6Addr;

use super::ParseError;

/// Longest method accepted. RFC 9110 sets no limit; the longest registered
/// method (`UPDATEREDIRECTREF`) has 17 bytes. A longer token before the first
/// space is a 400, not the target's 414.
pub const MAX_METHOD_BYTES: usize = 32;

/// Where the routable part of a valid target starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetForm {
    /// `/path?query`.
    Origin,
    /// `scheme://authority/path?query`: the path starts at byte `path_at`
    /// (it may be empty, which means `/`).
    Absolute {
        /// Byte offset of the path in the target.
        path_at: usize,
    },
    /// `*` of `OPTIONS *`.
    Asterisk,
}

const BAD_TARGET: ParseError = ParseError::Malformed("malformed request: invalid request-target");
const RAW_BYTE: ParseError =
    ParseError::Malformed("malformed request: request-target holds a byte outside printable ASCII");
const FRAGMENT: ParseError =
    ParseError::Malformed("malformed request: request-target holds a #fragment");
const BAD_AUTHORITY: ParseError =
    ParseError::Malformed("malformed request: invalid authority in the absolute-form target");
const OTHER_SCHEME: ParseError =
    ParseError::Malformed("malformed request: absolute-form target not of scheme http or https");
const ASTERISK: ParseError =
    ParseError::Malformed("malformed request: the * target is for OPTIONS only");
const CONNECT: ParseError = ParseError::NotImplemented("CONNECT is not supported");

/// Judges `target` (as sent) for `method`: its form, or why it is refused.
pub fn parse_target(method: &str, target: &str) -> Result<TargetForm, ParseError> {
    if let Some(b) = target
        .bytes()
        .find(|b| !(0x21..=0x7e).contains(b) || *b == b'#')
    {
        return Err(if b == b'#' { FRAGMENT } else { RAW_BYTE });
    }
    if method == "CONNECT" {
        return Err(CONNECT);
    }
    if target.starts_with('/') {
        return Ok(TargetForm::Origin);
    }
    if target == "*" {
        return match method {
            "OPTIONS" => Ok(TargetForm::Asterisk),
            _ => Err(ASTERISK),
        };
    }
    // absolute-URI = scheme ":" hier-part; an http(s) server needs "//" authority.
    let (scheme, rest) = target.split_once("://").ok_or(BAD_TARGET)?;
    if !is_scheme(scheme) {
        return Err(BAD_TARGET);
    }
    // heavylift serves http (and https behind a terminating proxy): a
    // target of any other scheme names a resource it does not have.
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err(OTHER_SCHEME);
    }
    let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = rest.get(..authority_len).unwrap_or_default();
    if host_of(authority.as_bytes()).is_none_or(<[u8]>::is_empty) {
        return Err(BAD_AUTHORITY);
    }
    Ok(TargetForm::Absolute {
        path_at: scheme.len() + "://".len() + authority_len,
    })
}

/// `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` (RFC 3986 3.1).
fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// A `Host` field value (or an absolute-form authority): `uri-host [ ":"
/// port ]` of RFC 9110 section 7.2, where `uri-host` is an IP-literal, an
/// IPv4 address or a reg-name (RFC 3986 3.2.2) and the port is decimal, at
/// most 65535. Surrounding whitespace is the field's OWS. No userinfo.
/// Returns its `uri-host` (an IP-literal with its brackets) when valid,
/// else `None`. The host may be empty (`""`, `":80"`): valid syntax (RFC
/// 9112 section 3.2 sends an empty Host when the target has no
/// authority), but no `http` URI has an empty host (RFC 9110 section
/// 4.2.1), so an absolute-form authority and `request::interpret` refuse
/// it, the latter unless an absolute-form target names the host instead.
pub fn host_of(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let (host, port) = if value.first() == Some(&b'[') {
        let close = value.iter().position(|&b| b == b']')?;
        let (literal, after) = value.split_at(close + 1);
        if !is_ip_literal(literal) {
            return None;
        }
        match after {
            [] => return Some(literal),
            [b':', port @ ..] => (literal, Some(port)),
            _ => return None,
        }
    } else {
        match value.iter().rposition(|&b| b == b':') {
            Some(colon) => (&value[..colon], value.get(colon + 1..)),
            None => (value, None),
        }
    };
    let port_ok = port.is_none_or(|p| {
        p.is_empty()
            || (p.len() <= 5
                && p.iter().all(u8::is_ascii_digit)
                && p.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')) <= 65535)
    });
    (port_ok && (host.first() == Some(&b'[') || is_reg_name(host))).then_some(host)
}

/// Whether `value` is a valid `Host` value ([`host_of`]).
pub fn is_valid_host(value: &[u8]) -> bool {
    host_of(value).is_some()
}

/// Bytes of a reg-name other than `%`: unreserved and sub-delims.
const REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_unreserved(b as u8) || is_sub_delim(b as u8);
        b += 1;
    }
    table
};

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`; an IPv4 address
/// is a reg-name too.
fn is_reg_name(host: &[u8]) -> bool {
    if host.iter().all(|&b| REG_NAME[usize::from(b)]) {
        return true; // the common case: no escapes
    }
    let mut i = 0;
    while let Some(&b) = host.get(i) {
        if b == b'%' {
            let hex = host.get(i + 1..i + 3).unwrap_or_default();
            if hex.len() != 2 || !hex.iter().all(u8::is_ascii_hexdigit) {
                return false;
            }
            i += 3;
        } else if REG_NAME[usize::from(b)] {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// `"[" ( IPv6address / IPvFuture ) "]"`.
fn is_ip_literal(literal: &[u8]) -> bool {
    let Some(inner) = literal
        .strip_prefix(b"[")
        .and_then(|l| l.strip_suffix(b"]"))
    else {
        return false;
    };
    if let Some(future) = inner
        .strip_prefix(b"v")
        .or_else(|| inner.strip_prefix(b"V"))
    {
        // IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
        let dot = future.iter().position(|&b| b == b'.').unwrap_or(0);
        let (version, rest) = future.split_at(dot);
        let rest = rest.get(1..).unwrap_or_default();
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !rest.is_empty()
            && rest
                .iter()
                .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':');
    }
    std::str::from_utf8(inner).is_ok_and(|s| s.parse::<Ipv6Addr>().is_ok())
}

const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for good in [
            "a",
            "example.com",
            "example.com:8080",
            "127.0.0.1",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8888",
            "[2001:db8::7]:1",
            "[v1.fe80::a+en1]",
            "xn--bcher-kva.example",
            "a-b_c~d",
            "%41",
            "h:",
            "h:0",
            "h:65535",
            "",
            "  a:1 ",
        ] {
            assert!(is_valid_host(good.as_bytes()), "{good:?}");
        }
        for bad in [
            "a b", "a/b", "a@b", "user@a:1", "a:b", "a:1:2", "a:65536", "a:123456", "a:-1", "[::1",
            "::1", "[::g]", "[::1]x", "[::1]:x", "[]", "[v.x]", "%4", "%zz", "a?b", "a#b", "a\"b",
            "a\\b", "é",
        ] {
            assert!(!is_valid_host(bad.as_bytes()), "{bad:?}");
        }
    }

    /// A target's fate in a few words: the routable path start, or the status.
    fn form(method: &str, target: &str) -> String {
        match parse_target(method, target) {
            Ok(TargetForm::Origin) => "origin".into(),
            Ok(TargetForm::Absolute { path_at }) => format!("path {}", &target[path_at..]),
            Ok(TargetForm::Asterisk) => "*".into(),
            Err(e) => e.status().to_string(),
        }
    }

    #[test]
    fn target_forms() {
        for (method, target, want) in [
            ("GET", "/fast?id=1", "origin"),
            ("GET", "/", "origin"),
            ("GET", "//x", "origin"),
            ("GET", "http://a/fast?id=1", "path /fast?id=1"),
            ("GET", "HTTP://a/fast?id=1", "path /fast?id=1"),
            ("GET", "hTtPs://a:8080/fast", "path /fast"),
            ("GET", "http://a", "path "),
            ("GET", "http://a?x=1", "path ?x=1"),
            ("GET", "http://[::1]:8/x", "path /x"),
            ("GET", "h2c+x.y-z://a/", "400"),
            ("GET", "ftp://a/", "400"),
            ("GET", "https+x://a/", "400"),
            ("OPTIONS", "*", "*"),
            ("GET", "*", "400"),
            ("OPTIONS", "**", "400"),
            ("CONNECT", "host:443", "501"),
            ("CONNECT", "/x", "501"),
            ("GET", "host:443", "400"),
            ("GET", "fast", "400"),
            ("GET", "http:/a/b", "400"),
            ("GET", "http:///a", "400"),
            ("GET", "http://:80/a", "400"),
            ("GET", "http://:/a", "400"),
            ("GET", "http://u@a/", "400"),
            ("GET", "http://a b/", "400"),
            ("GET", "1http://a/", "400"),
            ("GET", "://a/", "400"),
            ("GET", "/fast#frag", "400"),
            ("GET", "/fa\u{e9}st", "400"),
            ("GET", "/fa\u{7f}st", "400"),
            ("GET", "/fa\tst", "400"),
            ("GET", "/a%20b", "origin"),
        ] {
            assert_eq!(form(method, target), want, "{method} {target:?}");
        }
    }
}

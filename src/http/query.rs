//! Reading the `id` and `n` parameters from a request's query string, for
//! the routes (`/fast`, `/slow`, `/slow_threaded`, `/fail`). Bad input
//! becomes a one-line reason that the route sends back as a 400 body.

use std::borrow::Cow;

/// `n` when the query has none: the seed's `heavy_lifting` size.
pub const DEFAULT_N: u32 = 2000;
/// The largest `n` accepted; the smallest is 1.
pub const MAX_N: u32 = 20_000;

/// The raw (still percent-encoded) value of the first `name=value` pair
/// whose raw name is `name`; a bare `name` gives `Some("")`. The routes
/// read [`query_value`], which decodes.
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|pair| match pair.split_once('=') {
            Some((key, value)) if key == name => Some(value),
            None if pair == name => Some(""),
            _ => None,
        })
}

/// The value of the first `name=value` pair whose name is `name` once
/// decoded, itself decoded as a form value (`%XX` escapes and `+` as a
/// space, as Tornado's `get_argument` and every form parser do); a bare
/// `name` gives `""`. `None` when absent; `Some(Err(reason))` for a bad
/// escape or a value that is not UTF-8.
pub fn query_value<'a>(query: &'a str, name: &str) -> Option<Result<Cow<'a, str>, &'static str>> {
    raw_query_value(query, name).map(percent_decode)
}

/// The raw value of the pair [`query_value`] decodes.
fn raw_query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        matches!(percent_decode(key), Ok(key) if key == name).then_some(value)
    })
}

/// Decodes `%XX` escapes (either case) and `+` as a space (query-string
/// form encoding); the result must be UTF-8.
pub fn percent_decode(raw: &str) -> Result<Cow<'_, str>, &'static str> {
    decode(raw, true)
}

/// Decodes `%XX` escapes of a path segment (RFC 3986 section 2.1; `+` is
/// itself there); `None` for a bad escape or a result that is not UTF-8.
pub fn percent_decode_path(raw: &str) -> Option<Cow<'_, str>> {
    decode(raw, false).ok()
}

/// `path` with each `%XX` escape of an unreserved character (ALPHA, DIGIT,
/// `-`, `.`, `_`, `~`) replaced by that character, the normalization of RFC
/// 3986 section 6.2.2.2: such URIs are equivalent, so `/%66ast` is `/fast`
/// (nginx matches its locations the same way). Every other escape (`%2F`,
/// `%20`, a bad one) is kept as sent, so it still reaches a path
/// parameter's own decoding and cannot make a segment boundary. Borrows
/// `path` when it has no `%` (or is not ASCII, which a parsed target never
/// is: RFC 9112 section 3.2 and the 400 for raw bytes).
pub fn normalize_unreserved(path: &str) -> Cow<'_, str> {
    if !path.contains('%') || !path.is_ascii() {
        return Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |at: usize| bytes.get(at).and_then(|&d| char::from(d).to_digit(16));
        if let (b'%', Some(hi), Some(lo)) = (b, hex(i + 1), hex(i + 2)) {
            let c = char::from((hi * 16 + lo) as u8);
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~') {
                out.push(c);
                i += 3;
                continue;
            }
        }
        out.push(char::from(b));
        i += 1;
    }
    Cow::Owned(out)
}

/// Borrows `raw` when it has nothing to decode (the common case: no copy).
fn decode(raw: &str, plus_is_space: bool) -> Result<Cow<'_, str>, &'static str> {
    if !raw
        .bytes()
        .any(|b| b == b'%' || (plus_is_space && b == b'+'))
    {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        out.push(match b {
            b'+' if plus_is_space => b' ',
            b'%' => {
                let hex = |d: Option<u8>| d.and_then(|d| char::from(d).to_digit(16));
                match (hex(bytes.next()), hex(bytes.next())) {
                    (Some(hi), Some(lo)) => (hi * 16 + lo) as u8,
                    _ => return Err("bad percent-escape: expected % and two hex digits"),
                }
            }
            other => other,
        });
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| "percent-decoded value is not valid UTF-8")
}

/// The percent-decoded `id`; missing or empty is an error.
pub fn parse_id(query: &str) -> Result<Cow<'_, str>, String> {
    let id = query_value(query, "id")
        .ok_or("missing id: use ?id=X")?
        .map_err(|why| format!("bad id: {why}"))?;
    if id.is_empty() {
        return Err("empty id: use ?id=X".to_owned());
    }
    Ok(id)
}

/// `n`: absent gives `DEFAULT_N`; present must be plain ASCII decimal
/// digits with a value in `1..=MAX_N`.
pub fn parse_n(query: &str) -> Result<u32, String> {
    parse_whole(query, "n", DEFAULT_N, 1..=MAX_N)
}

/// The query parameter `name` as a whole number in `range`: absent gives
/// `default`; present must be, once percent-decoded, plain ASCII decimal
/// digits (leading zeros fine). The error is a one-line reason for a 400
/// body, showing at most 32 characters of the value.
pub fn parse_whole(
    query: &str,
    name: &str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, String> {
    let Some(raw) = raw_query_value(query, name) else {
        return Ok(default);
    };
    let value = percent_decode(raw).map_err(|why| format!("bad {name}: {why}"))?;
    match decimal(value.as_bytes()).and_then(|v| u32::try_from(v).ok()) {
        Some(v) if range.contains(&v) => Ok(v),
        _ => {
            let shown: String = raw.chars().take(32).collect();
            let cut = if shown.len() < raw.len() { "..." } else { "" };
            Err(format!(
                "bad {name} {shown:?}{cut}: expected a whole number from {} to {}",
                range.start(),
                range.end()
            ))
        }
    }
}

/// Plain ASCII decimal digits as a number, saturating at `u64::MAX`; `None`
/// for an empty value or any other byte.
pub fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |acc, d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreserved_escapes_are_normalized() {
        for (path, want) in [
            ("/fast", "/fast"),
            ("/%66ast", "/fast"),
            ("/%7e%2D%2e%5F%41%30", "/~-._A0"),
            ("/a%2Fb%20c%25", "/a%2Fb%20c%25"),
            ("/bad%2", "/bad%2"),
            ("/bad%G1%", "/bad%G1%"),
            ("/%%66", "/%f"),
        ] {
            assert_eq!(normalize_unreserved(path), want, "{path}");
        }
        assert!(matches!(normalize_unreserved("/fast"), Cow::Borrowed(_)));
    }

    #[test]
    fn query_value_cases() {
        let v =
            |q: &'static str, name: &str| query_value(q, name).map(|r| r.map(|c| c.into_owned()));
        assert_eq!(v("id=1&n=5", "n"), Some(Ok("5".into())));
        assert_eq!(v("id=1&id=2", "id"), Some(Ok("1".into())));
        assert_eq!(v("id", "id"), Some(Ok("".into())));
        assert_eq!(v("id=", "id"), Some(Ok("".into())));
        assert_eq!(v("&&id=a=b&", "id"), Some(Ok("a=b".into())));
        assert_eq!(v("idx=1&xid=2", "id"), None);
        assert_eq!(v("", "id"), None);
        // Names and values are decoded as a form parser does.
        assert_eq!(v("%69d=1", "id"), Some(Ok("1".into())));
        assert_eq!(v("n=%35", "n"), Some(Ok("5".into())));
        assert_eq!(v("id=a+b%20c", "id"), Some(Ok("a b c".into())));
        assert!(matches!(v("n=%3", "n"), Some(Err(_))));
        assert!(matches!(v("n=%FF", "n"), Some(Err(_))));
    }

    #[test]
    fn percent_decode_cases() {
        assert_eq!(percent_decode("a%20b+c").as_deref(), Ok("a b c"));
        assert_eq!(percent_decode("%e2%82%AC").as_deref(), Ok("€"));
        assert_eq!(percent_decode("%2B%25").as_deref(), Ok("+%"));
        assert_eq!(percent_decode("").as_deref(), Ok(""));
        // Nothing to decode: borrowed, not copied (one allocation less per
        // /fast request).
        assert!(matches!(
            percent_decode("abc-7"),
            Ok(Cow::Borrowed("abc-7"))
        ));
        assert!(matches!(percent_decode("a+b"), Ok(Cow::Owned(s)) if s == "a b"));
        assert!(matches!(
            percent_decode_path("a+b"),
            Some(Cow::Borrowed("a+b"))
        ));
        for bad in ["%", "%2", "%zz", "%g0", "a%2", "%-1", "%+1"] {
            assert!(
                percent_decode(bad).unwrap_err().contains("percent-escape"),
                "{bad}"
            );
        }
        for bad in ["%ff", "%c3%28", "%e2%82"] {
            assert!(percent_decode(bad).unwrap_err().contains("UTF-8"), "{bad}");
        }
    }

    #[test]
    fn id_cases() {
        assert_eq!(parse_id("id=7").as_deref(), Ok("7"));
        assert_eq!(
            parse_id("n=3&id=hello%20world").as_deref(),
            Ok("hello world")
        );
        assert_eq!(parse_id("id=%41&id=B").as_deref(), Ok("A"));
        assert_eq!(parse_id("id=+").as_deref(), Ok(" "));
        for missing in ["", "n=2", "ID=1", "idd=1"] {
            assert_eq!(
                parse_id(missing),
                Err("missing id: use ?id=X".to_owned()),
                "{missing}"
            );
        }
        for empty in ["id=", "id", "id=&id=2"] {
            assert!(
                parse_id(empty).unwrap_err().starts_with("empty id"),
                "{empty}"
            );
        }
        assert!(parse_id("id=%zz")
            .unwrap_err()
            .starts_with("bad id: bad percent-escape"));
        assert!(parse_id("id=%ff").unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn n_cases() {
        assert_eq!(parse_n(""), Ok(DEFAULT_N));
        assert_eq!(parse_n("id=1"), Ok(DEFAULT_N));
        assert_eq!(parse_n("n=1"), Ok(1));
        assert_eq!(parse_n("n=20000"), Ok(MAX_N));
        assert_eq!(parse_n("id=1&n=0020"), Ok(20));
        assert_eq!(parse_n("n=7&n=x"), Ok(7));
        let long = "9".repeat(100);
        for bad in [
            "",
            "+5",
            "-5",
            "5.0",
            "0",
            "20001",
            "99999999999999999999",
            " 5",
            "5 ",
            "%2B5",
        ]
        .into_iter()
        .chain(["0000", "4294967297", "abc", "1e3", "٣", long.as_str()])
        {
            let why = parse_n(&format!("id=1&n={bad}")).unwrap_err();
            assert!(
                why.contains("from 1 to 20000") && !why.contains('\n'),
                "{bad}: {why}"
            );
            let shown = bad.get(..bad.len().min(32)).unwrap_or(bad);
            assert!(
                why.contains(&format!("{shown:?}").trim_end_matches('"').to_owned()),
                "{why}"
            );
        }
        assert!(parse_n("n").unwrap_err().starts_with("bad n \"\""));
        // Decoded first, as a form parser does: %35 is 5, a bad escape says so.
        assert_eq!(parse_n("n=%35"), Ok(5));
        assert_eq!(parse_n("n=%32%30"), Ok(20));
        assert!(parse_n("n=%3").unwrap_err().contains("percent-escape"));
        assert!(parse_n(&format!("n={long}")).unwrap_err().contains("...:"));
    }
}

//! Skipping a request body, incrementally: the contract reads bodies and
//! ignores them. The connection loop makes a [`BodyReader`] from
//! `RequestHead::body` and feeds it whatever bytes follow the head, read by
//! read, until [`BodyReader::is_done`]; the bytes it did not take belong to
//! the next pipelined request.
//!
//! It enforces the body limit (413) on the declared length and, for
//! `chunked`, on every byte of the encoding: data, chunk-size lines with
//! their extensions, CRLFs and trailers (CVE-2024-22019 was a server that
//! counted only the data). A chunk-size line must be RFC 9112 section 7.1.1
//! exactly (hex digits, then `;name[=token-or-quoted-string]` extensions
//! with whitespace only where BWS is allowed), and trailer fields follow the
//! header fields' syntax (`TrailerAt`) with CRLF line ends;
//! anything else is a 400. It keeps at most one chunk-size line, bounded
//! (413 past [`MAX_CHUNK_LINE_BYTES`]); trailer fields are checked as they
//! pass and bounded only by the body limit, as the contract says.

use super::{BodyKind, ParseError};

/// A chunk-size line (size, extensions, CRLF) longer than this is refused
/// with 413 ([`ParseError::ChunkLineTooLong`]): the line is held whole
/// while it is checked, and extensions count toward the body limit.
/// (Trailer fields need no such bound: they are checked as they pass.)
pub const MAX_CHUNK_LINE_BYTES: usize = 1024;

const BAD_SIZE_LINE: ParseError =
    ParseError::Malformed("bad chunked body: invalid chunk-size line");
const BAD_TRAILERS: ParseError = ParseError::Malformed("bad chunked body: invalid trailer field");

/// Where the reader is in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// `Content-Length` framing: this many bytes still to skip.
    Length { remaining: u64 },
    /// Collecting a chunk-size line (kept whole so it can be split anywhere).
    ChunkSize { line: Vec<u8> },
    /// Inside a chunk's data.
    ChunkData { remaining: u64 },
    /// After a chunk's data: expecting "\r\n" (`seen_cr` after the '\r').
    ChunkEnd { seen_cr: bool },
    /// After the last chunk: inside the trailer section, up to its empty
    /// line, checked byte by byte (nothing of it is kept).
    Trailers { at: TrailerAt },
    /// The whole body has been consumed.
    Done,
    /// A framing error; every later call repeats it.
    Failed(ParseError),
}

/// Where a trailer section's check is: RFC 9112 section 7.1.2's
/// `*( field-line CRLF ) CRLF`, with RFC 9110 section 5's field syntax:
/// `field-name ":" OWS field-value OWS`, a token name, value bytes VCHAR,
/// obs-text, SP or HTAB; no obs-fold, no bare CR or LF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TrailerAt {
    /// At the start of a line: a field name or the final CRLF.
    LineStart,
    /// Inside a field name (at least one byte of it seen).
    Name,
    /// After the colon: the value, up to its CR.
    Value,
    /// After a field line's CR: its LF.
    LineCr,
    /// After the final CR: the section's last LF.
    EndCr,
}

impl TrailerAt {
    /// The next position after byte `b`, and whether `b` ended the
    /// section; a 400 for a byte the grammar does not allow there.
    fn next(self, b: u8) -> Result<(TrailerAt, bool), ParseError> {
        use TrailerAt::*;
        Ok(match (self, b) {
            (LineStart, b'\r') => (EndCr, false),
            (EndCr, b'\n') => (EndCr, true),
            (LineStart | Name, b) if is_tchar(b) => (Name, false),
            (Name, b':') => (Value, false),
            (Value, b'\r') => (LineCr, false),
            (Value, b'\t' | b' '..=b'~' | 0x80..=0xff) => (Value, false),
            (LineCr, b'\n') => (LineStart, false),
            _ => return Err(BAD_TRAILERS),
        })
    }
}

/// Reads one request body, skipping it or collecting its data; see the
/// module docs.
#[derive(Debug)]
pub struct BodyReader {
    state: State,
    /// Most bytes the body may take, framing included (413 past it).
    limit: u64,
    /// Bytes taken so far, framing included.
    taken: u64,
    /// The body's data when collecting (chunk framing removed).
    data: Option<Vec<u8>>,
}

impl BodyReader {
    /// A reader for a body framed as `kind` and held to `limit` bytes; a
    /// declared length over the limit is refused here, before any byte is
    /// read.
    pub fn new(kind: BodyKind, limit: u64) -> Result<BodyReader, ParseError> {
        let state = match kind {
            BodyKind::Empty | BodyKind::Length(0) => State::Done,
            BodyKind::Length(n) if n > limit => return Err(ParseError::BodyTooLarge),
            BodyKind::Length(n) => State::Length { remaining: n },
            BodyKind::Chunked => State::ChunkSize { line: Vec::new() },
        };
        Ok(BodyReader {
            state,
            limit,
            taken: 0,
            data: None,
        })
    }

    /// Keeps the body's data instead of skipping it. A declared length is
    /// allocated once, at its final size; a chunked body grows as it comes.
    pub fn collecting(mut self) -> BodyReader {
        let declared = match self.state {
            State::Length { remaining } => remaining,
            _ => 0,
        };
        // Lossless: a declared length has passed the limit check.
        self.data = Some(Vec::with_capacity(usize::try_from(declared).unwrap_or(0)));
        self
    }

    /// The collected data (empty when skipping); call once `is_done`.
    pub fn into_data(self) -> Vec<u8> {
        self.data.unwrap_or_default()
    }

    /// Takes body bytes from the front of `buf` and returns how many it took:
    /// all of `buf` unless the body ended inside it.
    pub fn consume(&mut self, buf: &[u8]) -> Result<usize, ParseError> {
        let mut at = 0;
        while at < buf.len() && !self.is_done() {
            let rest = buf.get(at..).unwrap_or_default();
            let step = self.step(rest).and_then(|n| {
                self.taken = self.taken.saturating_add(n as u64);
                match self.taken > self.limit {
                    true => Err(ParseError::BodyTooLarge),
                    false => Ok(n),
                }
            });
            match step {
                Ok(n) => at += n,
                Err(e) => {
                    self.state = State::Failed(e);
                    return Err(e);
                }
            }
        }
        match self.state {
            State::Failed(e) => Err(e),
            _ => Ok(at),
        }
    }

    /// Whether the whole body has been consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Body bytes taken so far, framing included.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// Advances through one piece of framing; `rest` is never empty.
    fn step(&mut self, rest: &[u8]) -> Result<usize, ParseError> {
        match &mut self.state {
            State::Done => Ok(0),
            State::Failed(e) => Err(*e),
            State::Length { remaining } | State::ChunkData { remaining } => {
                let take = (*remaining).min(rest.len() as u64);
                *remaining -= take;
                if let Some(data) = &mut self.data {
                    data.extend_from_slice(rest.get(..take as usize).unwrap_or_default());
                }
                if *remaining == 0 {
                    self.state = match self.state {
                        State::Length { .. } => State::Done,
                        _ => State::ChunkEnd { seen_cr: false },
                    };
                }
                Ok(take as usize) // lossless: take <= rest.len()
            }
            State::ChunkSize { line } => {
                let (piece, ended) = match rest.iter().position(|&b| b == b'\n') {
                    Some(lf) => (rest.get(..=lf).unwrap_or(rest), true),
                    None => (rest, false),
                };
                if line.len() + piece.len() > MAX_CHUNK_LINE_BYTES {
                    // What fits is judged first, as it would have been had
                    // it come alone: the answer must not depend on the cuts.
                    let fits = piece
                        .get(..MAX_CHUNK_LINE_BYTES - line.len())
                        .unwrap_or_default();
                    line.extend_from_slice(fits);
                    chunk_size_line(line, false)?;
                    let with_piece = self.taken.saturating_add(piece.len() as u64);
                    return Err(match with_piece > self.limit {
                        true => ParseError::BodyTooLarge,
                        false => ParseError::ChunkLineTooLong,
                    });
                }
                line.extend_from_slice(piece);
                if !ended {
                    // Fail early on what can never become a valid line.
                    return match chunk_size_line(line, false) {
                        Err(e) => Err(e),
                        Ok(_) => Ok(piece.len()),
                    };
                }
                let size = chunk_size_line(line, true)?.unwrap_or_default();
                // This line, the chunk's data and its CRLF, on top of what
                // was taken (the line's earlier pieces included): 413 now
                // rather than after the data has been read.
                let framed = self.taken.saturating_add(piece.len() as u64);
                if framed.saturating_add(size).saturating_add(2) > self.limit {
                    return Err(ParseError::BodyTooLarge);
                }
                self.state = match size {
                    0 => State::Trailers {
                        at: TrailerAt::LineStart,
                    },
                    n => State::ChunkData { remaining: n },
                };
                Ok(piece.len())
            }
            State::ChunkEnd { seen_cr } => {
                match (*seen_cr, rest.first()) {
                    (false, Some(b'\r')) => *seen_cr = true,
                    (true, Some(b'\n')) => self.state = State::ChunkSize { line: Vec::new() },
                    _ => {
                        return Err(ParseError::Malformed(
                            "bad chunked body: chunk data not followed by CRLF",
                        ))
                    }
                }
                Ok(1)
            }
            State::Trailers { at } => {
                // No further than one byte past the limit: what lies beyond
                // is the 413's, whatever it holds, as it would be had the
                // bytes come one by one.
                let room = usize::try_from(self.limit.saturating_sub(self.taken))
                    .unwrap_or(usize::MAX)
                    .saturating_add(1);
                let rest = rest.get(..room).unwrap_or(rest);
                for (i, &b) in rest.iter().enumerate() {
                    let (next, ended) = at.next(b)?;
                    if ended {
                        self.state = State::Done;
                        return Ok(i + 1);
                    }
                    *at = next;
                }
                Ok(rest.len())
            }
        }
    }
}

/// Checks a chunk-size line against RFC 9112 section 7.1.1:
/// `1*HEXDIG *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] ) CRLF`.
/// With `complete`, `line` ends in its LF and the size is returned (413
/// when it cannot be a `u64`); otherwise `line` is a prefix, and only a
/// prefix that no continuation could make valid is an error.
fn chunk_size_line(line: &[u8], complete: bool) -> Result<Option<u64>, ParseError> {
    if complete {
        // First what any prefix of the line would have said (an overflowing
        // size is 413 even if the line ends badly), so the answer never
        // depends on where the bytes were cut (a fuzz finding).
        chunk_size_line(line.strip_suffix(b"\n").unwrap_or(line), false)?;
    }
    let body = if complete {
        line.strip_suffix(b"\r\n").ok_or(BAD_SIZE_LINE)?
    } else {
        // A CR may only be the last byte so far (its LF still to come).
        line.strip_suffix(b"\r").unwrap_or(line)
    };
    let digits = body.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 && (complete || !body.is_empty()) {
        return Err(BAD_SIZE_LINE);
    }
    let (hex, mut ext) = body.split_at(digits);
    let mut size: u64 = 0;
    for &d in hex {
        let v = char::from(d).to_digit(16).unwrap_or_default();
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(v)))
            .ok_or(ParseError::BodyTooLarge)?;
    }
    // Extensions: a small state machine over the rest of the line.
    #[derive(PartialEq)]
    enum At {
        BeforeSemi,
        BeforeName,
        Name,
        AfterName,
        BeforeValue,
        Token,
        Quoted,
        Escape,
        AfterQuoted,
    }
    let mut at = At::BeforeSemi;
    let is_ws = |b: u8| b == b' ' || b == b'\t';
    while let Some((&b, tail)) = ext.split_first() {
        ext = tail;
        at = match at {
            At::BeforeSemi | At::AfterName | At::AfterQuoted if b == b';' => At::BeforeName,
            At::AfterName if b == b'=' => At::BeforeValue,
            At::BeforeSemi | At::AfterName | At::AfterQuoted if is_ws(b) => {
                if at == At::AfterQuoted {
                    At::BeforeSemi
                } else {
                    at
                }
            }
            At::BeforeName if is_ws(b) => At::BeforeName,
            At::BeforeName | At::Name if is_tchar(b) => At::Name,
            At::Name if is_ws(b) => At::AfterName,
            At::Name if b == b';' => At::BeforeName,
            At::Name if b == b'=' => At::BeforeValue,
            At::BeforeValue if is_ws(b) => At::BeforeValue,
            At::BeforeValue if b == b'"' => At::Quoted,
            At::BeforeValue | At::Token if is_tchar(b) => At::Token,
            At::Token if b == b';' => At::BeforeName,
            At::Token if is_ws(b) => At::BeforeSemi,
            At::Quoted if b == b'"' => At::AfterQuoted,
            At::Quoted if b == b'\\' => At::Escape,
            At::Quoted if is_qdtext(b) => At::Quoted,
            At::Escape if b == b'\t' || b == b' ' || (b >= 0x21 && b != 0x7f) => At::Quoted,
            _ => return Err(BAD_SIZE_LINE),
        };
    }
    // Whitespace must lead to a ';': trailing BWS with no extension after it
    // (`5 \r\n`), a bare `;` or a name awaiting its value are not complete.
    let trailing_ws = body.last().is_some_and(|&b| is_ws(b));
    let ends_well = match at {
        At::BeforeSemi => !trailing_ws,
        At::Name | At::Token | At::AfterQuoted => true,
        _ => false,
    };
    match (complete, ends_well) {
        (true, false) => Err(BAD_SIZE_LINE),
        (true, true) => Ok(Some(size)),
        (false, _) => Ok(None),
    }
}

/// `tchar` of RFC 9110 section 5.6.2.
pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `qdtext` of RFC 9110 section 5.6.4.
fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

#[cfg(test)]
mod tests {
    use super::super::MAX_BODY_BYTES;
    use super::*;

    /// Feeds `buf` in pieces ending at `cuts`, then the rest; returns (bytes
    /// taken, done, first error). A piece may only be partly taken at the end.
    fn feed_with(
        kind: BodyKind,
        limit: u64,
        buf: &[u8],
        cuts: &[usize],
    ) -> (usize, bool, Option<ParseError>) {
        let mut reader = match BodyReader::new(kind, limit) {
            Ok(r) => r,
            Err(e) => return (0, false, Some(e)),
        };
        let mut taken = 0;
        for &to in cuts.iter().chain([buf.len()].iter()) {
            let offered = &buf[taken..to.max(taken)];
            match reader.consume(offered) {
                Ok(n) => {
                    assert!(n == offered.len() || reader.is_done(), "stalled at {to}");
                    taken += n;
                    assert_eq!(reader.taken(), taken as u64);
                }
                Err(e) => return (taken, false, Some(e)),
            }
        }
        (taken, reader.is_done(), None)
    }

    fn feed(kind: BodyKind, buf: &[u8], cuts: &[usize]) -> (usize, bool, Option<ParseError>) {
        feed_with(kind, MAX_BODY_BYTES, buf, cuts)
    }

    const CHUNKED: &[u8] =
        b"4\r\nWiki\r\n5;name=\"v;x\"\r\npedia\r\nE ; a = b ;c\r\n in\r\n\r\nchunks.\r\n\
        0;last\r\nExpires: never\r\nX: y\r\n\r\nGET /next";

    #[test]
    fn length_bodies() {
        assert_eq!(feed(BodyKind::Length(5), b"helloGET", &[]), (5, true, None));
        assert_eq!(feed(BodyKind::Length(5), b"hel", &[]), (3, false, None));
        assert_eq!(
            feed(BodyKind::Length(5), b"helloGET", &[1, 2, 4]),
            (5, true, None)
        );
        assert_eq!(feed(BodyKind::Empty, b"GET", &[]), (0, true, None));
        assert!(BodyReader::new(BodyKind::Length(0), 0).is_ok_and(|r| r.is_done()));
        assert!(BodyReader::new(BodyKind::Length(MAX_BODY_BYTES), MAX_BODY_BYTES).is_ok());
        for (len, limit) in [
            (MAX_BODY_BYTES + 1, MAX_BODY_BYTES),
            (u64::MAX, MAX_BODY_BYTES),
            (6, 5),
        ] {
            let over = BodyReader::new(BodyKind::Length(len), limit).map(|_| ());
            assert_eq!(over, Err(ParseError::BodyTooLarge), "{len} over {limit}");
        }
    }

    #[test]
    fn chunked_at_every_split() {
        let body_len = CHUNKED.len() - b"GET /next".len();
        assert_eq!(
            feed(BodyKind::Chunked, CHUNKED, &[]),
            (body_len, true, None)
        );
        for i in 0..=CHUNKED.len() {
            assert_eq!(
                feed(BodyKind::Chunked, CHUNKED, &[i]),
                (body_len, true, None),
                "split {i}"
            );
            for j in (i..=CHUNKED.len()).step_by(7) {
                assert_eq!(
                    feed(BodyKind::Chunked, CHUNKED, &[i, j]),
                    (body_len, true, None)
                );
            }
        }
        let mut one_by_one = BodyReader::new(BodyKind::Chunked, MAX_BODY_BYTES).expect("chunked");
        let taken: usize = (0..body_len)
            .map(|i| one_by_one.consume(&CHUNKED[i..=i]))
            .sum::<Result<_, _>>()
            .expect("ok");
        assert_eq!((taken, one_by_one.is_done()), (body_len, true));
        assert_eq!(one_by_one.consume(b"GET"), Ok(0));
        assert_eq!(feed(BodyKind::Chunked, b"0\r\n\r\n", &[]), (5, true, None));
        assert_eq!(
            feed(BodyKind::Chunked, b"A\r\n0123456789\r\n0\r\n", &[]),
            (18, false, None)
        );
    }

    /// Every byte of the encoding counts: data, size lines, extensions,
    /// CRLFs and trailers (CVE-2024-22019).
    #[test]
    fn chunked_limit_counts_framing() {
        let body = b"3;e=1\r\nabc\r\n0\r\nT: v\r\n\r\n";
        let n = body.len() as u64;
        assert_eq!(
            feed_with(BodyKind::Chunked, n, body, &[]),
            (body.len(), true, None)
        );
        for limit in [0, 1, 7, 12, 14, n - 1] {
            for cut in 0..=body.len() {
                let (_, done, e) = feed_with(BodyKind::Chunked, limit, body, &[cut]);
                assert_eq!(
                    (done, e),
                    (false, Some(ParseError::BodyTooLarge)),
                    "{limit} {cut}"
                );
            }
        }
        // A chunk announcing more than the limit allows is refused at its
        // size line, before any of its data.
        let (taken, _, e) = feed_with(BodyKind::Chunked, 100, b"64\r\nxyz", &[]);
        assert_eq!((taken, e), (0, Some(ParseError::BodyTooLarge)));
        // The issue's example: 4096 one-byte chunks with 1000-byte extensions.
        let ext = format!("1;{}\r\nx\r\n", "e".repeat(1000));
        let many = ext.repeat(4096) + "0\r\n\r\n";
        let (taken, _, e) = feed(BodyKind::Chunked, many.as_bytes(), &[]);
        assert_eq!(e, Some(ParseError::BodyTooLarge));
        assert!(taken as u64 <= MAX_BODY_BYTES);
        let huge = feed(BodyKind::Chunked, b"fffffffffffffff\r\n", &[]).2;
        assert_eq!(huge, Some(ParseError::BodyTooLarge));
        let overflow = feed(BodyKind::Chunked, b"10000000000000000\r\n", &[]).2;
        assert_eq!(overflow, Some(ParseError::BodyTooLarge));
    }

    #[test]
    fn collecting_keeps_the_data_and_allocates_a_declared_length_once() {
        let mut r = BodyReader::new(BodyKind::Length(5), 5)
            .expect("fits")
            .collecting();
        assert_eq!(r.data.as_ref().map(Vec::capacity), Some(5));
        for piece in [&b"he"[..], b"l", b"loGET"] {
            r.consume(piece).expect("valid");
        }
        assert!(r.is_done());
        let data = r.into_data();
        assert_eq!((data.as_slice(), data.capacity()), (&b"hello"[..], 5));
        for cut in 0..=CHUNKED.len() {
            let mut r = BodyReader::new(BodyKind::Chunked, MAX_BODY_BYTES)
                .expect("chunked")
                .collecting();
            let first = r.consume(&CHUNKED[..cut]).expect("valid");
            if !r.is_done() {
                r.consume(&CHUNKED[first..]).expect("valid");
            }
            assert_eq!(r.into_data(), b"Wikipedia in\r\n\r\nchunks.", "cut {cut}");
        }
        let skipped = BodyReader::new(BodyKind::Length(3), 3).expect("fits");
        assert!(skipped.into_data().is_empty());
    }

    #[test]
    fn chunk_size_lines_by_rfc_9112() {
        for good in [
            "5",
            "05",
            "aBc",
            "5;a",
            "5;a=b",
            "5 ;a",
            "5\t;a",
            "5; a",
            "5;a =b",
            "5;a= b",
            "5;a=\"\"",
            "5;a=\"x y;z\"",
            "5;a=\"q\\\"x\"",
            "5;a;b=c;d",
            "5;a=\"x\" ;b",
            "5;!#$%&'*+-.^_`|~=x",
        ] {
            let line = format!("{good}\r\n");
            assert!(
                matches!(chunk_size_line(line.as_bytes(), true), Ok(Some(_))),
                "{good:?}"
            );
        }
        for bad in [
            "",
            " 5",
            "5 ",
            "5\t",
            "5;",
            "5; ",
            "5;;a",
            "5;a ",
            "5;a=",
            "5;a= ",
            "5;a=b ",
            "5;=b",
            "5;a b",
            "5;a=b c",
            "5;a=\"x",
            "5;a=\"x\"y",
            "5;a=\"\x01\"",
            "5;a\x01",
            "5;a=b\x7f",
            "5;a=\"x\\\"",
            "5;a@b",
            "5;a=(b)",
            "5 5",
            "x",
            "-1",
            "+1",
            "0x5",
            "5;a\rb",
        ] {
            let line = format!("{bad}\r\n");
            assert_eq!(
                chunk_size_line(line.as_bytes(), true),
                Err(BAD_SIZE_LINE),
                "{bad:?}"
            );
        }
        assert_eq!(chunk_size_line(b"5\n", true), Err(BAD_SIZE_LINE), "bare LF");
        assert_eq!(chunk_size_line(b"5;a\r", false), Ok(None), "CR awaiting LF");
        assert_eq!(chunk_size_line(b"5;a\rx", false), Err(BAD_SIZE_LINE));
        assert_eq!(chunk_size_line(b"5 ", false), Ok(None), "may become `5 ;a`");
        // An overflowing size is 413 whether the line is cut or whole, even
        // when it also ends badly.
        let huge = format!("{}?x\r\x1f\n", "C".repeat(18));
        for cut in 17..=huge.len() {
            let complete = cut == huge.len();
            assert_eq!(
                chunk_size_line(&huge.as_bytes()[..cut], complete),
                Err(ParseError::BodyTooLarge),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn chunked_framing_errors() {
        for bad in [
            &b"\r\n"[..],
            b"x\r\n",
            b"-1\r\n",
            b"+1\r\n",
            b" 1\r\n",
            b"1\n",
            b"1;a\nb\r\n",
            b"5 \r\n",
            b"5;\r\n",
            b"5;a\x01b\r\n",
            b"1\r\nxy\r\n",
            b"1\r\nx\n",
            b"1\r\nx\r\r",
            b"1\r\nx\rn",
            b"0\r\n\n",
            b"0\r\nX: y\n\r\n",
            b"0\r\nX: a\rb\r\n\r\n",
            b"0\r\nX: a\0b\r\n\r\n",
            b"0\r\nno colon\r\n\r\n",
            b"0\r\nX : y\r\n\r\n",
            b"0\r\nX: y\r\n folded\r\n\r\n",
            b"0\r\n: y\r\n\r\n",
            b"1\rx",
            b"0\r\nX: y\x7f\r\n\r\n",
            b"0\r\nX\r\n\r\n",
            b"0\r\n\r\r",
        ] {
            for cut in 0..=bad.len() {
                let (_, done, e) = feed(BodyKind::Chunked, bad, &[cut]);
                assert!(
                    !done && matches!(e, Some(ParseError::Malformed(_))),
                    "{:?} at {cut}: {e:?}",
                    String::from_utf8_lossy(bad)
                );
            }
        }
    }

    /// Framing counts toward the body limit (413): a chunk-size line past
    /// its own bound is a 413 too, and trailers are bounded only by the
    /// body limit, however they are cut.
    #[test]
    fn long_framing_is_413_and_trailers_need_only_fit_the_body_limit() {
        let long_ext = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(MAX_CHUNK_LINE_BYTES));
        for cut in [0, 3, MAX_CHUNK_LINE_BYTES - 1, MAX_CHUNK_LINE_BYTES + 5] {
            let (_, done, e) = feed(BodyKind::Chunked, long_ext.as_bytes(), &[cut]);
            assert_eq!((done, e), (false, Some(ParseError::ChunkLineTooLong)));
        }
        // Over the body limit as well: the body limit's 413 is the reason.
        let (_, _, e) = feed_with(BodyKind::Chunked, 100, long_ext.as_bytes(), &[]);
        assert_eq!(e, Some(ParseError::BodyTooLarge));

        // 64 KiB of valid trailer fields, one of them 20 KiB long.
        let mut trailers = b"1\r\nx\r\n0\r\n".to_vec();
        trailers.extend(format!("X-Long: {}\r\n", "v".repeat(20 * 1024)).bytes());
        while trailers.len() < 64 * 1024 {
            trailers.extend_from_slice(b"X-T: a b\t\xe9;=\"\r\n");
        }
        trailers.extend_from_slice(b"\r\nGET /next");
        let whole = trailers.len() - "GET /next".len();
        for cuts in [&[][..], &[9], &[20 * 1024], &[whole - 2, whole - 1]] {
            assert_eq!(
                feed(BodyKind::Chunked, &trailers, cuts),
                (whole, true, None),
                "cuts {cuts:?}"
            );
        }
        // The same past a smaller limit: 413, not a trailer error.
        let (_, done, e) = feed_with(BodyKind::Chunked, 32 * 1024, &trailers, &[]);
        assert_eq!((done, e), (false, Some(ParseError::BodyTooLarge)));
        // A bad byte past the limit is the limit's 413 however the bytes
        // are cut; one within it is a 400.
        let bad_after = b"1\r\nx\r\n0\r\nX: abcdefgh\0\r\n\r\n";
        for (limit, want) in [(14, ParseError::BodyTooLarge), (30, BAD_TRAILERS)] {
            for cuts in [&[][..], &[13], &[14, 15, 16]] {
                let (_, _, e) = feed_with(BodyKind::Chunked, limit, bad_after, cuts);
                assert_eq!(e, Some(want), "limit {limit}, cuts {cuts:?}");
            }
            let one_by_one: Vec<usize> = (1..bad_after.len()).collect();
            let (_, _, e) = feed_with(BodyKind::Chunked, limit, bad_after, &one_by_one);
            assert_eq!(e, Some(want), "limit {limit}, byte by byte");
        }
    }

    #[test]
    fn a_failed_reader_stays_failed() {
        let mut failed = BodyReader::new(BodyKind::Chunked, MAX_BODY_BYTES).expect("chunked");
        assert!(failed.consume(b"zz").is_err());
        assert!(failed.consume(b"0\r\n\r\n").is_err() && !failed.is_done());
    }
}

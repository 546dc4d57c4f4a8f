//! Skipping a request body, incrementally: the contract reads bodies and
//! ignores them. The connection loop makes a [`BodyReader`] from
//! `RequestHead::body` and feeds it whatever bytes follow the head, read by
//! read, until [`BodyReader::is_done`]; the bytes it did not take belong to
//! the next pipelined request. It enforces `MAX_BODY_BYTES` (413) on the
//! declared length and on the chunked data actually announced, and rejects
//! bad chunked framing (400). It keeps at most one chunk-size line.

use super::{BodyKind, ParseError, MAX_BODY_BYTES, MAX_HEAD_BYTES};

/// A chunk-size line (size, extensions, CRLF) longer than this is refused.
const MAX_CHUNK_LINE_BYTES: usize = 1024;
/// Trailer fields after the last chunk, all together, are held to the same
/// limit as a request head.
const MAX_TRAILER_BYTES: usize = MAX_HEAD_BYTES;

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
    /// After the last chunk: trailer lines until an empty line.
    Trailers {
        total: usize,
        line_len: usize,
        last_cr: bool,
    },
    /// The whole body has been consumed.
    Done,
    /// A framing error; every later call repeats it.
    Failed(ParseError),
}

/// Skips one request body; see the module docs.
#[derive(Debug)]
pub struct BodyReader {
    state: State,
    /// Chunk data announced so far, checked against `MAX_BODY_BYTES`.
    announced: u64,
}

impl BodyReader {
    /// A reader for a body framed as `kind`; a declared length over
    /// `MAX_BODY_BYTES` is refused here, before any byte is read.
    pub fn new(kind: BodyKind) -> Result<BodyReader, ParseError> {
        let state = match kind {
            BodyKind::Empty | BodyKind::Length(0) => State::Done,
            BodyKind::Length(n) if n > MAX_BODY_BYTES => return Err(ParseError::BodyTooLarge),
            BodyKind::Length(n) => State::Length { remaining: n },
            BodyKind::Chunked => State::ChunkSize { line: Vec::new() },
        };
        Ok(BodyReader {
            state,
            announced: 0,
        })
    }

    /// Takes body bytes from the front of `buf` and returns how many it took:
    /// all of `buf` unless the body ended inside it.
    pub fn consume(&mut self, buf: &[u8]) -> Result<usize, ParseError> {
        let mut at = 0;
        while at < buf.len() && !self.is_done() {
            let rest = buf.get(at..).unwrap_or_default();
            match self.step(rest) {
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

    /// Advances through one piece of framing; `rest` is never empty.
    fn step(&mut self, rest: &[u8]) -> Result<usize, ParseError> {
        match &mut self.state {
            State::Done => Ok(0),
            State::Failed(e) => Err(*e),
            State::Length { remaining } | State::ChunkData { remaining } => {
                let take = (*remaining).min(rest.len() as u64);
                *remaining -= take;
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
                    return Err(ParseError::Malformed(
                        "bad chunked body: chunk-size line too long",
                    ));
                }
                let checked = line.len().saturating_sub(1);
                line.extend_from_slice(piece);
                let fresh = line.get(checked..).unwrap_or_default();
                let bare_cr = fresh
                    .windows(2)
                    .any(|w| w.first() == Some(&b'\r') && w.get(1) != Some(&b'\n'));
                if bare_cr || !line.first().is_some_and(u8::is_ascii_hexdigit) {
                    return Err(ParseError::Malformed(
                        "bad chunked body: invalid chunk-size line",
                    ));
                }
                if ended {
                    let size = chunk_size(line)?;
                    self.announced = self.announced.saturating_add(size);
                    if self.announced > MAX_BODY_BYTES {
                        return Err(ParseError::BodyTooLarge);
                    }
                    self.state = match size {
                        0 => State::Trailers {
                            total: 0,
                            line_len: 0,
                            last_cr: false,
                        },
                        n => State::ChunkData { remaining: n },
                    };
                }
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
            State::Trailers {
                total,
                line_len,
                last_cr,
            } => {
                let b = rest.first().copied().unwrap_or_default();
                *total += 1;
                if *total > MAX_TRAILER_BYTES {
                    return Err(ParseError::Malformed(
                        "bad chunked body: trailers too large",
                    ));
                }
                if b == b'\n' {
                    match (*line_len, *last_cr) {
                        (_, false) => {
                            return Err(ParseError::Malformed(
                                "bad chunked body: bare LF in trailers",
                            ))
                        }
                        (1, true) => self.state = State::Done,
                        _ => (*line_len, *last_cr) = (0, false),
                    }
                } else {
                    (*line_len, *last_cr) = (*line_len + 1, b == b'\r');
                }
                Ok(1)
            }
        }
    }
}

/// The size from a whole chunk-size line (`hex [; ext] CRLF`), which `step`
/// has already checked starts with a hex digit.
fn chunk_size(line: &[u8]) -> Result<u64, ParseError> {
    const BAD: ParseError = ParseError::Malformed("bad chunked body: invalid chunk-size line");
    match httparse::parse_chunk_size(line) {
        Ok(httparse::Status::Complete((used, size))) if used == line.len() => Ok(size),
        _ => Err(BAD),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `buf` in pieces ending at `cuts`, then the rest; returns (bytes
    /// taken, done, first error). A piece may only be partly taken at the end.
    fn feed(kind: BodyKind, buf: &[u8], cuts: &[usize]) -> (usize, bool, Option<ParseError>) {
        let mut reader = match BodyReader::new(kind) {
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
                }
                Err(e) => return (taken, false, Some(e)),
            }
        }
        (taken, reader.is_done(), None)
    }

    const CHUNKED: &[u8] = b"4\r\nWiki\r\n5;name=\"v;x\"\r\npedia\r\nE \r\n in\r\n\r\nchunks.\r\n\
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
        assert!(BodyReader::new(BodyKind::Length(0)).is_ok_and(|r| r.is_done()));
        assert!(BodyReader::new(BodyKind::Length(MAX_BODY_BYTES)).is_ok());
        let over = BodyReader::new(BodyKind::Length(MAX_BODY_BYTES + 1)).map(|_| ());
        assert_eq!(over, Err(ParseError::BodyTooLarge));
        assert_eq!(
            BodyReader::new(BodyKind::Length(u64::MAX)).map(|_| ()),
            Err(ParseError::BodyTooLarge)
        );
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
        let mut one_by_one = BodyReader::new(BodyKind::Chunked).expect("chunked");
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

    #[test]
    fn chunked_size_limit() {
        let mib = MAX_BODY_BYTES as usize;
        let mut exact = format!("{:x}\r\n", mib - 1).into_bytes();
        exact.resize(exact.len() + mib - 1, b'x');
        exact.extend_from_slice(b"\r\n1\r\nx\r\n0\r\n\r\n");
        assert_eq!(
            feed(BodyKind::Chunked, &exact, &[]),
            (exact.len(), true, None)
        );
        let plus_one = [&exact[..exact.len() - 5], b"1\r\nx\r\n0\r\n\r\n"].concat();
        let (_, done, e) = feed(BodyKind::Chunked, &plus_one, &[]);
        assert_eq!((done, e), (false, Some(ParseError::BodyTooLarge)));
        let huge = feed(BodyKind::Chunked, b"fffffffffffffff\r\n", &[]).2;
        assert_eq!(huge, Some(ParseError::BodyTooLarge));
    }

    #[test]
    fn chunked_framing_errors() {
        let long_ext = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(MAX_CHUNK_LINE_BYTES));
        let long_trailer = format!("0\r\nX: {}\r\n\r\n", "v".repeat(MAX_TRAILER_BYTES));
        for bad in [
            &b"\r\n"[..],
            b"x\r\n",
            b"-1\r\n",
            b"+1\r\n",
            b" 1\r\n",
            b"1\n",
            b"1;a\nb\r\n",
            b"1\r\nxy\r\n",
            b"1\r\nx\n",
            b"1\r\nx\r\r",
            b"1\r\nx\rn",
            b"0\r\n\n",
            b"0\r\nX: y\n\r\n",
            b"10000000000000000\r\n",
            b"1\rx",
            long_ext.as_bytes(),
            long_trailer.as_bytes(),
        ] {
            for cut in 0..=bad.len() {
                let (_, done, e) = feed(BodyKind::Chunked, bad, &[cut]);
                assert!(
                    !done && matches!(e, Some(ParseError::Malformed(_))),
                    "{bad:?} at {cut}: {e:?}"
                );
            }
        }
        let mut failed = BodyReader::new(BodyKind::Chunked).expect("chunked");
        assert!(failed.consume(b"zz").is_err());
        assert!(failed.consume(b"0\r\n\r\n").is_err() && !failed.is_done());
    }
}

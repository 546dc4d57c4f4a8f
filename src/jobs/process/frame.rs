//! The wire between a compute executor and its worker process: framing only,
//! no I/O and no policy (what the frames mean is `supervisor.rs` and
//! `child.rs`; hyper's h1 split between `decode.rs` and `role.rs`).
//!
//! Every frame is `len: u32 LE` (bytes after this field), `kind: u8`, then
//! the kind's fields in order: integers little-endian, byte strings and text
//! as `u32 LE` length + bytes (text must be UTF-8). [`decode`] is sans-I/O:
//! `Ok(None)` means "need more bytes", and any malformed frame (unknown kind,
//! short or long payload, bad UTF-8, a length past [`MAX_FRAME`]) is a
//! [`FrameError`], never a panic, because the bytes come from a process that
//! may be running a broken job.
//!
//! | kind | frame | direction |
//! |---|---|---|
//! | 1 | `Job { id: u64, route: u32, compute_core: u32, shared_core: u8, queued_micros: u64, input }` | supervisor -> worker |
//! | 2 | `Cancel { id: u64 }` | supervisor -> worker |
//! | 3 | `Hello { version: u32, routes: u32 count + text* }` | worker -> supervisor |
//! | 4 | `Done { id: u64, response }` | worker -> supervisor |
//! | 5 | `Error { id: u64, message: text }` (a panic, an exception) | worker -> supervisor |
//! | 6 | `Stopped { id: u64 }` (the job returned `Cancelled`) | worker -> supervisor |
//!
//! `input` is `method: text, path: text, params: u32 count + (text, text)*,
//! query: text, headers: u32 count + (text, bytes)*, body: bytes, io_core: u32`.
//! `response` is `status: u16, content_type: text, headers: u32 count +
//! (text, text)*, body: bytes`.
//!
//! The same frames are the external worker protocol (`--worker-cmd`), whose
//! public description is `docs/worker-protocol.md`: keep the two in step.

use std::borrow::Cow;
use std::fmt;

use crate::http::Response;
use crate::jobs::JobInput;

/// Largest frame accepted (the length field): a 1 GiB body (the most
/// `--max-job-body` allows) plus room for the head.
pub const MAX_FRAME: usize = (1 << 30) + (1 << 20);

/// One message on a worker's socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Run route `route`'s job on `input`.
    Job {
        id: u64,
        route: u32,
        compute_core: u32,
        shared_core: bool,
        /// Time from dispatch to start, for `JobContext::queued`.
        queued_micros: u64,
        input: JobInput,
    },
    /// Job `id` is no longer wanted: its `should_stop` turns true.
    Cancel { id: u64 },
    /// The worker is up, speaks protocol `version` and serves `routes` (a
    /// job's `route` is an index into this list), and waits for jobs.
    Hello { version: u32, routes: Vec<String> },
    /// Job `id` returned this response.
    Done { id: u64, response: Response },
    /// Job `id` failed (panicked, raised) with this message.
    Error { id: u64, message: String },
    /// Job `id` stopped at a `should_stop` check.
    Stopped { id: u64 },
}

/// Bytes that are not a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length field is past [`MAX_FRAME`] or too short for a kind byte.
    BadLength(usize),
    /// A kind byte this protocol does not have.
    UnknownKind(u8),
    /// The payload ended inside a field.
    Truncated,
    /// The payload has bytes after its last field.
    TrailingBytes,
    /// A text field that is not UTF-8.
    NotUtf8,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadLength(n) => write!(f, "bad frame length {n}"),
            FrameError::UnknownKind(k) => write!(f, "unknown frame kind {k}"),
            FrameError::Truncated => f.write_str("frame ends inside a field"),
            FrameError::TrailingBytes => f.write_str("frame has trailing bytes"),
            FrameError::NotUtf8 => f.write_str("text field is not UTF-8"),
        }
    }
}

impl std::error::Error for FrameError {}

const JOB: u8 = 1;
const CANCEL: u8 = 2;
const HELLO: u8 = 3;
const DONE: u8 = 4;
const ERROR: u8 = 5;
const STOPPED: u8 = 6;

/// Appends `frame`, length prefix included, to `out`.
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut w = Writer(out);
    match frame {
        Frame::Job {
            id,
            route,
            compute_core,
            shared_core,
            queued_micros,
            input,
        } => write_job(
            &mut w,
            *id,
            *route,
            *compute_core,
            *shared_core,
            *queued_micros,
            input,
        ),
        Frame::Cancel { id } => {
            w.u8(CANCEL);
            w.u64(*id);
        }
        Frame::Hello { version, routes } => {
            w.u8(HELLO);
            w.u32(*version);
            w.len(routes.len());
            for r in routes {
                w.text(r);
            }
        }
        Frame::Done { id, response } => {
            w.u8(DONE);
            w.u64(*id);
            w.u16(response.status);
            w.text(&response.content_type);
            w.len(response.headers.len());
            for (n, v) in &response.headers {
                w.text(n);
                w.text(v);
            }
            w.bytes(&response.body);
        }
        Frame::Error { id, message } => {
            w.u8(ERROR);
            w.u64(*id);
            w.text(message);
        }
        Frame::Stopped { id } => {
            w.u8(STOPPED);
            w.u64(*id);
        }
    }
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Appends a `Job` frame without building a [`Frame`] first, so the
/// supervisor does not copy the input (a body of up to `--max-job-body`).
pub fn encode_job(
    id: u64,
    route: u32,
    (compute_core, shared_core): (u32, bool),
    queued_micros: u64,
    input: &JobInput,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let w = &mut Writer(out);
    write_job(
        w,
        id,
        route,
        compute_core,
        shared_core,
        queued_micros,
        input,
    );
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

fn write_job(
    w: &mut Writer<'_>,
    id: u64,
    route: u32,
    compute_core: u32,
    shared_core: bool,
    queued_micros: u64,
    input: &JobInput,
) {
    w.u8(JOB);
    w.u64(id);
    w.u32(route);
    w.u32(compute_core);
    w.u8(u8::from(shared_core));
    w.u64(queued_micros);
    w.text(&input.method);
    w.text(&input.path);
    w.len(input.params.len());
    for (n, v) in &input.params {
        w.text(n);
        w.text(v);
    }
    w.text(&input.query);
    w.len(input.headers.len());
    for (n, v) in &input.headers {
        w.text(n);
        w.bytes(v);
    }
    w.bytes(&input.body);
    w.u32(input.io_core as u32);
}

/// One frame from the front of `buf` and the bytes it took, `Ok(None)` when
/// `buf` holds only part of one.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(head) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(FrameError::BadLength(len));
    }
    let Some(payload) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    let mut r = Reader(payload);
    let frame = match r.u8()? {
        JOB => Frame::Job {
            id: r.u64()?,
            route: r.u32()?,
            compute_core: r.u32()?,
            shared_core: r.u8()? != 0,
            queued_micros: r.u64()?,
            input: JobInput {
                method: r.text()?,
                path: r.text()?,
                params: r.list(8, |r| Ok((r.text()?, r.text()?)))?,
                query: r.text()?,
                headers: r.list(8, |r| Ok((r.text()?, r.bytes()?.to_vec())))?,
                body: r.bytes()?.to_vec(),
                io_core: r.u32()? as usize,
            },
        },
        CANCEL => Frame::Cancel { id: r.u64()? },
        HELLO => Frame::Hello {
            version: r.u32()?,
            routes: r.list(4, Reader::text)?,
        },
        DONE => Frame::Done {
            id: r.u64()?,
            response: Response {
                status: r.u16()?,
                content_type: Cow::Owned(r.text()?),
                headers: r.list(8, |r| Ok((Cow::Owned(r.text()?), r.text()?)))?,
                body: r.bytes()?.to_vec(),
            },
        },
        ERROR => Frame::Error {
            id: r.u64()?,
            message: r.text()?,
        },
        STOPPED => Frame::Stopped { id: r.u64()? },
        other => return Err(FrameError::UnknownKind(other)),
    };
    if !r.0.is_empty() {
        return Err(FrameError::TrailingBytes);
    }
    Ok(Some((frame, 4 + len)))
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u32(n as u32);
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }
    fn text(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.0.len() < n {
            return Err(FrameError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, FrameError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], FrameError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn text(&mut self) -> Result<String, FrameError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| FrameError::NotUtf8)
    }
    /// A `u32` count, then that many items; the count is checked against
    /// the bytes left (each item takes at least `min_item`), so a hostile
    /// count cannot make us allocate.
    fn list<T>(
        &mut self,
        min_item: usize,
        mut item: impl FnMut(&mut Self) -> Result<T, FrameError>,
    ) -> Result<Vec<T>, FrameError> {
        let n = self.u32()? as usize;
        if n > self.0.len() / min_item {
            return Err(FrameError::Truncated);
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(item(self)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<Frame> {
        vec![
            Frame::Job {
                id: u64::MAX - 1,
                route: 7,
                compute_core: 3,
                shared_core: true,
                queued_micros: 1234,
                input: JobInput {
                    method: "POST".into(),
                    path: "/gzip".into(),
                    params: vec![("name".into(), "é x".into())],
                    query: "level=9&id=a%20b".into(),
                    headers: vec![
                        ("host".into(), b"t".to_vec()),
                        ("x-raw".into(), vec![0, 255, 13, 10]),
                    ],
                    body: (0..=255).collect(),
                    io_core: 1,
                },
            },
            Frame::Job {
                id: 0,
                route: 0,
                compute_core: 0,
                shared_core: false,
                queued_micros: 0,
                input: JobInput::default(),
            },
            Frame::Cancel { id: 42 },
            Frame::Hello {
                version: 1,
                routes: vec!["/slow_py".into(), "GET /users/{id}".into()],
            },
            Frame::Hello {
                version: 1,
                routes: Vec::new(),
            },
            Frame::Done {
                id: 9,
                response: Response::bytes(200, "application/gzip", vec![1, 2, 3])
                    .with_header("Retry-After", "1"),
            },
            Frame::Done {
                id: 10,
                response: Response::text(404, ""),
            },
            Frame::Error {
                id: 11,
                message: "boom: ünïcode".into(),
            },
            Frame::Stopped { id: 12 },
        ]
    }

    #[test]
    fn every_frame_kind_round_trips() {
        let frames = every_kind();
        let mut wire = Vec::new();
        for f in &frames {
            encode(f, &mut wire);
        }
        let mut at = 0;
        let mut got = Vec::new();
        while let Some((frame, used)) = decode(&wire[at..]).unwrap() {
            got.push(frame);
            at += used;
        }
        assert_eq!(at, wire.len());
        assert_eq!(got, frames);
        // encode_job writes exactly what encode writes for a Job.
        if let Frame::Job {
            id,
            route,
            compute_core,
            shared_core,
            queued_micros,
            input,
        } = &frames[0]
        {
            let mut direct = Vec::new();
            let core = (*compute_core, *shared_core);
            encode_job(*id, *route, core, *queued_micros, input, &mut direct);
            let mut via = Vec::new();
            encode(&frames[0], &mut via);
            assert_eq!(direct, via);
        }
    }

    #[test]
    fn partial_frames_need_more_bytes() {
        for f in every_kind() {
            let mut wire = Vec::new();
            encode(&f, &mut wire);
            for cut in 0..wire.len() {
                assert_eq!(decode(&wire[..cut]), Ok(None), "{f:?} cut at {cut}");
            }
            assert_eq!(decode(&wire).unwrap().map(|(_, n)| n), Some(wire.len()));
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(decode(&[0, 0, 0, 0]), Err(FrameError::BadLength(0)));
        assert_eq!(
            decode(&[255, 255, 255, 255]),
            Err(FrameError::BadLength(u32::MAX as usize))
        );
        assert_eq!(decode(&[1, 0, 0, 0, 99]), Err(FrameError::UnknownKind(99)));
        assert_eq!(decode(&[2, 0, 0, 0, CANCEL, 1]), Err(FrameError::Truncated));
        let mut wire = Vec::new();
        encode(&Frame::Stopped { id: 1 }, &mut wire);
        wire[0] += 1;
        wire.push(0);
        assert_eq!(decode(&wire), Err(FrameError::TrailingBytes));
        // A huge list count in a short frame.
        let mut p = vec![ERROR];
        p.extend_from_slice(&1u64.to_le_bytes());
        p.extend_from_slice(&2u32.to_le_bytes());
        p.extend_from_slice(&[0xff, 0xfe]);
        let mut wire = (p.len() as u32).to_le_bytes().to_vec();
        wire.extend_from_slice(&p);
        assert_eq!(decode(&wire), Err(FrameError::NotUtf8));
        // Pseudo-random bytes never panic.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let len = (x % 40) as usize;
            let mut buf = Vec::with_capacity(len + 4);
            buf.extend_from_slice(&(len as u32).to_le_bytes());
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push((x % 7) as u8);
            }
            let _ = decode(&buf);
        }
    }
}

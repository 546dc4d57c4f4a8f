//! The whole per-connection byte path, without sockets: arbitrary bytes go
//! into `heavylift::http::RequestReader` (cut into reads at fuzzer-chosen
//! points) and every event is answered the way `server::connection` answers
//! it for routes that need no executor: `Router::resolve` (404, 405,
//! `OPTIONS *`) and the seed router's `Respond` answers as they are, a
//! stand-in 200 for `Offload`/`Inline` jobs, `ParseError::status()` and close
//! for a protocol error (bad Host, target, framing, trailers, body limits
//! counting every framing byte).
//!
//! Invariants checked on every input: no panic; the reader always has room
//! to read into while it waits for more; the output buffer stays under the
//! flush threshold plus one answer; every answer starts with "HTTP/1.1 " and
//! the output parses back into exactly the answers given, in request order;
//! and the transcript is the same whether the bytes came in one read or cut
//! anywhere.
//!
//! Input layout: byte 0 = number of extra cuts (low 3 bits); byte 1 = repeat
//! count (>= 0xF0 repeats the stream 64..=1024 times, to reach the buffer and
//! flush limits cheaply); then two bytes per cut (u16, taken modulo the
//! stream length); the rest is the stream.

#![no_main]

use heavylift::http::response::CONTINUE;
use heavylift::http::target::{TargetForm, MAX_METHOD_BYTES};
use heavylift::http::{
    BodyKind, Next, RequestHead, RequestReader, Response, Version, MAX_BODY_BYTES,
    MAX_HEAD_BYTES,
};
use heavylift::router::{Request, Resolved, Router, Work};
use heavylift::routes::seed_router;
use heavylift::stats::Stats;
use libfuzzer_sys::fuzz_target;

/// Mirrors `server::connection::FLUSH_THRESHOLD`.
const FLUSH_THRESHOLD: usize = 64 * 1024;
/// The largest single answer: a status line and headers, plus a body that
/// echoes at most a request line's worth of `id` (or the /metrics page).
const MAX_ANSWER: usize = MAX_HEAD_BYTES + 8 * 1024;
/// Bytes in an IMF-fixdate, masked so runs a second apart compare equal.
const DATE_LEN: usize = 29;

/// One answer as encoded: status, whether its body was left out (HEAD),
/// and its bytes on the wire with the Date value masked.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    status: u16,
    head_only: bool,
    bytes: Vec<u8>,
}

/// What one connection did with a byte stream.
#[derive(Debug)]
struct Transcript {
    /// Every byte written to the socket, Date values masked.
    wire: Vec<u8>,
    /// The answers (100 Continue as status 100), in the order written.
    answers: Vec<Answer>,
    /// Whether the connection decided to close.
    closed: bool,
}

impl Transcript {
    /// What must not depend on how the bytes were cut: the final answers
    /// and whether the connection closed. A `100 Continue` is only owed
    /// while a body is missing, so whether one is sent does depend on it.
    fn finals(&self) -> (Vec<&Answer>, bool) {
        let finals = self.answers.iter().filter(|a| a.status != 100).collect();
        (finals, self.closed)
    }
}

/// What a routed head gets, as `server::connection::Plan`.
enum Plan {
    Serve(usize, Vec<(String, String)>),
    Answer(Response),
}

struct Model {
    router: Router,
    stats: Stats,
}

impl Model {
    fn new() -> Model {
        // `--max-job-body`'s default, 16 MiB.
        let router = seed_router(16 << 20);
        let stats = Stats::new(&[0], &[1], router.labels());
        Model { router, stats }
    }

    /// The answer to one complete request, as `Connection::answer` builds it.
    /// `Connection::route_head`: what a head gets, its body limit and
    /// whether the body is collected. Every queue has room here.
    fn route_head(&self, head: &RequestHead) -> (Plan, u64, bool) {
        match self.router.resolve(head) {
            Resolved::Answer(_, response) => (Plan::Answer(response), MAX_BODY_BYTES, false),
            Resolved::Route {
                index,
                route,
                params,
            } => {
                let request = Request {
                    head,
                    params: &params,
                    body: &[],
                    io_core: 0,
                    stats: &self.stats,
                };
                // Checks run on every kind of route (`connection::jobs::admit`).
                let refused = route
                    .handler
                    .check
                    .as_ref()
                    .and_then(|check| check(&request).err());
                match refused {
                    Some(response) => (Plan::Answer(response), route.handler.max_body, false),
                    None => (Plan::Serve(index, params), route.handler.max_body, true),
                }
            }
        }
    }

    /// `Connection::answer`: the response once the body is here.
    fn serve(&self, head: &RequestHead, plan: Plan, body: &[u8]) -> Response {
        match plan {
            Plan::Answer(response) => response,
            Plan::Serve(index, params) => match &self.router.routes()[index].handler.work {
                Work::Fast(handler) => handler(&Request {
                    head,
                    params: &params,
                    body,
                    io_core: 0,
                    stats: &self.stats,
                }),
                // The job itself needs a compute core; its answer is a 200.
                Work::Offload(_) | Work::Inline(_) => Response::text(200, "job stand-in"),
            },
        }
    }

    /// Feeds `reads` one after another, as the connection's read loop would.
    fn run(&self, reads: &[&[u8]]) -> Transcript {
        let mut reader = RequestReader::new();
        let mut current = None;
        let mut out = Vec::new();
        let mut t = Transcript {
            wire: Vec::new(),
            answers: Vec::new(),
            closed: false,
        };
        'reads: for read in reads {
            let mut rest = *read;
            while !rest.is_empty() {
                let spare = reader.spare();
                // The connection treats a full buffer as fatal: it must never be.
                assert!(!spare.is_empty(), "read buffer full while waiting for more");
                let n = spare.len().min(rest.len());
                spare[..n].copy_from_slice(&rest[..n]);
                reader.filled(n);
                rest = &rest[n..];
                let closed = self.process(&mut reader, &mut current, &mut out, &mut t);
                // Every byte of a body, framing included, counts (#11).
                if let Some((_, taken)) = reader.body_progress() {
                    assert!(taken <= MAX_BODY_BYTES, "a body took {taken} bytes");
                }
                if closed {
                    t.closed = true;
                    break 'reads;
                }
                flush(&mut out, &mut t.wire);
            }
        }
        flush(&mut out, &mut t.wire);
        t
    }

    /// `Connection::process_buffered`: true when the connection closes.
    fn process(
        &self,
        reader: &mut RequestReader,
        current: &mut Option<(RequestHead, Plan)>,
        out: &mut Vec<u8>,
        t: &mut Transcript,
    ) -> bool {
        loop {
            match reader.next_event() {
                Next::NeedMore => return false,
                Next::Continue => {
                    out.extend_from_slice(CONTINUE);
                    t.answers.push(Answer {
                        status: 100,
                        head_only: true,
                        bytes: CONTINUE.to_vec(),
                    });
                }
                Next::Error(err) => {
                    let response = Response::text(err.status(), err.reason());
                    let before = out.len();
                    response.encode_into(out, Version::Http11, false, false);
                    t.answers.push(answer(&response, false, &mut out[before..]));
                    // Errors are sticky: the stream stays broken.
                    assert!(matches!(reader.next_event(), Next::Error(e) if e == err));
                    return true;
                }
                Next::Head(head) => {
                    check_request_rules(&head);
                    let (plan, limit, collect) = self.route_head(&head);
                    if let (Plan::Answer(response), false) = (&plan, head.body == BodyKind::Empty)
                    {
                        // Decided before the body: answered now, then closed.
                        let head_only = head.method == "HEAD";
                        let before = out.len();
                        response.encode_into(out, head.version, false, head_only);
                        t.answers
                            .push(answer(response, head_only, &mut out[before..]));
                        return true;
                    }
                    // A refused limit shows up as the next event's error.
                    let _ = reader.begin_body(limit, collect);
                    *current = Some((head, plan));
                }
                Next::Body(body) => {
                    let Some((head, plan)) = current.take() else {
                        continue;
                    };
                    let head_only = head.method == "HEAD";
                    let response = self.serve(&head, plan, &body);
                    let before = out.len();
                    response.encode_into(out, head.version, head.keep_alive, head_only);
                    t.answers
                        .push(answer(&response, head_only, &mut out[before..]));
                    assert!(
                        out.len() < FLUSH_THRESHOLD + MAX_ANSWER,
                        "output buffer grew to {}",
                        out.len()
                    );
                    if !head.keep_alive {
                        return true;
                    }
                    if out.len() >= FLUSH_THRESHOLD {
                        flush(out, &mut t.wire);
                    }
                }
            }
        }
    }
}

/// What reaches a route obeys the v2 request rules (#11): a printable
/// target with no fragment, in a form that matches it, a method of at most
/// `MAX_METHOD_BYTES`, and never CONNECT.
fn check_request_rules(head: &RequestHead) {
    assert!(
        head.target
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'#'),
        "target {:?}",
        head.target
    );
    assert!(head.method.len() <= MAX_METHOD_BYTES && head.method != "CONNECT");
    match head.form {
        TargetForm::Asterisk => assert!(head.method == "OPTIONS" && head.target == "*"),
        TargetForm::Origin => assert!(head.target.starts_with('/')),
        TargetForm::Absolute { .. } => {
            assert!(head.path().starts_with('/') && head.target.contains("://"))
        }
    }
}

fn answer(response: &Response, head_only: bool, encoded: &mut [u8]) -> Answer {
    const DATE: &[u8] = b"\r\nDate: ";
    // The first "Date: " is the header's: the head comes before any body.
    if let Some(at) = find(encoded, DATE) {
        let start = at + DATE.len();
        let end = (start + DATE_LEN).min(encoded.len());
        encoded[start..end].fill(b'D');
    }
    Answer {
        status: response.status,
        head_only,
        bytes: encoded.to_vec(),
    }
}

/// "Writes" `out` to the socket.
fn flush(out: &mut Vec<u8>, wire: &mut Vec<u8>) {
    wire.append(out);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads the wire back answer by answer (status line, headers, then
/// `Content-Length` bytes unless the answer is head-only) and checks it
/// holds exactly `expected`, in order.
fn check_wire(mut wire: &[u8], expected: &[Answer]) {
    for (i, want) in expected.iter().enumerate() {
        assert!(
            wire.starts_with(b"HTTP/1.1 "),
            "answer {i} does not start with HTTP/1.1"
        );
        let end = find(wire, b"\r\n\r\n").expect("answer head ends") + 4;
        let head = std::str::from_utf8(&wire[..end]).expect("answer head is text");
        let status: u16 = head[9..12].parse().expect("three-digit status");
        assert_eq!(status, want.status, "answer {i} out of order");
        let length: usize = head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map_or(0, |v| v.parse().expect("Content-Length is a number"));
        let len = end + if want.head_only { 0 } else { length };
        assert_eq!(
            &wire[..len],
            want.bytes.as_slice(),
            "answer {i} differs on the wire"
        );
        wire = &wire[len..];
    }
    assert!(
        wire.is_empty(),
        "{} bytes after the last answer",
        wire.len()
    );
}

thread_local! {
    static MODEL: Model = Model::new();
}

fuzz_target!(|data: &[u8]| {
    let (Some(&cuts), Some(&repeat)) = (data.first(), data.get(1)) else {
        return;
    };
    let cuts = usize::from(cuts & 7);
    let Some(stream) = data.get(2 + 2 * cuts..) else {
        return;
    };
    let stream = if repeat >= 0xF0 {
        stream.repeat(usize::from(repeat - 0xEF) * 64)
    } else {
        stream.to_vec()
    };
    let mut points: Vec<usize> = data[2..2 + 2 * cuts]
        .chunks(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    points.sort_unstable();
    let mut reads = Vec::new();
    let mut at = 0;
    for p in points.into_iter().chain([stream.len()]) {
        reads.push(&stream[at..p]);
        at = p;
    }
    MODEL.with(|model| {
        let whole = model.run(&[&stream]);
        check_wire(&whole.wire, &whole.answers);
        let split = model.run(&reads);
        check_wire(&split.wire, &split.answers);
        assert_eq!(
            split.finals(),
            whole.finals(),
            "the cuts changed the result"
        );
        if stream.len() <= 512 {
            let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
            let bytewise = model.run(&bytewise);
            assert_eq!(
                bytewise.finals(),
                whole.finals(),
                "byte by byte changed the result"
            );
        }
    });
});

//! One client connection: read, parse every complete request in the buffer,
//! route, answer in order, write once per batch; keep-alive and timeouts.
//!
//! Requests on a connection are handled one at a time, so pipelined answers go
//! out in request order. Before waiting for an offloaded job the answers
//! already encoded are flushed, and while it waits the socket is still read:
//! bytes go into the pipeline buffer, EOF or an error cancels the job (once
//! that buffer is full, the socket's hang-up state is polled instead). Every
//! read sits under a deadline (header, idle or job timeout), the buffers are
//! bounded, and nothing a peer sends can panic this code. Between requests a
//! connection may be parked, holding only its stream and watch ([`serve`]).
//! Routing a head and encoding answers are in [`answer`]; job routes
//! (admission at the head, the wait for an offloaded job) in [`jobs`].

mod answer;
mod jobs;

use std::net::Shutdown as Direction;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::io_core::IoCore;
use super::timeouts::{Expired, Watch};
use crate::http::{Next, RequestHead, RequestReader, Response, MAX_BODY_BYTES};
use crate::jobs::{JobFn, JobInput};
use jobs::Admitted;

/// Encoded answers are written out once they pass this size, even mid-batch.
const FLUSH_THRESHOLD: usize = 64 * 1024;
/// How long a closing connection keeps reading (and discarding) in all, so
/// the client sees our last answer instead of a reset: bounded by time, never
/// by bytes, so a client that writes its whole body before reading still
/// sees a 413 (nginx's `lingering_time`, whose default this is).
const LINGER_TIME: Duration = Duration::from_secs(30);
/// Lingering ends when the client sends nothing for this long (nginx's
/// `lingering_timeout` is 5 s; 2 s has been ours since the first soak).
const LINGER_TIMEOUT: Duration = Duration::from_secs(2);
/// A connection idle between requests keeps its request state this long
/// (give or take the sweeper's tick) before it is parked (see [`serve`]),
/// while its core holds at most [`WARM_CONNECTIONS`] such connections.
const PARK_AFTER: Duration = Duration::from_millis(100);
/// Past this many unparked connections on a core, a connection parks as
/// soon as it is idle. Below it a busy keep-alive connection does not pay
/// to park and wake between requests (about 0.5 us a request, 3.5 %, in an
/// 8-pair `scripts/bench-ab.sh`); above it idle memory stays near 0.9 KiB
/// a connection, plus at most this many times about 2 KiB per core.
const WARM_CONNECTIONS: usize = 256;

/// Why a connection ended (logged at debug, hence the Debug-only fields).
#[allow(dead_code)]
#[derive(Debug)]
enum Closed {
    /// The peer closed or reset the connection.
    ByPeer,
    /// We answered with `Connection: close` of our own accord (an error,
    /// an answer before the body, shutdown).
    Answered,
    /// We answered a request whose client said it would close (`Connection:
    /// close`, or HTTP/1.0 without keep-alive).
    AsAsked,
    IdleTimeout,
    HeaderTimeout,
    /// A request body fell behind `--body-min-rate`; answered 408.
    BodyTimeout,
    /// Server shutdown reached the connection while it was idle.
    Shutdown,
    /// The client went away while its job was pending; the job was cancelled.
    ClientGone,
    Io(std::io::Error),
}

/// A request whose head has been routed while its body is read.
struct Current {
    head: RequestHead,
    plan: Plan,
}

/// A request answered by a job on a compute core, ready to be sent there;
/// the connection then awaits the job's outcome.
struct Offloaded {
    head: RequestHead,
    route: usize,
    job: JobFn,
    input: JobInput,
    admitted: Option<Admitted>,
}

/// What a routed head will get once its body is here.
enum Plan {
    /// The route at `index` serves it.
    Route {
        index: usize,
        params: Vec<(String, String)>,
        /// For an offloaded route: its admission.
        admitted: Option<Admitted>,
    },
    /// This answer, decided when the head arrived (404, 405, a check's 400,
    /// a 503); `route` is for metrics.
    Answer {
        route: Option<usize>,
        response: Response,
    },
    /// Answered already, when its head arrived (a refusal with a body, as
    /// nginx answers and then discards): its body is read and dropped, and
    /// nothing more is sent for it.
    Discard,
}

/// How [`Connection::run`] returned.
enum Ended {
    Closed(Closed),
    /// Idle (see [`serve`]): park until the client sends again, at the
    /// latest until `deadline`, then close for `why`.
    Idle {
        deadline: Instant,
        why: Closed,
    },
}

/// What processing the buffered bytes led to.
enum Step {
    /// Everything complete was handled; read more.
    NeedMore,
    /// Send what is encoded, then close gracefully.
    Close(Closed),
    /// The connection is unusable; drop it.
    Gone(Closed),
}

/// What a read under a deadline produced.
enum ReadEvent {
    Data(usize),
    Eof,
    TimedOut,
    Shutdown,
    Failed(std::io::Error),
}

/// Past this many bytes still in the kernel's send queue (unsent or not yet
/// acknowledged) a close the client asked for still lingers: a byte the
/// client sent after all would reset the connection and drop them.
const CLOSE_NOW_MAX_QUEUED: usize = 16 * 1024;

/// Whether the socket `fd` can be closed at once: nothing unread in the
/// kernel's receive queue (FIONREAD) and at most [`CLOSE_NOW_MAX_QUEUED`]
/// bytes in its send queue (TIOCOUTQ). `sent_bound` is an upper bound on
/// what the send queue can hold (the bytes written so far, when known);
/// within the limit it spares the second ioctl, as for every one-request
/// connection. False when either cannot be read.
fn quiet_to_close(fd: RawFd, sent_bound: usize) -> bool {
    let (mut unread, mut queued): (libc::c_int, libc::c_int) = (0, 0);
    // SAFETY: two ioctls that write one int each into our locals.
    unsafe {
        libc::ioctl(fd, libc::FIONREAD, &mut unread) == 0
            && unread == 0
            && (sent_bound <= CLOSE_NOW_MAX_QUEUED
                || libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) == 0
                    && (queued as usize) <= CLOSE_NOW_MAX_QUEUED)
    }
}

/// A new connection's state, ready for [`serve`].
pub fn open(core: Rc<IoCore>, mut stream: TcpStream) -> Box<Connection> {
    let _ = stream.set_write_timeout(Some(core.config.idle_timeout));
    // Waits for requests with a ring receive into a provided buffer, not a
    // poll then recv(2): one system call fewer per request (glommio patch
    // 16); idle connections still hold no read buffer.
    stream.set_ring_recv(core.config.ring_recv);
    let watch = core.timeouts.watch();
    unparked(core, stream, watch, 0, Instant::now())
}

/// A connection's request state around what it keeps while parked (its
/// stream, watch, answer count and opening time), fresh: an empty read
/// buffer, no request, no output. Counted as warm on its core.
fn unparked(
    core: Rc<IoCore>,
    stream: TcpStream,
    watch: Watch,
    answered: u64,
    opened: Instant,
) -> Box<Connection> {
    core.warm.set(core.warm.get() + 1);
    Box::new(Connection {
        core,
        stream,
        watch,
        reader: RequestReader::new(),
        current: None,
        // Allocated by the first answer (an idle connection holds less).
        out: Vec::new(),
        // A new connection has sent nothing; one rebuilt after parking may
        // still have its earlier answers queued.
        sent_bound: if answered == 0 { 0 } else { usize::MAX },
        answered,
        opened,
        body_limit: MAX_BODY_BYTES,
    })
}

/// Serves one connection until it closes. While a request is under way its
/// state lives in the boxed [`Connection`]. Between requests the connection
/// is parked: that box (read buffer, request state, output buffer) is
/// freed and the task waits, in about 300 bytes (the stream and its watch),
/// until the socket is readable; then the state is rebuilt and the bytes
/// are read. Idle connections then cost about 1 KiB each (task, the
/// stream's poll, the watch; issue 16 measured 4.0 KiB before) and the
/// memory of busy ones is reused, not held per connection. (The connection
/// comes in boxed, and the task holds nothing else, so that the task itself
/// stays that small: an async fn keeps its arguments for its whole life.)
pub async fn serve(mut conn: Box<Connection>) {
    let (closed, answered) = loop {
        let ended = Box::pin(conn.run()).await;
        conn.core.warm.set(conn.core.warm.get() - 1);
        let (deadline, why) = match ended {
            Ended::Closed(why) => break (why, conn.answered),
            Ended::Idle { deadline, why } => (deadline, why),
        };
        // Through a function, so the box and every field not kept (the read
        // buffer, the request state) are freed now, not when `conn` is
        // assigned again after the wait.
        let Connection {
            core,
            mut stream,
            watch,
            answered,
            opened,
            ..
        } = unbox(conn);
        match wait_parked(&mut stream, &watch, deadline).await {
            Parked::Readable => conn = unparked(core, stream, watch, answered, opened),
            Parked::TimedOut => break (why, answered),
            Parked::Shutdown => break (Closed::Shutdown, answered),
            Parked::Failed(err) => break (Closed::Io(err), answered),
        }
    };
    log::debug!("connection closed after {answered} answers: {closed:?}");
}

// The point is the box: consuming it here frees it now.
#[allow(clippy::boxed_local)]
fn unbox<T>(boxed: Box<T>) -> T {
    *boxed
}

/// How a parked connection's wait ended.
enum Parked {
    /// Something to read: bytes, the end of the stream, or an error.
    Readable,
    TimedOut,
    Shutdown,
    Failed(std::io::Error),
}

/// A parked connection's wait: until its socket is readable, until
/// `deadline`, or until shutdown.
async fn wait_parked(stream: &mut TcpStream, watch: &Watch, deadline: Instant) -> Parked {
    match watch.within(deadline, true, stream.readable()).await {
        Ok(Ok(())) => Parked::Readable,
        Ok(Err(err)) => Parked::Failed(err.into()),
        Err(Expired::Deadline) => Parked::TimedOut,
        Err(Expired::Shutdown) => Parked::Shutdown,
    }
}

/// One connection's state while it is not parked (see [`serve`]).
pub struct Connection {
    core: Rc<IoCore>,
    stream: TcpStream,
    /// This connection's read deadline and shutdown wake-up.
    watch: Watch,
    /// The inbound byte path: read buffer, request framing, bodies.
    reader: RequestReader,
    /// The request whose body is being read, routed already.
    current: Option<Current>,
    /// Encoded answers not yet written.
    out: Vec<u8>,
    /// At least the bytes this connection may still have in the kernel's
    /// send queue: those written since it opened, `usize::MAX` (unknown)
    /// once it has been parked. Spares [`quiet_to_close`] an ioctl.
    sent_bound: usize,
    answered: u64,
    opened: Instant,
    /// The body limit of the request being read, for its 413's reason.
    body_limit: u64,
}

impl Connection {
    async fn run(&mut self) -> Ended {
        match self.serve_requests().await {
            Ok(why) => Ended::Closed(why),
            Err(idle) => idle,
        }
    }

    /// [`Connection::run`]'s loop: `Ok` when the connection closes, `Err`
    /// when it should park.
    async fn serve_requests(&mut self) -> Result<Closed, Ended> {
        let answered_before = self.answered;
        loop {
            match self.process_buffered().await {
                Step::NeedMore => {}
                // RFC 9112 §9.6: a client that sent `close` sends no further
                // request, so once its answer is written the connection can
                // close at once, without the half-close and linger (a
                // shutdown, a read and a wake-up per connection), when that
                // cannot turn into a reset that loses the answer: nothing is
                // left unread (here or in the kernel: a stray CRLF after a
                // body, RFC 9112 §2.2; nginx checks the same) and little of
                // the answer is still queued to send.
                Step::Close(Closed::AsAsked) if self.reader.is_idle() => {
                    if self.flush().await.is_ok()
                        && !quiet_to_close(self.stream.as_raw_fd(), self.sent_bound)
                    {
                        self.close_gracefully(LINGER_TIME).await;
                    }
                    return Ok(Closed::AsAsked);
                }
                Step::Close(why) => {
                    self.close_gracefully(LINGER_TIME).await;
                    return Ok(why);
                }
                Step::Gone(why) => return Ok(why),
            }
            if let Err(err) = self.flush().await {
                return Ok(Closed::Io(err));
            }
            let idle = self.reader.is_idle();
            if idle && self.core.shutdown.is_fired() {
                return Ok(Closed::Shutdown);
            }
            let cfg = &self.core.config;
            let now = Instant::now();
            let (deadline, on_timeout) = if let Some((since, taken)) = self.reader.body_progress() {
                // mod_reqtimeout's rule: --header-timeout from the body's
                // start, one more second per --body-min-rate bytes received.
                // In proportion, as mod_reqtimeout's rate factor does, not
                // in whole seconds: half the rate's bytes earn half a second.
                let rate = u128::from(cfg.body_min_rate.max(1));
                let earned_us = u128::from(taken) * 1_000_000 / rate;
                let earned = Duration::from_micros(u64::try_from(earned_us).unwrap_or(u64::MAX));
                (since + cfg.header_timeout + earned, Closed::BodyTimeout)
            } else if !idle {
                (
                    self.reader.head_since().unwrap_or(now) + cfg.header_timeout,
                    Closed::HeaderTimeout,
                )
            } else if self.answered == 0 {
                (self.opened + cfg.header_timeout, Closed::HeaderTimeout)
            } else {
                (now + cfg.idle_timeout, Closed::IdleTimeout)
            };
            // Parked rather than held (see `serve`) when idle with nothing to
            // write: once a read finds nothing, in a run that has answered
            // nothing yet (a new connection, or one just woken from a park);
            // else at once when the core holds many unparked connections,
            // or after PARK_AFTER.
            let parks = idle && self.current.is_none() && self.out.is_empty() && now < deadline;
            let park = |why| Err(Ended::Idle { deadline, why });
            if parks && self.answered == answered_before {
                match future::poll_once(read_some(&mut self.stream, self.reader.spare())).await {
                    Some(Ok(0)) => return Ok(Closed::ByPeer),
                    Some(Ok(n)) => {
                        self.reader.filled(n);
                        continue;
                    }
                    Some(Err(err)) => return Ok(Closed::Io(err)),
                    None => return park(on_timeout),
                }
            }
            if parks && self.core.warm.get() > WARM_CONNECTIONS {
                return park(on_timeout);
            }
            let park_at = now + PARK_AFTER;
            let parks = parks && park_at < deadline;
            match self
                .read_until(if parks { park_at } else { deadline }, idle)
                .await
            {
                ReadEvent::TimedOut if parks => return park(on_timeout),
                ReadEvent::Data(n) => self.reader.filled(n),
                ReadEvent::Eof => return Ok(Closed::ByPeer),
                ReadEvent::TimedOut if matches!(on_timeout, Closed::BodyTimeout) => {
                    // A 408 unless its request was answered already (a
                    // refusal whose body is only discarded).
                    if !self.discarding() {
                        let to = self.answering();
                        let _ = self.reject(408, "request body arrived too slowly", to);
                    }
                    // A trickling client gets no long linger on top.
                    self.close_gracefully(LINGER_TIMEOUT).await;
                    return Ok(on_timeout);
                }
                ReadEvent::TimedOut => return Ok(on_timeout),
                ReadEvent::Shutdown => return Ok(Closed::Shutdown),
                ReadEvent::Failed(err) => return Ok(Closed::Io(err)),
            }
        }
    }

    /// Handles every complete request in the buffer, in order.
    async fn process_buffered(&mut self) -> Step {
        loop {
            match self.reader.next_event() {
                Next::NeedMore => return Step::NeedMore,
                Next::Continue => self.out.extend_from_slice(crate::http::response::CONTINUE),
                Next::Error(err) => {
                    log::debug!("bad request: {err}");
                    let to = self.answering();
                    return self.reject_parse(&err, to);
                }
                Next::Head(head) => {
                    if let Err(step) = self.route_head(head) {
                        return step;
                    }
                }
                Next::Body(body) => {
                    let Some(current) = self.current.take() else {
                        continue;
                    };
                    let step = match self.answer_now(current, body) {
                        Ok(step) => step,
                        // Boxed: the wait's state would otherwise be part of
                        // every connection's future (2080 -> 1352 bytes per
                        // connection, with the other boxed waits); only
                        // offloaded jobs pay the allocation.
                        Err(offloaded) => Box::pin(self.answer_offloaded(offloaded)).await,
                    };
                    match step {
                        Step::NeedMore if self.out.len() >= FLUSH_THRESHOLD => {
                            if let Err(err) = Box::pin(self.flush()).await {
                                return Step::Gone(Closed::Io(err));
                            }
                        }
                        Step::NeedMore => {}
                        other => return other,
                    }
                }
            }
        }
    }

    /// Reads once into the buffer, bounded by `deadline` (give or take the
    /// sweeper's tick); when `idle`, server shutdown also ends the wait.
    async fn read_until(&mut self, deadline: Instant, idle: bool) -> ReadEvent {
        let stream = &mut self.stream;
        let spare = self.reader.spare();
        if spare.is_empty() {
            // Cannot happen with heads capped at 8 KiB, but never spin.
            return ReadEvent::Failed(std::io::Error::other("read buffer full"));
        }
        match self
            .watch
            .within(deadline, idle, read_some(stream, spare))
            .await
        {
            Ok(Ok(0)) => ReadEvent::Eof,
            Ok(Ok(n)) => ReadEvent::Data(n),
            Ok(Err(err)) => ReadEvent::Failed(err),
            Err(Expired::Deadline) => ReadEvent::TimedOut,
            Err(Expired::Shutdown) => ReadEvent::Shutdown,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.stream.write_all(&self.out).await;
        self.sent_bound = self.sent_bound.saturating_add(self.out.len());
        self.out.clear();
        if self.out.capacity() > 4 * FLUSH_THRESHOLD {
            self.out.shrink_to(FLUSH_THRESHOLD);
        }
        result
    }

    /// Writes the last answer, then half-closes and discards what the client
    /// still sends, so our answer is read rather than reset: until the client
    /// closes, is quiet for [`LINGER_TIMEOUT`], or `most` (normally
    /// [`LINGER_TIME`]) has passed; at most `LINGER_TIMEOUT` more once the
    /// server is stopping.
    async fn close_gracefully(&mut self, most: Duration) {
        // The request being read is over: a queue place held for it (the
        // 413 or 408 of an admitted upload) is given back now, not after
        // the linger (a review found it held up to LINGER_TIME).
        self.current = None;
        if self.flush().await.is_err() {
            return;
        }
        if self.stream.shutdown(Direction::Write).await.is_err() {
            return;
        }
        let mut end = Instant::now() + most;
        loop {
            self.reader.discard();
            let stopping = self.core.shutdown.is_fired();
            if stopping {
                end = end.min(Instant::now() + LINGER_TIMEOUT);
            }
            let deadline = end.min(Instant::now() + LINGER_TIMEOUT);
            match self.read_until(deadline, !stopping).await {
                ReadEvent::Data(_) | ReadEvent::Shutdown => {}
                ReadEvent::Eof | ReadEvent::TimedOut | ReadEvent::Failed(_) => return,
            }
        }
    }
}

async fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    stream.read(buf).await
}

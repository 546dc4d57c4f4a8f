//! `heavylift bench`: a sustained mixed load for `--duration`.
//!
//! One glommio task per connection: `--connections` fast loops send
//! `/fast?id=<loop>` back to back on a keep-alive connection (the request
//! bytes are built once), and `--slow-concurrency` slow loops each send one
//! `/<slow-path>?id=<seq>&n=N` at a time on their own connection. Every
//! request runs under min(per-request timeout, time left), so the run ends
//! on time: a request still waiting then is abandoned and counted as
//! unfinished, not as an error. Failures never abort the run: a 503 makes
//! its slow loop pause briefly ([`PAUSE_AFTER_503`]), a connection error
//! makes the loop reconnect with a bounded exponential backoff. `/stats` is
//! read before and after for per-I/O-core counts; `progress.rs` shows the
//! run on stderr meanwhile, `report.rs` prints the result and `svg.rs`
//! draws it.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::http::{get_request, request, ClientError, Connection, Response};
use super::progress::{self, Counts, Progress};
use super::report::{parse_stats, per_core, CoreRate, Recorder, Report};
use super::timeline::{Outcome, SlowSpan};
use super::{check_n, check_reachable, parse_secs, parse_target, run_on_executor, svg};
use super::{SlowBody, SlowPath, Target, MAX_CONNECTIONS};

/// How long a slow loop waits after a 503 before its next request.
const PAUSE_AFTER_503: Duration = Duration::from_millis(100);
/// First and largest wait before reconnecting after a connection error.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Each `/stats` request may take this long.
const STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// `bench`'s validated flags.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub target: Target,
    pub duration: Duration,
    pub connections: usize,
    pub slow_concurrency: usize,
    pub slow_path: SlowPath,
    pub n: u32,
    /// Method and body of the slow requests.
    pub slow_body: SlowBody,
    pub svg: Option<PathBuf>,
    pub json: bool,
    /// How progress is shown on stderr (rewritten, plain lines, or not).
    pub progress: Progress,
    /// Per request, connect included.
    pub timeout: Duration,
}

impl TryFrom<&crate::cli::BenchArgs> for BenchConfig {
    type Error = anyhow::Error;

    fn try_from(args: &crate::cli::BenchArgs) -> anyhow::Result<BenchConfig> {
        if args.connections == 0 {
            bail!("bad --connections 0: at least one fast connection is needed");
        }
        let total = args.connections.saturating_add(args.slow_concurrency);
        if total > MAX_CONNECTIONS {
            bail!("--connections + --slow-concurrency is {total}; at most {MAX_CONNECTIONS} connections");
        }
        Ok(BenchConfig {
            target: parse_target(&args.target)?,
            duration: parse_secs("--duration", &args.duration)?,
            connections: args.connections,
            slow_concurrency: args.slow_concurrency,
            slow_path: SlowPath::parse(&args.slow_path)?,
            slow_body: SlowBody::from_args(&args.body)?,
            n: check_n(args.n)?,
            svg: args.svg.clone(),
            json: args.json,
            progress: Progress::choose(args.quiet, args.progress, std::io::stderr().is_terminal()),
            timeout: parse_secs("--timeout", &args.timeout)?,
        })
    }
}

/// What every task of a run shares (all on one executor thread).
struct Run {
    config: BenchConfig,
    start: Instant,
    end: Instant,
    rec: RefCell<Recorder>,
    next_slow_id: Cell<u64>,
}

impl Run {
    /// Time left, `None` once the run is over.
    fn left(&self) -> Option<Duration> {
        Some(self.end.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero())
    }

    /// A request's budget: the timeout, or less near the end. The flag says
    /// the end cut it short (so a timeout means "unfinished").
    fn budget(&self) -> Option<(Duration, bool)> {
        self.left()
            .map(|left| (left.min(self.config.timeout), left < self.config.timeout))
    }

    /// Sleeps `d`, or until the end of the run.
    async fn pause(&self, d: Duration) {
        if let Some(left) = self.left() {
            glommio::timer::sleep(d.min(left)).await;
        }
    }
}

/// Doubling waits between reconnects, reset by a success.
struct Backoff(Duration);

impl Backoff {
    async fn wait(&mut self, run: &Run) {
        run.pause(self.0).await;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
    }
}

/// Sorts one exchange into an [`Outcome`] (with a detail for "other").
fn classify(
    result: Result<Response<'_>, ClientError>,
    body_ok: impl Fn(&[u8]) -> bool,
    cut_by_end: bool,
) -> (Outcome, Option<String>) {
    match result {
        Ok(r) if r.is_success() && body_ok(r.body) => (Outcome::Ok, None),
        Ok(r) if r.is_success() => {
            let body = String::from_utf8_lossy(&r.body[..r.body.len().min(80)]).into_owned();
            (Outcome::Other, Some(format!("unexpected body {body:?}")))
        }
        Ok(r) => (Outcome::Status(r.status), None),
        Err(ClientError::TimedOut(_)) if cut_by_end => (Outcome::Unfinished, None),
        Err(ClientError::TimedOut(_)) => (Outcome::TimedOut, None),
        Err(ClientError::Connect(_)) => (Outcome::Connect, None),
        Err(ClientError::Reset(_)) => (Outcome::Reset, None),
        Err(e) => (Outcome::Other, Some(e.to_string())),
    }
}

/// Makes sure `conn` holds a usable connection; false when the run is over.
/// Connect errors are recorded for the fast loops (`slow_lane` is `None`) or
/// the given slow loop.
async fn ensure_connected(
    run: &Run,
    conn: &mut Option<Connection>,
    backoff: &mut Backoff,
    slow_lane: Option<usize>,
) -> bool {
    loop {
        if conn.as_ref().is_some_and(Connection::is_reusable) {
            return true;
        }
        *conn = None;
        let Some((budget, _)) = run.budget() else {
            return false;
        };
        match Connection::connect(run.config.target.addr, budget).await {
            Ok(c) => *conn = Some(c),
            Err(_) if run.left().is_none() => return false,
            Err(e) => {
                log::debug!("connect to {} failed: {e}", run.config.target);
                let at = run.start.elapsed();
                let outcome = Outcome::Connect;
                match slow_lane {
                    None => run
                        .rec
                        .borrow_mut()
                        .record_fast(at, Duration::ZERO, outcome, None),
                    Some(lane) => {
                        let span = SlowSpan {
                            lane,
                            start: at,
                            end: at,
                            outcome,
                        };
                        run.rec.borrow_mut().record_slow(span, None);
                    }
                }
                backoff.wait(run).await;
            }
        }
    }
}

async fn fast_loop(run: Rc<Run>, index: usize) {
    let request = get_request(&run.config.target.host, &format!("/fast?id={index}"));
    let expected = format!("fast result {index}");
    let mut conn = None;
    let mut backoff = Backoff(BACKOFF_MIN);
    while ensure_connected(&run, &mut conn, &mut backoff, None).await {
        let (Some(c), Some((budget, cut))) = (conn.as_mut(), run.budget()) else {
            break;
        };
        let t0 = Instant::now();
        let result = c.request(&request, budget).await;
        let latency = t0.elapsed();
        let (outcome, detail) = classify(result, |b| b == expected.as_bytes(), cut);
        run.rec
            .borrow_mut()
            .record_fast(run.start.elapsed(), latency, outcome, detail);
        match outcome {
            Outcome::Unfinished => break,
            Outcome::Ok => backoff.0 = BACKOFF_MIN,
            Outcome::Status(_) => {}
            _ => {
                conn = None;
                backoff.wait(&run).await;
            }
        }
    }
}

async fn slow_loop(run: Rc<Run>, lane: usize) {
    let config = &run.config;
    let mut conn = None;
    let mut backoff = Backoff(BACKOFF_MIN);
    while ensure_connected(&run, &mut conn, &mut backoff, Some(lane)).await {
        let (Some(c), Some((budget, cut))) = (conn.as_mut(), run.budget()) else {
            break;
        };
        let id = run.next_slow_id.replace(run.next_slow_id.get() + 1);
        let path = config.slow_path.target(id, config.n);
        let slow = &config.slow_body;
        let request = request(&slow.method, &config.target.host, &path, &slow.body);
        let expected = config.slow_path.expected_body(id);
        let start = run.start.elapsed();
        let result = c.request(&request, budget).await;
        let (outcome, detail) = classify(
            result,
            |b| {
                expected
                    .as_ref()
                    .is_none_or(|e| b.starts_with(e.as_bytes()))
            },
            cut,
        );
        let end = if outcome == Outcome::Unfinished {
            config.duration
        } else {
            run.start.elapsed()
        };
        let span = SlowSpan {
            lane,
            start,
            end,
            outcome,
        };
        run.rec.borrow_mut().record_slow(span, detail);
        match outcome {
            Outcome::Unfinished => break,
            Outcome::Ok => backoff.0 = BACKOFF_MIN,
            Outcome::Status(503) => run.pause(PAUSE_AFTER_503).await,
            Outcome::Status(_) => {}
            _ => {
                conn = None;
                backoff.wait(&run).await;
            }
        }
    }
}

/// Shows progress until the end of the run (see `progress.rs`).
async fn progress(run: Rc<Run>) {
    let counts = || {
        let rec = run.rec.borrow();
        Counts {
            fast_done: rec.fast.completed(),
            slow_done: rec.slow.completed(),
            errors: rec.fast.failed() + rec.slow.failed(),
        }
    };
    progress::show(run.config.progress, run.start, run.end, counts).await;
}

/// `io_cores[].{core, requests}` from the target's `/stats`.
async fn fetch_stats(target: &Target) -> Result<Vec<(u64, u64)>, String> {
    let request = get_request(&target.host, "/stats");
    let mut conn = Connection::connect(target.addr, STATS_TIMEOUT)
        .await
        .map_err(|e| format!("GET /stats: {e}"))?;
    let r = conn
        .request(&request, STATS_TIMEOUT)
        .await
        .map_err(|e| format!("GET /stats: {e}"))?;
    if !r.is_success() {
        return Err(format!("GET /stats answered {} {}", r.status, r.reason));
    }
    parse_stats(r.body).ok_or_else(|| "GET /stats did not answer io_cores[].requests".into())
}

struct Outcomes {
    rec: Recorder,
    elapsed: Duration,
    cores: Result<Vec<CoreRate>, String>,
}

async fn drive(config: BenchConfig) -> Outcomes {
    let before = fetch_stats(&config.target).await;
    let start = Instant::now();
    let run = Rc::new(Run {
        rec: RefCell::new(Recorder::new(config.duration, config.slow_concurrency)),
        end: start + config.duration,
        start,
        next_slow_id: Cell::new(0),
        config,
    });
    let mut tasks = Vec::new();
    for lane in 0..run.config.slow_concurrency {
        tasks.push(glommio::spawn_local(slow_loop(run.clone(), lane)));
    }
    for index in 0..run.config.connections {
        tasks.push(glommio::spawn_local(fast_loop(run.clone(), index)));
    }
    tasks.push(glommio::spawn_local(progress(run.clone())));
    for task in tasks {
        task.await;
    }
    let elapsed = start.elapsed();
    let cores = match before {
        Ok(before) => fetch_stats(&run.config.target)
            .await
            .map(|after| per_core(&before, &after, elapsed)),
        Err(e) => Err(e),
    };
    // Every task has ended, so this is the last reference.
    let rec = match Rc::try_unwrap(run) {
        Ok(run) => run.rec.into_inner(),
        Err(run) => run.rec.borrow().clone(),
    };
    Outcomes {
        rec,
        elapsed,
        cores,
    }
}

pub fn run(config: &BenchConfig) -> anyhow::Result<ExitCode> {
    check_reachable(&config.target, config.timeout)?;
    // Open the picture's file first: a bad path is a usage error, not a lost run.
    let svg_file = match &config.svg {
        Some(path) => Some(
            File::create(path)
                .with_context(|| format!("cannot create --svg {}", path.display()))?,
        ),
        None => None,
    };
    let Outcomes {
        rec,
        elapsed,
        cores,
    } = run_on_executor(drive(config.clone()))?;
    let failed = rec.fast.failed() + rec.slow.failed();
    let exit_code = u8::from(failed > 0);
    let report = Report {
        config,
        rec: &rec,
        elapsed,
        cores,
        exit_code,
    };
    if let (Some(mut file), Some(path)) = (svg_file, &config.svg) {
        let (title, summary) = report.svg_heading();
        let picture = svg::render(&rec.timeline, &title, &summary, &report.verdict());
        file.write_all(picture.as_bytes())
            .with_context(|| format!("cannot write --svg {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if config.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report.json())?)?;
    } else {
        write!(out, "{}", report.text())?;
    }
    out.flush()?;
    Ok(ExitCode::from(exit_code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &[u8]) -> Result<Response<'_>, ClientError> {
        Ok(Response {
            status,
            reason: "",
            body,
        })
    }

    #[test]
    fn classify_sorts_outcomes() {
        let fast = |b: &[u8]| b == b"fast result 1";
        assert_eq!(
            classify(response(200, b"fast result 1"), fast, false).0,
            Outcome::Ok
        );
        let (o, detail) = classify(response(200, b"fast result 2"), fast, false);
        assert_eq!(o, Outcome::Other);
        assert!(detail.unwrap().contains("fast result 2"));
        assert_eq!(
            classify(response(503, b""), fast, false).0,
            Outcome::Status(503)
        );
        let timeout = || Err(ClientError::TimedOut(Duration::from_secs(1)));
        assert_eq!(classify(timeout(), fast, false).0, Outcome::TimedOut);
        assert_eq!(classify(timeout(), fast, true).0, Outcome::Unfinished);
        let reset = Err(ClientError::Reset("x".into()));
        assert_eq!(classify(reset, fast, false).0, Outcome::Reset);
    }
}

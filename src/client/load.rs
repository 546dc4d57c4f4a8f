//! `heavylift load`: the seed's `call_multi.py`, done properly.
//!
//! After one reachability check it schedules K slow requests (in order) and
//! then M fast ones, all in flight at once, each on its own connection and
//! its own glommio task. In text mode it prints the schedule, then every
//! body (or failure) the moment its response completes, then a summary per
//! kind and the line that is the whole point: whether every fast request
//! finished before the first slow one. `--json` prints one document instead.
//! The summary itself is `load_summary.rs`.

use std::cell::RefCell;
use std::io::Write;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::http::{get_request, request, ClientError, Connection};
use super::load_summary::{summary_text, to_json, Finished, Kind};
use super::{check_n, check_reachable, parse_secs, parse_target};
use super::{run_on_executor, SlowBody, SlowPath, Target, MAX_CONNECTIONS};
use anyhow::bail;

/// `load`'s validated flags.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub target: Target,
    pub slow: usize,
    pub fast: usize,
    pub slow_path: SlowPath,
    pub n: u32,
    /// Method and body of the slow requests.
    pub slow_body: SlowBody,
    pub json: bool,
    /// Per request, connect included.
    pub timeout: Duration,
}

impl TryFrom<&crate::cli::LoadArgs> for LoadConfig {
    type Error = anyhow::Error;

    fn try_from(args: &crate::cli::LoadArgs) -> anyhow::Result<LoadConfig> {
        let total = args.slow.saturating_add(args.fast);
        if total == 0 {
            bail!("nothing to send: --slow and --fast are both 0");
        }
        if total > MAX_CONNECTIONS {
            bail!("--slow + --fast is {total}; at most {MAX_CONNECTIONS} requests can be in flight at once");
        }
        Ok(LoadConfig {
            target: parse_target(&args.target)?,
            slow: args.slow,
            fast: args.fast,
            slow_path: SlowPath::parse(&args.slow_path)?,
            slow_body: SlowBody::from_args(&args.body)?,
            n: check_n(args.n)?,
            json: args.json,
            timeout: parse_secs("--timeout", &args.timeout)?,
        })
    }
}

/// The path of request `id`: slow ones come first.
fn path_of(config: &LoadConfig, kind: Kind, id: usize) -> String {
    match kind {
        Kind::Slow => config.slow_path.target(id, config.n),
        Kind::Fast => format!("/fast?id={id}"),
    }
}

pub fn run(config: &LoadConfig) -> anyhow::Result<ExitCode> {
    check_reachable(&config.target, config.timeout)?;
    let plan: Vec<(Kind, usize)> = (0..config.slow + config.fast)
        .map(|id| {
            (
                if id < config.slow {
                    Kind::Slow
                } else {
                    Kind::Fast
                },
                id,
            )
        })
        .collect();
    if !config.json {
        let mut out = std::io::stdout().lock();
        for &(kind, id) in &plan {
            writeln!(
                out,
                "Scheduling: http://{}{}",
                config.target,
                path_of(config, kind, id)
            )?;
        }
        writeln!(out, "Start sending requests....")?;
        out.flush()?;
    }
    let done = Rc::new(RefCell::new(Vec::with_capacity(plan.len())));
    let sink = done.clone();
    let cfg = config.clone();
    let start = run_on_executor(async move {
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(plan.len());
        for (kind, id) in plan {
            let path = path_of(&cfg, kind, id);
            let request = match kind {
                Kind::Slow => {
                    let slow = &cfg.slow_body;
                    request(&slow.method, &cfg.target.host, &path, &slow.body)
                }
                Kind::Fast => get_request(&cfg.target.host, &path),
            };
            let (addr, timeout, json, sink) =
                (cfg.target.addr, cfg.timeout, cfg.json, sink.clone());
            tasks.push(glommio::spawn_local(async move {
                let t0 = Instant::now();
                let result = send_one(addr, &request, timeout).await;
                let latency = t0.elapsed();
                let finished = finish(kind, id, result, timeout, latency, start.elapsed());
                if !json {
                    print_finished(&finished);
                }
                sink.borrow_mut().push(finished);
            }));
        }
        for task in tasks {
            task.await;
        }
        start
    })?;
    let total = start.elapsed();
    let done = done.take();
    let exit = if done.iter().all(Finished::is_ok) {
        0
    } else {
        1
    };
    let mut out = std::io::stdout().lock();
    if config.json {
        let doc = to_json(config, &done, total, exit);
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        write!(out, "{}", summary_text(&done, total))?;
    }
    out.flush()?;
    Ok(ExitCode::from(exit))
}

/// One request on a fresh connection: `(status, reason, body)`.
async fn send_one(
    addr: std::net::SocketAddr,
    request: &[u8],
    timeout: Duration,
) -> Result<(u16, String, String), ClientError> {
    let t0 = Instant::now();
    let mut conn = Connection::connect(addr, timeout).await?;
    let r = conn
        .request(request, timeout.saturating_sub(t0.elapsed()))
        .await?;
    // A binary answer (a gzip, an image) is summed up, not printed.
    let body = std::str::from_utf8(r.body).map_or_else(
        |_| format!("<{} bytes of binary body>", r.body.len()),
        str::to_owned,
    );
    Ok((r.status, r.reason.to_string(), body))
}

fn finish(
    kind: Kind,
    id: usize,
    result: Result<(u16, String, String), ClientError>,
    timeout: Duration,
    latency: Duration,
    finished_at: Duration,
) -> Finished {
    let (status, body, error) = match result {
        Ok((status, _, body)) if (200..300).contains(&status) => (Some(status), Some(body), None),
        Ok((status, reason, body)) => {
            let error = format!("{status} {reason}: {body}");
            (Some(status), Some(body), Some(error))
        }
        Err(ClientError::Connect(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
            (None, None, Some(ClientError::TimedOut(timeout).to_string()))
        }
        Err(ClientError::TimedOut(_)) => {
            (None, None, Some(ClientError::TimedOut(timeout).to_string()))
        }
        Err(e) => (None, None, Some(e.to_string())),
    };
    Finished {
        kind,
        id,
        status,
        body,
        error,
        latency,
        finished_at,
    }
}

fn print_finished(f: &Finished) {
    let mut out = std::io::stdout().lock();
    let _ = match (&f.error, &f.body) {
        (None, Some(body)) => writeln!(out, "{body}"),
        (Some(err), _) => writeln!(out, "request {} ({}) failed: {err}", f.id, f.kind.as_str()),
        (None, None) => Ok(()),
    };
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_described() {
        let t = Duration::from_secs(60);
        let timed_out = finish(Kind::Fast, 5, Err(ClientError::TimedOut(t)), t, t, t);
        assert_eq!(timed_out.error.as_deref(), Some("timed out after 60 s"));
        assert_eq!(timed_out.status, None);
        let busy = finish(
            Kind::Fast,
            5,
            Ok((503, "Service Unavailable".into(), "queue full".into())),
            t,
            t,
            t,
        );
        assert_eq!(
            busy.error.as_deref(),
            Some("503 Service Unavailable: queue full")
        );
    }
}

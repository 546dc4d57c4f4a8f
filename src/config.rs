//! Validated, typed configuration for `serve`.
//!
//! `ServeConfig::try_from(&ServeArgs)` is the only place raw flags become real
//! settings: addresses are resolved, seconds become `Duration`s, core lists
//! become a `CoreLayout`. Every error happens here, before any executor starts.
//! Tests and embedders build `ServeConfig` directly (see `ServeConfig::new`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

#[cfg(feature = "cli")]
use crate::cli::ServeArgs;
#[cfg(feature = "cli")]
use crate::cores::CpuList;
use crate::cores::{ComputePriority, CoreLayout};
use crate::error::{Error, Result};
use crate::jobs::process::ExternalWorker;

/// Largest `--queue-depth`; bounds the memory of the job channels.
pub const MAX_QUEUE_DEPTH: usize = 65_536;
/// Largest value accepted for any of the `*-timeout` flags (one day).
pub const MAX_TIMEOUT_SECS: f64 = 86_400.0;

/// Everything `Server::start` needs, already checked.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address every I/O core listens on. Port 0 picks one free port for all. Default is 127.0.0.1:8888.
    pub listen: SocketAddr,
    /// Which CPUs do I/O and which run jobs.
    pub layout: CoreLayout,
    /// Jobs that may wait per compute core, the running one not counted. Default is 64.
    pub queue_depth: usize,
    /// Time from dispatch after which an offloaded job answers 504. Default is 30 s.
    pub job_timeout: Duration,
    /// Time a request line and headers may take to arrive. Default is 10 s.
    pub header_timeout: Duration,
    /// Time an idle keep-alive connection stays open. Default is 60 s.
    pub idle_timeout: Duration,
    /// Largest request body `POST /gzip` takes, framing included (413 past
    /// it); other routes keep their own limit (1 MiB unless they set one).
    /// Default is 16 MiB.
    pub max_job_body: u64,
    /// Bytes per second a request body must keep up: its deadline is
    /// `header_timeout` from its start plus one second per this many bytes
    /// received, else 408 and close (Apache mod_reqtimeout's `minrate`).
    /// Default is 1024.
    pub body_min_rate: u64,
    /// Open connections allowed over all I/O cores. Default is 10000.
    pub max_connections: usize,
    /// Scheduling class of the compute threads. Default is `Normal`.
    pub compute_priority: ComputePriority,
    /// Where jobs run: on the compute executors' threads, or in one
    /// supervised worker process per compute core. Default is `Thread`.
    pub isolation: Isolation,
    /// Process isolation: time from a job's cancel (timeout or hang-up) to
    /// the SIGKILL of a worker whose job is still running. Default is 0.5 s.
    pub kill_grace: Duration,
    /// Process isolation: address-space cap (RLIMIT_AS) of each worker, in
    /// bytes. Default is `None` (unlimited).
    pub job_memory: Option<u64>,
    /// An external worker program (`--worker-cmd`, from
    /// [`ExternalWorker::probe`]) that runs every offloaded job instead of
    /// this binary; needs `isolation: Process`. Default is `None`.
    pub external: Option<ExternalWorker>,
    /// Wait for a connection's next bytes with an io_uring receive into a
    /// ring of provided buffers (Linux 5.19+: one system call fewer per
    /// keep-alive request, measured 2.2 -> 1.2 on the I/O core), not a poll
    /// followed by recv(2). Kernels without such rings get the poll either
    /// way; `false` asks for it everywhere (to compare, or to test that
    /// path). Default is `true`.
    pub ring_recv: bool,
}

/// Where offloaded jobs run (`--isolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// On the compute executors' own threads: fastest, but a job that
    /// ignores its cancel flag keeps its core, and a crash takes the server.
    #[default]
    Thread,
    /// In one worker process per compute core, pinned to it: a runaway job is
    /// killed after the grace, a crashing one costs only its worker.
    Process,
}

impl Isolation {
    /// `thread` or `process`.
    pub fn parse(text: &str) -> Result<Isolation> {
        match text {
            "thread" => Ok(Isolation::Thread),
            "process" => Ok(Isolation::Process),
            other => Err(Error::Config(format!(
                "--isolation {other:?}: use thread or process"
            ))),
        }
    }
}

/// `--kill-grace` when none is given.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_millis(500);

impl ServeConfig {
    /// A config with the contract's defaults for every limit.
    pub fn new(listen: SocketAddr, layout: CoreLayout) -> ServeConfig {
        ServeConfig {
            listen,
            layout,
            queue_depth: 64,
            job_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_min_rate: 1024,
            max_job_body: DEFAULT_MAX_JOB_BODY,
            max_connections: 10_000,
            compute_priority: ComputePriority::Normal,
            isolation: Isolation::Thread,
            kill_grace: DEFAULT_KILL_GRACE,
            job_memory: None,
            external: None,
            ring_recv: true,
        }
    }
}

#[cfg(feature = "cli")]
impl TryFrom<&ServeArgs> for ServeConfig {
    type Error = Error;

    fn try_from(args: &ServeArgs) -> Result<ServeConfig> {
        let listen = resolve_listen(&args.listen)?;
        let io = args
            .io_cores
            .as_deref()
            .map(|t| CpuList::parse("--io-cores", t))
            .transpose()?;
        let compute = args
            .compute_cores
            .as_deref()
            .map(|t| CpuList::parse("--compute-cores", t))
            .transpose()?;
        let layout = CoreLayout::resolve(
            &CoreLayout::usable_cpus(),
            io.as_ref(),
            compute.as_ref(),
            args.reserve,
        )?;
        if args.queue_depth == 0 || args.queue_depth > MAX_QUEUE_DEPTH {
            return Err(Error::Config(format!(
                "--queue-depth {}: must be between 1 and {MAX_QUEUE_DEPTH}",
                args.queue_depth
            )));
        }
        if args.max_connections == 0 {
            return Err(Error::Config(
                "--max-connections 0: must be at least 1".into(),
            ));
        }
        let isolation = match (args.isolation.as_deref(), &args.worker_cmd) {
            (Some(mode), None) => Isolation::parse(mode)?,
            (None, None) => Isolation::Thread,
            (Some(mode), Some(_)) if Isolation::parse(mode)? == Isolation::Thread => {
                return Err(Error::Config(
                    "--worker-cmd runs jobs in worker processes: it cannot be combined with --isolation thread".into(),
                ))
            }
            (_, Some(_)) => Isolation::Process,
        };
        let job_memory = args
            .job_memory
            .as_deref()
            .map(|t| parse_bytes_upto("--job-memory", t, MAX_JOB_MEMORY))
            .transpose()?;
        if job_memory.is_some() && isolation != Isolation::Process {
            return Err(Error::Config(
                "--job-memory needs --isolation process (a thread cannot be capped alone)".into(),
            ));
        }
        Ok(ServeConfig {
            listen,
            layout,
            queue_depth: args.queue_depth,
            job_timeout: parse_seconds("--job-timeout", &args.job_timeout)?,
            header_timeout: parse_seconds("--header-timeout", &args.header_timeout)?,
            idle_timeout: parse_seconds("--idle-timeout", &args.idle_timeout)?,
            body_min_rate: parse_bytes("--body-min-rate", &args.body_min_rate)?,
            max_job_body: parse_bytes("--max-job-body", &args.max_job_body)?,
            max_connections: args.max_connections,
            compute_priority: ComputePriority::parse(&args.compute_priority)?,
            isolation,
            kill_grace: parse_seconds("--kill-grace", &args.kill_grace)?,
            job_memory,
            // Filled in by the caller from `ExternalWorker::probe(args.worker_cmd)`:
            // probing starts a process, which parsing flags should not.
            external: None,
            ring_recv: true,
        })
    }
}

/// Parses `IP:PORT` (or `host:port`, resolved once) into one socket address.
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub fn resolve_listen(text: &str) -> Result<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bad = |why: String| Error::Config(format!("--listen {text:?}: {why}"));
    let mut addrs = text
        .to_socket_addrs()
        .map_err(|e| bad(format!("not an address like 127.0.0.1:8888 ({e})")))?;
    addrs
        .next()
        .ok_or_else(|| bad("the name resolves to no address".into()))
}

/// `--max-job-body` when none is given: 16 MiB.
pub const DEFAULT_MAX_JOB_BODY: u64 = 16 << 20;
/// The largest byte count a flag takes: bodies are held in memory whole.
pub const MAX_BYTES: u64 = 1 << 30;

/// Parses a byte count: decimal digits with an optional K, M or G suffix
/// (binary multiples, any case), from 1 to [`MAX_BYTES`].
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub fn parse_bytes(flag: &str, text: &str) -> Result<u64> {
    parse_bytes_upto(flag, text, MAX_BYTES)
}

/// [`parse_bytes`] with its own largest value `max` (K, M, G or T suffix).
pub fn parse_bytes_upto(flag: &str, text: &str, max: u64) -> Result<u64> {
    let text = text.trim();
    let (digits, shift) = match text.as_bytes().last().map(u8::to_ascii_uppercase) {
        Some(b'K') => (&text[..text.len() - 1], 10),
        Some(b'M') => (&text[..text.len() - 1], 20),
        Some(b'G') => (&text[..text.len() - 1], 30),
        Some(b'T') => (&text[..text.len() - 1], 40),
        _ => (text, 0),
    };
    let bytes = digits
        .parse::<u64>()
        .ok()
        .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|n| (1..=max).contains(n));
    let shown = match max.trailing_zeros() {
        40.. => format!("{}T", max >> 40),
        30.. => format!("{}G", max >> 30),
        _ => format!("{max}"),
    };
    bytes.ok_or_else(|| {
        Error::Config(format!(
            "{flag} {text:?}: expected a byte count like 16M (K, M, G or T suffix), from 1 to {shown}"
        ))
    })
}

/// Largest `--job-memory`: an address-space cap (RLIMIT_AS), which threads,
/// allocator arenas and big libraries reserve generously.
#[cfg(feature = "cli")]
pub const MAX_JOB_MEMORY: u64 = 1 << 50;

/// Parses a positive number of seconds, fractions allowed (`0.5`, `30`).
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub fn parse_seconds(flag: &str, text: &str) -> Result<Duration> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| Error::Config(format!("{flag} {text:?}: not a number of seconds")))?;
    if !secs.is_finite() || secs <= 0.0 || secs > MAX_TIMEOUT_SECS {
        return Err(Error::Config(format!(
            "{flag} {text:?}: must be more than 0 and at most {MAX_TIMEOUT_SECS} seconds"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_take_suffixes() {
        for (text, want) in [
            ("1", 1),
            ("16M", 16 << 20),
            ("512k", 512 << 10),
            ("1G", 1 << 30),
        ] {
            assert_eq!(parse_bytes("--x", text).ok(), Some(want), "{text}");
        }
        for bad in [
            "",
            "0",
            "M",
            "-1",
            "1.5M",
            "2G",
            "1T",
            "+5",
            "1 M",
            "99999999999999999999",
        ] {
            assert!(parse_bytes("--x", bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn seconds_accept_fractions_and_reject_nonsense() {
        assert_eq!(
            parse_seconds("--x", "0.5").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_seconds("--x", "30").unwrap(), Duration::from_secs(30));
        for bad in ["", "0", "-1", "abc", "inf", "NaN", "1e9"] {
            assert!(parse_seconds("--x", bad).is_err(), "{bad:?} should fail");
        }
    }

    #[cfg(feature = "cli")]
    #[test]
    fn body_min_rate_takes_a_byte_count() {
        use clap::Parser;
        let config = |rate: &str| {
            let cli = crate::cli::Cli::try_parse_from([
                "heavylift",
                "serve",
                "--reserve",
                "0",
                "--body-min-rate",
                rate,
            ])
            .expect("parses");
            let crate::cli::Command::Serve(args) = cli.command else {
                unreachable!()
            };
            ServeConfig::try_from(&args).map(|c| c.body_min_rate)
        };
        assert_eq!(config("1k").ok(), Some(1024));
        assert_eq!(config("300").ok(), Some(300));
        assert!(config("0").is_err());
        assert!(config("fast").is_err());
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(resolve_listen("127.0.0.1:0").unwrap().port(), 0);
        assert!(resolve_listen("127.0.0.1").is_err());
        assert!(resolve_listen("nonsense:port").is_err());
        assert!(resolve_listen("127.0.0.1:99999").is_err());
    }
}

//! The client side of heavylift: `heavylift load` and `heavylift bench`,
//! and the tiny HTTP/1.1 client they share.
//!
//! `load` is the seed's `call_multi.py`: K slow then M fast GETs at once,
//! each on its own connection, every body printed as it completes, then a
//! summary saying whether every fast request beat the first slow one.
//! `bench` holds a sustained mixed load for a while and reports latency
//! percentiles from HDR histograms, errors by kind, per-I/O-core throughput
//! from `/stats`, and optionally an SVG timeline.
//!
//! # Layout
//! - `mod.rs`: the two entry points, flag validation shared by both, the
//!   reachability check and the single glommio executor everything runs on.
//! - `http.rs` (+ `response.rs`, the parser): one keep-alive connection with
//!   a reusable buffer and a per-request deadline.
//! - `load.rs` (+ `load_summary.rs`) and `bench.rs` (+ `report.rs`): the
//!   commands and their text/JSON reports; `progress.rs`, bench's
//!   progress lines on stderr.
//! - `histogram.rs`, `timeline.rs`, `svg.rs` (+ `svg_layers.rs`): recording
//!   latencies, what happened when, and drawing it; `verdict.rs`, the
//!   one-sentence answer written on the picture.
//!
//! Everything runs on one unpinned glommio executor with one task per
//! connection: the client needs no more than one core to drive well over
//! 100k fast requests per second. Bad flags and an unreachable target are
//! `Err` (the binary prints them and exits 2); a run in which any request
//! did not get a 2xx ends with exit code 1.

mod bench;
pub mod histogram;
pub mod http;
mod load;
mod load_summary;
mod progress;
mod report;
pub mod response;
mod svg;
mod svg_layers;
mod timeline;
mod verdict;

use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};

/// Connections (load requests, bench fast plus slow connections) one run may open.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Bounds of the job size `n`, as the server enforces them.
const N_RANGE: std::ops::RangeInclusive<u32> = 1..=20_000;
/// The reachability check gives up after this long.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `heavylift load`.
pub fn load(args: &crate::cli::LoadArgs) -> anyhow::Result<ExitCode> {
    let config = load::LoadConfig::try_from(args)?;
    load::run(&config)
}

/// Runs `heavylift bench`.
pub fn bench(args: &crate::cli::BenchArgs) -> anyhow::Result<ExitCode> {
    let config = bench::BenchConfig::try_from(args)?;
    bench::run(&config)
}

/// The server to call: where to connect, and what to say in `Host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// As the user wrote it (`HOST:PORT`), for `Host` and messages.
    pub host: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.host)
    }
}

/// Parses `--target HOST:PORT` (an `http://` prefix and a trailing `/` are
/// tolerated); a name resolves once, preferring IPv4.
pub fn parse_target(text: &str) -> anyhow::Result<Target> {
    let host = text.trim();
    let host = host.strip_prefix("http://").unwrap_or(host);
    let host = host.strip_suffix('/').unwrap_or(host);
    let usage = || format!("bad --target {text:?}: expected HOST:PORT, e.g. 127.0.0.1:8888");
    let (name, port) = host.rsplit_once(':').with_context(usage)?;
    if name.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        bail!(usage());
    }
    let addrs: Vec<SocketAddr> = host
        .to_socket_addrs()
        .with_context(|| format!("bad --target {text:?}: cannot resolve it"))?
        .collect();
    let addr = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .with_context(|| format!("bad --target {text:?}: it resolves to no address"))?;
    Ok(Target {
        addr,
        host: host.to_string(),
    })
}

/// `--slow-path`: which route the slow requests take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowPath {
    /// `/slow_threaded`: the job runs on a compute core.
    Threaded,
    /// `/slow`: the job blocks the I/O core (the baseline).
    Inline,
}

impl SlowPath {
    pub fn parse(text: &str) -> anyhow::Result<SlowPath> {
        match text.trim().trim_start_matches('/') {
            "slow_threaded" => Ok(SlowPath::Threaded),
            "slow" => Ok(SlowPath::Inline),
            _ => bail!("bad --slow-path {text:?}: expected slow_threaded or slow"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SlowPath::Threaded => "slow_threaded",
            SlowPath::Inline => "slow",
        }
    }
}

/// Checks `--n` against the server's bounds.
pub fn check_n(n: u32) -> anyhow::Result<u32> {
    if !N_RANGE.contains(&n) {
        bail!(
            "bad --n {n}: the job size must be in {}..={}",
            N_RANGE.start(),
            N_RANGE.end()
        );
    }
    Ok(n)
}

/// Parses a positive number of seconds (fractions allowed) given to `flag`.
pub fn parse_secs(flag: &str, text: &str) -> anyhow::Result<Duration> {
    let secs: f64 = text
        .trim()
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 86_400.0 * 365.0)
        .with_context(|| format!("bad {flag} {text:?}: expected a positive number of seconds"))?;
    Ok(Duration::from_secs_f64(secs).max(Duration::from_millis(1)))
}

/// One plain TCP connect, so an unreachable target is an error naming it
/// before anything is scheduled.
pub fn check_reachable(target: &Target, timeout: Duration) -> anyhow::Result<()> {
    std::net::TcpStream::connect_timeout(&target.addr, timeout.min(REACH_TIMEOUT))
        .with_context(|| format!("cannot reach {target}"))?;
    Ok(())
}

/// Runs `fut` to completion on a fresh, unpinned glommio executor.
pub fn run_on_executor<F, T>(fut: F) -> anyhow::Result<T>
where
    F: Future<Output = T>,
{
    let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("heavylift-client")
        .io_memory(64 << 10)
        .make()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context(
            "cannot start the glommio executor (needs Linux >= 5.8 and RLIMIT_MEMLOCK >= 512 KiB)",
        )?;
    Ok(executor.run(async {
        // glommio 0.9 registers membarrier lazily on an executor's first
        // sleep, which can cost tens of ms: pay it before any clock starts.
        glommio::timer::sleep(Duration::from_micros(100)).await;
        fut.await
    }))
}

/// Milliseconds with precision that suits the size: `0.41`, `60.1`, `1234`.
pub fn fmt_ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 1000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// Milliseconds as a JSON number, rounded to the microsecond.
pub fn json_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = parse_target("127.0.0.1:8888").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8888".parse().unwrap());
        assert_eq!(t.host, "127.0.0.1:8888");
        assert_eq!(
            parse_target("http://127.0.0.1:80/").unwrap().host,
            "127.0.0.1:80"
        );
        assert!(parse_target("localhost:1").unwrap().addr.is_ipv4());
        for bad in [
            "",
            "127.0.0.1",
            "127.0.0.1:",
            ":80",
            "127.0.0.1:0",
            "1.2.3.4:99999",
        ] {
            let e = parse_target(bad).unwrap_err().to_string();
            assert!(e.contains("bad --target"), "{bad}: {e}");
        }
    }

    #[test]
    fn slow_paths_and_n() {
        assert_eq!(SlowPath::parse("slow").unwrap(), SlowPath::Inline);
        assert_eq!(
            SlowPath::parse("/slow_threaded").unwrap(),
            SlowPath::Threaded
        );
        assert!(SlowPath::parse("fast").is_err());
        assert!(check_n(0).is_err() && check_n(20_001).is_err());
        assert_eq!(check_n(20_000).unwrap(), 20_000);
    }

    #[test]
    fn seconds() {
        assert_eq!(
            parse_secs("--duration", "1.5").unwrap(),
            Duration::from_millis(1500)
        );
        for bad in ["0", "-1", "nan", "inf", "ten", ""] {
            assert!(parse_secs("--duration", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unreachable_target_is_named() {
        // Bind then drop: nothing listens on that port any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let target = parse_target(&format!("127.0.0.1:{port}")).unwrap();
        let e = format!("{:#}", check_reachable(&target, REACH_TIMEOUT).unwrap_err());
        assert!(
            e.starts_with(&format!("cannot reach 127.0.0.1:{port}: ")),
            "{e}"
        );
    }

    #[test]
    fn millis() {
        assert_eq!(fmt_ms(Duration::from_micros(410)), "0.41");
        assert_eq!(fmt_ms(Duration::from_micros(60_140)), "60.1");
        assert_eq!(fmt_ms(Duration::from_millis(1234)), "1234");
        assert_eq!(json_ms(Duration::from_nanos(1_234_567)), 1.235);
    }
}

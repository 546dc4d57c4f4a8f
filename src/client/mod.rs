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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlowPath {
    /// `/slow_threaded`: the job runs on a compute core.
    Threaded,
    /// `/slow`: the job blocks the I/O core (the baseline).
    Inline,
    /// Any other route of the server (`gzip`, `slow_py`, ...), without its
    /// leading `/`; its 2xx answers count as done whatever their body.
    Route(String),
}

impl SlowPath {
    pub fn parse(text: &str) -> anyhow::Result<SlowPath> {
        let path = text.trim().trim_start_matches('/');
        let fits = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b);
        Ok(match path {
            "slow_threaded" => SlowPath::Threaded,
            "slow" => SlowPath::Inline,
            "fast" => bail!("bad --slow-path fast: that is the route the fast requests take"),
            _ if !path.is_empty() && path.bytes().all(fits) => SlowPath::Route(path.to_owned()),
            _ => bail!(
                "bad --slow-path {text:?}: expected slow_threaded, slow or a route such as gzip"
            ),
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            SlowPath::Threaded => "slow_threaded",
            SlowPath::Inline => "slow",
            SlowPath::Route(path) => path,
        }
    }

    /// The request target of slow request `id`.
    pub fn target(&self, id: impl std::fmt::Display, n: u32) -> String {
        format!("/{}?id={id}&n={n}", self.as_str())
    }

    /// The body a 2xx answer starts with when the route is the seed's.
    pub fn expected_body(&self, id: impl std::fmt::Display) -> Option<String> {
        match self {
            SlowPath::Threaded | SlowPath::Inline => Some(format!("slow result {id} <--- ")),
            SlowPath::Route(_) => None,
        }
    }
}

/// `--method`, `--body-file`, `--body-size`: what every slow request sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowBody {
    pub method: String,
    /// Shared by every slow request; empty for none.
    pub body: std::sync::Arc<[u8]>,
}

impl SlowBody {
    /// Reads the flags: a method of 1 to 32 upper-case letters (default GET,
    /// or POST with a body), and a body from a file or generated.
    pub fn from_args(args: &crate::cli::SlowBodyArgs) -> anyhow::Result<SlowBody> {
        let body: Vec<u8> = match (&args.body_file, &args.body_size) {
            (Some(file), _) => std::fs::read(file)
                .with_context(|| format!("bad --body-file {}: cannot read it", file.display()))?,
            (None, Some(size)) => {
                let n = crate::config::parse_bytes("--body-size", size)?;
                generated_body(usize::try_from(n).unwrap_or(usize::MAX))
            }
            (None, None) => Vec::new(),
        };
        let has_body = args.body_file.is_some() || args.body_size.is_some();
        let method = args
            .method
            .clone()
            .unwrap_or_else(|| if has_body { "POST" } else { "GET" }.to_owned());
        if method.is_empty() || method.len() > 32 || !method.bytes().all(|b| b.is_ascii_uppercase())
        {
            bail!("bad --method {method:?}: expected an HTTP method such as GET or POST");
        }
        Ok(SlowBody {
            method,
            body: body.into(),
        })
    }

    /// A plain GET.
    pub fn none() -> SlowBody {
        SlowBody {
            method: "GET".into(),
            body: std::sync::Arc::from(Vec::new()),
        }
    }
}

/// `len` bytes of log-like text: compressible, as real uploads are.
fn generated_body(len: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(len);
    let mut line = 0u64;
    while body.len() < len {
        body.extend_from_slice(
            format!(
                "{line:08} heavylift load line, level=info, bytes={}\n",
                line * 7919 % 104_729
            )
            .as_bytes(),
        );
        line += 1;
    }
    body.truncate(len);
    body
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
        assert_eq!(
            SlowPath::parse("/gzip").unwrap(),
            SlowPath::Route("gzip".into())
        );
        assert_eq!(
            SlowPath::parse("gzip").unwrap().target(3, 10),
            "/gzip?id=3&n=10"
        );
        for bad in ["", "/", "a b", "a?b", "a#b", "caf\u{e9}"] {
            assert!(SlowPath::parse(bad).is_err(), "{bad:?}");
        }
        assert!(check_n(0).is_err() && check_n(20_001).is_err());
        assert_eq!(check_n(20_000).unwrap(), 20_000);
    }

    #[test]
    fn slow_bodies() {
        let args = |method: Option<&str>, size: Option<&str>| crate::cli::SlowBodyArgs {
            method: method.map(str::to_owned),
            body_file: None,
            body_size: size.map(str::to_owned),
        };
        let none = SlowBody::from_args(&args(None, None)).unwrap();
        assert_eq!((none.method.as_str(), none.body.len()), ("GET", 0));
        let sized = SlowBody::from_args(&args(None, Some("100K"))).unwrap();
        assert_eq!(
            (sized.method.as_str(), sized.body.len()),
            ("POST", 100 << 10)
        );
        assert!(sized.body.starts_with(b"00000000 heavylift"));
        let put = SlowBody::from_args(&args(Some("PUT"), Some("1"))).unwrap();
        assert_eq!((put.method.as_str(), &put.body[..]), ("PUT", &b"0"[..]));
        for (method, size) in [
            (Some("get"), None),
            (Some(""), None),
            (None, Some("0")),
            (None, Some("x")),
        ] {
            assert!(
                SlowBody::from_args(&args(method, size)).is_err(),
                "{method:?} {size:?}"
            );
        }
        let missing = crate::cli::SlowBodyArgs {
            method: None,
            body_file: Some("/nonexistent/body".into()),
            body_size: None,
        };
        assert!(SlowBody::from_args(&missing).is_err());
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

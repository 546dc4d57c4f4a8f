//! What `bench` counts while it runs, and the report it prints at the end.
//!
//! A [`Recorder`] is shared by every task of the run (one executor thread,
//! so a `RefCell` is enough): per kind an HDR histogram of the 2xx
//! latencies, failures by kind ([`ErrorCounts`]) and the requests abandoned
//! when the run ended, plus the [`Timeline`] for `--svg`. [`Report`] turns
//! it, with the per-I/O-core counts from `/stats`, into the text or JSON
//! report. Throughput counts 2xx answers only; failures are listed apart.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use serde_json::json;

use super::bench::BenchConfig;
use super::histogram::Histogram;
use super::timeline::{Outcome, SlowSpan, Timeline};
use super::verdict::{SlowLoad, Verdict};
use super::{fmt_ms, json_ms};

/// Failures of one kind of request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErrorCounts {
    /// Non-2xx answers by status code.
    pub status: BTreeMap<u16, u64>,
    pub connect: u64,
    pub timeouts: u64,
    pub resets: u64,
    /// Malformed responses, unexpected bodies, other I/O errors.
    pub other: u64,
    /// What the first "other" failure was, to tell the user something.
    pub first_other: Option<String>,
}

impl ErrorCounts {
    pub fn total(&self) -> u64 {
        self.status.values().sum::<u64>() + self.connect + self.timeouts + self.resets + self.other
    }

    fn record(&mut self, outcome: Outcome, detail: Option<String>) {
        match outcome {
            Outcome::Ok | Outcome::Unfinished => {}
            Outcome::Status(code) => *self.status.entry(code).or_default() += 1,
            Outcome::Connect => self.connect += 1,
            Outcome::TimedOut => self.timeouts += 1,
            Outcome::Reset => self.resets += 1,
            Outcome::Other => {
                self.other += 1;
                if self.first_other.is_none() {
                    self.first_other = detail;
                }
            }
        }
    }

    /// `none`, or e.g. `503: 12, timeouts: 1`.
    fn text(&self) -> String {
        let mut parts: Vec<String> = self
            .status
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .collect();
        for (name, n) in [
            ("connect errors", self.connect),
            ("timeouts", self.timeouts),
            ("resets", self.resets),
        ] {
            if n > 0 {
                parts.push(format!("{name}: {n}"));
            }
        }
        if self.other > 0 {
            let first = self.first_other.as_deref().unwrap_or("?");
            parts.push(format!("other: {} (first: {first})", self.other));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }

    fn json(&self) -> serde_json::Value {
        let status: serde_json::Map<String, serde_json::Value> = self
            .status
            .iter()
            .map(|(code, n)| (code.to_string(), json!(n)))
            .collect();
        json!({
            "status": status, "connect": self.connect, "timeouts": self.timeouts,
            "resets": self.resets, "other": self.other, "first_other": self.first_other,
        })
    }
}

/// Everything counted for one kind of request.
#[derive(Debug, Clone, Default)]
pub struct KindStats {
    /// Latencies of the 2xx answers.
    pub latency: Histogram,
    pub errors: ErrorCounts,
    /// In flight when the run ended, abandoned (not failures).
    pub unfinished: u64,
}

impl KindStats {
    pub(super) fn record(&mut self, outcome: Outcome, latency: Duration, detail: Option<String>) {
        match outcome {
            Outcome::Ok => self.latency.record(latency),
            Outcome::Unfinished => self.unfinished += 1,
            _ => self.errors.record(outcome, detail),
        }
    }

    pub fn ok(&self) -> u64 {
        self.latency.count()
    }

    pub fn failed(&self) -> u64 {
        self.errors.total()
    }

    /// Answered or failed (not the unfinished ones).
    pub fn completed(&self) -> u64 {
        self.ok() + self.failed()
    }
}

/// The counters of one run.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub fast: KindStats,
    pub slow: KindStats,
    pub timeline: Timeline,
}

impl Recorder {
    pub fn new(duration: Duration, slow_lanes: usize) -> Recorder {
        Recorder {
            fast: KindStats::default(),
            slow: KindStats::default(),
            timeline: Timeline::new(duration, slow_lanes),
        }
    }

    /// A fast request ended `at` (since the start).
    pub fn record_fast(
        &mut self,
        at: Duration,
        latency: Duration,
        outcome: Outcome,
        detail: Option<String>,
    ) {
        self.fast.record(outcome, latency, detail);
        self.timeline.record_fast(at, latency, outcome);
    }

    pub fn record_slow(&mut self, span: SlowSpan, detail: Option<String>) {
        self.slow
            .record(span.outcome, span.end.saturating_sub(span.start), detail);
        self.timeline.record_slow(span);
    }
}

/// Requests one I/O core served during the run, from `/stats` before and after.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreRate {
    pub core: u64,
    pub requests: u64,
    pub per_second: f64,
}

/// Reads `io_cores[].{core, requests}` from a `/stats` body.
pub fn parse_stats(body: &[u8]) -> Option<Vec<(u64, u64)>> {
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    doc.get("io_cores")?
        .as_array()?
        .iter()
        .map(|c| Some((c.get("core")?.as_u64()?, c.get("requests")?.as_u64()?)))
        .collect()
}

/// Per-core request rates between two `/stats` snapshots.
pub fn per_core(before: &[(u64, u64)], after: &[(u64, u64)], elapsed: Duration) -> Vec<CoreRate> {
    let secs = elapsed.as_secs_f64().max(1e-9);
    after
        .iter()
        .map(|&(core, end)| {
            let start = before.iter().find(|b| b.0 == core).map_or(0, |b| b.1);
            let requests = end.saturating_sub(start);
            CoreRate {
                core,
                requests,
                per_second: requests as f64 / secs,
            }
        })
        .collect()
}

/// The end-of-run report.
pub struct Report<'a> {
    pub config: &'a BenchConfig,
    pub rec: &'a Recorder,
    pub elapsed: Duration,
    /// Per I/O core, or why `/stats` could not tell.
    pub cores: Result<Vec<CoreRate>, String>,
    pub exit_code: u8,
}

const PERCENTILES: [(&str, f64); 4] =
    [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)];

impl Report<'_> {
    fn rate(&self, n: u64) -> f64 {
        n as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The run in one line: for the SVG title.
    pub fn headline(&self) -> String {
        let c = self.config;
        format!(
            "heavylift bench: {} for {:.1} s, {} fast connections, {} slow loops on /{} (n={})",
            c.target,
            c.duration.as_secs_f64(),
            c.connections,
            c.slow_concurrency,
            c.slow_path.as_str(),
            c.n
        )
    }

    /// The SVG's title (the target) and the two lines under it.
    pub fn svg_heading(&self) -> (String, String) {
        let c = self.config;
        let title = format!("heavylift bench: {}", c.target);
        let setup = format!(
            "{:.1} s, {} fast connections, {} slow loops on /{} (n={})",
            c.duration.as_secs_f64(),
            c.connections,
            c.slow_concurrency,
            c.slow_path.as_str(),
            c.n
        );
        (title, format!("{setup}\n{}", self.summary_line()))
    }

    /// The run's verdict, for the SVG.
    pub fn verdict(&self) -> Verdict {
        let slow = SlowLoad {
            loops: self.config.slow_concurrency,
            path: self.config.slow_path.clone(),
            done: self.rec.slow.ok(),
        };
        Verdict::judge(&self.rec.fast, &slow)
    }

    /// The numbers in one line.
    pub fn summary_line(&self) -> String {
        let (f, s) = (&self.rec.fast, &self.rec.slow);
        format!(
            "fast: {} ok, {:.0} req/s, p50 {} ms, p99 {} ms, max {} ms | slow: {} ok, p50 {} ms, max {} ms | failed: {} fast, {} slow",
            f.ok(),
            self.rate(f.ok()),
            text_ms(&f.latency, f.latency.median()),
            text_ms(&f.latency, f.latency.percentile(99.0)),
            text_ms(&f.latency, f.latency.max()),
            s.ok(),
            text_ms(&s.latency, s.latency.median()),
            text_ms(&s.latency, s.latency.max()),
            f.failed(),
            s.failed()
        )
    }

    pub fn text(&self) -> String {
        let mut out = format!("{}\n", self.headline());
        let _ = writeln!(
            out,
            "{:<5} {:>9} {:>9} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "", "requests", "ok", "ok req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
        );
        for (name, k) in [("fast", &self.rec.fast), ("slow", &self.rec.slow)] {
            let _ = write!(
                out,
                "{name:<5} {:>9} {:>9} {:>11.1}",
                k.completed(),
                k.ok(),
                self.rate(k.ok())
            );
            for (_, p) in PERCENTILES {
                let _ = write!(out, " {:>9}", text_ms(&k.latency, k.latency.percentile(p)));
            }
            let _ = writeln!(out, " {:>9}", text_ms(&k.latency, k.latency.max()));
        }
        let _ = writeln!(out, "(latencies of 2xx answers only)");
        let _ = writeln!(
            out,
            "errors:\n  fast: {}\n  slow: {}",
            self.rec.fast.errors.text(),
            self.rec.slow.errors.text()
        );
        let _ = writeln!(
            out,
            "unfinished at the end (abandoned, not errors): fast {}, slow {}",
            self.rec.fast.unfinished, self.rec.slow.unfinished
        );
        match &self.cores {
            Ok(cores) => {
                let _ = writeln!(
                    out,
                    "requests per I/O core (from /stats; fast plus the slow and /stats requests):"
                );
                for c in cores {
                    let _ = writeln!(
                        out,
                        "  core {}: {} requests, {:.1} req/s",
                        c.core, c.requests, c.per_second
                    );
                }
            }
            Err(why) => {
                let _ = writeln!(out, "requests per I/O core: n/a ({why})");
            }
        }
        if let Some(path) = &self.config.svg {
            let _ = writeln!(out, "timeline: {}", path.display());
        }
        let _ = writeln!(out, "{}", self.verdict().text());
        out
    }

    fn kind_json(&self, k: &KindStats) -> serde_json::Value {
        let mut v = json!({
            "count": k.completed(), "ok": k.ok(), "failed": k.failed(), "unfinished": k.unfinished,
            "throughput_rps": (self.rate(k.ok()) * 10.0).round() / 10.0,
            "max_ms": json_ms_of(&k.latency, k.latency.max()),
            "errors": k.errors.json(),
        });
        for (name, p) in PERCENTILES {
            v[format!("{}_ms", name.replace('.', ""))] =
                json!(json_ms_of(&k.latency, k.latency.percentile(p)));
        }
        v
    }

    pub fn json(&self) -> serde_json::Value {
        let c = self.config;
        let cores = self.cores.as_ref().ok().map(|cores| {
            cores
                .iter()
                .map(|c| json!({"core": c.core, "requests": c.requests, "requests_per_second": (c.per_second * 10.0).round() / 10.0}))
                .collect::<Vec<_>>()
        });
        json!({
            "target": c.target.host, "duration_seconds": c.duration.as_secs_f64(),
            "elapsed_seconds": (self.elapsed.as_secs_f64() * 1e6).round() / 1e6,
            "connections": c.connections, "slow_concurrency": c.slow_concurrency,
            "slow_path": c.slow_path.as_str(), "n": c.n, "timeout_seconds": c.timeout.as_secs_f64(),
            "fast": self.kind_json(&self.rec.fast), "slow": self.kind_json(&self.rec.slow),
            "io_cores": cores, "io_cores_error": self.cores.as_ref().err(),
            "svg": c.svg.as_ref().map(|p| p.display().to_string()),
            "exit_code": self.exit_code,
        })
    }
}

/// A latency of `h` in milliseconds for the text report; `n/a` when `h`
/// holds no sample (no 2xx answer of that kind), never an invented 0.
fn text_ms(h: &Histogram, d: Duration) -> String {
    if h.is_empty() {
        "n/a".into()
    } else {
        fmt_ms(d)
    }
}

/// [`text_ms`] for the JSON report: `null` when `h` holds no sample.
fn json_ms_of(h: &Histogram, d: Duration) -> Option<f64> {
    (!h.is_empty()).then(|| json_ms(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn outcomes_are_counted_by_kind() {
        let mut rec = Recorder::new(Duration::from_secs(1), 1);
        rec.record_fast(ms(1), ms(1), Outcome::Ok, None);
        rec.record_fast(ms(2), ms(1), Outcome::Status(503), None);
        rec.record_fast(ms(3), ms(1), Outcome::Status(503), None);
        rec.record_fast(ms(4), ms(1), Outcome::Other, Some("unexpected body".into()));
        rec.record_fast(ms(5), ms(1), Outcome::Other, Some("second".into()));
        rec.record_fast(ms(6), ms(1), Outcome::Unfinished, None);
        let f = &rec.fast;
        assert_eq!(
            (f.ok(), f.failed(), f.completed(), f.unfinished),
            (1, 4, 5, 1)
        );
        assert_eq!(f.errors.text(), "503: 2, other: 2 (first: unexpected body)");
        assert_eq!(rec.slow.errors.text(), "none");
        let span = SlowSpan {
            lane: 0,
            start: ms(10),
            end: ms(60),
            outcome: Outcome::Ok,
        };
        rec.record_slow(span, None);
        assert_eq!(rec.slow.latency.max(), ms(50));
    }

    #[test]
    fn stats_json_and_per_core_rates() {
        let body = br#"{"io_cores": [{"core": 0, "requests": 10, "open_connections": 1},
            {"core": 2, "requests": 4}], "compute_cores": [], "jobs": {}}"#;
        let before = parse_stats(body).unwrap();
        assert_eq!(before, vec![(0, 10), (2, 4)]);
        let after = [(0, 1010), (2, 2004), (3, 5)];
        let rates = per_core(&before, &after, Duration::from_secs(2));
        assert_eq!(
            rates[0],
            CoreRate {
                core: 0,
                requests: 1000,
                per_second: 500.0
            }
        );
        assert_eq!(rates[1].requests, 2000);
        assert_eq!(rates[2].requests, 5);
        assert_eq!(parse_stats(b"{\"io_cores\": [{\"core\": 0}]}"), None);
        assert_eq!(parse_stats(b"not json"), None);
    }
}

//! `load`'s outcome records and its summary: per kind count, ok, failed,
//! min / median / max latency, and the verdict on whether every fast
//! request finished before the first slow one; as text or as JSON.
//!
//! Everything here is pure (no I/O), so it is tested on synthetic data.

use std::time::Duration;

use serde_json::json;

use super::load::LoadConfig;
use super::{fmt_ms, json_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Slow,
    Fast,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Slow => "slow",
            Kind::Fast => "fast",
        }
    }
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub kind: Kind,
    pub id: usize,
    /// `None` when no response came (connect error, timeout, reset).
    pub status: Option<u16>,
    pub body: Option<String>,
    /// Why it failed: a non-2xx status line and body, or the transport error.
    pub error: Option<String>,
    /// From the request's start (connect included) to its outcome.
    pub latency: Duration,
    /// From the start of the whole run to its outcome.
    pub finished_at: Duration,
}

impl Finished {
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

/// `load`'s per-kind summary.
#[derive(Debug, Clone, PartialEq)]
pub struct KindSummary {
    pub count: usize,
    pub ok: usize,
    pub failed: usize,
    /// Over every request of the kind (failures too: the time to their outcome).
    pub min: Option<Duration>,
    pub median: Option<Duration>,
    pub max: Option<Duration>,
}

pub fn summarize(done: &[Finished], kind: Kind) -> KindSummary {
    let mut lat: Vec<Duration> = done
        .iter()
        .filter(|f| f.kind == kind)
        .map(|f| f.latency)
        .collect();
    lat.sort();
    let ok = done.iter().filter(|f| f.kind == kind && f.is_ok()).count();
    let median = match lat.len() {
        0 => None,
        n if n % 2 == 1 => Some(lat[n / 2]),
        n => Some((lat[n / 2 - 1] + lat[n / 2]) / 2),
    };
    KindSummary {
        count: lat.len(),
        ok,
        failed: lat.len() - ok,
        min: lat.first().copied(),
        median,
        max: lat.last().copied(),
    }
}

/// Did every fast request finish before the first slow one?
#[derive(Debug, Clone, PartialEq)]
pub enum FastBeforeSlow {
    Yes,
    /// The last fast request finished `by` after the first slow one.
    No {
        fast_id: usize,
        slow_id: usize,
        by: Duration,
    },
    NoSlow,
    /// Slow requests were sent, but none got a 2xx.
    NoSlowSucceeded,
    NoFast,
}

/// Compares the last fast request to finish (whatever its outcome) with the
/// first slow one to finish with a 2xx: a 503 comes back at once by design
/// and says nothing about where the job ran.
pub fn fast_before_slow(done: &[Finished]) -> FastBeforeSlow {
    let last_fast = done
        .iter()
        .filter(|f| f.kind == Kind::Fast)
        .max_by_key(|f| f.finished_at);
    let first_slow = done
        .iter()
        .filter(|f| f.kind == Kind::Slow && f.is_ok())
        .min_by_key(|f| f.finished_at);
    let any_slow = done.iter().any(|f| f.kind == Kind::Slow);
    match (last_fast, first_slow) {
        (None, _) => FastBeforeSlow::NoFast,
        (_, None) if any_slow => FastBeforeSlow::NoSlowSucceeded,
        (_, None) => FastBeforeSlow::NoSlow,
        (Some(f), Some(s)) if f.finished_at < s.finished_at => FastBeforeSlow::Yes,
        (Some(f), Some(s)) => FastBeforeSlow::No {
            fast_id: f.id,
            slow_id: s.id,
            by: f.finished_at - s.finished_at,
        },
    }
}

impl std::fmt::Display for FastBeforeSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FastBeforeSlow::Yes => write!(f, "yes"),
            FastBeforeSlow::No {
                fast_id,
                slow_id,
                by,
            } => write!(
                f,
                "no (fast request {fast_id} finished {} ms after slow request {slow_id})",
                fmt_ms(*by)
            ),
            FastBeforeSlow::NoSlow => write!(f, "n/a (no slow requests)"),
            FastBeforeSlow::NoSlowSucceeded => write!(f, "n/a (no slow request succeeded)"),
            FastBeforeSlow::NoFast => write!(f, "n/a (no fast requests)"),
        }
    }
}

fn kind_line(s: &KindSummary) -> String {
    let lat = match (s.min, s.median, s.max) {
        (Some(min), Some(med), Some(max)) => format!(
            ", latency min {} ms, median {} ms, max {} ms",
            fmt_ms(min),
            fmt_ms(med),
            fmt_ms(max)
        ),
        _ => String::new(),
    };
    format!(
        "{} requests, {} ok, {} failed{lat}",
        s.count, s.ok, s.failed
    )
}

pub fn summary_text(done: &[Finished], total: Duration) -> String {
    format!(
        "Summary\n  fast: {}\n  slow: {}\n  total: {} requests in {:.3} s\n  every fast request finished before the first slow one: {}\n",
        kind_line(&summarize(done, Kind::Fast)),
        kind_line(&summarize(done, Kind::Slow)),
        done.len(),
        total.as_secs_f64(),
        fast_before_slow(done)
    )
}

fn kind_json(s: &KindSummary) -> serde_json::Value {
    json!({
        "count": s.count, "ok": s.ok, "failed": s.failed,
        "min_ms": s.min.map(json_ms), "median_ms": s.median.map(json_ms), "max_ms": s.max.map(json_ms),
    })
}

pub fn to_json(
    config: &LoadConfig,
    done: &[Finished],
    total: Duration,
    exit: u8,
) -> serde_json::Value {
    let requests: Vec<_> = done
        .iter()
        .map(|f| {
            json!({
                "kind": f.kind.as_str(), "id": f.id, "status": f.status,
                "latency_ms": json_ms(f.latency), "finished_ms": json_ms(f.finished_at),
                "body": f.body, "error": f.error,
            })
        })
        .collect();
    let order = match fast_before_slow(done) {
        FastBeforeSlow::Yes => Some(true),
        FastBeforeSlow::No { .. } => Some(false),
        FastBeforeSlow::NoSlow | FastBeforeSlow::NoSlowSucceeded | FastBeforeSlow::NoFast => None,
    };
    json!({
        "target": config.target.host, "slow_path": config.slow_path.as_str(), "n": config.n,
        "timeout_seconds": config.timeout.as_secs_f64(),
        "requests": requests,
        "summary": {
            "fast": kind_json(&summarize(done, Kind::Fast)),
            "slow": kind_json(&summarize(done, Kind::Slow)),
            "total_seconds": (total.as_secs_f64() * 1e6).round() / 1e6,
            "fast_before_slow": order,
        },
        "exit_code": exit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{parse_target, SlowPath};

    fn f(kind: Kind, id: usize, ok: bool, latency_ms: u64, at_ms: u64) -> Finished {
        Finished {
            kind,
            id,
            status: Some(if ok { 200 } else { 503 }),
            body: Some(format!("{} result {id}", kind.as_str())),
            error: (!ok).then(|| "503 Service Unavailable: busy".to_string()),
            latency: Duration::from_millis(latency_ms),
            finished_at: Duration::from_millis(at_ms),
        }
    }

    #[test]
    fn summaries_and_medians() {
        let done = [
            f(Kind::Fast, 3, true, 1, 1),
            f(Kind::Fast, 4, true, 3, 3),
            f(Kind::Fast, 5, false, 2, 2),
            f(Kind::Fast, 6, true, 10, 10),
            f(Kind::Slow, 0, true, 50, 50),
        ];
        let fast = summarize(&done, Kind::Fast);
        assert_eq!((fast.count, fast.ok, fast.failed), (4, 3, 1));
        assert_eq!(fast.min, Some(Duration::from_millis(1)));
        assert_eq!(fast.median, Some(Duration::from_micros(2500)));
        assert_eq!(fast.max, Some(Duration::from_millis(10)));
        assert_eq!(
            summarize(&done, Kind::Slow).median,
            Some(Duration::from_millis(50))
        );
        assert_eq!(fast_before_slow(&done), FastBeforeSlow::Yes);
        let text = summary_text(&done, Duration::from_millis(121));
        assert!(text.contains("  fast: 4 requests, 3 ok, 1 failed, latency min 1.00 ms, median 2.50 ms, max 10.0 ms\n"), "{text}");
        assert!(text.contains("  total: 5 requests in 0.121 s\n"));
        assert!(text.ends_with("before the first slow one: yes\n"));
    }

    #[test]
    fn a_late_fast_request_is_named() {
        let done = [
            f(Kind::Slow, 0, true, 40, 40),
            f(Kind::Slow, 1, true, 30, 30),
            f(Kind::Fast, 2, true, 1, 1),
            f(Kind::Fast, 17, true, 31, 31),
        ];
        let verdict = fast_before_slow(&done);
        assert_eq!(
            verdict,
            FastBeforeSlow::No {
                fast_id: 17,
                slow_id: 1,
                by: Duration::from_millis(1)
            }
        );
        assert_eq!(
            verdict.to_string(),
            "no (fast request 17 finished 1.00 ms after slow request 1)"
        );
    }

    #[test]
    fn vacuous_cases_say_na() {
        let fast_only = [f(Kind::Fast, 0, true, 1, 1)];
        assert_eq!(
            fast_before_slow(&fast_only).to_string(),
            "n/a (no slow requests)"
        );
        let busy = [f(Kind::Slow, 0, false, 1, 1), f(Kind::Fast, 1, true, 2, 2)];
        assert_eq!(
            fast_before_slow(&busy).to_string(),
            "n/a (no slow request succeeded)"
        );
        // A 503 that came back first does not count as "the first slow one".
        let mixed = [
            f(Kind::Slow, 0, false, 1, 1),
            f(Kind::Fast, 1, true, 2, 2),
            f(Kind::Slow, 2, true, 9, 9),
        ];
        assert_eq!(fast_before_slow(&mixed), FastBeforeSlow::Yes);
        let slow_only = [f(Kind::Slow, 0, true, 1, 1)];
        assert_eq!(
            fast_before_slow(&slow_only).to_string(),
            "n/a (no fast requests)"
        );
        let text = summary_text(&slow_only, Duration::from_millis(1));
        assert!(
            text.contains("  fast: 0 requests, 0 ok, 0 failed\n"),
            "{text}"
        );
    }

    #[test]
    fn json_document_has_the_contract_fields() {
        let config = LoadConfig {
            target: parse_target("127.0.0.1:8888").unwrap(),
            slow: 1,
            fast: 1,
            slow_path: SlowPath::Threaded,
            n: 2000,
            slow_body: crate::client::SlowBody::none(),
            json: true,
            timeout: Duration::from_secs(60),
        };
        let done = [f(Kind::Fast, 1, false, 1, 1), f(Kind::Slow, 0, true, 5, 5)];
        let doc = to_json(&config, &done, Duration::from_millis(5), 1);
        assert_eq!(doc["target"], "127.0.0.1:8888");
        assert_eq!(doc["requests"][0]["kind"], "fast");
        assert_eq!(doc["requests"][0]["status"], 503);
        assert_eq!(doc["requests"][1]["error"], serde_json::Value::Null);
        assert_eq!(doc["summary"]["fast"]["failed"], 1);
        assert_eq!(doc["summary"]["fast_before_slow"], true);
        assert_eq!(doc["exit_code"], 1);
    }
}

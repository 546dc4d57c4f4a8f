//! `bench`'s verdict: the run's answer in one sentence, written on the SVG
//! so the picture reads without the report beside it.
//!
//! The question `bench` asks is whether fast requests stay fast while heavy
//! jobs keep the compute cores busy. The verdict gives the fast p99 under
//! that load, and whether every fast request was answered with a 2xx. It
//! passes when every fast request was answered; the p99 is stated, not
//! judged, since what is fast enough depends on the machine. `report.rs`
//! builds it from the counts; `svg.rs` writes it and draws the p99.

use std::time::Duration;

use super::fmt_ms;
use super::report::KindStats;
use super::SlowPath;

/// One run's verdict: `headline` then `load`, one sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The answer, starting `Verdict: `: answered or not, and the fast p99.
    pub headline: String,
    /// Under what load, starting `while` or `with`.
    pub load: String,
    /// Every fast request that finished was answered with a 2xx (and some were).
    pub passed: bool,
    /// p99 of the fast 2xx latencies, `None` when there were none.
    pub fast_p99: Option<Duration>,
}

/// What the slow side did during the run, for the "while ..." clause.
pub struct SlowLoad {
    pub loops: usize,
    pub path: SlowPath,
    /// Slow requests answered with a 2xx (jobs done).
    pub done: u64,
}

impl Verdict {
    pub fn judge(fast: &KindStats, slow: &SlowLoad) -> Verdict {
        let fast_p99 = (fast.ok() > 0).then(|| fast.latency.percentile(99.0));
        let load = match (slow.loops, &slow.path) {
            (0, _) => "with no slow load".to_string(),
            (n, SlowPath::Threaded) => format!(
                "while {n} slow loop{} kept the compute cores busy ({} jobs done)",
                plural(n),
                slow.done
            ),
            (n, SlowPath::Inline) => format!(
                "while {n} slow loop{} blocked the I/O core with /slow ({} jobs done)",
                plural(n),
                slow.done
            ),
            (n, SlowPath::Route(path)) => format!(
                "while {n} slow loop{} kept /{path} busy ({} answered)",
                plural(n),
                slow.done
            ),
        };
        let failed = fast.failed();
        let passed = failed == 0 && fast.ok() > 0;
        let answered = if fast.ok() == 0 && failed == 0 {
            "no fast request finished".to_string()
        } else if failed == 0 {
            "every fast request answered".to_string()
        } else {
            format!("{failed} of {} fast requests failed", fast.completed())
        };
        let headline = match fast_p99 {
            Some(p) => format!("Verdict: {answered}, fast p99 {} ms", fmt_ms(p)),
            None => format!("Verdict: {answered}"),
        };
        Verdict {
            headline,
            load,
            passed,
            fast_p99,
        }
    }

    /// The whole sentence.
    pub fn text(&self) -> String {
        format!("{} {}.", self.headline, self.load)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::timeline::Outcome;

    fn fast(latencies_us: &[u64], failures: usize) -> KindStats {
        let mut k = KindStats::default();
        for &us in latencies_us {
            k.record(Outcome::Ok, Duration::from_micros(us), None);
        }
        for _ in 0..failures {
            k.record(Outcome::Status(503), Duration::ZERO, None);
        }
        k
    }

    const BUSY: SlowLoad = SlowLoad {
        loops: 2,
        path: SlowPath::Threaded,
        done: 40,
    };

    #[test]
    fn a_clean_run_passes_and_names_p99_and_the_load() {
        let v = Verdict::judge(&fast(&[300; 1000], 0), &BUSY);
        assert!(v.passed, "{v:?}");
        assert_eq!(
            v.text(),
            "Verdict: every fast request answered, fast p99 0.30 ms while 2 slow loops kept the compute cores busy (40 jobs done)."
        );
        assert!(v.fast_p99.is_some());
    }

    #[test]
    fn a_failed_fast_request_fails_the_verdict() {
        let v = Verdict::judge(&fast(&[300; 10], 2), &BUSY);
        assert!(!v.passed);
        assert!(v.headline.contains("2 of 12 fast requests failed"), "{v:?}");
        let none = Verdict::judge(&fast(&[], 0), &BUSY);
        assert!(!none.passed && none.fast_p99.is_none(), "{none:?}");
        assert_eq!(none.headline, "Verdict: no fast request finished");
    }

    #[test]
    fn the_load_clause_follows_the_slow_path() {
        let inline = SlowLoad {
            loops: 1,
            path: SlowPath::Inline,
            done: 3,
        };
        let v = Verdict::judge(&fast(&[300], 0), &inline);
        assert!(v.load.contains("1 slow loop blocked the I/O core"), "{v:?}");
        let idle = SlowLoad { loops: 0, ..inline };
        assert_eq!(
            Verdict::judge(&fast(&[300], 0), &idle).load,
            "with no slow load"
        );
    }
}

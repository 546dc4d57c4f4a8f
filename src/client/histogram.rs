//! Latency recording for `bench` and the `--svg` timeline: a thin wrapper
//! over an HDR histogram of microseconds.
//!
//! Values are recorded in whole microseconds from 1 µs to one hour (longer
//! latencies saturate at one hour) with three significant digits, so a
//! percentile is within 0.1 % of the true value. The exact minimum and
//! maximum are kept beside the histogram, so `max` is the real worst case
//! and not the top of its bucket. Timeline buckets use [`Histogram::coarse`]
//! (two digits, a quarter of the memory).

use std::time::Duration;

/// Lowest value told apart, in microseconds.
const LOWEST_US: u64 = 1;
/// Highest value recorded, in microseconds (one hour); longer ones saturate.
const HIGHEST_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds.
#[derive(Clone)]
pub struct Histogram {
    inner: hdrhistogram::Histogram<u64>,
    /// Exact extremes in µs (the histogram only knows their buckets).
    min_us: u64,
    max_us: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count())
            .field("min", &self.min())
            .field("median", &self.median())
            .field("max", &self.max())
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    /// Three significant digits: for the run's per-kind percentiles.
    pub fn new() -> Histogram {
        Histogram::with_sigfig(3)
    }

    /// Two significant digits: for the many small per-bucket histograms of the timeline.
    pub fn coarse() -> Histogram {
        Histogram::with_sigfig(2)
    }

    fn with_sigfig(sigfig: u8) -> Histogram {
        let inner = hdrhistogram::Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, sigfig)
            .expect("constant histogram bounds are valid");
        Histogram {
            inner,
            min_us: u64::MAX,
            max_us: 0,
        }
    }

    /// Records one latency (rounded down to whole µs; over an hour saturates).
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .min(HIGHEST_US);
        self.inner.saturating_record(us);
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// The latency at percentile `p` (0 to 100); zero when empty. The
    /// extremes are exact, values in between are within the precision.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.is_empty() {
            return Duration::ZERO;
        }
        let p = if p.is_nan() {
            50.0
        } else {
            p.clamp(0.0, 100.0)
        };
        let us = self
            .inner
            .value_at_percentile(p)
            .clamp(self.min_us, self.max_us);
        Duration::from_micros(us)
    }

    pub fn median(&self) -> Duration {
        self.percentile(50.0)
    }

    /// Smallest recorded latency; zero when empty.
    pub fn min(&self) -> Duration {
        if self.is_empty() {
            Duration::ZERO
        } else {
            Duration::from_micros(self.min_us)
        }
    }

    /// Largest recorded latency, exact; zero when empty.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_us)
    }

    /// Adds every value of `other` to this histogram.
    pub fn merge(&mut self, other: &Histogram) {
        if other.is_empty() {
            return;
        }
        if self.inner.add(&other.inner).is_err() {
            // Different precisions: re-record other's values bucket by bucket.
            for v in other.inner.iter_recorded() {
                self.inner
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn empty_is_all_zero() {
        let h = Histogram::new();
        assert_eq!(h.count(), 0);
        assert_eq!(h.percentile(99.0), Duration::ZERO);
        assert_eq!(h.min(), Duration::ZERO);
        assert_eq!(h.max(), Duration::ZERO);
    }

    #[test]
    fn percentiles_of_one_to_a_thousand_ms() {
        let mut h = Histogram::new();
        for v in 1..=1000 {
            h.record(ms(v));
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.min(), ms(1));
        assert_eq!(h.max(), ms(1000));
        let close = |got: Duration, want: u64| {
            let got = got.as_secs_f64() * 1000.0;
            assert!(
                (got - want as f64).abs() <= want as f64 * 0.002,
                "{got} vs {want}"
            );
        };
        close(h.median(), 500);
        close(h.percentile(90.0), 900);
        close(h.percentile(99.0), 990);
        close(h.percentile(99.9), 999);
        assert_eq!(h.percentile(100.0), ms(1000));
        assert_eq!(h.percentile(0.0), ms(1));
    }

    #[test]
    fn max_is_exact_and_huge_values_saturate() {
        let mut h = Histogram::new();
        h.record(Duration::from_micros(123_457));
        assert_eq!(h.max(), Duration::from_micros(123_457));
        assert_eq!(h.percentile(99.9), Duration::from_micros(123_457));
        h.record(Duration::from_secs(10 * 3600));
        assert_eq!(h.max(), Duration::from_secs(3600));
        h.record(Duration::ZERO);
        assert_eq!(h.min(), Duration::ZERO);
    }

    #[test]
    fn merge_adds_counts_and_extremes() {
        let mut a = Histogram::new();
        let mut b = Histogram::coarse();
        a.record(ms(5));
        b.record(ms(1));
        b.record(ms(50));
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.min(), ms(1));
        assert_eq!(a.max(), ms(50));
        let mut c = Histogram::new();
        c.merge(&a);
        assert_eq!(c.count(), 3);
        // The median is the top of 5 ms's bucket: within 0.1 %.
        assert!(c.median() >= ms(5) && c.median() <= Duration::from_micros(5005));
    }
}

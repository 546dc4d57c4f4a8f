//! What happened when during a `bench` run, kept small enough to draw:
//! the data behind `--svg` (drawn by `svg.rs`).
//!
//! Fast requests are far too many to keep one by one, so they are
//! aggregated per time bucket (100 ms, or wider for long runs so that a run
//! never has more than [`MAX_BUCKETS`]): a coarse latency histogram of the
//! 2xx answers and a count of each kind of failure. Slow requests are few
//! and are kept one by one as [`SlowSpan`]s (start, end, outcome, which slow
//! loop sent them), up to [`MAX_SLOW_SPANS`]; failures of any later ones
//! are still counted in their bucket, so no 503 goes unmarked.

use std::time::Duration;

use super::histogram::Histogram;

/// Narrowest time bucket.
const MIN_BUCKET: Duration = Duration::from_millis(100);
/// A run is cut into at most this many buckets (bounds memory and SVG size).
pub const MAX_BUCKETS: usize = 600;
/// Slow requests kept one by one; past this only their failures are counted.
pub const MAX_SLOW_SPANS: usize = 4000;

/// How one request ended, as bench counts and the timeline marks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx response.
    Ok,
    /// A response with another status.
    Status(u16),
    /// The TCP connect failed.
    Connect,
    /// No complete response within the per-request timeout.
    TimedOut,
    /// The connection was reset or closed before a complete response.
    Reset,
    /// Anything else: a malformed response, an unexpected body, an I/O error.
    Other,
    /// Still waiting when the run ended; abandoned, not a failure.
    Unfinished,
}

/// The mark a failed outcome gets on the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkClass {
    Overloaded503,
    Timeout504,
    OtherError,
}

impl MarkClass {
    pub const ALL: [MarkClass; 3] = [
        MarkClass::Overloaded503,
        MarkClass::Timeout504,
        MarkClass::OtherError,
    ];

    fn index(self) -> usize {
        match self {
            MarkClass::Overloaded503 => 0,
            MarkClass::Timeout504 => 1,
            MarkClass::OtherError => 2,
        }
    }
}

impl Outcome {
    /// The timeline mark for this outcome; `None` for successes and unfinished requests.
    pub fn mark(self) -> Option<MarkClass> {
        match self {
            Outcome::Ok | Outcome::Unfinished => None,
            Outcome::Status(503) => Some(MarkClass::Overloaded503),
            Outcome::Status(504) => Some(MarkClass::Timeout504),
            _ => Some(MarkClass::OtherError),
        }
    }
}

/// One slow request, from the moment it was sent to its outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowSpan {
    /// Which slow loop sent it (its row in the picture).
    pub lane: usize,
    /// Time since the start of the run.
    pub start: Duration,
    pub end: Duration,
    pub outcome: Outcome,
}

/// Fast requests (and the slow failures past [`MAX_SLOW_SPANS`]) that finished in one bucket.
#[derive(Debug, Clone, Default)]
pub struct Bucket {
    /// Latencies of the 2xx fast answers; created on first use.
    pub fast_ok: Option<Histogram>,
    /// Fast failures by [`MarkClass`].
    pub fast_failed: [u32; 3],
    /// Slow failures not kept as spans, by [`MarkClass`].
    pub slow_failed: [u32; 3],
}

impl Bucket {
    pub fn fast_failed(&self, class: MarkClass) -> u32 {
        self.fast_failed[class.index()]
    }

    pub fn slow_failed(&self, class: MarkClass) -> u32 {
        self.slow_failed[class.index()]
    }
}

/// The run's timeline.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// Planned length of the run.
    pub duration: Duration,
    /// Width of one bucket.
    pub bucket: Duration,
    pub buckets: Vec<Bucket>,
    pub slow_spans: Vec<SlowSpan>,
    /// Slow requests past [`MAX_SLOW_SPANS`], not kept one by one.
    pub slow_not_kept: u64,
    /// Number of slow loops (rows in the picture).
    pub lanes: usize,
}

impl Timeline {
    pub fn new(duration: Duration, lanes: usize) -> Timeline {
        let even = duration.div_f64(MAX_BUCKETS as f64);
        let bucket = even.max(MIN_BUCKET);
        let count = (duration.as_secs_f64() / bucket.as_secs_f64()).ceil() as usize;
        Timeline {
            duration,
            bucket,
            buckets: vec![Bucket::default(); count.clamp(1, MAX_BUCKETS + 1)],
            slow_spans: Vec::new(),
            slow_not_kept: 0,
            lanes,
        }
    }

    fn bucket_at(&mut self, at: Duration) -> &mut Bucket {
        let i = (at.as_secs_f64() / self.bucket.as_secs_f64()) as usize;
        let last = self.buckets.len() - 1;
        &mut self.buckets[i.min(last)]
    }

    /// A fast request that ended `at` (since the start) after `latency`.
    pub fn record_fast(&mut self, at: Duration, latency: Duration, outcome: Outcome) {
        let bucket = self.bucket_at(at);
        match outcome.mark() {
            None if outcome == Outcome::Ok => bucket
                .fast_ok
                .get_or_insert_with(Histogram::coarse)
                .record(latency),
            None => {}
            Some(class) => bucket.fast_failed[class.index()] += 1,
        }
    }

    /// A slow request, finished or abandoned.
    pub fn record_slow(&mut self, span: SlowSpan) {
        self.lanes = self.lanes.max(span.lane + 1);
        if self.slow_spans.len() < MAX_SLOW_SPANS {
            self.slow_spans.push(span);
            return;
        }
        self.slow_not_kept += 1;
        if let Some(class) = span.outcome.mark() {
            self.bucket_at(span.end).slow_failed[class.index()] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn bucket_width_grows_for_long_runs() {
        let short = Timeline::new(Duration::from_secs(2), 1);
        assert_eq!(short.bucket, ms(100));
        assert_eq!(short.buckets.len(), 20);
        let long = Timeline::new(Duration::from_secs(3600), 1);
        assert_eq!(long.bucket, Duration::from_secs(6));
        assert!(long.buckets.len() <= MAX_BUCKETS + 1);
    }

    #[test]
    fn fast_requests_land_in_their_bucket() {
        let mut t = Timeline::new(Duration::from_secs(1), 1);
        t.record_fast(ms(50), ms(1), Outcome::Ok);
        t.record_fast(ms(150), ms(2), Outcome::Ok);
        t.record_fast(ms(150), ms(3), Outcome::Status(503));
        t.record_fast(ms(5000), ms(3), Outcome::Reset); // late: clamps to the last bucket
        assert_eq!(t.buckets[0].fast_ok.as_ref().map(Histogram::count), Some(1));
        assert_eq!(t.buckets[1].fast_failed(MarkClass::Overloaded503), 1);
        assert_eq!(t.buckets[9].fast_failed(MarkClass::OtherError), 1);
    }

    #[test]
    fn slow_spans_are_capped_but_failures_still_count() {
        let mut t = Timeline::new(Duration::from_secs(1), 1);
        for i in 0..MAX_SLOW_SPANS + 3 {
            t.record_slow(SlowSpan {
                lane: i % 3,
                start: ms(10),
                end: ms(20),
                outcome: Outcome::Status(503),
            });
        }
        assert_eq!(t.slow_spans.len(), MAX_SLOW_SPANS);
        assert_eq!(t.slow_not_kept, 3);
        assert_eq!(t.buckets[0].slow_failed(MarkClass::Overloaded503), 3);
        assert_eq!(t.lanes, 3);
    }
}

//! `bench`'s progress on stderr while the load runs.
//!
//! On a terminal one line is rewritten in place (`\r`) every second. Anywhere
//! else (a CI log, `nohup`, a pipe) a plain line is printed after the first
//! second, so the log shows at once that the load is flowing, and then every
//! [`PLAIN_EVERY`]; a ten-minute run is never silent. `--quiet` prints
//! nothing. `bench.rs` runs [`show`] as one task beside the load loops and
//! hands it a closure that reads the counters; this file only decides when
//! and how to print.

use std::io::Write;
use std::time::{Duration, Instant};

/// How often a plain (not rewritten) progress line is printed.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// How often the terminal line is rewritten.
const REWRITE_EVERY: Duration = Duration::from_secs(1);

/// Where the progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// One line rewritten with `\r` (stderr is a terminal, or `--progress`).
    Rewrite,
    /// A new line every [`PLAIN_EVERY`] (stderr is a file or a pipe).
    Plain,
    /// Nothing (`--quiet`).
    Quiet,
}

impl Progress {
    /// `--quiet` wins, then `--progress`, then whether stderr is a terminal.
    pub fn choose(quiet: bool, rewrite: bool, stderr_is_terminal: bool) -> Progress {
        if quiet {
            Progress::Quiet
        } else if rewrite || stderr_is_terminal {
            Progress::Rewrite
        } else {
            Progress::Plain
        }
    }

    /// Seconds into the run of the `i`-th line (from 0): every second when
    /// rewriting; 1 s, then 5, 10, 15 ... s for plain lines.
    fn at(self, i: u32) -> Duration {
        match self {
            Progress::Rewrite | Progress::Quiet => REWRITE_EVERY * (i + 1),
            Progress::Plain if i == 0 => Duration::from_secs(1),
            Progress::Plain => PLAIN_EVERY * i,
        }
    }
}

/// The running totals a progress line shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub fast_done: u64,
    pub slow_done: u64,
    pub errors: u64,
}

/// Prints progress until `end` (the last line comes before it). `counts`
/// reads the totals so far.
pub async fn show(mode: Progress, start: Instant, end: Instant, counts: impl Fn() -> Counts) {
    if mode == Progress::Quiet {
        return;
    }
    let total = end.saturating_duration_since(start);
    let (mut last_at, mut last_fast) = (Duration::ZERO, 0);
    for i in 0u32.. {
        let at = mode.at(i);
        if at >= total {
            break;
        }
        glommio::timer::sleep((start + at).saturating_duration_since(Instant::now())).await;
        let now = counts();
        let rate = (now.fast_done - last_fast) as f64 / (at - last_at).as_secs_f64();
        let line = line(start.elapsed(), total, rate, now);
        let mut err = std::io::stderr().lock();
        let _ = match mode {
            Progress::Rewrite => write!(err, "\r{line} "),
            _ => writeln!(err, "bench: {line}"),
        };
        let _ = err.flush();
        (last_at, last_fast) = (at, now.fast_done);
    }
    if mode == Progress::Rewrite {
        eprintln!();
    }
}

/// One progress line, without the `\r` or the newline.
fn line(elapsed: Duration, total: Duration, fast_rate: f64, c: Counts) -> String {
    format!(
        "{:>6.1} s of {:.1} s  fast {:>9.0} req/s  slow done {:>6}  errors {:>6}",
        elapsed.as_secs_f64(),
        total.as_secs_f64(),
        fast_rate,
        c.slow_done,
        c.errors
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_wins_then_the_flag_then_the_terminal() {
        assert_eq!(Progress::choose(true, true, true), Progress::Quiet);
        assert_eq!(Progress::choose(false, true, false), Progress::Rewrite);
        assert_eq!(Progress::choose(false, false, true), Progress::Rewrite);
        assert_eq!(Progress::choose(false, false, false), Progress::Plain);
    }

    #[test]
    fn plain_lines_come_after_a_second_then_every_five() {
        let at: Vec<u64> = (0..4).map(|i| Progress::Plain.at(i).as_secs()).collect();
        assert_eq!(at, [1, 5, 10, 15]);
        let gaps = (1..100).map(|i| Progress::Plain.at(i) - Progress::Plain.at(i - 1));
        assert!(gaps.into_iter().all(|g| g <= PLAIN_EVERY));
        assert_eq!(Progress::Rewrite.at(2), Duration::from_secs(3));
    }

    #[test]
    fn a_line_says_time_rate_and_counts() {
        let c = Counts {
            fast_done: 10,
            slow_done: 3,
            errors: 1,
        };
        let l = line(Duration::from_secs(5), Duration::from_secs(60), 1234.4, c);
        assert!(l.contains("5.0 s of 60.0 s"), "{l}");
        assert!(
            l.contains("1234 req/s") && l.contains("slow done      3"),
            "{l}"
        );
        assert!(!l.contains('\r') && !l.contains('\n'));
    }
}

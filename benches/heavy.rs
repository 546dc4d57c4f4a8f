//! Micro-benchmark of the heavy job: `heavy_lifting` at a few job sizes, one line each.
//!
//! `harness = false`, in the style of glommio's benches: `cargo bench --bench heavy`
//! prints `heavy_lifting n=2000: 14.1 ms/op`, the median wall time of a few runs.
//! n = 20000 (seconds per run) only runs with HEAVY_BENCH_LONG=1.
//! scripts/python_baseline.py prints CPython's loop in the same format, to compare.

use std::hint::black_box;
use std::time::Instant;

use heavylift::jobs::heavy::heavy_lifting;

/// (n, runs): fewer runs where one run is long, to keep the whole bench short.
const CASES: &[(u32, usize)] = &[(100, 101), (2000, 11), (3500, 7), (10_000, 3)];
const LONG_CASE: (u32, usize) = (20_000, 3);

fn main() {
    let long = std::env::var("HEAVY_BENCH_LONG").is_ok_and(|v| v == "1");
    for &(n, runs) in CASES.iter().chain(long.then_some(&LONG_CASE)) {
        let mut ms: Vec<f64> = (0..runs)
            .map(|_| {
                let started = Instant::now();
                let report = heavy_lifting(black_box(n), || false).expect("never cancelled");
                black_box(report);
                started.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        println!("heavy_lifting n={n}: {} ms/op", format_ms(ms[runs / 2]));
    }
}

/// Three significant-ish figures whatever the size: 0.0312, 14.1, 1385.
fn format_ms(ms: f64) -> String {
    match ms {
        ms if ms < 1.0 => format!("{ms:.4}"),
        ms if ms < 100.0 => format!("{ms:.1}"),
        ms => format!("{ms:.0}"),
    }
}

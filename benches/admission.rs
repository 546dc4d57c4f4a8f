//! What deadline-aware admission costs a job on the I/O core (issue 15:
//! at most 1 us), without the channels and sockets around it.
//!
//! `harness = false`: `cargo bench --bench admission` runs, for 1, 4 and 16
//! compute cores, the per-job work admission adds on the I/O core, exactly
//! as `Dispatcher::admit` and `dispatch` do it: per compute core the
//! in-flight count, the route's in-flight count (queue share) and the
//! optimistic and expected waits from `jobs::estimate`; then, on the chosen
//! core, the two counters and the estimate added for the queued job. The
//! compute core's side (dequeue, finish) runs in the same loop, so the
//! sums stay steady, and is reported apart. Median of 9 runs of 200,000
//! jobs, in nanoseconds per job.

use std::hint::black_box;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::time::{Duration, Instant};

use heavylift::stats::Stats;

const JOBS: usize = 200_000;
const RUNS: usize = 9;

fn main() {
    for cores in [1usize, 4, 16] {
        let compute: Vec<usize> = (1..=cores).collect();
        let routes = vec!["fast".to_owned(), "slow_threaded".to_owned()];
        let stats = Stats::new(&[0], &compute, routes);
        let e = &stats.estimates;
        for c in 0..cores {
            e.finished(c, 1, Duration::from_millis(10 + c as u64));
            e.finished(c, 1, Duration::from_millis(30));
        }
        let (mut io, mut compute_side) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let (mut io_ns, mut compute_ns) = (0u128, 0u128);
            for j in 0..JOBS {
                let t = Instant::now();
                // Dispatcher::admit
                let now = e.now();
                let best = (0..cores)
                    .filter(|&c| stats.compute[c].in_flight.load(Relaxed) <= 64)
                    .filter(|&c| stats.compute[c].route_in_flight[1].load(Relaxed) <= 32)
                    .map(|c| (e.waits(c, now), c))
                    .min();
                let (_, c) = black_box(best).expect("room");
                // Dispatcher::dispatch, on the chosen core
                stats.compute[c].in_flight.fetch_add(1, AcqRel);
                stats.compute[c].route_in_flight[1].fetch_add(1, AcqRel);
                let added = e.queued(c, 1);
                let mid = Instant::now();
                // The compute core's side of the same job.
                e.dequeued(c, added, Some(j + 1));
                stats.compute[c].in_flight.fetch_sub(1, AcqRel);
                stats.compute[c].route_in_flight[1].fetch_sub(1, AcqRel);
                e.finished(c, 1, Duration::from_micros(20_000 + (j % 7) as u64 * 1000));
                let end = Instant::now();
                io_ns += (mid - t).as_nanos();
                compute_ns += (end - mid).as_nanos();
            }
            io.push(io_ns as f64 / JOBS as f64);
            compute_side.push(compute_ns as f64 / JOBS as f64);
        }
        io.sort_by(f64::total_cmp);
        compute_side.sort_by(f64::total_cmp);
        println!(
            "admission, {cores:>2} compute cores: {:>6.0} ns per job on the I/O core, {:>6.0} ns on the compute core (each with the bench's own clock read)",
            io[RUNS / 2],
            compute_side[RUNS / 2]
        );
    }
}

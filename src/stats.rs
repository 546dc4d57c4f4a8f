//! Per-core counters and their two renderings: `/stats` (JSON) and `/metrics`
//! (Prometheus text exposition).
//!
//! Each core owns one cache-line-aligned slot and is the only writer of it
//! (relaxed atomics, no locks on the request path). `/stats` and `/metrics`
//! read every slot on demand from whichever I/O core was asked. Totals are sums
//! of per-core slots: I/O cores count what they decide (accepted, rejected,
//! timed out, cancelled), compute cores what they run (completed, failed).

use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicUsize,
    Ordering::{AcqRel, Acquire, Relaxed},
};

/// Status codes with their own request counter; anything else counts as "other".
pub const STATUSES: [u16; 14] = [
    200, 400, 404, 405, 408, 413, 414, 431, 500, 501, 503, 504, 505, 0,
];
/// Upper bounds (seconds) of the job duration histogram buckets.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds (seconds) of the per-route job time histograms (queue wait,
/// run time, CPU time): from the 100 us of an empty job's round trip to the
/// 30 s default job timeout.
pub const TIME_BUCKETS: [f64; 15] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A Prometheus histogram of durations over the upper bounds `bounds`
/// (seconds): relaxed atomic counters, written by any compute core, read
/// by `/metrics`.
pub struct Histogram<const N: usize> {
    bounds: &'static [f64; N],
    buckets: [AtomicU64; N],
    count: AtomicU64,
    micros: AtomicU64,
}

/// Per route, over [`TIME_BUCKETS`].
pub type TimeHistogram = Histogram<{ TIME_BUCKETS.len() }>;
/// Per compute core, over [`DURATION_BUCKETS`].
pub type DurationHistogram = Histogram<{ DURATION_BUCKETS.len() }>;

impl Default for TimeHistogram {
    fn default() -> Self {
        Histogram::new(&TIME_BUCKETS)
    }
}

impl Default for DurationHistogram {
    fn default() -> Self {
        Histogram::new(&DURATION_BUCKETS)
    }
}

impl<const N: usize> Histogram<N> {
    /// An empty histogram over `bounds`.
    pub fn new(bounds: &'static [f64; N]) -> Self {
        Histogram {
            bounds,
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            micros: AtomicU64::new(0),
        }
    }

    /// Counts one observation of `d`.
    pub fn record(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|le| secs <= *le) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.micros
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// Their sum, in seconds.
    pub fn sum_secs(&self) -> f64 {
        self.micros.load(Relaxed) as f64 / 1e6
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        use std::fmt::Write;
        let mut cumulative = 0;
        for (le, n) in self.bounds.iter().zip(&self.buckets) {
            cumulative += n.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum_secs());
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Where the time of one route's jobs went (jobs that started only).
#[derive(Default)]
pub struct RouteTimes {
    /// From dispatch on the I/O core to the start on a compute core.
    pub queue: TimeHistogram,
    /// From start to end, on the compute core (in its worker, under process
    /// isolation, hand-off included).
    pub run: TimeHistogram,
    /// The job's CPU time: the compute thread's CPU clock (thread
    /// isolation) or the worker process's (process isolation).
    pub cpu: TimeHistogram,
}

/// `cause` labels of `heavylift_worker_deaths_total` (process isolation).
pub const DEATH_CAUSES: [&str; 9] = [
    "out_of_memory",
    "stack_overflow",
    "SIGABRT",
    "SIGSEGV",
    "SIGBUS",
    "SIGKILL",
    "other_signal",
    "exit",
    "protocol",
];
/// `reason` labels of `heavylift_worker_kills_total`: why a worker whose job
/// outlived its cancel by the kill grace was killed.
pub const KILL_REASONS: [&str; 2] = ["timeout", "hangup"];

/// Counters of one I/O core.
#[repr(align(64))]
pub struct IoCoreStats {
    pub cpu: usize,
    pub requests: AtomicU64,
    pub open_connections: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub timed_out: AtomicU64,
    pub cancelled: AtomicU64,
    /// Admission refusals (503) by `jobs::dispatch::REFUSAL_REASONS`.
    pub refused: [AtomicU64; 3],
    /// `[route][status]` request counts; the last route row is "other" (404s).
    by_route: Vec<[AtomicU64; STATUSES.len()]>,
}

/// Counters of one compute core.
#[repr(align(64))]
#[derive(Default)]
pub struct ComputeCoreStats {
    /// CPU number, set by the compute executor once it has joined the meshes.
    pub cpu: AtomicUsize,
    /// Jobs admitted to this core and not finished: the waiting ones plus the
    /// running one, and the places held for bodies still arriving
    /// (`reserved`). Admission keeps it at most `--queue-depth` + 1.
    pub in_flight: AtomicUsize,
    /// Jobs cancelled while they waited, out of `in_flight` but still on
    /// their way to this core, which skips them (`Dispatcher::cancel`).
    /// Admission keeps it at most `dispatch::husk_room` (four times the
    /// queue depth plus one, at least 64), so hang-ups behind a long job
    /// cannot pile them up without bound.
    pub skipped_ahead: AtomicUsize,
    /// Of `in_flight`, the places admission holds for requests whose body
    /// is still arriving (`dispatch::Slot`): no job waits in them yet.
    pub reserved: AtomicUsize,
    pub running: AtomicBool,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    /// Pid of this core's worker process (from its start); 0 (`null` in
    /// `/stats`) in thread isolation and while a worker starts.
    pub worker_pid: AtomicU32,
    /// Workers replaced after a death, a kill or a protocol error.
    pub worker_restarts: AtomicU64,
    /// Workers that failed to start (each one waits out a back-off).
    pub worker_start_failures: AtomicU64,
    /// Worker deaths by [`DEATH_CAUSES`].
    worker_deaths: [AtomicU64; DEATH_CAUSES.len()],
    /// Worker kills by [`KILL_REASONS`].
    worker_kills: [AtomicU64; KILL_REASONS.len()],
    /// Time spent running jobs.
    pub durations: DurationHistogram,
    /// Per route (router order): its jobs admitted to this core and not
    /// finished, for the routes' queue shares.
    pub route_in_flight: Vec<AtomicUsize>,
}

impl ComputeCoreStats {
    /// Jobs waiting in this core's queue (the running one not counted).
    pub fn queued(&self) -> usize {
        let running = usize::from(self.running.load(Relaxed));
        let reserved = self.reserved.load(Relaxed);
        self.in_flight
            .load(Relaxed)
            .saturating_sub(reserved)
            .saturating_sub(running)
    }

    /// Counts a worker death under `cause` (one of [`DEATH_CAUSES`]; anything
    /// else counts as `other_signal`).
    pub fn record_worker_death(&self, cause: &str) {
        let i = DEATH_CAUSES.iter().position(|c| *c == cause).unwrap_or(6);
        self.worker_deaths[i].fetch_add(1, Relaxed);
    }

    /// Counts a worker killed for `reason` (one of [`KILL_REASONS`]).
    pub fn record_worker_kill(&self, reason: &str) {
        let i = KILL_REASONS.iter().position(|r| *r == reason).unwrap_or(0);
        self.worker_kills[i].fetch_add(1, Relaxed);
    }

    /// Worker deaths with cause `cause`.
    pub fn worker_deaths(&self, cause: &str) -> u64 {
        DEATH_CAUSES
            .iter()
            .position(|c| *c == cause)
            .map_or(0, |i| self.worker_deaths[i].load(Relaxed))
    }

    pub fn record_duration(&self, took: std::time::Duration) {
        self.durations.record(took);
    }
}

/// Every core's counters, shared by all executors of one server.
pub struct Stats {
    pub io: Vec<IoCoreStats>,
    pub compute: Vec<ComputeCoreStats>,
    /// Route labels in router order; requests to unknown paths count as "other".
    pub routes: Vec<String>,
    /// Expected run times per route and waits per compute core (admission).
    pub estimates: crate::jobs::estimate::Estimates,
    /// Per route (router order): queue wait, run time and CPU time of its jobs.
    pub route_times: Vec<RouteTimes>,
    /// I/O executors that have stopped serving (after a stop, every request
    /// they read has its answer); see [`Stats::io_stopped`].
    io_stopped: AtomicUsize,
}

/// Job totals over all cores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobTotals {
    pub accepted: u64,
    pub completed: u64,
    pub failed: u64,
    pub rejected: u64,
    pub timed_out: u64,
    pub cancelled: u64,
}

impl Stats {
    pub fn new(io_cpus: &[usize], compute_cpus: &[usize], routes: Vec<String>) -> Stats {
        let io = io_cpus
            .iter()
            .map(|&cpu| IoCoreStats {
                cpu,
                requests: AtomicU64::new(0),
                open_connections: AtomicU64::new(0),
                accepted: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                timed_out: AtomicU64::new(0),
                cancelled: AtomicU64::new(0),
                refused: Default::default(),
                by_route: (0..=routes.len()).map(|_| Default::default()).collect(),
            })
            .collect();
        let compute = compute_cpus
            .iter()
            .map(|&cpu| {
                let s = ComputeCoreStats {
                    route_in_flight: (0..routes.len()).map(|_| AtomicUsize::new(0)).collect(),
                    ..ComputeCoreStats::default()
                };
                s.cpu.store(cpu, Relaxed);
                s
            })
            .collect();
        Stats {
            io,
            estimates: crate::jobs::estimate::Estimates::new(routes.len(), compute_cpus.len()),
            compute,
            route_times: (0..routes.len()).map(|_| RouteTimes::default()).collect(),
            routes,
            io_stopped: AtomicUsize::new(0),
        }
    }

    /// Called by an I/O executor once it has stopped serving: its
    /// connections are closed, each request it read answered (or, past the
    /// drain's bound, abandoned, which cancels its job).
    pub fn io_core_stopped(&self) {
        self.io_stopped.fetch_add(1, AcqRel);
    }

    /// True once every I/O executor has stopped (the server is stopping and
    /// no request is left waiting): a job still running then has nobody
    /// waiting for it.
    pub fn io_stopped(&self) -> bool {
        self.io_stopped.load(Acquire) >= self.io.len()
    }

    /// Records a job of route `route` that started: its wait in the queue,
    /// its run time and, when known, its CPU time.
    pub fn record_job(
        &self,
        route: usize,
        queued: std::time::Duration,
        run: std::time::Duration,
        cpu: Option<std::time::Duration>,
    ) {
        let Some(t) = self.route_times.get(route) else {
            return;
        };
        t.queue.record(queued);
        t.run.record(run);
        if let Some(cpu) = cpu {
            t.cpu.record(cpu);
        }
    }

    /// Counts one answered request on I/O core `core`; `route` is the router
    /// index or `None` for an unknown path.
    pub fn count_request(&self, core: usize, route: Option<usize>, status: u16) {
        let s = &self.io[core];
        s.requests.fetch_add(1, Relaxed);
        let row = route.unwrap_or(self.routes.len()).min(self.routes.len());
        let col = STATUSES
            .iter()
            .position(|c| *c == status)
            .unwrap_or(STATUSES.len() - 1);
        s.by_route[row][col].fetch_add(1, Relaxed);
    }

    pub fn totals(&self) -> JobTotals {
        let sum_io =
            |f: fn(&IoCoreStats) -> &AtomicU64| self.io.iter().map(|s| f(s).load(Relaxed)).sum();
        let sum_c = |f: fn(&ComputeCoreStats) -> &AtomicU64| {
            self.compute.iter().map(|s| f(s).load(Relaxed)).sum()
        };
        JobTotals {
            accepted: sum_io(|s| &s.accepted),
            rejected: sum_io(|s| &s.rejected),
            timed_out: sum_io(|s| &s.timed_out),
            cancelled: sum_io(|s| &s.cancelled),
            completed: sum_c(|s| &s.completed),
            failed: sum_c(|s| &s.failed),
        }
    }

    /// The `/stats` document (the contract's field names).
    pub fn render_json(&self) -> String {
        let io: Vec<_> = self
            .io
            .iter()
            .map(|s| {
                serde_json::json!({
                    "core": s.cpu,
                    "requests": s.requests.load(Relaxed),
                    "open_connections": s.open_connections.load(Relaxed),
                })
            })
            .collect();
        let compute: Vec<_> = self
            .compute
            .iter()
            .enumerate()
            .map(|(i, s)| {
                serde_json::json!({
                    "core": s.cpu.load(Relaxed),
                    "queued": s.queued(),
                    // Places held for uploads still arriving (not in `queued`).
                    "reserved": s.reserved.load(Relaxed),
                    "running": s.running.load(Relaxed),
                    "completed": s.completed.load(Relaxed),
                    "failed": s.failed.load(Relaxed),
                    "worker_pid": match s.worker_pid.load(Relaxed) {
                        0 => serde_json::Value::Null,
                        pid => pid.into(),
                    },
                    "worker_restarts": s.worker_restarts.load(Relaxed),
                    "expected_wait_seconds": self.estimates.wait(i).as_secs_f64(),
                    "worker_start_failures": s.worker_start_failures.load(Relaxed),
                })
            })
            .collect();
        let t = self.totals();
        serde_json::json!({
            "io_cores": io,
            "compute_cores": compute,
            "jobs": {
                "accepted": t.accepted, "completed": t.completed, "failed": t.failed,
                "rejected": t.rejected, "timed_out": t.timed_out, "cancelled": t.cancelled,
            },
        })
        .to_string()
    }

    /// The `/metrics` page, Prometheus text exposition format 0.0.4.
    pub fn render_metrics(&self) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(4096);
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut out,
            "heavylift_requests_total",
            "counter",
            "HTTP requests answered, by I/O core, route and status.",
        );
        for s in &self.io {
            for (r, row) in s.by_route.iter().enumerate() {
                let route = self.routes.get(r).map_or("other", |n| n.as_str());
                for (c, n) in row.iter().enumerate() {
                    let n = n.load(Relaxed);
                    if n == 0 {
                        continue;
                    }
                    let status = match STATUSES[c] {
                        0 => "other".to_string(),
                        code => code.to_string(),
                    };
                    let _ = writeln!(
                        out,
                        "heavylift_requests_total{{core=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                        s.cpu,
                        escape_label(route)
                    );
                }
            }
        }
        family(
            &mut out,
            "heavylift_open_connections",
            "gauge",
            "Open client connections, by I/O core.",
        );
        for s in &self.io {
            let _ = writeln!(
                out,
                "heavylift_open_connections{{core=\"{}\"}} {}",
                s.cpu,
                s.open_connections.load(Relaxed)
            );
        }
        let t = self.totals();
        family(
            &mut out,
            "heavylift_jobs_accepted_total",
            "counter",
            "Jobs that entered a compute queue.",
        );
        let _ = writeln!(out, "heavylift_jobs_accepted_total {}", t.accepted);
        family(
            &mut out,
            "heavylift_jobs_total",
            "counter",
            "Jobs by how they ended.",
        );
        for (outcome, n) in [
            ("completed", t.completed),
            ("failed", t.failed),
            ("rejected", t.rejected),
            ("timed_out", t.timed_out),
            ("cancelled", t.cancelled),
        ] {
            let _ = writeln!(out, "heavylift_jobs_total{{outcome=\"{outcome}\"}} {n}");
        }
        family(
            &mut out,
            "heavylift_admission_refusals_total",
            "counter",
            "Jobs answered 503 on arrival, by reason.",
        );
        for (i, reason) in crate::jobs::dispatch::REFUSAL_REASONS.iter().enumerate() {
            let n: u64 = self.io.iter().map(|s| s.refused[i].load(Relaxed)).sum();
            let _ = writeln!(
                out,
                "heavylift_admission_refusals_total{{reason=\"{reason}\"}} {n}"
            );
        }
        family(
            &mut out,
            "heavylift_expected_wait_seconds",
            "gauge",
            "Expected wait before a new job starts, per compute core, from measured run times.",
        );
        for (i, s) in self.compute.iter().enumerate() {
            let _ = writeln!(
                out,
                "heavylift_expected_wait_seconds{{core=\"{}\"}} {}",
                s.cpu.load(Relaxed),
                self.estimates.wait(i).as_secs_f64()
            );
        }
        family(
            &mut out,
            "heavylift_queue_depth",
            "gauge",
            "Jobs waiting in each compute core's queue.",
        );
        for s in &self.compute {
            let _ = writeln!(
                out,
                "heavylift_queue_depth{{core=\"{}\"}} {}",
                s.cpu.load(Relaxed),
                s.queued()
            );
        }
        family(
            &mut out,
            "heavylift_compute_busy",
            "gauge",
            "1 while a compute core runs a job.",
        );
        for s in &self.compute {
            let _ = writeln!(
                out,
                "heavylift_compute_busy{{core=\"{}\"}} {}",
                s.cpu.load(Relaxed),
                u8::from(s.running.load(Relaxed))
            );
        }
        family(
            &mut out,
            "heavylift_worker_restarts_total",
            "counter",
            "Worker processes replaced, by compute core (process isolation).",
        );
        for s in &self.compute {
            let _ = writeln!(
                out,
                "heavylift_worker_restarts_total{{core=\"{}\"}} {}",
                s.cpu.load(Relaxed),
                s.worker_restarts.load(Relaxed)
            );
        }
        family(
            &mut out,
            "heavylift_worker_deaths_total",
            "counter",
            "Worker processes that died, by compute core and cause.",
        );
        for s in &self.compute {
            for (cause, n) in DEATH_CAUSES.iter().zip(&s.worker_deaths) {
                let _ = writeln!(
                    out,
                    "heavylift_worker_deaths_total{{core=\"{}\",cause=\"{cause}\"}} {}",
                    s.cpu.load(Relaxed),
                    n.load(Relaxed)
                );
            }
        }
        family(
            &mut out,
            "heavylift_worker_kills_total",
            "counter",
            "Workers killed because their job outlived its cancel by the kill grace, by reason.",
        );
        for s in &self.compute {
            for (reason, n) in KILL_REASONS.iter().zip(&s.worker_kills) {
                let _ = writeln!(
                    out,
                    "heavylift_worker_kills_total{{core=\"{}\",reason=\"{reason}\"}} {}",
                    s.cpu.load(Relaxed),
                    n.load(Relaxed)
                );
            }
        }
        family(
            &mut out,
            "heavylift_job_duration_seconds",
            "histogram",
            "Time compute cores spent running jobs.",
        );
        for s in &self.compute {
            let labels = format!("core=\"{}\"", s.cpu.load(Relaxed));
            s.durations
                .render(&mut out, "heavylift_job_duration_seconds", &labels);
        }
        // Per route, for the routes that ran a job (a route that never
        // offloads would only add empty series).
        type Pick = fn(&RouteTimes) -> &TimeHistogram;
        let families: [(&str, &str, Pick); 3] = [
            (
                "heavylift_job_queue_seconds",
                "Time jobs waited from dispatch to their start, by route.",
                |t| &t.queue,
            ),
            (
                "heavylift_job_run_seconds",
                "Time jobs ran on a compute core (in its worker under process isolation), by route.",
                |t| &t.run,
            ),
            (
                "heavylift_job_cpu_seconds",
                "CPU time of jobs (the compute thread's or the worker process's CPU clock), by route.",
                |t| &t.cpu,
            ),
        ];
        for (name, help, pick) in families {
            family(&mut out, name, "histogram", help);
            for (route, times) in self.routes.iter().zip(&self.route_times) {
                if times.run.count() == 0 {
                    continue;
                }
                let labels = format!("route=\"{}\"", escape_label(route));
                pick(times).render(&mut out, name, &labels);
            }
        }
        out
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> Stats {
        Stats::new(&[0], &[1], vec!["fast".into(), "slow_threaded".into()])
    }

    #[test]
    fn json_has_contract_fields() {
        let s = stats();
        s.count_request(0, Some(0), 200);
        s.io[0].accepted.fetch_add(2, Relaxed);
        s.compute[0].completed.fetch_add(1, Relaxed);
        s.io[0].timed_out.fetch_add(1, Relaxed);
        let v: serde_json::Value = serde_json::from_str(&s.render_json()).unwrap();
        assert_eq!(v["io_cores"][0]["core"], 0);
        assert_eq!(v["io_cores"][0]["requests"], 1);
        assert_eq!(v["compute_cores"][0]["core"], 1);
        assert_eq!(v["compute_cores"][0]["running"], false);
        assert_eq!(v["jobs"]["accepted"], 2);
        assert_eq!(v["jobs"]["completed"], 1);
        assert_eq!(v["jobs"]["timed_out"], 1);
        assert_eq!(v["compute_cores"][0]["worker_pid"], serde_json::Value::Null);
        assert_eq!(v["compute_cores"][0]["worker_restarts"], 0);
        s.compute[0].worker_pid.store(4242, Relaxed);
        let v: serde_json::Value = serde_json::from_str(&s.render_json()).unwrap();
        assert_eq!(v["compute_cores"][0]["worker_pid"], 4242);
    }

    #[test]
    fn metrics_count_worker_deaths_and_kills() {
        let s = stats();
        s.compute[0].record_worker_death("SIGSEGV");
        s.compute[0].record_worker_death("out_of_memory");
        s.compute[0].record_worker_kill("hangup");
        s.compute[0].worker_restarts.fetch_add(3, Relaxed);
        let m = s.render_metrics();
        assert!(m.contains("heavylift_worker_deaths_total{core=\"1\",cause=\"SIGSEGV\"} 1"));
        assert!(m.contains("heavylift_worker_deaths_total{core=\"1\",cause=\"out_of_memory\"} 1"));
        assert!(m.contains("heavylift_worker_kills_total{core=\"1\",reason=\"hangup\"} 1"));
        assert!(m.contains("heavylift_worker_kills_total{core=\"1\",reason=\"timeout\"} 0"));
        assert!(m.contains("heavylift_worker_restarts_total{core=\"1\"} 3"));
        assert_eq!(s.compute[0].worker_deaths("SIGSEGV"), 1);
    }

    #[test]
    fn metrics_count_by_route_and_status() {
        let s = stats();
        s.count_request(0, Some(1), 503);
        s.count_request(0, None, 404);
        s.count_request(0, Some(0), 201);
        s.compute[0].record_duration(std::time::Duration::from_millis(20));
        let m = s.render_metrics();
        assert!(m.contains(
            "heavylift_requests_total{core=\"0\",route=\"slow_threaded\",status=\"503\"} 1"
        ));
        assert!(m.contains("route=\"other\",status=\"404\"} 1"));
        assert!(m.contains("route=\"fast\",status=\"other\"} 1"));
        assert!(m.contains("heavylift_job_duration_seconds_bucket{core=\"1\",le=\"0.025\"} 1"));
        assert!(m.contains("heavylift_job_duration_seconds_bucket{core=\"1\",le=\"0.01\"} 0"));
        assert!(m.contains("heavylift_job_duration_seconds_count{core=\"1\"} 1"));
    }
}

//! Compute side of the job path: the only place jobs run (besides the
//! deliberately blocking `/slow` route).
//!
//! One task per producing I/O core drains that core's job channel: skip a job
//! cancelled while it waited, run it under `catch_unwind`, send the outcome
//! back through the results mesh, and yield so the other producers' tasks get
//! their turn. A panicking job costs one 500, never the core. Under process
//! isolation the jobs go instead to the core's `process::supervisor`, which
//! runs them in its worker process.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use futures_lite::future;
use glommio::channels::channel_mesh::{Receivers, Senders};
use glommio::channels::shared_channel::ConnectedReceiver;

use super::process::supervisor::{Idle, Supervisor};
use super::process::ProcessSettings;
use super::{panic_message, thread_cpu_time, Done, Job, JobContext, JobOutcome, JobState};
use crate::stats::Stats;

/// How often an idle compute executor wakes up on its own. Added (at 10 ms)
/// when, under CPU contention, a job pushed to a sleeping compute executor
/// sometimes sat in the channel until the next push (~1 job in 1000-4000);
/// the cause was glommio parking with a runnable task (patch 13 in
/// `vendor/glommio/HEAVYLIFT.md`), which no timer could bound. Kept as a
/// safety net: every reactor turn polls the channels. Each wake-up costs
/// the 200 us spin before parking (`server::COMPUTE_SPIN_BEFORE_PARK`), so
/// at 10 ms an idle server's compute core alone used 3.5% of a CPU (42
/// ticks in 12 s, with the I/O core's stop poll 5.5% in all); at 100 ms it
/// is a tenth of that.
pub const WAKE_TICK: Duration = Duration::from_millis(100);

thread_local! {
    /// True while this thread runs a job, so the panic hook stays quiet for it.
    static IN_JOB: Cell<bool> = const { Cell::new(false) };
}

/// Installs (once per process) a panic hook that logs job panics at debug
/// level instead of printing them: they are expected and answered with 500.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_JOB.with(Cell::get) {
                log::debug!("job panicked: {info}");
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `work` with panics caught; used by compute cores and the inline route.
pub fn run_caught<R>(work: impl FnOnce() -> R) -> Result<R, String> {
    IN_JOB.with(|f| f.set(true));
    let result = catch_unwind(AssertUnwindSafe(work));
    IN_JOB.with(|f| f.set(false));
    result.map_err(|payload| panic_message(&*payload))
}

/// What a compute executor needs to know about itself.
#[derive(Clone)]
pub struct ComputeCore {
    /// Index in `Stats::compute` (= consumer index in the jobs mesh).
    pub index: usize,
    pub cpu: usize,
    pub shared: bool,
    pub stats: Arc<Stats>,
}

/// The compute executor's main future: returns once every I/O core has closed
/// its job channel (server shutdown). With `process` set, jobs run in this
/// core's supervised worker process instead of on this thread.
pub async fn run_compute_core(
    core: ComputeCore,
    mut jobs: Receivers<Job>,
    results: Senders<Done>,
    process: Option<ProcessSettings>,
) {
    let results = Rc::new(results);
    glommio::spawn_local(async {
        loop {
            glommio::timer::sleep(WAKE_TICK).await;
        }
    })
    .detach();
    if let Some(settings) = process {
        return run_supervised(core, jobs, results, settings).await;
    }
    let tasks: Vec<_> = jobs
        .streams()
        .into_iter()
        .map(|(_, stream)| {
            glommio::spawn_local(drain_stream(core.clone(), stream, results.clone()))
        })
        .collect();
    for task in tasks {
        task.await;
    }
}

/// Process isolation: every producer's jobs go, in arrival order, to the one
/// task that owns this core's [`Supervisor`]; the worker runs one at a time.
async fn run_supervised(
    core: ComputeCore,
    mut jobs: Receivers<Job>,
    results: Rc<Senders<Done>>,
    settings: ProcessSettings,
) {
    let (tx, rx) = glommio::channels::local_channel::new_unbounded::<Job>();
    // The channel closes when the last forwarder (and its sender) is gone.
    let tx = Rc::new(tx);
    for (_, stream) in jobs.streams() {
        let tx = tx.clone();
        glommio::spawn_local(async move {
            while let Some(job) = stream.recv().await {
                if tx.send(job).await.is_err() {
                    return;
                }
            }
        })
        .detach();
    }
    drop(tx);
    let stats = &core.stats.compute[core.index];
    let mut supervisor = Supervisor::new(core.clone(), settings);
    supervisor.prestart();
    // One value on this task's stack per job; boxing the job would cost an
    // allocation per job instead.
    #[allow(clippy::large_enum_variant)]
    enum Next {
        Job(Option<Job>),
        Idle(Idle),
    }
    loop {
        // Between jobs the supervisor keeps its worker up: it takes the
        // Hello and replaces a worker that dies idle, so the next job does
        // not wait for a start. A job already waiting is taken without
        // setting up that watch (two io_uring polls and their cancels).
        let next = match future::poll_once(rx.recv()).await {
            Some(job) => Next::Job(job),
            None => {
                future::or(async { Next::Job(rx.recv().await) }, async {
                    Next::Idle(supervisor.watch().await)
                })
                .await
            }
        };
        let job = match next {
            Next::Job(Some(job)) => job,
            Next::Job(None) => break,
            Next::Idle(event) => {
                supervisor.handle_idle(event).await;
                // Every turn lets the executor's other tasks (the job
                // forwarders whose end stops this loop) run.
                glommio::executor().yield_now().await;
                continue;
            }
        };
        let Some(outcome) = supervisor.run(&job).await else {
            // Cancelled while it waited: its canceller gave back its slot
            // and dropped its input (`Dispatcher::cancel`).
            stats.skipped_ahead.fetch_sub(1, AcqRel);
            continue;
        };
        core.stats.estimates.idle(core.index);
        stats.in_flight.fetch_sub(1, AcqRel);
        stats.route_in_flight[job.route].fetch_sub(1, AcqRel);
        if let Some(outcome) = outcome {
            send_outcome(&core, &results, &job, outcome).await;
        }
        glommio::executor().yield_now().await;
    }
}

async fn send_outcome(core: &ComputeCore, results: &Senders<Done>, job: &Job, outcome: JobOutcome) {
    let done = Done {
        id: job.id,
        outcome,
    };
    if results.send_to(job.reply_to, done).await.is_err() {
        log::debug!(
            "compute core {}: I/O core gone, result of job {} dropped",
            core.cpu,
            job.id
        );
    }
}

async fn drain_stream(
    core: ComputeCore,
    stream: ConnectedReceiver<Job>,
    results: Rc<Senders<Done>>,
) {
    let stats = &core.stats.compute[core.index];
    while let Some(job) = stream.recv().await {
        if !job.cancel.start() {
            // Cancelled while it waited: its canceller gave back its slot
            // and dropped its input (`Dispatcher::cancel`).
            stats.skipped_ahead.fetch_sub(1, AcqRel);
            continue;
        }
        let estimates = &core.stats.estimates;
        estimates.dequeued(core.index, job.expected, Some(job.cancel.key()));
        let outcome = run_job(&core, &job);
        estimates.idle(core.index);
        // The core is free for the next job before the result travels back.
        stats.in_flight.fetch_sub(1, AcqRel);
        stats.route_in_flight[job.route].fetch_sub(1, AcqRel);
        if let Some(outcome) = outcome {
            send_outcome(&core, &results, &job, outcome).await;
        }
        glommio::executor().yield_now().await;
    }
}

/// Runs one job, already started (`CancelToken::start`); returns the
/// outcome to send back, or `None` when the job was cancelled (its
/// canceller answered and counted it).
fn run_job(core: &ComputeCore, job: &Job) -> Option<JobOutcome> {
    let cancel = &job.cancel;
    let stats = &core.stats.compute[core.index];
    // Always there: only a canceller that stopped the job before its start
    // takes it (`InputSlot`).
    let input = job.input.take().unwrap_or_default();
    stats.running.store(true, Relaxed);
    let started = Instant::now();
    let cpu_before = thread_cpu_time();
    let ctx = JobContext::new(
        core.cpu,
        cancel,
        core.shared,
        started.saturating_duration_since(job.dispatched),
    );
    let result = run_caught(|| (job.run)(&input, &ctx));
    let took = started.elapsed();
    let cpu = thread_cpu_time().saturating_sub(cpu_before);
    stats.record_duration(took);
    core.stats
        .record_job(job.route, ctx.queued, took, Some(cpu));
    core.stats.estimates.finished(core.index, job.route, took);
    stats.running.store(false, Relaxed);
    match result {
        Ok(Ok(response)) => cancel.finish(JobState::Completed).then(|| {
            stats.completed.fetch_add(1, Relaxed);
            JobOutcome::Done(response)
        }),
        Ok(Err(_cancelled)) => None,
        Err(msg) => cancel.finish(JobState::Failed).then(|| {
            stats.failed.fetch_add(1, Relaxed);
            log::warn!("job failed on compute core {}: {msg}", core.cpu);
            JobOutcome::Panicked(msg)
        }),
    }
}

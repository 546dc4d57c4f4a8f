//! The vendored glommio's executor loop, where heavylift depends on a fix to
//! upstream 0.9.0 (`vendor/glommio/HEAVYLIFT.md`, patch 13).

use std::sync::mpsc;
use std::time::Duration;

use glommio::LocalExecutorBuilder;

/// Upstream 0.9.0 parks an executor whose preempt timer fired before the
/// loop turn ran any task: the turn reports "nothing ran", and the executor
/// sleeps with the task still runnable until an unrelated wake-up, or for
/// ever. A 1 ns preempt timer has fired by the time every turn starts, so
/// without the fix the first of these 1,000 one-task runs never finishes.
#[test]
fn an_executor_preempted_before_its_first_task_still_runs_it() {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let executor = LocalExecutorBuilder::default()
            .preempt_timer(Duration::from_nanos(1))
            .make()
            .expect("executor");
        for _ in 0..1_000 {
            executor.run(async {});
        }
        let _ = done.send(());
    });
    finished.recv_timeout(Duration::from_secs(30)).expect(
        "1,000 runs of an empty task finish within 30 s (a hang: the executor parked with a runnable task)",
    );
}

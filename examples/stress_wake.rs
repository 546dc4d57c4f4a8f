//! Stress for executor wake-ups across cores (it found glommio patch 13,
//! `vendor/glommio/HEAVYLIFT.md`): THREADS threads each start a server (one
//! I/O core, one compute core: every server shares the same two CPUs), offload
//! four tiny jobs with idle gaps between them (so the compute executor parks),
//! stop it, and repeat ROUNDS times. A start, job or stop slower than 3 s is
//! reported as `STALL`; a round still running after 6 s gets the kernel's view
//! of every executor thread written to `/tmp/stress-wake-PID-N.txt` (state,
//! system call, and `/proc/PID/fdinfo` of the io_uring it sleeps on and its
//! neighbours: each ring's heads, tails and pending requests).
//!
//! Run: `cargo run --release --example stress_wake -- [THREADS] [ROUNDS]`
//! (default 4 x 200). Exits non-zero if any round stalled or failed.
//!
//! Keep THREADS x ROUNDS under about 9,000 at a 20,000 open-file limit: each
//! server start leaves two eventfds open for the life of the process
//! (glommio frees no task still pending when its executor exits, and such a
//! task holds its executor's notifier; upstream glommio/glommio#51 is open).
//! A `heavylift serve` process starts one server, so it is not affected.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use heavylift::{routes, CoreLayout, ServeConfig, Server};

/// A step slower than this is reported.
const STALL: Duration = Duration::from_secs(3);
/// A round running longer than this gets its executors' state written out.
const DUMP_AFTER: Duration = Duration::from_secs(6);

fn layout() -> CoreLayout {
    let cpus = CoreLayout::usable_cpus();
    let (first, last) = (cpus[0], cpus[cpus.len() - 1]);
    CoreLayout {
        io: vec![first],
        compute: vec![last],
        shared: first == last,
    }
}

/// The status line of one GET, or why there is none.
fn get(addr: SocketAddr, target: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(40)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out.lines().next().unwrap_or("").to_string())
}

/// Every executor thread's state, and the fdinfo of the rings a sleeping
/// one waits on (glommio's three rings of an executor have nearby fds).
fn dump_executors(path: &str) {
    let pid = std::process::id();
    let script = format!(
        r#"for t in /proc/{pid}/task/*; do
  c=$(cat $t/comm); case $c in hl-*) ;; *) continue;; esac
  echo "== $t $c $(cut -d' ' -f3,14,15 $t/stat) $(cat $t/wchan) | $(grep ctxt $t/status | tr '\n' ' ')"
  sc=$(cat $t/syscall); echo "syscall: $sc"
  case "$sc" in 426\ *) fd=$(( $(echo $sc | cut -d' ' -f2) ))
    for f in $(seq $((fd-6)) $((fd+6))); do
      echo "-- fd $f $(readlink /proc/{pid}/fd/$f)"; head -40 /proc/{pid}/fdinfo/$f 2>/dev/null
    done;; esac
done > {path} 2>&1"#
    );
    match std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .status()
    {
        Ok(_) => eprintln!("executor state written to {path}"),
        Err(e) => eprintln!("cannot write {path}: {e}"),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let parse = |arg: Option<String>, default: usize| match arg {
        None => default,
        Some(a) => a.parse().unwrap_or_else(|_| {
            eprintln!("usage: stress_wake [THREADS] [ROUNDS] (got {a:?})");
            std::process::exit(2)
        }),
    };
    let threads = parse(args.next(), 4);
    let rounds = parse(args.next(), 200);
    let started = Instant::now();
    let faults = Arc::new(AtomicUsize::new(0));
    let round_started: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; threads]));
    {
        let round_started = round_started.clone();
        std::thread::spawn(move || {
            let mut dumps = 0;
            while dumps < 3 {
                std::thread::sleep(Duration::from_secs(1));
                let stuck = round_started
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|s| s.is_some_and(|at| at.elapsed() > DUMP_AFTER));
                if stuck {
                    dumps += 1;
                    dump_executors(&format!(
                        "/tmp/stress-wake-{}-{dumps}.txt",
                        std::process::id()
                    ));
                    std::thread::sleep(Duration::from_secs(3));
                }
            }
        });
    }
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (round_started, faults) = (round_started.clone(), faults.clone());
            std::thread::spawn(move || {
                let mark = |on: bool| round_started.lock().unwrap()[t] = on.then(Instant::now);
                let fault = |what: String| {
                    faults.fetch_add(1, Ordering::Relaxed);
                    eprintln!("STALL thread {t}: {what}");
                };
                for i in 0..rounds {
                    mark(true);
                    let config = ServeConfig::new(([127, 0, 0, 1], 0).into(), layout());
                    let router = routes::seed_router(config.max_job_body);
                    let t0 = Instant::now();
                    let server = match Server::start(config, router) {
                        Ok(s) => s,
                        Err(e) => {
                            fault(format!(
                                "round {i}: start failed after {:?}: {e}",
                                t0.elapsed()
                            ));
                            continue;
                        }
                    };
                    if t0.elapsed() > STALL {
                        fault(format!("round {i}: start took {:?}", t0.elapsed()));
                    }
                    let addr = server.local_addr();
                    for k in 0..4 {
                        let gap = (i * 7 + k * 13 + t * 3) % 40;
                        std::thread::sleep(Duration::from_millis(gap as u64));
                        let t1 = Instant::now();
                        let status = get(addr, &format!("/slow_threaded?id={k}&n=1"));
                        let ok = matches!(&status, Ok(s) if s.contains(" 200 "));
                        if !ok || t1.elapsed() > STALL {
                            fault(format!(
                                "round {i}: job {k}: {status:?} after {:?}",
                                t1.elapsed()
                            ));
                        }
                    }
                    let t2 = Instant::now();
                    server.stop();
                    if let Err(e) = server.join() {
                        fault(format!("round {i}: stop: {e}"));
                    } else if t2.elapsed() > STALL {
                        fault(format!("round {i}: stop took {:?}", t2.elapsed()));
                    }
                    mark(false);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let faults = faults.load(Ordering::Relaxed);
    eprintln!(
        "{threads} threads x {rounds} rounds in {:?}: {faults} stalled or failed",
        started.elapsed()
    );
    std::process::exit(i32::from(faults > 0));
}

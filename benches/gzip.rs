//! Micro-benchmark of the gzip job's core against `gzip -6` on the same bytes.
//!
//! `harness = false`, one line each: `cargo bench --bench gzip` compresses
//! 1 MiB of mixed data (log lines, JSON, CSV, and a fifth of incompressible
//! bytes standing for images or archives inside an upload) at level 6 with
//! `jobs::gzip::gzip`, then feeds the same bytes to the system's `gzip -6`
//! through a pipe, and prints the median MB/s (MB = 10^6 bytes of input) and
//! the output size of each. The `gzip -6` line subtracts the median time of
//! starting `gzip -6` on an empty input, so both lines count compression
//! alone; that start-up time is printed too. Pin it to compare on one core:
//! `taskset -c 1 cargo bench --bench gzip` (the child inherits the CPU).

use std::hint::black_box;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use heavylift::jobs::gzip::gzip;

const INPUT_BYTES: usize = 1024 * 1024;
const LEVEL: u32 = 6;
const RUNS: usize = 15;

fn main() {
    let input = mixed_input(INPUT_BYTES);
    let mut size = 0;
    let ours = median_secs(|| {
        let out = gzip(black_box(&input), LEVEL, || false).expect("never cancelled");
        size = out.len();
    });
    println!(
        "jobs::gzip level {LEVEL}, 1 MiB mixed: {:.1} MB/s, {} bytes out ({:.1} %)",
        mb_per_s(input.len(), ours),
        size,
        percent(size, input.len())
    );

    if Command::new("gzip").arg("--version").output().is_err() {
        println!("gzip -{LEVEL}: not on PATH, skipped");
        return;
    }
    let start = median_secs(|| {
        system_gzip(&[]);
    });
    let mut size = 0;
    let total = median_secs(|| size = system_gzip(&input).len());
    println!(
        "gzip -{LEVEL} (subprocess), same bytes: {:.1} MB/s, {} bytes out ({:.1} %), after {:.2} ms of process start",
        mb_per_s(input.len(), (total - start).max(f64::MIN_POSITIVE)),
        size,
        percent(size, input.len()),
        start * 1e3
    );
}

/// The median wall time of `RUNS` calls of `f`, in seconds, after one warm-up.
fn median_secs(mut f: impl FnMut()) -> f64 {
    f();
    let mut secs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64()
        })
        .collect();
    secs.sort_by(f64::total_cmp);
    secs[RUNS / 2]
}

/// `gzip -6 -c` over a pipe: what it writes for `input`.
fn system_gzip(input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .args([format!("-{LEVEL}").as_str(), "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start gzip");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("gzip output");
    writer
        .join()
        .expect("writer thread")
        .expect("write to gzip");
    assert!(out.status.success(), "gzip failed");
    out.stdout
}

fn mb_per_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

fn percent(part: usize, whole: usize) -> f64 {
    part as f64 * 100.0 / whole as f64
}

/// xorshift64*: the same bytes on every run, without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[(self.next() % words.len() as u64) as usize]
    }
}

/// `len` bytes of what an upload might hold: access-log lines, JSON records
/// and CSV rows with varying fields, and 2 to 6 KiB runs of random bytes
/// making up about a fifth of the whole.
fn mixed_input(len: usize) -> Vec<u8> {
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let paths = [
        "/fast",
        "/slow_threaded",
        "/gzip",
        "/users/",
        "/files/",
        "/healthz",
        "/metrics",
    ];
    let agents = [
        "curl/8.5.0",
        "Mozilla/5.0 (X11; Linux x86_64)",
        "python-requests/2.31",
        "wrk",
    ];
    let names = [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    ];
    let mut out = Vec::with_capacity(len + 64 * 1024);
    while out.len() < len {
        match rng.next() % 8 {
            0 => {
                let run = 2048 + (rng.next() % 4096) as usize;
                out.extend((0..run).map(|_| rng.next() as u8));
            }
            1..=3 => {
                for _ in 0..20 {
                    let line = format!(
                        "10.0.{}.{} - - [27/Nov/2026:10:{:02}:{:02} +0000] \"GET {}{} HTTP/1.1\" {} {} \"-\" \"{}\"\n",
                        rng.next() % 256,
                        rng.next() % 256,
                        rng.next() % 60,
                        rng.next() % 60,
                        rng.pick(&paths),
                        rng.next() % 100_000,
                        rng.pick(&["200", "200", "200", "404", "503"]),
                        rng.next() % 50_000,
                        rng.pick(&agents)
                    );
                    out.extend_from_slice(line.as_bytes());
                }
            }
            4..=6 => {
                for _ in 0..20 {
                    let record = format!(
                        "{{\"id\": {}, \"user\": \"{}\", \"score\": {:.4}, \"tags\": [\"{}\", \"{}\"], \"active\": {}}}\n",
                        rng.next() % 1_000_000,
                        rng.pick(&names),
                        (rng.next() % 1_000_000) as f64 / 7919.0,
                        rng.pick(&names),
                        rng.pick(&paths),
                        rng.next().is_multiple_of(2)
                    );
                    out.extend_from_slice(record.as_bytes());
                }
            }
            _ => {
                for _ in 0..40 {
                    let row = format!(
                        "{},{},{},{:.2},{}\n",
                        rng.next() % 100_000,
                        rng.pick(&names),
                        rng.next() % 365,
                        (rng.next() % 100_000) as f64 / 100.0,
                        rng.pick(&agents)
                    );
                    out.extend_from_slice(row.as_bytes());
                }
            }
        }
    }
    out.truncate(len);
    out
}

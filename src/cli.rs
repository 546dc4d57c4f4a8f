//! The raw command line: what the user typed, parsed by clap and nothing more.
//!
//! Every flag here is a string or a plain number; `config.rs` (for `serve`) and
//! `client` (for `load` and `bench`) turn these into validated, typed
//! configuration before anything starts. clap itself exits with code 2 on a
//! usage error, which matches the contract's "2 for bad usage".
//!
//! Each default is said once in `--help`: by the flag's doc ("Default is
//! ..."), which can add the unit or explain it, with clap's own
//! `[default: ...]` hidden. A test below keeps the two in step.

use clap::{Args, Parser, Subcommand};

/// heavylift: a thread-per-core HTTP/1.1 server whose I/O cores never run heavy work.
#[derive(Debug, Parser)]
#[command(name = "heavylift", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: pinned I/O cores with their own listeners, reserved compute cores for jobs.
    // "-1" is a value, so its error names the flag and the rule.
    #[command(allow_negative_numbers = true)]
    Serve(ServeArgs),
    /// Send K slow then M fast GETs at once and print each body as it completes (the seed's call_multi.py).
    // "-1" is a value, so its error names the flag and the rule.
    #[command(allow_negative_numbers = true)]
    Load(LoadArgs),
    /// Hold a sustained mixed fast/slow load and report latency percentiles and throughput.
    // "-1" is a value, so its error names the flag and the rule.
    #[command(allow_negative_numbers = true)]
    Bench(BenchArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (IP:PORT; port 0 picks a free port). Default is 127.0.0.1:8888.
    #[arg(long, default_value = "127.0.0.1:8888", hide_default_value = true)]
    pub listen: String,
    /// CPUs that run I/O executors, as a list like `0,2-3`. Default is every usable CPU not used for compute.
    #[arg(long, value_name = "LIST")]
    pub io_cores: Option<String>,
    /// CPUs that run only heavy jobs, as a list like `3` or `2-3`. Conflicts with --reserve.
    #[arg(long, value_name = "LIST", conflicts_with = "reserve")]
    pub compute_cores: Option<String>,
    /// Reserve the last K usable CPUs for compute. Default is 1 when 2 or more CPUs are usable.
    #[arg(long, value_name = "K")]
    pub reserve: Option<usize>,
    /// Jobs that may wait per compute core (the running job does not count). Default is 64.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 64,
        hide_default_value = true
    )]
    pub queue_depth: usize,
    /// Seconds an offloaded job may take from dispatch before it gets 504. Default is 30.
    #[arg(
        long,
        value_name = "SECS",
        default_value = "30",
        hide_default_value = true
    )]
    pub job_timeout: String,
    /// Seconds a request line and headers may take to arrive. Default is 10.
    #[arg(
        long,
        value_name = "SECS",
        default_value = "10",
        hide_default_value = true
    )]
    pub header_timeout: String,
    /// Seconds an idle keep-alive connection stays open. Default is 60.
    #[arg(
        long,
        value_name = "SECS",
        default_value = "60",
        hide_default_value = true
    )]
    pub idle_timeout: String,
    /// Open connections allowed over all I/O cores; past it new ones are closed at once. Default is 10000.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10_000,
        hide_default_value = true
    )]
    pub max_connections: usize,
    /// error, warn, info, debug or trace. Default is info.
    #[arg(
        long,
        value_name = "LEVEL",
        default_value = "info",
        hide_default_value = true
    )]
    pub log_level: String,
    /// How compute threads compete for their CPUs with other processes: normal, low (nice 19)
    /// or idle (SCHED_IDLE: only CPU time nothing else wants). Default is normal.
    #[arg(
        long,
        value_name = "PRIORITY",
        default_value = "normal",
        hide_default_value = true
    )]
    pub compute_priority: String,
    /// Bytes a request body must deliver per second: its deadline is --header-timeout from its
    /// start, extended by one second for every this many bytes received (Apache mod_reqtimeout).
    /// K, M or G suffix. Default is 1024
    #[arg(
        long,
        value_name = "BYTES",
        default_value = "1024",
        hide_default_value = true
    )]
    pub body_min_rate: String,
    /// Largest body POST /gzip and the --worker-cmd routes take (K, M or G suffix); other routes
    /// take 1 MiB. Default is 16M
    #[arg(
        long,
        value_name = "BYTES",
        default_value = "16M",
        hide_default_value = true
    )]
    pub max_job_body: String,
    /// Where jobs run: thread (the compute executors' threads) or process (one supervised
    /// worker process per compute core, killed and replaced when a job hangs or crashes).
    /// Default is thread (process with --worker-cmd).
    #[arg(long, value_name = "MODE")]
    pub isolation: Option<String>,
    /// Seconds from a job's timeout or hang-up to the SIGKILL of its worker if the job is
    /// still running (process isolation). Default is 0.5.
    #[arg(
        long,
        value_name = "SECS",
        default_value = "0.5",
        hide_default_value = true
    )]
    pub kill_grace: String,
    /// Address-space cap of each worker process (K, M, G or T suffix; process isolation only).
    /// Default is unlimited.
    #[arg(long, value_name = "BYTES")]
    pub job_memory: Option<String>,
    /// Run jobs in this program instead (through /bin/sh -c, once per compute core, pinned): it
    /// announces its routes and speaks the frame protocol of docs/worker-protocol.md on its
    /// stdin/stdout. Each announced route becomes an offloaded GET and POST route. Implies
    /// --isolation process. Example: --worker-cmd "python3 examples/python/seed_worker.py"
    #[arg(long, value_name = "CMD")]
    pub worker_cmd: Option<String>,
}

/// What each slow request sends besides its path: `load` and `bench` alike.
#[derive(Debug, Clone, Args)]
pub struct SlowBodyArgs {
    /// Method of the slow requests. Default is GET, or POST when a body is given.
    #[arg(long, value_name = "METHOD")]
    pub method: Option<String>,
    /// Send this file as the body of every slow request (e.g. --slow-path gzip).
    #[arg(long, value_name = "FILE", conflicts_with = "body_size")]
    pub body_file: Option<std::path::PathBuf>,
    /// Send a generated body of this many bytes (K, M or G suffix) with every slow request.
    #[arg(long, value_name = "BYTES")]
    pub body_size: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Server to call (HOST:PORT). Default is 127.0.0.1:8888.
    #[arg(long, default_value = "127.0.0.1:8888", hide_default_value = true)]
    pub target: String,
    /// Slow requests scheduled first. Default is 3.
    #[arg(long, value_name = "K", default_value_t = 3, hide_default_value = true)]
    pub slow: usize,
    /// Fast requests scheduled after the slow ones. Default is 20.
    #[arg(
        long,
        value_name = "M",
        default_value_t = 20,
        hide_default_value = true
    )]
    pub fast: usize,
    /// Route for slow requests: slow_threaded (offloaded), slow (inline), or any route of the
    /// server, e.g. gzip with a body. Default is slow_threaded.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "slow_threaded",
        hide_default_value = true
    )]
    pub slow_path: String,
    /// Job size for slow requests (k! for k in 0..N). Default is 2000.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 2000,
        hide_default_value = true
    )]
    pub n: u32,
    #[command(flatten)]
    pub body: SlowBodyArgs,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// Seconds one request (connect included) may take before it counts as failed. Default is 60.
    #[arg(
        long,
        value_name = "SECS",
        default_value = "60",
        hide_default_value = true
    )]
    pub timeout: String,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Server to load (HOST:PORT). Default is 127.0.0.1:8888.
    #[arg(long, default_value = "127.0.0.1:8888", hide_default_value = true)]
    pub target: String,
    /// Seconds to hold the load. Default is 10.
    #[arg(
        long,
        value_name = "SECS",
        default_value = "10",
        hide_default_value = true
    )]
    pub duration: String,
    /// Keep-alive connections sending /fast as fast as they can. Default is 32.
    #[arg(
        long,
        value_name = "C",
        default_value_t = 32,
        hide_default_value = true
    )]
    pub connections: usize,
    /// Concurrent /slow_threaded requests kept in flight. Default is 2.
    #[arg(long, value_name = "S", default_value_t = 2, hide_default_value = true)]
    pub slow_concurrency: usize,
    /// Route for slow requests: slow_threaded, slow, or any route of the server (e.g. gzip with
    /// a body). Default is slow_threaded.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "slow_threaded",
        hide_default_value = true
    )]
    pub slow_path: String,
    /// Job size for slow requests. Default is 2000.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 2000,
        hide_default_value = true
    )]
    pub n: u32,
    #[command(flatten)]
    pub body: SlowBodyArgs,
    /// Write a timeline picture of the run to FILE.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<std::path::PathBuf>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// Rewrite the progress line in place even when stderr is not a terminal
    /// (elsewhere a plain line is printed at least every 5 s).
    #[arg(long, conflicts_with = "quiet")]
    pub progress: bool,
    /// Print no progress on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Seconds one request (connect included) may take before it counts as failed. Default is 60.
    #[arg(
        long,
        value_name = "SECS",
        default_value = "60",
        hide_default_value = true
    )]
    pub timeout: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every flag with a default says it once, in its doc, and says the
    /// value clap really uses.
    #[test]
    fn each_default_is_documented_once_and_true() {
        let cli = Cli::command();
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments() {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                let defaults = arg.get_default_values();
                let id = arg.get_id();
                if let Some(value) = defaults.first() {
                    let value = value.to_string_lossy();
                    assert!(
                        arg.is_hide_default_value_set(),
                        "{} --{id}: clap would repeat the default",
                        sub.get_name()
                    );
                    assert!(
                        help.trim_end_matches('.')
                            .ends_with(&format!("Default is {value}")),
                        "{} --{id}: doc {help:?} does not end with \"Default is {value}.\"",
                        sub.get_name()
                    );
                }
            }
        }
        let mut serve = Cli::command();
        let help = serve
            .find_subcommand_mut("serve")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(!help.contains("[default:"), "{help}");
        assert_eq!(help.matches("Default is 30").count(), 1, "{help}");
    }
}

//! The `heavylift` binary: parse the command line, set up logging, run one
//! subcommand. Fatal errors are printed once as `heavylift: error: ...` and
//! exit with code 2; `load` and `bench` exit 1 when requests failed.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use heavylift::cli::{Cli, Command, ServeArgs};
use heavylift::{routes, ServeConfig, Server};

fn main() -> ExitCode {
    // Under `--isolation process` this binary is also the worker: the hook
    // runs jobs from the same routes (limits and checks live on the server).
    if let Some(code) = heavylift::worker::serve_if_worker(|| {
        routes::seed_router_for(u64::MAX, heavylift::Isolation::Process)
    }) {
        return code;
    }
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("heavylift: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(&args),
        Command::Load(args) => {
            init_logging("warn")?;
            heavylift::client::load(&args)
        }
        Command::Bench(args) => {
            init_logging("warn")?;
            heavylift::client::bench(&args)
        }
    }
}

fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging(&args.log_level)?;
    let mut config = ServeConfig::try_from(args)?;
    let fds = raise_fd_limit(config.max_connections);
    let room = fds.saturating_sub(FD_RESERVE).max(1);
    if room < config.max_connections {
        log::warn!(
            "--max-connections {} is more than the open-files limit ({fds}) allows; using {room} (raise it with ulimit -n)",
            config.max_connections
        );
        config.max_connections = room;
    }
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM])
        .context("cannot install signal handlers")?;
    let router = routes::seed_router_for(config.max_job_body, config.isolation);
    let server = Server::start(config, router)?;
    if let Some(signal) = signals.forever().next() {
        log::info!("signal {signal} received: closing listeners, finishing in-flight requests");
    }
    server.stop();
    server.join()?;
    log::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn init_logging(level: &str) -> anyhow::Result<()> {
    let filter: log::LevelFilter = level.parse().map_err(|_| {
        anyhow::anyhow!("--log-level {level:?}: use error, warn, info, debug or trace")
    })?;
    env_logger::Builder::new()
        .filter_level(filter)
        .format_timestamp_millis()
        .try_init()
        .context("cannot set up logging")
}

/// File descriptors kept for listeners, rings, eventfds and logs, beyond connections.
const FD_RESERVE: usize = 64;

/// Lifts the soft open-files limit towards the hard one so --max-connections
/// can be reached; returns the soft limit in force afterwards.
fn raise_fd_limit(max_connections: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on local structs.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return usize::MAX;
        }
        let want = (max_connections.saturating_add(FD_RESERVE) as u64).min(lim.rlim_max);
        if lim.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
}

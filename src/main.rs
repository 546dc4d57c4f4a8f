//! The `heavylift` binary: parse the command line, set up logging, run one
//! subcommand. Fatal errors are printed once as `heavylift: error: ...` and
//! exit with code 2; `load` and `bench` exit 1 when requests failed.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use heavylift::cli::{Cli, Command, ServeArgs};
use heavylift::worker::ExternalWorker;
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
    // Caught from here on, so one that comes before the server is up (while
    // a worker command is checked) still stops it with exit 0: kept
    // pending in `signals`, and seen at once by the check through `stop`.
    let signals = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM])
        .map_err(|e| anyhow::anyhow!("cannot install signal handlers: {e}"))?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [libc::SIGINT, libc::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| anyhow::anyhow!("cannot install signal handlers: {e}"))?;
    }
    let router = match &args.worker_cmd {
        // The worker's routes replace the seed's jobs; /fast stays.
        Some(command) => {
            let first_core = config.layout.compute.first().copied();
            let probed = ExternalWorker::probe_until(command, config.job_memory, first_core, &stop)
                .map_err(|why| anyhow::anyhow!("{why}"))?;
            let Some(worker) = probed else {
                log::info!("signal received while the worker command was checked: stopped");
                return Ok(ExitCode::SUCCESS);
            };
            let base = routes::fast_router();
            let built_in = ["/stats", "/metrics", "/healthz"];
            if let Some(taken) = worker.routes.iter().find(|r| {
                built_in.contains(&r.as_str()) || base.routes().iter().any(|b| b.path == **r)
            }) {
                anyhow::bail!(
                    "worker command {command:?} announces {taken}, which the server serves itself; rename that route"
                );
            }
            log::info!(
                "worker command {command:?} serves {}",
                worker.routes.join(", ")
            );
            let router = worker.add_routes(base, config.max_job_body);
            config.external = Some(worker);
            router
        }
        None => {
            // A --job-memory cap too small for a worker to start in would
            // leave every job to wait out its timeout: found here instead.
            if config.isolation == heavylift::Isolation::Process && config.job_memory.is_some() {
                let first_core = config.layout.compute.first().copied();
                let started =
                    heavylift::worker::check_own_worker(config.job_memory, first_core, &stop)
                        .map_err(|why| anyhow::anyhow!("{why}"))?;
                if !started {
                    log::info!("signal received while a worker process was checked: stopped");
                    return Ok(ExitCode::SUCCESS);
                }
            }
            routes::seed_router_for(config.max_job_body, config.isolation)
        }
    };
    Server::run_until(config, router, signals)?;
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

//! Process isolation (`--isolation process`): jobs that cannot be trusted
//! run in one supervised worker process per compute core.
//!
//! ```text
//!  I/O core ──jobs mesh──▶ compute executor (pinned, CPU c)          worker process (pinned, CPU c)
//!   (Job: route index,      supervisor.rs: Job frame ───socketpair──▶ child.rs: router.routes()[route]
//!    JobInput, token)        watches the token; Cancel frame ───────▶   sets the job's token
//!                            SIGKILL after --kill-grace               runs the job, catch_unwind
//!  I/O core ◀─results mesh── outcome ◀──── Done / Panicked / Stopped ─┘
//!                            or "worker died: <cause>" when it dies
//! ```
//!
//! A worker is the server's own binary re-executed (`/proc/self/exe`, same
//! arguments, [`child::WORKER_ENV`] set): `main` calls
//! [`serve_if_worker`] first, which builds the same
//! router, so a route index names the same job on both sides. It is a fork
//! immediately followed by exec, never a fork of the running server; the
//! worker gets PR_SET_PDEATHSIG(SIGKILL), its own process group and its
//! compute core's CPU before exec. `frame.rs` is the wire format (and
//! nothing else); `supervisor.rs` the compute executor's side; `child.rs`
//! the worker's.

//!
//! An external worker (`--worker-cmd`, [`external`]) is the same supervision
//! of a program in another language: `/bin/sh -c CMD` with the frames on its
//! stdin/stdout and cancels in band (`docs/worker-protocol.md`).

use std::sync::Arc;

pub mod child;
pub mod external;
pub mod frame;
pub(crate) mod spawn;
pub(crate) mod supervisor;

pub use child::serve_if_worker;
pub use external::ExternalWorker;
pub use spawn::WorkerCommand;
pub use supervisor::{DeathCause, ProcessSettings};

use crate::router::{Router, Work};

/// The frame protocol's version, sent in every `Hello`.
pub const PROTOCOL_VERSION: u32 = 1;

/// What an own-binary worker announces: `METHOD PATTERN` of every route of
/// its router, in order (so a route index means the same route on both sides).
pub fn route_names(router: &Router) -> Vec<String> {
    router
        .routes()
        .iter()
        .map(|r| format!("{} {}", r.method.as_str(), r.path))
        .collect()
}

/// What a compute core's supervisor starts, what its `Hello` must say, and
/// how a server route index maps to the worker's route index.
#[derive(Debug, Clone)]
pub struct WorkerProgram {
    pub command: WorkerCommand,
    /// The routes every worker's `Hello` must list, in order.
    pub routes: Arc<[String]>,
    /// Server route index -> index in `routes` ([`NOT_THE_WORKERS`] for a
    /// route whose work does not run in the worker).
    pub route_of: Arc<[u32]>,
}

/// `WorkerProgram::route_of` for a route that is not the worker's.
pub const NOT_THE_WORKERS: u32 = u32::MAX;

impl WorkerProgram {
    /// The server's own binary, serving `router`'s routes.
    pub fn own(router: &Router) -> WorkerProgram {
        let routes = route_names(router);
        WorkerProgram {
            command: WorkerCommand::OwnBinary,
            route_of: (0..routes.len() as u32).collect(),
            routes: routes.into(),
        }
    }

    /// An external worker: every offloaded route of `router` must be one it
    /// announced (by path); an error names the first that is not.
    pub fn external(worker: &ExternalWorker, router: &Router) -> Result<WorkerProgram, String> {
        let mut route_of = Vec::with_capacity(router.routes().len());
        for route in router.routes() {
            let index = match &route.handler.work {
                Work::Offload(_) => worker
                    .routes
                    .iter()
                    .position(|p| *p == route.path)
                    .ok_or_else(|| {
                        format!(
                            "route {} {} is offloaded, but the worker command does not announce it",
                            route.method.as_str(),
                            route.path
                        )
                    })?,
                _ => {
                    route_of.push(NOT_THE_WORKERS);
                    continue;
                }
            };
            route_of.push(index as u32);
        }
        Ok(WorkerProgram {
            command: WorkerCommand::Shell(worker.command.clone()),
            routes: worker.routes.clone().into(),
            route_of: route_of.into(),
        })
    }
}

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

pub mod child;
pub mod frame;
pub(crate) mod supervisor;

pub use child::serve_if_worker;
pub use supervisor::{DeathCause, ProcessSettings};

//! Starting a worker process: which program, which fds, which limits. Used by
//! the supervisor (one worker per compute core) and by the start-up probe of
//! an external worker ([`super::external`]).

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use super::child::{MEMORY_ENV, WORKER_ENV};

/// The fds the job socket and the cancel socket get in an own-binary worker.
const WORKER_FD: i32 = 3;
const CANCEL_FD: i32 = 4;

/// What a worker process runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerCommand {
    /// The server's own binary (`/proc/self/exe`, same arguments) in worker
    /// mode ([`super::serve_if_worker`]): jobs on fd 3, cancels on fd 4.
    OwnBinary,
    /// `/bin/sh -c CMD` (`--worker-cmd`): one socket on fd 0 and fd 1,
    /// cancels in band (`docs/worker-protocol.md`).
    Shell(String),
}

impl WorkerCommand {
    /// True when `/bin/sh` stays between heavylift and the worker (a
    /// command that is not one simple command, nor starts with `exec`): its
    /// exit status then reports a signal N as 128 + N.
    pub fn shell_stays(&self) -> bool {
        match self {
            WorkerCommand::OwnBinary => false,
            WorkerCommand::Shell(line) => {
                exec_if_simple(line) == *line && line.split_whitespace().next() != Some("exec")
            }
        }
    }
}

/// A started worker process and our ends of its sockets (blocking std
/// sockets; the supervisor hands them to glommio).
pub struct Spawned {
    pub child: Child,
    /// Frames both ways.
    pub jobs: UnixStream,
    /// `Cancel` frames, for an own-binary worker (`None`: in band on `jobs`).
    pub cancels: Option<UnixStream>,
    /// The worker's stderr.
    pub stderr: UnixStream,
}

/// Starts `command` as a worker: its own process group, SIGKILL when the
/// thread that started it dies (PR_SET_PDEATHSIG), pinned to `cpu` when
/// given, `job_memory` as its address-space cap (RLIMIT_AS). A fork
/// followed at once by exec; only async-signal-safe calls run in between.
pub fn spawn(
    command: &WorkerCommand,
    cpu: Option<usize>,
    job_memory: Option<u64>,
) -> std::io::Result<Spawned> {
    let (ours, theirs) = UnixStream::pair()?;
    let (err_ours, err_theirs) = UnixStream::pair()?;
    let (cancels, cancel_theirs) = match command {
        WorkerCommand::OwnBinary => {
            let (a, b) = UnixStream::pair()?;
            (Some(a), Some(b))
        }
        WorkerCommand::Shell(_) => (None, None),
    };
    let jobs_fd = theirs.as_raw_fd();
    // (source, target) pairs for the child's fd table.
    let moves: [(i32, i32); 2] = match &cancel_theirs {
        Some(c) => [(jobs_fd, WORKER_FD), (c.as_raw_fd(), CANCEL_FD)],
        None => [(jobs_fd, 0), (jobs_fd, 1)],
    };
    let mut cmd = match command {
        WorkerCommand::OwnBinary => {
            let mut args = std::env::args_os();
            let mut cmd = Command::new("/proc/self/exe");
            if let Some(arg0) = args.next() {
                cmd.arg0(arg0);
            }
            cmd.args(args)
                .env(WORKER_ENV, format!("{WORKER_FD},{CANCEL_FD}"))
                .stdin(Stdio::null());
            match job_memory {
                // The worker caps itself once it runs (see child.rs).
                Some(bytes) => cmd.env(MEMORY_ENV, bytes.to_string()),
                None => cmd.env_remove(MEMORY_ENV),
            };
            cmd
        }
        WorkerCommand::Shell(line) => {
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c")
                .arg(exec_if_simple(line))
                .env_remove(WORKER_ENV)
                .env_remove(MEMORY_ENV)
                .env("HEAVYLIFT_PROTOCOL", super::PROTOCOL_VERSION.to_string());
            if let Some(cpu) = cpu {
                cmd.env("HEAVYLIFT_COMPUTE_CORE", cpu.to_string());
            }
            cmd
        }
    };
    cmd.stderr(Stdio::from(std::os::fd::OwnedFd::from(err_theirs)));
    let external_cap = match command {
        WorkerCommand::Shell(_) => job_memory,
        WorkerCommand::OwnBinary => None,
    };
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and makes only
    // async-signal-safe system calls on values captured by copy.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The server died before the prctl: do not outlive it.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("server gone"));
            }
            libc::setpgid(0, 0);
            // Each source is first copied above the targets (F_DUPFD), so
            // one dup2 cannot close another's source.
            let mut high = [-1; 2];
            for (slot, (source, _)) in high.iter_mut().zip(moves) {
                *slot = libc::fcntl(source, libc::F_DUPFD, 10);
                if *slot < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (h, (_, target)) in high.iter().zip(moves) {
                if libc::dup2(*h, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for h in high {
                libc::close(h);
            }
            // Nothing else the server holds or inherited (a supervisor's
            // pipe, say) reaches the worker: every descriptor past the
            // protocol's and stderr is marked close-on-exec. Marked, not
            // closed: std's pipe that reports a failed exec to the parent
            // must stay open until the exec (closing it turned an exec
            // failure into a worker that aborted). CLOSE_RANGE_CLOEXEC is
            // Linux 5.11+; older kernels rely on FD_CLOEXEC alone.
            let first_free = moves
                .iter()
                .map(|&(_, target)| target)
                .max()
                .unwrap_or(2)
                .max(2)
                + 1;
            libc::syscall(
                libc::SYS_close_range,
                first_free as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            if let Some(cpu) = cpu {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            }
            if let Some(bytes) = external_cap {
                let cap = libc::rlimit {
                    rlim_cur: bytes,
                    rlim_max: bytes,
                };
                libc::setrlimit(libc::RLIMIT_AS, &cap);
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(theirs);
    drop(cancel_theirs);
    Ok(Spawned {
        child,
        jobs: ours,
        cancels,
        stderr: err_ours,
    })
}

/// `exec CMD` when `line` is one simple command (no operators, quotes,
/// expansions or redirections, and not a shell builtin or an assignment),
/// else `line` as is. With `exec` the shell becomes the worker, as bash does
/// for `-c` on its own and Debian's dash does not: the worker is then our
/// child, so its pid, its exit status or signal and PR_SET_PDEATHSIG are its
/// own rather than a shell's.
pub fn exec_if_simple(line: &str) -> String {
    const BUILTINS: [&str; 33] = [
        "cd", "export", "set", "unset", "eval", "exec", ".", "source", "if", "for", "while",
        "until", "case", "{", "!", "ulimit", "umask", "trap", "alias", "read", "wait", "exit",
        "readonly", "command", "time", "select", "function", "coproc", "local", "declare",
        "typeset", "[[", "((",
    ];
    let special = |c: char| ";&|<>()`$'\"\\\n*?[~#".contains(c);
    let first = line.split_whitespace().next().unwrap_or("");
    if line.contains(special)
        || first.contains('=')
        || BUILTINS.contains(&first)
        || first.is_empty()
    {
        return line.to_owned();
    }
    format!("exec {line}")
}

/// SIGKILL to the worker's process group (it leads one), so anything a job
/// forked goes with it, and to the worker itself.
pub fn kill_group(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else {
        return;
    };
    // SAFETY: plain kill(2) on a process group we created.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_simple_command_gets_exec() {
        assert_eq!(
            exec_if_simple("python3 examples/python/seed_worker.py"),
            "exec python3 examples/python/seed_worker.py"
        );
        assert_eq!(
            exec_if_simple("  node w.js --x=1"),
            "exec   node w.js --x=1"
        );
        for kept in [
            "cd x && python3 w.py",
            "python3 -c 'import a; b'",
            "python3 w.py 2>/tmp/log",
            "FOO=1 python3 w.py",
            "exec python3 w.py",
            "ulimit -v 100; python3 w.py",
            "python3 $HOME/w.py",
            "python3 *.py",
            "",
        ] {
            assert_eq!(exec_if_simple(kept), kept);
        }
    }
}

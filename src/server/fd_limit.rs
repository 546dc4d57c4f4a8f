//! Fitting `--max-connections` to the open-files limit, at start-up.
//!
//! Each connection holds one fd; listeners, io_uring rings, eventfds and
//! logs need a few more ([`FD_RESERVE`]). `Server::start` lifts the soft
//! `RLIMIT_NOFILE` towards the hard one, and when even that is too small it
//! lowers the connection cap with a warning rather than failing accepts
//! later. A library user gets the same behaviour as the binary.

/// File descriptors kept for listeners, rings, eventfds and logs, beyond connections.
pub const FD_RESERVE: usize = 64;

/// Raises the soft open-files limit for `max_connections` and returns the
/// connection cap that fits: `max_connections`, or less (at least 1) when
/// the hard limit is lower.
pub fn fit_connections(max_connections: usize) -> usize {
    let fds = raise_fd_limit(max_connections);
    let room = fds.saturating_sub(FD_RESERVE).max(1);
    if room < max_connections {
        log::warn!(
            "--max-connections {max_connections} is more than the open-files limit ({fds}) allows; using {room} (raise it with ulimit -n)"
        );
        return room;
    }
    max_connections
}

/// Lifts the soft open-files limit towards the hard one so
/// `max_connections` can be reached; returns the soft limit in force
/// afterwards (`usize::MAX` when it cannot be read).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_limit() {
        let soft = raise_fd_limit(0);
        assert!(soft > FD_RESERVE, "soft limit {soft}");
        assert_eq!(fit_connections(1), 1);
        // Far past any hard limit: capped to what fits, never 0.
        let capped = fit_connections(usize::MAX / 2);
        assert!((1..usize::MAX / 2).contains(&capped), "{capped}");
    }
}

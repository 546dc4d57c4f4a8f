//! The crate's error for start-up: bad configuration, binding, executor launch.
//!
//! These happen before or while the server starts, never on the request path
//! (which answers with status codes instead). Each message tells the user what
//! to change.

use std::fmt;

/// What went wrong while configuring or starting heavylift.
#[derive(Debug)]
pub enum Error {
    /// A flag or combination of flags is invalid; the text names the flag.
    Config(String),
    /// The listen address could not be bound (in use, not local, no permission).
    Bind {
        addr: String,
        source: std::io::Error,
    },
    /// An executor thread could not start or died during start-up.
    Executor(String),
    /// An executor failed or did not exit in time after `stop`.
    Stop(String),
}

/// Result with the crate's start-up error.
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(why) => write!(f, "{why}"),
            Error::Bind { addr, source } if source.kind() == std::io::ErrorKind::AddrInUse => {
                write!(f, "cannot listen on {addr}: address already in use (is another server running? pick another --listen)")
            }
            Error::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Error::Executor(why) => write!(f, "cannot start executors: {why}"),
            Error::Stop(why) => write!(f, "did not stop cleanly: {why}"),
        }
    }
}

/// No `source()`: each message already says its cause, and `{:#}` (how main
/// prints errors) would say it a second time ("address already in use: Address
/// already in use (os error 98)").
impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message with its causes, as main prints it (`{:#}` of anyhow).
    fn shown(err: &dyn std::error::Error) -> String {
        let mut text = err.to_string();
        let mut cause = err.source();
        while let Some(c) = cause {
            text = format!("{text}: {c}");
            cause = c.source();
        }
        text.to_lowercase()
    }

    #[test]
    fn a_bind_error_names_its_cause_once() {
        let in_use = Error::Bind {
            addr: "127.0.0.1:8888".into(),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        let text = shown(&in_use);
        assert_eq!(text.matches("in use").count(), 1, "{text}");
        assert!(
            text.contains("127.0.0.1:8888") && text.contains("--listen"),
            "{text}"
        );
        let denied = Error::Bind {
            addr: "127.0.0.1:80".into(),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        };
        let text = shown(&denied);
        assert_eq!(text.matches("permission denied").count(), 1, "{text}");
    }
}

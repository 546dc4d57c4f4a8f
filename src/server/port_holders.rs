//! Who holds a port: the answer `bind_listeners` needs when a bind fails
//! with "address in use".
//!
//! A port can be "in use" without a live server on it: a heavylift that has
//! just exited may leave its listener in LISTEN for a moment, because an
//! io_uring accept still holds the socket until the kernel tears the ring
//! down after the exit. Such a listener belongs to no process any more. This
//! module reads `/proc/net/tcp` and `/proc/net/tcp6` for LISTEN sockets on
//! the address and sorts them: one that some process holds open (or that
//! belongs to another user, whose processes we cannot see) is [`Live`]; one
//! of ours that no process holds is [`Dying`]. `mod.rs` retries briefly for
//! a dying one and reports a live one at once.
//!
//! [`Live`]: PortUse::Live
//! [`Dying`]: PortUse::Dying

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What holds a port, as far as LISTEN sockets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortUse {
    /// No socket listens on the address (a connected or bound socket, or
    /// nothing by now, made the bind fail).
    NoListener,
    /// Only listeners that no process holds any more: a server that exited
    /// and whose io_uring ring is still being torn down.
    Dying,
    /// A process listens there.
    Live,
}

/// One LISTEN line of /proc/net/tcp{,6}.
#[derive(Debug, PartialEq, Eq)]
struct Listener {
    addr: SocketAddr,
    uid: u32,
    inode: u64,
}

/// Sorts the LISTEN sockets that conflict with binding `addr`.
pub fn port_use(addr: SocketAddr) -> PortUse {
    let mut listeners = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            listeners.extend(parse_listeners(&text));
        }
    }
    let conflicting: Vec<Listener> = listeners
        .into_iter()
        .filter(|l| conflicts(l.addr, addr))
        .collect();
    if conflicting.is_empty() {
        return PortUse::NoListener;
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if conflicting.iter().any(|l| l.uid != me) {
        return PortUse::Live;
    }
    let open = open_socket_inodes();
    if conflicting.iter().any(|l| open.contains(&l.inode)) {
        PortUse::Live
    } else {
        PortUse::Dying
    }
}

/// Whether a listener on `held` keeps a bind of `wanted` from succeeding:
/// same port, and the same address or a wildcard on either side.
fn conflicts(held: SocketAddr, wanted: SocketAddr) -> bool {
    held.port() == wanted.port()
        && (held.ip() == wanted.ip() || held.ip().is_unspecified() || wanted.ip().is_unspecified())
}

/// The LISTEN sockets (state 0A) of one /proc/net/tcp{,6} table.
fn parse_listeners(table: &str) -> Vec<Listener> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            if f.len() < 10 || f[3] != "0A" {
                return None;
            }
            Some(Listener {
                addr: parse_addr(f[1])?,
                uid: f[7].parse().ok()?,
                inode: f[9].parse().ok()?,
            })
        })
        .collect()
}

/// `0100007F:22B8` or the 32-digit IPv6 form: the address is printed as
/// 32-bit words in host byte order, the port as a plain hex number.
fn parse_addr(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for i in (0..ip.len()).step_by(8) {
        let word = u32::from_str_radix(ip.get(i..i + 8)?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        16 => {
            let v6: [u8; 16] = bytes.try_into().ok()?;
            IpAddr::V6(Ipv6Addr::from(v6))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Inodes of every socket some process we can see holds open.
fn open_socket_inodes() -> HashSet<u64> {
    let mut inodes = HashSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return inodes;
    };
    for proc in procs.flatten() {
        let Ok(fds) = std::fs::read_dir(proc.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|n| n.parse().ok())
            {
                inodes.insert(inode);
            }
        }
    }
    inodes
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:22B8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:22B8 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 17 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn reads_only_listeners_with_address_uid_and_inode() {
        let found = parse_listeners(TABLE);
        assert_eq!(
            found,
            vec![
                Listener {
                    addr: "127.0.0.1:8888".parse().unwrap(),
                    uid: 1000,
                    inode: 4242
                },
                Listener {
                    addr: "0.0.0.0:80".parse().unwrap(),
                    uid: 0,
                    inode: 17
                },
            ]
        );
    }

    #[test]
    fn reads_ipv6_addresses() {
        let loopback = "00000000000000000000000001000000:1F90";
        assert_eq!(parse_addr(loopback), Some("[::1]:8080".parse().unwrap()));
        assert_eq!(parse_addr("0100007F"), None);
        assert_eq!(parse_addr("zz00007F:0050"), None);
    }

    #[test]
    fn wildcards_conflict_with_every_address_on_the_port() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(conflicts(a("0.0.0.0:80"), a("127.0.0.1:80")));
        assert!(conflicts(a("127.0.0.1:80"), a("0.0.0.0:80")));
        assert!(!conflicts(a("127.0.0.2:80"), a("127.0.0.1:80")));
        assert!(!conflicts(a("127.0.0.1:81"), a("127.0.0.1:80")));
    }

    #[test]
    fn a_listener_this_process_holds_is_live() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(port_use(held.local_addr().unwrap()), PortUse::Live);
        let addr = held.local_addr().unwrap();
        drop(held);
        // Not `NoListener` exactly: a server another test of this process
        // is stopping may have been given the freed port a moment later,
        // and its listener is `Dying` while its ring is torn down (seen
        // once in a full run).
        assert_ne!(port_use(addr), PortUse::Live);
    }
}

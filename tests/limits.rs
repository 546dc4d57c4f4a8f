//! Resource limits over real sockets: the output cap (a client that never
//! reads is closed after `--idle-timeout` and costs the server at most one
//! flush's worth of buffer), and the connection cap and timeouts under churn
//! (no way of ending a connection leaks a slot).

use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::util::*;

/// Open connections as `/stats` reports them (its own included).
fn open_connections(stats: &serde_json::Value) -> u64 {
    stats["io_cores"][0]["open_connections"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

/// A client socket with a small receive buffer, so a client that does not
/// read backs the server up after a few hundred KiB instead of tens of MiB.
fn small_window_client(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    socket.connect_timeout(&addr.into(), QUICK).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    stream.set_read_timeout(Some(QUICK)).unwrap();
    stream
}

/// Sends `request` on a new connection and reads the answer, retrying while
/// the connection is refused: slots given back by the connections a test
/// just closed come back a moment later.
fn answered(addr: SocketAddr, request: &str) -> (TcpStream, Reply) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = connect(addr, QUICK);
        let _ = s.write_all(request.as_bytes());
        let mut r = BufReader::new(s.try_clone().unwrap());
        if let Some(reply) = read_reply(&mut r, false) {
            return (s, reply);
        }
        assert!(Instant::now() < deadline, "no slot for {request:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Ends a connection with a reset (SO_LINGER 0) instead of a FIN.
fn reset(stream: TcpStream) {
    let _ = Socket::from(stream).set_linger(Some(Duration::ZERO));
}

#[test]
fn a_client_that_never_reads_is_closed_after_the_idle_timeout() {
    let idle = Duration::from_secs(1);
    let server = TestServer::start_with(|c| c.idle_timeout = idle);
    let mut hog = small_window_client(server.addr);
    // Pipeline /metrics requests (about 2 KiB of answer for 25 bytes asked)
    // until our writes block: by then the server has stopped reading,
    // because its own writes to us are blocked.
    let batch = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n".repeat(100);
    let mut sent = 0usize;
    let started = Instant::now();
    let blocked_at = loop {
        match hog.write(batch.as_bytes()) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break Instant::now();
            }
            Err(e) => {
                panic!("the server closed before it stopped reading: {e} ({sent} bytes sent)")
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "sent {sent} bytes and the server still reads: nothing pushes back"
        );
    };
    // The server still serves others while that write is stuck; /stats
    // counts the stuck connection and its own.
    let meanwhile = server.stats();
    assert_eq!(server.get("/healthz").text(), "ok");
    // Then the blocked write times out and the connection is closed.
    let stats = wait_for_stats(&server, 10, |s| open_connections(s) == 1);
    let closed_after = blocked_at.elapsed();
    assert_eq!(
        open_connections(&stats),
        1,
        "the non-reading client still holds its slot: {stats}"
    );
    assert!(
        open_connections(&meanwhile) <= 2,
        "only the stuck connection and /stats's: {meanwhile}"
    );
    assert!(
        closed_after < idle + Duration::from_secs(8),
        "closed {closed_after:?} after the client's writes blocked (idle timeout {idle:?})"
    );
    // What the server had sent is bounded by the socket buffers: read it
    // all, and the stream ends (EOF or reset) instead of timing out.
    let mut received = 0usize;
    let mut buf = vec![0; 64 * 1024];
    let ended = loop {
        match hog.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => received += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false
            }
            Err(_) => break true,
        }
        assert!(
            received < 64 << 20,
            "the server keeps sending: {received} bytes"
        );
    };
    assert!(ended, "the non-reading client's connection is still open");
}

#[test]
fn connection_churn_leaks_no_slot() {
    const CAP: usize = 8;
    let server = TestServer::start_with(|c| {
        c.max_connections = CAP;
        c.header_timeout = Duration::from_millis(400);
        c.idle_timeout = Duration::from_millis(400);
    });
    let addr = server.addr;
    let request = |target: &str, close: bool| {
        let connection = if close { "Connection: close\r\n" } else { "" };
        format!("GET {target} HTTP/1.1\r\nHost: t\r\n{connection}\r\n")
    };
    // Connections the server must close by itself (idle and header timeouts).
    let mut left_open = Vec::new();
    for round in 0..40 {
        let mut s = connect(addr, QUICK);
        match round % 8 {
            // Answered and closed by Connection: close.
            0 => {
                let (_, reply) = answered(addr, &request("/fast?id=c", true));
                assert_eq!(reply.text(), "fast result c", "round {round}");
            }
            // Connect, then hang up without a byte: FIN, then a reset.
            1 => drop(s),
            2 => reset(s),
            // Half a head, then a reset.
            3 => {
                s.write_all(b"GET /fast?id=half HTTP/1.1\r\nHo").unwrap();
                reset(s);
            }
            // A keep-alive answer, then left idle for the idle timeout.
            4 => {
                let (s, reply) = answered(addr, &request("/fast?id=k", false));
                assert_eq!(reply.status, 200, "round {round}");
                left_open.push(s);
            }
            // Slowloris: a head that never ends, closed by the header timeout.
            5 => {
                s.write_all(b"GET /fast?id=slow HTTP/1.1\r\nHost: t\r\nX-Slow: ")
                    .unwrap();
                left_open.push(s);
            }
            // A malformed request, its 400 never read, then a reset.
            6 => {
                s.write_all(b"NONSENSE\r\n\r\n").unwrap();
                reset(s);
            }
            // A hang-up while an offloaded job runs: the job is cancelled.
            _ => {
                s.write_all(request("/slow_threaded?id=gone&n=20000", false).as_bytes())
                    .unwrap();
                std::thread::sleep(Duration::from_millis(20));
                reset(s);
            }
        }
        // Bursts past the cap: the extra connections are closed at once.
        if round % 10 == 9 {
            let burst: Vec<_> = (0..CAP + 4).map(|_| connect(addr, QUICK)).collect();
            drop(burst);
        }
    }
    for s in &mut left_open {
        assert!(is_closed(s), "a timeout should have closed this connection");
    }
    let stats = wait_for_stats(&server, 15, |s| {
        open_connections(s) == 1 && identity_holds(s)
    });
    assert_eq!(open_connections(&stats), 1, "slots leaked: {stats}");
    assert!(identity_holds(&stats), "{stats}");
    // Every slot of the cap is usable again, and the cap still holds.
    let kept: Vec<_> = (0..CAP)
        .map(|_| answered(addr, &request("/fast?id=again", false)))
        .collect();
    assert!(kept.iter().all(|(_, reply)| reply.status == 200));
    let mut extra = connect(addr, QUICK);
    let _ = extra.write_all(request("/fast?id=extra", false).as_bytes());
    assert!(is_closed(&mut extra), "the cap still holds after churn");
}

#[test]
fn idle_connections_at_the_cap_make_room_after_the_idle_timeout() {
    const CAP: usize = 4;
    let server = TestServer::start_with(|c| {
        c.max_connections = CAP;
        c.idle_timeout = Duration::from_millis(500);
    });
    let mut idle = Vec::new();
    for i in 0..CAP {
        let mut s = connect(server.addr, Duration::from_secs(10));
        write!(s, "GET /fast?id={i} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        assert_eq!(read_reply(&mut r, false).unwrap().status, 200);
        idle.push(s);
    }
    let mut refused = connect(server.addr, QUICK);
    let _ = refused.write_all(b"GET /fast?id=x HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(is_closed(&mut refused), "the cap is full");
    for s in &mut idle {
        assert!(
            is_closed(s),
            "the idle timeout closes every idle connection"
        );
    }
    // The idle connections' slots are free: /stats gets one and sees only itself.
    let stats = wait_for_stats(&server, 5, |s| open_connections(s) == 1);
    assert_eq!(open_connections(&stats), 1, "{stats}");
}

#[test]
fn stop_closes_idle_keep_alive_connections_at_once() {
    // Idle timeout 60 s, job timeout 30 s: if stopping did not wake the idle
    // connection, the drain would wait for one of those.
    let mut server = TestServer::start();
    let mut stream = connect(server.addr, Duration::from_secs(10));
    stream
        .write_all(b"GET /fast?id=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let reply = read_reply(&mut reader, false).expect("an answer");
    assert_eq!(reply.status, 200);
    let started = Instant::now();
    assert!(server.stop(), "join reports no error");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "stop took {took:?}");
    assert!(is_closed(&mut stream), "the idle connection is closed");
}

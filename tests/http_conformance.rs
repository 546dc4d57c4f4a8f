//! The HTTP/1.1 section of the contract, over raw sockets.

use std::io::{BufReader, Read, Write};
use std::time::{Duration, Instant};

use crate::util::*;

fn status_of(bytes: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(bytes);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

#[test]
fn keep_alive_close_and_http10() {
    let server = TestServer::start();
    let s = connect(server.addr, QUICK);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for i in 0..3 {
        write!(w, "GET /fast?id={i} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let reply = read_reply(&mut r, false).unwrap();
        assert_eq!(reply.text(), format!("fast result {i}"));
        assert_eq!(reply.header("connection"), None);
    }
    write!(
        w,
        "GET /fast?id=last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let reply = read_reply(&mut r, false).unwrap();
    assert_eq!(reply.header("connection"), Some("close"));
    assert!(
        read_reply(&mut r, false).is_none(),
        "closed after Connection: close"
    );

    let out = raw(server.addr, b"GET /fast?id=old HTTP/1.0\r\n\r\n", QUICK);
    assert!(
        out.ends_with(b"fast result old"),
        "1.0 closes by default: {:?}",
        String::from_utf8_lossy(&out)
    );

    let s = connect(server.addr, QUICK);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for i in 0..2 {
        write!(
            w,
            "GET /fast?id={i} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        )
        .unwrap();
        let reply = read_reply(&mut r, false).unwrap();
        assert_eq!(reply.header("connection"), Some("keep-alive"));
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::start();
    let mut s = connect(server.addr, SLOW);
    let batch = "GET /fast?id=1 HTTP/1.1\r\nHost: t\r\n\r\n\
                 GET /slow_threaded?id=2&n=300 HTTP/1.1\r\nHost: t\r\n\r\n\
                 GET /fast?id=3 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
                 GET /fail?id=4 HTTP/1.1\r\nHost: t\r\n\r\n\
                 GET /fast?id=5 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
                 GET /fast?id=6 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    s.write_all(batch.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let bodies: Vec<String> = std::iter::from_fn(|| read_reply(&mut r, false))
        .map(|r| r.text())
        .collect();
    assert_eq!(bodies.len(), 6, "{bodies:?}");
    assert_eq!(bodies[0], "fast result 1");
    assert!(bodies[1].starts_with("slow result 2 <--- "));
    assert_eq!(bodies[2], "fast result 3");
    assert!(bodies[3].starts_with("Caught an exception: "));
    assert_eq!(bodies[4], "fast result 5");
    assert_eq!(bodies[5], "fast result 6");
}

/// "Request bodies are read and ignored except by routes that use them":
/// a request answered without its body (404, 405, a bad parameter, a
/// refusal) still has a small body read and ignored, so the connection and
/// what is pipelined behind it live on. A body over 1 MiB, or one held
/// back behind `Expect: 100-continue`, is not read: answer, then close.
#[test]
fn a_refused_request_with_a_small_body_keeps_its_connection() {
    let server = TestServer::start();
    let chunked = "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: t\r\n\r\n";
    for (request, status) in [
        (
            "POST /fast?id=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
            405,
        ),
        (
            "POST /nope HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
            404,
        ),
        (
            "PUT /gzip HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
            405,
        ),
        (
            "OPTIONS * HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
            200,
        ),
        (
            "GET /slow_threaded?id=1&n=0 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
            400,
        ),
        (
            "POST /gzip?level=0 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
            400,
        ),
        (
            &format!("POST /gzip?level=0 HTTP/1.1\r\nHost: t\r\n{chunked}"),
            400,
        ),
        (
            &format!("DELETE /fast?id=1 HTTP/1.1\r\nHost: t\r\n{chunked}"),
            405,
        ),
        (
            &format!(
                "POST /fast?id=1 HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{}",
                1 << 20,
                "b".repeat(1 << 20)
            ),
            405,
        ),
    ] {
        let mut s = connect(server.addr, SLOW);
        s.write_all(request.as_bytes()).unwrap();
        s.write_all(b"GET /fast?id=next HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let shown = &request[..40];
        let first = read_reply(&mut r, false).unwrap_or_else(|| panic!("{shown:?}: no answer"));
        assert_eq!(first.status, status, "{shown:?}: {}", first.text());
        assert_ne!(first.header("connection"), Some("close"), "{shown:?}");
        let next =
            read_reply(&mut r, false).unwrap_or_else(|| panic!("{shown:?}: no second answer"));
        assert_eq!(next.text(), "fast result next", "{shown:?}");
    }
    // Over 1 MiB declared, or behind Expect: 100-continue: the answer
    // comes before the body is sent, and the connection closes.
    for request in [
        format!(
            "POST /fast?id=1 HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            (1 << 20) + 1
        ),
        "POST /fast?id=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
            .to_string(),
    ] {
        let mut s = connect(server.addr, QUICK);
        s.write_all(request.as_bytes()).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let first = read_reply(&mut r, false).expect("answered before the body");
        assert_eq!(
            (first.status, first.header("connection")),
            (405, Some("close"))
        );
    }
    // The answer does not wait for the body: it comes when the head does
    // (a 503 "at once"), and the body sent later is discarded, the
    // connection kept.
    let mut s = connect(server.addr, QUICK);
    s.write_all(b"POST /fast?id=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let first = read_reply(&mut r, false).expect("answered before the body came");
    assert_eq!(first.status, 405);
    s.write_all(b"0123456789GET /fast?id=after HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let next = read_reply(&mut r, false).expect("the connection lives on");
    assert_eq!(next.text(), "fast result after");
    // A chunked body that runs past 1 MiB: the request's own answer (not a
    // 413), given before the body, and only that; then the connection closes.
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "c".repeat(64 * 1024));
    for (head, status) in [("DELETE /fast?id=1", 405), ("POST /gzip?level=99", 400)] {
        let mut s = connect(server.addr, SLOW);
        let request = format!(
            "{head} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{}0\r\n\r\n",
            chunk.repeat(32)
        );
        let _ = s.write_all(request.as_bytes());
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert_eq!(status_of(&out), status, "{head}: {text:?}");
        assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{head}: {text:?}");
    }
}

/// The request line's own limit is RFC 9112's request-line, its CRLF not
/// counted: 8192 bytes is not over it (the head then is: 431); 8193 is
/// (414). A head of exactly 8192 bytes, its line filling all but the two
/// CRLFs, is served. Targets of a scheme other than http(s), and an empty Host with
/// an origin-form target (an http URI with no host), are 400.
#[test]
fn request_line_limit_scheme_and_empty_host() {
    let server = TestServer::start();
    let line = |len: usize| {
        let target = format!("/fast?id={}", "a".repeat(len - "GET  HTTP/1.0".len() - 9));
        format!("GET {target} HTTP/1.0")
    };
    assert_eq!(line(8192).len(), 8192);
    for (request, status) in [
        (format!("{}\r\n\r\n", line(8192)), 431),
        (format!("{}\r\n\r\n", line(8193)), 414),
        (format!("{}\r\n\r\n", line(8188)), 200),
        (format!("{}\r\n\r\n", line(8189)), 431),
        (
            "GET ftp://t/fast?id=1 HTTP/1.1\r\nHost: t\r\n\r\n".into(),
            400,
        ),
        (
            "GET ws://t/fast?id=1 HTTP/1.1\r\nHost: t\r\n\r\n".into(),
            400,
        ),
        ("GET /fast?id=1 HTTP/1.1\r\nHost:\r\n\r\n".into(), 400),
        ("GET /fast?id=1 HTTP/1.1\r\nHost: \r\n\r\n".into(), 400),
        ("GET /fast?id=1 HTTP/1.1\r\nHost: :80\r\n\r\n".into(), 400),
        (
            "GET http://:80/fast?id=1 HTTP/1.1\r\nHost: t\r\n\r\n".into(),
            400,
        ),
        (
            "GET HTTPS://t/fast?id=1 HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n".into(),
            200,
        ),
    ] {
        let out = raw(server.addr, request.as_bytes(), QUICK);
        assert_eq!(status_of(&out), status, "{:?}", &request[..40]);
    }
}

#[test]
fn a_request_split_into_single_bytes() {
    let server = TestServer::start();
    let mut s = connect(server.addr, QUICK);
    for b in b"GET /fast?id=split HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    assert!(out.ends_with(b"fast result split"));
}

#[test]
fn protocol_errors_get_their_status_and_close() {
    let server = TestServer::start();
    let long_target = format!(
        "GET /fast?id={} HTTP/1.1\r\nHost: t\r\n\r\n",
        "a".repeat(9000)
    );
    let big_head = format!(
        "GET /fast?id=1 HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "b".repeat(9000)
    );
    let headers = |n: usize| {
        let mut r = String::from("GET /fast?id=h HTTP/1.1\r\nHost: t\r\n");
        for i in 1..n {
            r.push_str(&format!("X-H{i}: v\r\n"));
        }
        r + "\r\n"
    };
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"NONSENSE\r\n\r\n".to_vec(), 400),
        (b"GET /fast?id=1 HTTP/2.0\r\n\r\n".to_vec(), 505),
        (
            b"GET /fast?id=1 HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n".to_vec(),
            400,
        ),
        (
            b"GET /fast?id=1 HTTP/1.1\r\nHost: t\r\nContent-Length: ten\r\n\r\n".to_vec(),
            400,
        ),
        (
            b"GET /fast?id=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
                .to_vec(),
            400,
        ),
        (
            b"GET /fast?id=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n".to_vec(),
            413,
        ),
        (long_target.into_bytes(), 414),
        (big_head.into_bytes(), 431),
        (headers(101).into_bytes(), 431),
    ];
    for (request, status) in cases {
        let out = raw(server.addr, &request, QUICK);
        let shown = String::from_utf8_lossy(&request[..40.min(request.len())]).into_owned();
        assert_eq!(status_of(&out), status, "{shown:?}");
        // The same as HEAD: the same status, and no content after the head
        // (RFC 9112 section 6.3), though the head says how long it is.
        if let Some(rest) = request.strip_prefix(b"GET ") {
            let out = raw(server.addr, &[b"HEAD ", rest].concat(), QUICK);
            assert_eq!(status_of(&out), status, "HEAD {shown:?}");
            assert!(out.ends_with(b"\r\n\r\n"), "HEAD {shown:?}: {out:?}");
            let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
            assert!(!text.contains("content-length: 0\r\n"), "{text}");
        }
    }
    // A HEAD without the Host HTTP/1.1 requires: 400, head only.
    let out = raw(server.addr, b"HEAD /fast?id=1 HTTP/1.1\r\n\r\n", QUICK);
    assert_eq!(status_of(&out), 400);
    assert!(out.ends_with(b"\r\n\r\n"), "{out:?}");
    let out = raw(
        server.addr,
        headers(99)
            .replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")
            .as_bytes(),
        QUICK,
    );
    assert!(
        out.ends_with(b"fast result h"),
        "100 headers (Host, 98 + Connection) are fine"
    );
    assert_eq!(server.get("/healthz").status, 200, "the server is still up");
}

#[test]
fn oversized_chunked_body_is_413_and_seen_by_the_client() {
    let server = TestServer::start();
    let mut s = connect(server.addr, QUICK);
    s.write_all(b"GET /fast?id=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
    for _ in 0..20 {
        if s.write_all(chunk.as_bytes()).is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert_eq!(status_of(&out), 413);
}

#[test]
fn slow_headers_and_idle_connections_are_closed() {
    let server = TestServer::start_with(|c| {
        c.header_timeout = Duration::from_millis(300);
        c.idle_timeout = Duration::from_millis(300);
    });
    // Slowloris: a head that never completes.
    let mut s = connect(server.addr, Duration::from_secs(10));
    s.write_all(b"GET /fast?id=1 HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .unwrap();
    let started = Instant::now();
    assert!(is_closed(&mut s), "header timeout closes");
    assert!(started.elapsed() < Duration::from_secs(8));
    // A connection that never sends anything.
    let mut s = connect(server.addr, Duration::from_secs(10));
    assert!(is_closed(&mut s));
    // Idle keep-alive after one answer.
    let s = connect(server.addr, Duration::from_secs(10));
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(b"GET /fast?id=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_reply(&mut r, false).unwrap().status, 200);
    assert!(read_reply(&mut r, false).is_none(), "idle timeout closes");
    let stats = wait_for_stats(&server, 5, |s| s["io_cores"][0]["open_connections"] == 1);
    assert_eq!(
        stats["io_cores"][0]["open_connections"], 1,
        "only the /stats connection is left"
    );
}

/// RFC 9112 §9.6: a client that sent `close` sends nothing more, so once
/// its answer is written the server closes at once rather than lingering
/// (the half-close and the read until the client's FIN, which still guard a
/// close the server decides on, as in `hostile_bytes`). The client here
/// reads its answer and the end, then holds its socket open: a linger would
/// keep the server's side open for 2 s.
#[test]
fn a_client_that_asks_to_close_is_closed_at_once() {
    let server = TestServer::start();
    for request in [
        &b"GET /fast?id=c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"[..],
        b"GET /fast?id=c HTTP/1.0\r\n\r\n",
        b"POST /gzip HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    ] {
        let mut s = connect(server.addr, QUICK);
        s.write_all(request).unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        assert!(
            all.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&all)
        );
        let deadline = Instant::now() + Duration::from_millis(1500);
        let stats = loop {
            let stats = server.stats();
            if stats["io_cores"][0]["open_connections"] == 1 || Instant::now() > deadline {
                break stats;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(
            stats["io_cores"][0]["open_connections"], 1,
            "the server still holds the connection that asked to close"
        );
        drop(s);
    }
}

/// The immediate close for a client that asked to close must never cost it
/// its answer: a stray CRLF after the body (RFC 9112 §2.2) that arrives
/// while a large answer is still being sent, or a large pipelined answer
/// still queued ahead of the small last one, would turn an immediate close
/// into a reset that drops what is unsent. The client reads slowly (a
/// 64 KiB receive buffer), so the answer is still queued when it closes.
#[test]
fn an_immediate_close_never_cuts_an_answer_short() {
    let server = TestServer::start();
    let body = noise(4 << 20, 7);
    let post = |close: bool| {
        let mut head = format!(
            "POST /gzip?level=1 HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n",
            body.len()
        );
        if close {
            head.push_str("Connection: close\r\n");
        }
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(&body);
        bytes
    };
    let single = post(true);
    let mut pipelined = post(false);
    pipelined
        .extend_from_slice(b"GET /fast?id=last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    for (name, request, answers) in [("single", single, 1), ("pipelined", pipelined, 2)] {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(64 << 10).unwrap();
        socket.connect_timeout(&server.addr.into(), QUICK).unwrap();
        let mut s: std::net::TcpStream = socket.into();
        s.set_read_timeout(Some(QUICK)).unwrap();
        s.write_all(&request).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        s.write_all(b"\r\n").unwrap();
        let mut r = BufReader::new(s);
        for i in 0..answers {
            let reply =
                read_reply(&mut r, false).unwrap_or_else(|| panic!("{name}: answer {i} cut short"));
            assert_eq!(reply.status, 200, "{name}: {reply:?}");
        }
        let mut rest = Vec::new();
        let end = r.read_to_end(&mut rest);
        assert!(
            end.is_ok() && rest.is_empty(),
            "{name}: after the answers: {end:?}, {} bytes",
            rest.len()
        );
    }
}

/// Idle connections are parked (their request state freed; past 256 per
/// core at once, else after 100 ms) and woken by their next bytes: more
/// connections than that, idle well past the delay, are each served again
/// with a pipelined pair, a head split over two writes, and a body.
#[test]
fn parked_connections_are_served_again() {
    let server = TestServer::start_with(|c| c.max_connections = 400);
    let mut conns: Vec<_> = (0..280)
        .map(|i| {
            let s = connect(server.addr, QUICK);
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            write!(w, "GET /fast?id={i} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            assert_eq!(
                read_reply(&mut r, false).unwrap().text(),
                format!("fast result {i}")
            );
            (w, r)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    let stats = server.stats();
    assert_eq!(stats["io_cores"][0]["open_connections"], 281, "{stats}");
    for (i, (w, r)) in conns.iter_mut().enumerate() {
        match i % 3 {
            0 => {
                write!(w, "GET /fast?id=a{i} HTTP/1.1\r\nHost: t\r\n\r\nGET /fast?id=b{i} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
                assert_eq!(
                    read_reply(r, false).unwrap().text(),
                    format!("fast result a{i}")
                );
                assert_eq!(
                    read_reply(r, false).unwrap().text(),
                    format!("fast result b{i}")
                );
            }
            1 => {
                w.write_all(b"GET /fast?id=split HTTP/1.1\r\n").unwrap();
                w.flush().unwrap();
                std::thread::sleep(Duration::from_millis(1));
                w.write_all(b"Host: t\r\n\r\n").unwrap();
                assert_eq!(read_reply(r, false).unwrap().text(), "fast result split");
            }
            _ => {
                let body = vec![b'x'; 3000];
                write!(
                    w,
                    "POST /gzip HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .unwrap();
                w.write_all(&body).unwrap();
                let reply = read_reply(r, false).unwrap();
                assert_eq!(reply.status, 200, "{reply:?}");
                assert_eq!(reply.header("content-type"), Some("application/gzip"));
            }
        }
    }
}

#[test]
fn connections_past_the_cap_are_closed_without_harming_others() {
    let server = TestServer::start_with(|c| c.max_connections = 3);
    let mut kept = Vec::new();
    for i in 0..3 {
        let s = connect(server.addr, QUICK);
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        w.write_all(format!("GET /fast?id={i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap();
        assert_eq!(read_reply(&mut r, false).unwrap().status, 200);
        kept.push((w, r));
    }
    let mut extra = connect(server.addr, QUICK);
    let _ = extra.write_all(b"GET /fast?id=x HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(
        is_closed(&mut extra),
        "the 4th connection is closed at once"
    );
    for (i, (w, r)) in kept.iter_mut().enumerate() {
        w.write_all(format!("GET /fast?id=again{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap();
        assert_eq!(
            read_reply(r, false).unwrap().text(),
            format!("fast result again{i}")
        );
    }
    drop(kept);
    // Slots come back: a new connection works again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = connect(server.addr, QUICK);
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        if out.ends_with(b"ok") {
            break;
        }
        assert!(Instant::now() < deadline, "slots were not given back");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn random_bytes_never_break_the_server() {
    let server = TestServer::start_with(|c| c.header_timeout = Duration::from_millis(500));
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pieces: [&[u8]; 8] = [
        b"GET ",
        b"/fast?id=",
        b" HTTP/1.1\r\n",
        b"\r\n",
        b"Content-Length: 3\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"\0\xff",
        b":",
    ];
    for _ in 0..150 {
        let mut bytes = Vec::new();
        for _ in 0..(next() % 12) {
            if next() % 2 == 0 {
                bytes.extend_from_slice(pieces[(next() % 8) as usize]);
            } else {
                bytes.extend((0..next() % 40).map(|_| next() as u8));
            }
        }
        // Half-close after sending, so an incomplete head ends at EOF, not at the timeout.
        let mut s = connect(server.addr, Duration::from_secs(3));
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(
            out.is_empty() || out.starts_with(b"HTTP/1.1 "),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
    }
    let stats = wait_for_stats(&server, 5, |s| s["io_cores"][0]["open_connections"] == 1);
    assert_eq!(
        stats["io_cores"][0]["open_connections"], 1,
        "no slot leaked"
    );
}

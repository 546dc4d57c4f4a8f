//! The contract's v2 HTTP/1.1 rules over raw sockets (issue #11): Host,
//! target forms, strict framing, budgets that count every byte, the body
//! deadline, a lingering close bounded by time, HEAD, and the half-close.
//! Each case is bytes in, status and close out.

use std::io::{BufReader, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::util::*;

/// Sends `bytes`, reads until the server closes: (status, whole answer, closed).
/// Panics if the server neither answers nor closes within the timeout.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> (u16, String, bool) {
    let mut s = connect(addr, SLOW);
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let closed = match s.read_to_end(&mut out) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => false,
        Err(_) => true,
    };
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no answer to {:?}: {text:?}", preview(bytes)));
    (status, text, closed)
}

fn preview(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned()
}

/// Every (request, status) pair: a refusal must close the connection, and
/// an answer to a request with `Connection: close` does so too.
fn expect_all(addr: SocketAddr, cases: &[(&[u8], u16)]) {
    for (request, want) in cases {
        let (status, text, closed) = exchange(addr, request);
        assert_eq!(status, *want, "{:?} -> {text:?}", preview(request));
        assert!(closed, "{:?} left the connection open", preview(request));
    }
}

#[test]
fn host_is_required_once_and_valid() {
    let server = TestServer::start();
    expect_all(
        server.addr,
        &[
            (b"GET /fast?id=1 HTTP/1.1\r\n\r\n", 400),
            (
                b"GET /fast?id=1 HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
                400,
            ),
            (
                b"GET /fast?id=1 HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
                400,
            ),
            (b"GET /fast?id=1 HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            (b"GET /fast?id=1 HTTP/1.1\r\nHost: a:port\r\n\r\n", 400),
            (b"GET /fast?id=1 HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
            (b"GET /fast?id=1 HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
            (
                b"GET /fast?id=1 HTTP/1.1\r\nHost: [::1]:8888\r\nConnection: close\r\n\r\n",
                200,
            ),
            (
                b"GET /fast?id=1 HTTP/1.1\r\nHost: example.com:80\r\nConnection: close\r\n\r\n",
                200,
            ),
            // HTTP/1.0 may omit Host.
            (b"GET /fast?id=1 HTTP/1.0\r\n\r\n", 200),
            (
                b"GET /fast?id=1 HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
                400,
            ),
        ],
    );
    // A Host error on a keep-alive connection ends it: nothing after is read.
    let (_, text, _) = exchange(
        server.addr,
        b"GET /fast?id=ok HTTP/1.1\r\nHost: t\r\n\r\nGET /fast?id=bad HTTP/1.1\r\n\r\n\
          GET /fast?id=never HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert!(
        text.contains("fast result ok") && !text.contains("never"),
        "{text}"
    );
    assert_eq!(
        text.matches("\r\nServer: heavylift\r\n").count(),
        2,
        "{text}"
    );
}

#[test]
fn target_forms_and_bytes() {
    let server = TestServer::start();
    let long_method = format!(
        "{} /fast?id=1 HTTP/1.1\r\nHost: t\r\n\r\n",
        "M".repeat(9000)
    );
    let cases: &[(&[u8], u16)] = &[
        (
            b"GET HTTP://a/fast?id=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            200,
        ),
        (
            b"GET hTTpS://a:1/fast?id=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            200,
        ),
        (
            b"OPTIONS * HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            200,
        ),
        (b"GET * HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501),
        (b"GET a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET fast?id=1 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET http://u@a/fast?id=1 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /fast?id=1#top HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (b"GET /fast?id=\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (b"GET /fast?id=\x7f HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (long_method.as_bytes(), 400),
    ];
    expect_all(server.addr, cases);
    let (_, text, _) = exchange(
        server.addr,
        b"GET HTTP://a/fast?id=abs HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert!(text.ends_with("fast result abs"), "{text}");
    let (_, text, _) = exchange(
        server.addr,
        b"OPTIONS * HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(
        text.contains("\r\nAllow: GET, HEAD, POST, OPTIONS\r\n"),
        "{text}"
    );
}

#[test]
fn transfer_encoding_must_be_exactly_one_chunked() {
    let server = TestServer::start();
    let with_te = |te: &str| {
        format!("GET /fast?id=1 HTTP/1.1\r\nHost: t\r\n{te}\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    };
    for (te, want) in [
        ("Transfer-Encoding: chunked, chunked", 400),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            400,
        ),
        ("Transfer-Encoding: chunked,", 400),
        ("Transfer-Encoding: gzip, chunked", 501),
        ("Transfer-Encoding: chunked, gzip", 501),
        ("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked", 501),
    ] {
        let (status, text, closed) = exchange(server.addr, with_te(te).as_bytes());
        assert_eq!(status, want, "{te:?}: {text:?}");
        assert!(closed, "{te:?} left the connection open");
    }
    let (status, text, _) = exchange(
        server.addr,
        with_te("Transfer-Encoding: Chunked\r\nConnection: close").as_bytes(),
    );
    assert_eq!((status, text.ends_with("fast result 1")), (200, true));
}

#[test]
fn chunk_size_lines_and_trailers_are_strict() {
    let server = TestServer::start();
    let chunked = |body: &str| {
        format!("GET /fast?id=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{body}")
    };
    for body in [
        "5;\r\nhello\r\n0\r\n\r\n",
        "5 \r\nhello\r\n0\r\n\r\n",
        "5;a b\r\nhello\r\n0\r\n\r\n",
        "5;a\x01\r\nhello\r\n0\r\n\r\n",
        "5;a=\r\nhello\r\n0\r\n\r\n",
        "5;=v\r\nhello\r\n0\r\n\r\n",
        "5;a=\"open\r\nhello\r\n0\r\n\r\n",
        "5\nhello\r\n0\r\n\r\n",
        "0\r\nX: a\rb\r\n\r\n",
        "0\r\nX: a\0b\r\n\r\n",
        "0\r\nno colon here\r\n\r\n",
        "0\r\nX : y\r\n\r\n",
        "0\r\nX: y\r\n folded\r\n\r\n",
    ] {
        let (status, text, closed) = exchange(server.addr, chunked(body).as_bytes());
        assert_eq!(status, 400, "{body:?}: {text:?}");
        assert!(closed, "{body:?}");
    }
    for body in [
        "5 ;a=b ; c\r\nhello\r\n0\r\n\r\n",
        "5;a=\"q\\\"x\"\r\nhello\r\n0;last\r\nX-T: v\r\nY: w\r\n\r\n",
    ] {
        let (status, text, _) = exchange(server.addr, chunked(body).as_bytes());
        assert_eq!(status, 200, "{body:?}: {text:?}");
    }
}

#[test]
fn framing_bytes_count_toward_the_body_limit() {
    let server = TestServer::start();
    // CVE-2024-22019's shape: 4096 one-byte chunks, each with a 1000-byte
    // extension, is 4 MiB of framing around 4 KiB of data.
    let mut s = connect(server.addr, SLOW);
    s.write_all(b"GET /fast?id=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let chunk = format!("1;{}\r\nx\r\n", "e".repeat(1000));
    for _ in 0..4096 {
        if s.write_all(chunk.as_bytes()).is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text:?}");
    // Within the limit, the same shape is fine.
    let few = format!(
        "GET /fast?id=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{}0\r\n\r\n",
        chunk.repeat(100)
    );
    assert_eq!(exchange(server.addr, few.as_bytes()).0, 200);

    // Trailers count too, and nothing but the body limit bounds them: 20 KiB
    // of trailer fields is fine, 1.1 MB is a 413 (a cap of their own would
    // answer 400 to both).
    let trailers = |bytes: usize| {
        let field = format!("X-T: {}\r\n", "v".repeat(1000));
        format!(
            "GET /fast?id=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n1\r\nx\r\n0\r\n{}\r\n",
            field.repeat(bytes / field.len())
        )
    };
    assert_eq!(exchange(server.addr, trailers(20 * 1024).as_bytes()).0, 200);
    assert_eq!(exchange(server.addr, trailers(1_100_000).as_bytes()).0, 413);
    // So does a chunk-size line past its own 1 KiB bound.
    let long_line = format!(
        "GET /fast?id=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1;{}\r\nx\r\n0\r\n\r\n",
        "e".repeat(2000)
    );
    assert_eq!(exchange(server.addr, long_line.as_bytes()).0, 413);
}

/// What Python's http.client and requests do: write the whole body, then
/// read. The 413 must arrive, not a reset.
#[test]
fn a_client_that_writes_8_mib_before_reading_sees_413() {
    let server = TestServer::start();
    let body = vec![b'x'; 8 << 20];
    for head in [
        format!(
            "GET /fast?id=1 HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ),
        "GET /fast?id=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned(),
    ] {
        let chunked = head.contains("chunked");
        let mut s = connect(server.addr, SLOW);
        s.set_write_timeout(Some(SLOW)).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        if chunked {
            for piece in body.chunks(64 * 1024) {
                write!(s, "{:x}\r\n", piece.len()).unwrap();
                s.write_all(piece).unwrap();
                s.write_all(b"\r\n").unwrap();
            }
            s.write_all(b"0\r\n\r\n").unwrap();
        } else {
            s.write_all(&body).expect("the server drains the body");
        }
        let reply = read_reply(&mut BufReader::new(s), false).expect("an answer, not a reset");
        assert_eq!(reply.status, 413, "chunked: {chunked}");
        assert_eq!(reply.header("connection"), Some("close"));
    }
    assert_eq!(server.get("/healthz").status, 200);
}

#[test]
fn a_trickled_body_gets_408_and_a_steady_one_is_served() {
    let server = TestServer::start_with(|c| {
        c.header_timeout = Duration::from_millis(1500);
        c.body_min_rate = 1024;
    });
    // One byte every 100 ms earns no extra time: 408 near the 1.5 s mark.
    let mut s = connect(server.addr, Duration::from_secs(10));
    s.write_all(b"GET /fast?id=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while started.elapsed() < Duration::from_secs(10) {
        let _ = s.write_all(b"x");
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    // 12 KiB in 4 KiB steps a second apart takes 2 s, past the 1.5 s
    // header timeout, but each step earns four more seconds.
    let mut s = connect(server.addr, Duration::from_secs(10));
    s.write_all(
        b"GET /fast?id=steady HTTP/1.1\r\nHost: t\r\nContent-Length: 12288\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    for step in 0..3 {
        if step > 0 {
            std::thread::sleep(Duration::from_secs(1));
        }
        s.write_all(&[b'y'; 4096]).unwrap();
    }
    let reply = read_reply(&mut BufReader::new(s), false).expect("answered");
    assert_eq!(
        (reply.status, reply.text()),
        (200, "fast result steady".into())
    );
}

/// Bytes earn time in proportion, as mod_reqtimeout's rate factor does:
/// 0.86 of `--body-min-rate` earns 0.86 s, not nothing (an audit found the
/// credit rounded down to whole seconds).
#[test]
fn a_body_earns_time_in_proportion_to_its_bytes() {
    let server = TestServer::start_with(|c| {
        c.header_timeout = Duration::from_secs(1);
        c.body_min_rate = 1 << 20;
    });
    let mut s = connect(server.addr, Duration::from_secs(10));
    s.write_all(
        b"GET /fast?id=part HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    // Deadline: 1 s + 900,000 / 1,048,576 s = 1.86 s from the body's start.
    s.write_all(&[b'z'; 900_000]).unwrap();
    std::thread::sleep(Duration::from_millis(1450));
    s.write_all(&[b'z'; 100_000]).unwrap();
    let reply = read_reply(&mut BufReader::new(s), false).expect("answered");
    assert_eq!(
        (reply.status, reply.text()),
        (200, "fast result part".into())
    );
}

#[test]
fn head_is_get_without_the_body() {
    let server = TestServer::start();
    let s = connect(server.addr, SLOW);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for path in [
        "/healthz",
        "/fast?id=h",
        "/stats",
        "/slow_threaded?id=h&n=20",
    ] {
        write!(w, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let get = read_reply(&mut r, false).unwrap();
        write!(w, "HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let head = read_reply(&mut r, true).unwrap();
        assert_eq!((head.status, get.status), (200, 200), "{path}");
        assert_eq!(head.header("content-type"), get.header("content-type"));
        if path != "/stats" {
            // /stats changes between the two (it counts the GET).
            assert_eq!(
                head.header("content-length").map(str::to_owned),
                Some(get.body.len().to_string()),
                "{path}"
            );
        }
    }
    // No body bytes followed the HEAD answers: the stream is still aligned.
    write!(w, "GET /fast?id=after HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(
        read_reply(&mut r, false).unwrap().text(),
        "fast result after"
    );
    // HEAD on a job route runs the job.
    let stats = wait_for_stats(&server, 5, |s| s["jobs"]["completed"] == 2);
    assert_eq!(
        stats["jobs"]["completed"], 2,
        "GET and HEAD each ran the job"
    );
    let mut s = connect(server.addr, SLOW);
    s.write_all(b"HEAD /nowhere HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let reply = read_reply(&mut BufReader::new(s), true).unwrap();
    assert_eq!(reply.status, 404);
}

/// The contract's half-close rule: a FIN after a complete request to an
/// offloaded route cancels the job and nothing is answered (nginx's
/// client-abort check); `/fast` and `/slow` are answered.
#[test]
fn a_half_close_cancels_an_offloaded_job_but_fast_routes_answer() {
    let server = TestServer::start();
    for (path, answered) in [
        ("/fast?id=fin", true),
        ("/slow?id=fin&n=50", true),
        ("/slow_threaded?id=fin&n=20000", false),
    ] {
        let mut s = connect(server.addr, Duration::from_secs(10));
        write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = Vec::new();
        let started = Instant::now();
        let _ = s.read_to_end(&mut out);
        assert_eq!(
            !out.is_empty(),
            answered,
            "{path}: {:?}",
            String::from_utf8_lossy(&out)
        );
        if !answered {
            assert!(started.elapsed() < Duration::from_secs(5), "closed at once");
        }
    }
    let stats = wait_for_stats(&server, 5, |s| s["jobs"]["cancelled"] == 1);
    assert_eq!(stats["jobs"]["cancelled"], 1, "{stats}");
    assert!(identity_holds(&stats), "{stats}");
}

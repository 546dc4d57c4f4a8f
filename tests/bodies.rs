//! Request bodies into jobs, methods and path parameters (issue #12), over
//! real sockets: `POST /gzip` round trips, chunked uploads, admission and
//! 413 decided when the head arrives (with and without `Expect:
//! 100-continue`), and a custom route with a path parameter and a binary
//! answer.

use std::io::{BufReader, Read, Write};
use std::time::Duration;

use heavylift::{fast, offload, Response, Router, ServeConfig};

use crate::util::*;

/// Deterministic, partly compressible bytes.
fn sample(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if i % 3 == 0 {
                b"heavylift "[i % 10]
            } else {
                x as u8
            }
        })
        .collect()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a valid gzip stream");
    out
}

/// POSTs `body` to `target` with Content-Length; returns the reply.
fn post(addr: std::net::SocketAddr, target: &str, body: &[u8]) -> Reply {
    let mut s = connect(addr, SLOW);
    s.set_write_timeout(Some(SLOW)).unwrap();
    write!(
        s,
        "POST {target} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    read_reply(&mut BufReader::new(s), false).expect("a reply")
}

#[test]
fn gzip_round_trips_byte_for_byte() {
    let server = TestServer::start();
    for len in [0, 1, 1 << 20, 16 << 20] {
        let body = sample(len);
        let reply = post(server.addr, "/gzip", &body);
        assert_eq!(reply.status, 200, "{len}: {}", reply.text());
        assert_eq!(reply.header("content-type"), Some("application/gzip"));
        assert!(gunzip(&reply.body) == body, "{len} bytes round trip");
    }
    let level1 = post(server.addr, "/gzip?level=1", &sample(1 << 20));
    let level9 = post(server.addr, "/gzip?level=9", &sample(1 << 20));
    assert_eq!(gunzip(&level9.body), gunzip(&level1.body));
    assert!(level9.body.len() <= level1.body.len());
    let stats = wait_for_stats(&server, 5, |s| s["jobs"]["completed"] == 6);
    assert_eq!(stats["jobs"]["completed"], 6, "{stats}");
}

#[test]
fn chunked_upload_split_across_many_reads() {
    let server = TestServer::start();
    let body = sample(300_000);
    let mut s = connect(server.addr, SLOW);
    s.write_all(b"POST /gzip?level=3 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    for (i, piece) in body.chunks(7_001).enumerate() {
        write!(s, "{:x};n={i}\r\n", piece.len()).unwrap();
        // Split each chunk over two writes, with a pause now and then.
        let (a, b) = piece.split_at(piece.len() / 2);
        s.write_all(a).unwrap();
        if i % 10 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        s.write_all(b).unwrap();
        s.write_all(b"\r\n").unwrap();
    }
    s.write_all(b"0\r\nX-Trailer: done\r\n\r\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let reply = read_reply(&mut r, false).expect("a reply");
    assert_eq!(reply.status, 200);
    assert!(gunzip(&reply.body) == body);
    // The connection stays usable after a collected chunked body.
    s.write_all(b"GET /fast?id=next HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_reply(&mut r, false).unwrap().text(),
        "fast result next"
    );
}

/// What a client waiting for `100 Continue` gets first, and whether the
/// server closed instead of waiting for the body.
fn expect_continue(addr: std::net::SocketAddr, request: &str, length: u64) -> (u16, bool) {
    let mut s = connect(addr, QUICK);
    write!(
        s,
        "{request} HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: {length}\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let reply = read_reply(&mut r, false).expect("an answer before the body");
    (reply.status, read_reply(&mut r, false).is_none())
}

#[test]
fn refusals_are_decided_before_the_body_is_sent() {
    let server = TestServer::start_with(|c| {
        c.max_job_body = 4096;
        c.queue_depth = 1;
    });
    // 413: declared over the route's limit; 400: a bad level. The body is
    // never sent and the connection closes.
    assert_eq!(
        expect_continue(server.addr, "POST /gzip", 4097),
        (413, true)
    );
    // Counted under its route, not "other".
    let metrics = server.get("/metrics").text();
    assert!(
        metrics.contains("route=\"gzip POST\",status=\"413\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        expect_continue(server.addr, "POST /gzip?level=0", 10),
        (400, true)
    );
    assert_eq!(
        expect_continue(server.addr, "POST /nowhere", 10),
        (404, true)
    );
    // Within the limit the client is told to go on.
    assert_eq!(expect_continue(server.addr, "POST /gzip", 4096).0, 100);
    // Other routes keep the 1 MiB default.
    let (status, _) = expect_continue(server.addr, "GET /fast?id=1", 2 << 20);
    assert_eq!(status, 413);
    // 503: every queue full (one running, one waiting) when the head arrives.
    let mut busy = Vec::new();
    for i in 0..2 {
        let mut s = connect(server.addr, SLOW);
        write!(
            s,
            "GET /slow_threaded?id=busy{i}&n=20000 HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        .unwrap();
        busy.push(s);
    }
    wait_for_stats(&server, 10, |s| s["jobs"]["accepted"] == 2);
    let mut s = connect(server.addr, QUICK);
    write!(
        s,
        "POST /gzip HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n"
    )
    .unwrap();
    let reply = read_reply(&mut BufReader::new(s), false).expect("503 at once");
    assert_eq!(reply.status, 503);
    assert!(reply.header("retry-after").is_some());
    drop(busy);
    let stats = wait_for_stats(&server, 10, |s| s["jobs"]["cancelled"] == 2);
    assert_eq!(stats["jobs"]["rejected"], 1, "{stats}");
    assert!(identity_holds(&stats), "{stats}");
}

/// Admission at the head holds the job's queue place while the body
/// arrives: a job that came later is refused, not the upload that was told
/// to go on (an audit got `100 Continue`, sent the body, then 503), and an
/// upload abandoned half-way gives its place back.
#[test]
fn an_admitted_upload_keeps_its_queue_place_until_its_body_is_here() {
    let server = TestServer::start_with(|c| c.queue_depth = 1);
    let busy = |id: &str| {
        let mut s = connect(server.addr, SLOW);
        write!(
            s,
            "GET /slow_threaded?id={id}&n=20000 HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        .unwrap();
        s
    };
    let running = busy("running");
    wait_for_stats(&server, 10, |s| s["compute_cores"][0]["running"] == true);
    let mut upload = connect(server.addr, SLOW);
    upload
        .write_all(
            b"POST /gzip HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        )
        .unwrap();
    let mut upload = BufReader::new(upload);
    let go_on = read_reply(&mut upload, false).expect("100 Continue");
    assert_eq!(go_on.status, 100);
    // The place is held, but no job waits in it yet.
    let stats = server.stats();
    assert_eq!(stats["compute_cores"][0]["queued"], 0, "{stats}");
    assert_eq!(stats["compute_cores"][0]["reserved"], 1, "{stats}");
    assert_eq!(stats["jobs"]["accepted"], 1, "{stats}");
    let later = get(server.addr, "/slow_threaded?id=later&n=10", &[]);
    assert_eq!(later.status, 503, "{}", later.text());
    upload.get_mut().write_all(b"hello").unwrap();
    drop(running);
    let reply = read_reply(&mut upload, false).expect("the gzip answer");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(gunzip(&reply.body), b"hello");
    drop(upload);

    // Half a body, then gone: the place frees, and the next job gets it.
    let running = busy("running2");
    let stats = wait_for_stats(&server, 10, |s| s["jobs"]["accepted"] == 3);
    assert_eq!(stats["jobs"]["accepted"], 3, "{stats}");
    let mut half = connect(server.addr, SLOW);
    half.write_all(b"POST /gzip HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nhalf")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        get(server.addr, "/slow_threaded?id=refused&n=10", &[]).status,
        503
    );
    drop(half);
    let stats = wait_for_stats(&server, 10, |s| s["io_cores"][0]["open_connections"] == 2);
    assert_eq!(stats["jobs"]["rejected"], 2, "{stats}");
    let next = busy("next");
    let stats = wait_for_stats(&server, 10, |s| s["jobs"]["accepted"] == 4);
    assert_eq!(stats["jobs"]["accepted"], 4, "{stats}");
    drop((running, next));
    let stats = wait_for_stats(&server, 10, |s| {
        s["jobs"]["cancelled"] == 3 && s["compute_cores"][0]["running"] == false
    });
    assert!(identity_holds(&stats), "{stats}");
}

/// Held places are bounded (half the queue, at least one) so slow uploads
/// cannot lock it, and an upload refused part-way (413) gives its place
/// back at once, not after the linger that follows its answer.
#[test]
fn held_places_are_bounded_and_freed_by_a_413() {
    let server = TestServer::start_with(|c| {
        c.queue_depth = 2;
        c.max_job_body = 4096;
    });
    let running = {
        let mut s = connect(server.addr, SLOW);
        s.write_all(b"GET /slow_threaded?id=running&n=20000 HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        s
    };
    wait_for_stats(&server, 10, |s| s["compute_cores"][0]["running"] == true);
    let upload = |len: usize| {
        let mut s = connect(server.addr, SLOW);
        write!(
            s,
            "POST /gzip HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\nab"
        )
        .unwrap();
        s
    };
    let first = upload(100);
    let second = upload(100);
    let stats = wait_for_stats(&server, 10, |s| s["compute_cores"][0]["reserved"] == 1);
    assert_eq!(
        stats["compute_cores"][0]["reserved"], 1,
        "budget of 1: {stats}"
    );
    std::thread::sleep(Duration::from_millis(200));
    let stats = server.stats();
    assert_eq!(stats["compute_cores"][0]["reserved"], 1, "{stats}");
    // One place of the two is still free for a request that is ready.
    let mut ready = connect(server.addr, SLOW);
    ready
        .write_all(b"GET /slow_threaded?id=ready&n=10 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let stats = wait_for_stats(&server, 10, |s| s["jobs"]["accepted"] == 2);
    assert_eq!(stats["jobs"]["accepted"], 2, "{stats}");
    drop((first, second, ready));
    let stats = wait_for_stats(&server, 10, |s| {
        s["compute_cores"][0]["reserved"] == 0 && s["compute_cores"][0]["queued"] == 0
    });
    assert_eq!(stats["compute_cores"][0]["reserved"], 0, "{stats}");

    // A chunked upload past the 4 KiB limit: 413, and its place is free
    // while its connection still lingers open.
    let mut over = connect(server.addr, SLOW);
    over.write_all(b"POST /gzip HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    wait_for_stats(&server, 10, |s| s["compute_cores"][0]["reserved"] == 1);
    over.write_all(b"2000\r\n").unwrap();
    over.write_all(&[b'x'; 0x2000]).unwrap();
    let mut reader = BufReader::new(over.try_clone().unwrap());
    assert_eq!(read_reply(&mut reader, false).expect("a 413").status, 413);
    let stats = server.stats();
    assert_eq!(stats["compute_cores"][0]["reserved"], 0, "{stats}");
    drop((over, running));
    let stats = wait_for_stats(&server, 10, |s| {
        identity_holds(s) && s["compute_cores"][0]["running"] == false
    });
    assert!(identity_holds(&stats), "{stats}");
}

#[test]
fn methods_and_a_half_sent_upload() {
    let server = TestServer::start();
    let reply = get(server.addr, "/gzip", &[]);
    assert_eq!((reply.status, reply.header("allow")), (405, Some("POST")));
    let reply = post(server.addr, "/fast?id=1", b"");
    assert_eq!(reply.header("allow"), Some("GET, HEAD"));
    // The client goes away half-way through its upload: no job runs.
    let mut s = connect(server.addr, QUICK);
    s.write_all(b"POST /gzip HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    s.write_all(&sample(50_000)).unwrap();
    drop(s);
    std::thread::sleep(Duration::from_millis(300));
    let stats = server.stats();
    assert_eq!(stats["jobs"]["accepted"], 0, "{stats}");
    assert_eq!(stats["io_cores"][0]["open_connections"], 1, "{stats}");
}

#[test]
fn a_custom_route_with_a_path_parameter_and_a_binary_answer() {
    let router = Router::new()
        .get(
            "/users/{id}/hello",
            fast(|req| Response::text(200, format!("hello {}", req.param("id").unwrap_or("?")))),
        )
        .put(
            "/blobs/{*name}",
            offload(|input, _ctx| {
                // Reverse the upload; answer raw bytes with a type chosen at run time.
                let mut bytes = input.body.clone();
                bytes.reverse();
                let kind = String::from_utf8_lossy(input.header("x-kind").unwrap_or(b"raw"));
                Ok(Response::bytes(200, format!("application/x-{kind}"), bytes)
                    .with_header("X-Name", input.param("name").unwrap_or("").to_owned()))
            })
            .max_body(1000),
        );
    let config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), one_io_one_compute());
    let server = TestServer::start_router(config, router);
    assert_eq!(server.get("/users/a%20b/hello").text(), "hello a b");
    assert_eq!(server.get("/users/%ZZ/hello").status, 400);
    let mut s = connect(server.addr, QUICK);
    let body = [0u8, 1, 2, 255, b'\r', b'\n'];
    write!(
        s,
        "PUT /blobs/a/b.bin HTTP/1.1\r\nHost: t\r\nX-Kind: blob\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let reply = read_reply(&mut BufReader::new(s), false).unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, [b'\n', b'\r', 255, 2, 1, 0]);
    assert_eq!(reply.header("content-type"), Some("application/x-blob"));
    assert_eq!(reply.header("x-name"), Some("a/b.bin"));
    let too_big = connect(server.addr, QUICK);
    let mut w = too_big.try_clone().unwrap();
    write!(
        w,
        "PUT /blobs/x HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n"
    )
    .unwrap();
    assert_eq!(
        read_reply(&mut BufReader::new(too_big), false)
            .unwrap()
            .status,
        413
    );
}

#[test]
fn a_conflicting_router_does_not_start() {
    let router = Router::new()
        .get("/a/{x}", fast(|_| Response::text(200, "")))
        .get("/a/{y}", fast(|_| Response::text(200, "")));
    let config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), one_io_one_compute());
    let err = heavylift::Server::start(config, router)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("/a/{y}"), "{err}");
}

/// A 413's reason names the limit of the route that refused the body, not
/// the 1 MiB default.
#[test]
fn a_413_names_the_routes_own_limit() {
    let server = TestServer::start_with(|c| c.max_job_body = 4096);
    for (target, limit) in [("POST /gzip", 4096), ("GET /fast?id=1", 1 << 20)] {
        let len = limit + 1;
        let mut s = connect(server.addr, QUICK);
        write!(
            s,
            "{target} HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n"
        )
        .unwrap();
        let reply = read_reply(&mut BufReader::new(s), false).expect("a 413");
        assert_eq!(reply.status, 413, "{target}");
        assert_eq!(
            reply.text(),
            format!("request body larger than {limit} bytes"),
            "{target}"
        );
    }
    // Chunked: the limit is found while the body is read.
    let mut s = connect(server.addr, QUICK);
    let chunk = "x".repeat(5000);
    write!(
        s,
        "POST /gzip HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    )
    .unwrap();
    let reply = read_reply(&mut BufReader::new(s), false).expect("a 413");
    assert_eq!(reply.status, 413);
    assert_eq!(reply.text(), "request body larger than 4096 bytes");
}

/// A library route's own code that panics on the I/O core (a fast handler,
/// a check) answers 500 like a job's panic, and the core serves on: a
/// newcomer's panicking fast handler had ended the I/O core, and every
/// connection after it hung. A check guards a fast route too.
#[test]
fn panics_in_fast_handlers_and_checks_are_answered_and_the_core_lives() {
    let refuse = |req: &heavylift::Request<'_>| match req.param("who") {
        Some("guest") => Err(Response::text(403, "guests may not")),
        Some("boom") => panic!("check exploded"),
        _ => Ok(()),
    };
    let router = Router::new()
        .get("/boom", fast(|_| panic!("fast handler exploded")))
        .get(
            "/greet",
            fast(|req| match req.query_value("name") {
                Some(Ok(name)) => Response::text(200, format!("hello {name}")),
                Some(Err(why)) => Response::text(400, why),
                None => Response::text(400, "no name"),
            }),
        )
        .get(
            "/greet_job",
            offload(|input, _| match input.query_value("name") {
                Some(Ok(name)) => Ok(Response::text(200, format!("job {name}"))),
                _ => Ok(Response::text(400, "no name")),
            }),
        )
        .get(
            "/hello/{who}",
            fast(|req| Response::text(200, format!("hi {}", req.param("who").unwrap_or("?"))))
                .check(refuse),
        )
        .get(
            "/job/{who}",
            offload(|_, _| Ok(Response::text(200, "ran"))).check(refuse),
        );
    let config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), one_io_one_compute());
    let server = TestServer::start_router(config, router);
    for _ in 0..3 {
        let reply = server.get("/boom");
        assert_eq!(reply.status, 500);
        assert!(
            reply.text().starts_with("Caught an exception: ")
                && reply.text().contains("fast handler exploded"),
            "{}",
            reply.text()
        );
        assert_eq!(server.get("/healthz").text(), "ok", "the I/O core lives");
    }
    assert_eq!(server.get("/hello/ann").text(), "hi ann");
    assert_eq!(server.get("/hello/guest").status, 403, "checked");
    for path in ["/hello/boom", "/job/boom"] {
        let reply = server.get(path);
        assert_eq!(reply.status, 500, "{path}");
        assert!(reply.text().contains("check exploded"), "{}", reply.text());
    }
    assert_eq!(server.get("/job/guest").status, 403);
    assert_eq!(server.get("/job/ann").text(), "ran");
    assert_eq!(server.stats()["jobs"]["accepted"], 1);
    // Query values, decoded as a form's, from a fast handler and a job.
    assert_eq!(server.get("/greet?name=J%C3%B8rn+B").text(), "hello Jørn B");
    assert_eq!(server.get("/greet?name=%ZZ").status, 400);
    assert_eq!(server.get("/greet").status, 400);
    assert_eq!(server.get("/greet_job?x=1&name=a%26b").text(), "job a&b");
}

/// A library's `ServeConfig` gets the CLI's `--queue-depth` rule (1 to
/// `MAX_QUEUE_DEPTH`): the jobs channels are sized from it up front.
#[test]
fn a_library_queue_depth_out_of_range_is_a_start_error() {
    for depth in [0, heavylift::MAX_QUEUE_DEPTH + 1] {
        let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), one_io_one_compute());
        config.queue_depth = depth;
        match heavylift::Server::start(config, Router::new()) {
            Err(heavylift::Error::Config(why)) => assert!(why.contains("queue_depth"), "{why}"),
            Err(other) => panic!("{depth}: {other}"),
            Ok(_) => panic!("{depth}: started"),
        }
    }
}

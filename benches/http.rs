//! Parse and encode 16 pipelined requests, the I/O core's per-batch work
//! without the socket (after hyper's benches/pipeline.rs). One line per case.

use std::hint::black_box;
use std::time::Instant;

use heavylift::http::{RequestHead, Response};

const ROUNDS: u32 = 20_000;

fn main() {
    let one = b"GET /fast?id=12345 HTTP/1.1\r\nHost: 127.0.0.1:8888\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n";
    let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 16).collect();
    let mut out = Vec::with_capacity(4096);

    let started = Instant::now();
    for _ in 0..ROUNDS {
        let mut at = 0;
        while let Ok(Some((head, used))) = RequestHead::parse(&batch[at..]) {
            black_box(&head);
            at += used;
        }
        assert_eq!(at, batch.len());
    }
    report("parse 16 pipelined requests", started, ROUNDS);

    let response = Response::text(200, "fast result 12345");
    let started = Instant::now();
    for _ in 0..ROUNDS {
        out.clear();
        for _ in 0..16 {
            response.encode_into(&mut out, heavylift::http::Version::Http11, true, false);
        }
        black_box(&out);
    }
    report("encode 16 responses", started, ROUNDS);
}

fn report(what: &str, started: Instant, rounds: u32) {
    let per = started.elapsed() / rounds;
    println!(
        "{what}: {:.2} us/batch ({:.0} ns/request)",
        per.as_secs_f64() * 1e6,
        per.as_nanos() as f64 / 16.0
    );
}

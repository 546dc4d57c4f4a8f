//! Parse and encode 16 pipelined requests, the I/O core's per-batch work
//! without the socket (after hyper's benches/pipeline.rs), and collect a
//! 16 MiB upload the way a job route does, counting its allocations. One
//! line per case.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use heavylift::http::{Next, RequestHead, RequestReader, Response};

/// Counts allocations and reallocations of 1 MiB or more: the body buffer's.
struct Counting;
static BIG_ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= 1 << 20 {
            BIG_ALLOCS.fetch_add(1, Relaxed);
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= 1 << 20 {
            BIG_ALLOCS.fetch_add(1, Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

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

    for chunked in [false, true] {
        collect_16_mib(chunked);
    }
}

/// Feeds a 16 MiB upload through `RequestReader` in 64 KiB reads, as the
/// connection does, collecting the body under a 16 MiB + framing limit.
fn collect_16_mib(chunked: bool) {
    const LEN: usize = 16 << 20;
    let mut wire = if chunked {
        b"POST /gzip HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()
    } else {
        format!("POST /gzip HTTP/1.1\r\nHost: b\r\nContent-Length: {LEN}\r\n\r\n").into_bytes()
    };
    for piece in vec![b'x'; LEN].chunks(60_000) {
        if chunked {
            wire.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        }
        wire.extend_from_slice(piece);
        if chunked {
            wire.extend_from_slice(b"\r\n");
        }
    }
    if chunked {
        wire.extend_from_slice(b"0\r\n\r\n");
    }
    BIG_ALLOCS.store(0, Relaxed);
    let started = Instant::now();
    let mut reader = RequestReader::new();
    let mut at = 0;
    let body = 'read: loop {
        let spare = reader.spare();
        let n = spare.len().min(wire.len() - at);
        spare[..n].copy_from_slice(&wire[at..at + n]);
        reader.filled(n);
        at += n;
        loop {
            match reader.next_event() {
                Next::Head(_) => reader
                    .begin_body(LEN as u64 + (1 << 20), true)
                    .expect("fits"),
                Next::Body(body) => break 'read body,
                Next::NeedMore => break,
                other => panic!("{other:?}"),
            }
        }
    };
    let took = started.elapsed();
    assert_eq!(body.len(), LEN);
    println!(
        "collect a 16 MiB {} body: {:.1} ms ({:.0} MB/s), {} allocation(s) of 1 MiB or more",
        if chunked { "chunked" } else { "Content-Length" },
        took.as_secs_f64() * 1e3,
        LEN as f64 / took.as_secs_f64() / 1e6,
        BIG_ALLOCS.load(Relaxed)
    );
}

fn report(what: &str, started: Instant, rounds: u32) {
    let per = started.elapsed() / rounds;
    println!(
        "{what}: {:.2} us/batch ({:.0} ns/request)",
        per.as_secs_f64() * 1e6,
        per.as_nanos() as f64 / 16.0
    );
}

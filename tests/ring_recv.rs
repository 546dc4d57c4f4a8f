//! Requests read by ring receives into provided buffers (glommio patches
//! 16 and 17): a new connection's first bytes, and a keep-alive
//! connection's next bytes once it has answered a request, are received by
//! the kernel into one of 64 shared 2 KiB buffers and copied out. These
//! tests send what straddles those limits: more than one buffer
//! (or than the 512-byte first read buffer) in one write, and more
//! connections sending at once than there are buffers, where receives
//! complete with ENOBUFS and the stream reads the socket itself. Each runs
//! twice: with ring receives, and with `ring_recv: false`, the poll and
//! recv(2) path that kernels before 5.19 take.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::util::*;

/// A GET of `/fast?id=ID` carrying a header of `pad` bytes.
fn padded_get(id: usize, pad: usize) -> String {
    format!(
        "GET /fast?id={id} HTTP/1.1\r\nHost: t\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(pad)
    )
}

/// A server per read path: ring receives on, then off.
fn servers() -> impl Iterator<Item = TestServer> {
    [true, false]
        .into_iter()
        .map(|ring| TestServer::start_with(|c| c.ring_recv = ring))
}

#[test]
fn pipelined_requests_larger_than_a_receive_buffer_lose_no_byte() {
    for server in servers() {
        pipelined_batches(&server);
    }
}

fn pipelined_batches(server: &TestServer) {
    for pads in [
        vec![0, 0, 0],
        vec![500, 20, 4000],
        vec![4000, 4000, 10],
        vec![4070, 7000, 0, 3000],
        vec![7500, 7500, 7500],
    ] {
        let mut s = connect(server.addr, QUICK);
        // The first answer leaves a ring receive armed for what follows.
        s.write_all(padded_get(100, 0).as_bytes()).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        assert_eq!(
            read_reply(&mut r, false).expect("first reply").text(),
            "fast result 100"
        );
        std::thread::sleep(Duration::from_millis(20));

        let batch: String = pads
            .iter()
            .enumerate()
            .map(|(i, &pad)| padded_get(i, pad))
            .collect();
        s.write_all(batch.as_bytes()).unwrap();
        for i in 0..pads.len() {
            let reply = read_reply(&mut r, false).unwrap_or_else(|| panic!("{pads:?}: reply {i}"));
            assert_eq!(reply.status, 200, "{pads:?}: {}", reply.text());
            assert_eq!(reply.text(), format!("fast result {i}"), "{pads:?}");
        }
    }
}

#[test]
fn an_upload_after_a_first_request_arrives_whole() {
    for server in servers() {
        upload_after_first_request(&server);
    }
}

fn upload_after_first_request(server: &TestServer) {
    let mut s = connect(server.addr, SLOW);
    s.write_all(padded_get(1, 0).as_bytes()).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert_eq!(read_reply(&mut r, false).unwrap().text(), "fast result 1");
    std::thread::sleep(Duration::from_millis(20));
    // 300 KiB of text that gzip round-trips: many receive buffers' worth.
    let body: Vec<u8> = (0..300 * 1024)
        .map(|i| b"heavylift ring "[i % 15])
        .collect();
    write!(
        s,
        "POST /gzip HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let reply = read_reply(&mut r, false).expect("gzip reply");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&reply.body[..]), &mut out)
        .expect("valid gzip");
    assert!(out == body, "round trip differs: {} bytes back", out.len());
    // And the connection still serves.
    s.write_all(padded_get(2, 0).as_bytes()).unwrap();
    assert_eq!(read_reply(&mut r, false).unwrap().text(), "fast result 2");
}

#[test]
fn more_connections_sending_at_once_than_receive_buffers_are_all_answered() {
    for server in servers() {
        many_at_once(&server);
    }
}

fn many_at_once(server: &TestServer) {
    const CONNS: usize = 600;
    let mut conns: Vec<(TcpStream, BufReader<TcpStream>)> = (0..CONNS)
        .map(|_| {
            let s = connect(server.addr, SLOW);
            let r = BufReader::new(s.try_clone().unwrap());
            (s, r)
        })
        .collect();
    for round in 0..3 {
        // Every request written before any answer is read: hundreds of
        // receives complete in one batch, more than the 64 buffers.
        for (i, (s, _)) in conns.iter_mut().enumerate() {
            s.write_all(padded_get(i, 200).as_bytes()).unwrap();
        }
        for (i, (_, r)) in conns.iter_mut().enumerate() {
            let reply = read_reply(r, false).unwrap_or_else(|| panic!("round {round}: conn {i}"));
            assert_eq!(reply.text(), format!("fast result {i}"), "round {round}");
        }
    }
}

/// A new connection's first read is a ring receive that tries at
/// submission (glommio patch 17), not a recv(2): its first bytes may be
/// there before that read, arrive while it waits, or come in pieces, and
/// may be more than one receive buffer (a long head, an upload).
#[test]
fn a_new_connections_first_request_loses_no_byte_however_it_arrives() {
    for server in servers() {
        first_requests(&server);
    }
}

fn first_requests(server: &TestServer) {
    let body: Vec<u8> = (0..100 * 1024).map(|i| b"first ring "[i % 11]).collect();
    let upload = [
        format!(
            "POST /gzip HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes(),
        body.clone(),
    ]
    .concat();
    for delay_ms in [0u64, 30] {
        for pad in [0usize, 1500, 2100, 7500] {
            let request = padded_get(pad, pad).into_bytes();
            // Whole; then split at a byte inside the first receive buffer.
            for split in [request.len(), 7] {
                let mut s = connect(server.addr, QUICK);
                std::thread::sleep(Duration::from_millis(delay_ms));
                s.write_all(&request[..split]).unwrap();
                if split < request.len() {
                    std::thread::sleep(Duration::from_millis(20));
                    s.write_all(&request[split..]).unwrap();
                }
                let mut r = BufReader::new(s.try_clone().unwrap());
                let reply = read_reply(&mut r, false)
                    .unwrap_or_else(|| panic!("pad {pad}, delay {delay_ms}, split {split}"));
                assert_eq!(reply.text(), format!("fast result {pad}"));
            }
        }
        let mut s = connect(server.addr, SLOW);
        std::thread::sleep(Duration::from_millis(delay_ms));
        s.write_all(&upload).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let reply = read_reply(&mut r, false).expect("gzip reply");
        assert_eq!(reply.status, 200, "{}", reply.text());
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&reply.body[..]), &mut out)
            .expect("valid gzip");
        assert!(out == body, "delay {delay_ms}: {} bytes back", out.len());
    }
}

/// What the stream's reads returned, in order, until an error or the end.
#[derive(Debug, PartialEq)]
enum Read {
    Bytes(usize),
    End,
    Failed(std::io::ErrorKind),
}

/// A reset right behind exactly one receive buffer's worth of bytes: the
/// ring receive takes the 2 KiB, the recv(2) that reads on behind it meets
/// ECONNRESET, which the socket reports only once. The reader must still
/// see the bytes and then the reset, not a clean end of stream.
#[test]
fn a_reset_behind_a_full_receive_buffer_is_an_error_not_an_end() {
    use futures_lite::AsyncReadExt;
    use glommio::net::TcpListener;

    for attempt in 0..3 {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || {
            glommio::LocalExecutorBuilder::default()
                .make()
                .expect("executor")
                .run(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                    addr_tx.send(listener.local_addr().unwrap()).unwrap();
                    let mut stream = listener.accept().await.unwrap();
                    stream.set_ring_recv(true);
                    let mut buf = vec![0u8; 16 * 1024];
                    let mut reads = Vec::new();
                    loop {
                        let read = match stream.read(&mut buf).await {
                            Ok(0) => Read::End,
                            Ok(n) => Read::Bytes(n),
                            Err(err) => Read::Failed(err.kind()),
                        };
                        let last = !matches!(read, Read::Bytes(_));
                        reads.push(read);
                        if last || reads.len() > 100 {
                            return reads;
                        }
                    }
                })
        });
        let addr = addr_rx.recv_timeout(QUICK).expect("listening");
        let client = std::net::TcpStream::connect(addr).unwrap();
        let mut writer = &client;
        writer.write_all(b"hello").unwrap();
        // Let the server read "hello" and arm its ring receive.
        std::thread::sleep(Duration::from_millis(100));
        writer.write_all(&[b'x'; 2048]).unwrap();
        socket2::SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(client); // a reset, with SO_LINGER 0
        let reads = server.join().expect("server thread");
        let bytes: usize = reads
            .iter()
            .map(|r| if let Read::Bytes(n) = r { *n } else { 0 })
            .sum();
        assert_eq!(bytes, 5 + 2048, "attempt {attempt}: {reads:?}");
        assert_eq!(
            reads.last(),
            Some(&Read::Failed(std::io::ErrorKind::ConnectionReset)),
            "attempt {attempt}: {reads:?}"
        );
    }
}

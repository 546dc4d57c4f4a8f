//! The tiny keep-alive HTTP/1.1 client that `load`, `bench` and the tests
//! drive the server with.
//!
//! One [`Connection`] is one glommio `TcpStream` plus one reusable read
//! buffer. A request is bytes the caller built once (see [`get_request`]) and
//! sends as often as it likes; a response is read into the buffer, parsed by
//! `response.rs`, and returned as a [`Response`] that borrows the buffer, so
//! the hot loop of `bench` allocates nothing. Every exchange runs under a
//! deadline ([`Connection::request`]); a connection that timed out or failed
//! mid-exchange is never reused. Nothing here panics on peer bytes.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::response::{
    parse_response, ResponseError, ResponseHead, MAX_BODY_BYTES, MAX_HEAD_BYTES,
};

/// Initial size of a connection's read buffer; it grows only for big bodies.
const INITIAL_BUFFER: usize = 8 * 1024;

/// Builds the bytes of `GET {path}` for `host`, to be sent any number of times.
pub fn get_request(host: &str, path: &str) -> Vec<u8> {
    request("GET", host, path, &[])
}

/// Builds the bytes of `{method} {path}` for `host` with `body`
/// (`Content-Length` unless a GET or HEAD without one).
pub fn request(method: &str, host: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: heavylift\r\n")
            .into_bytes();
    if !body.is_empty() || !matches!(method, "GET" | "HEAD") {
        bytes.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    bytes.extend_from_slice(b"\r\n");
    bytes.extend_from_slice(body);
    bytes
}

/// Why an exchange failed; bench counts these by kind.
#[derive(Debug)]
pub enum ClientError {
    /// The TCP connect failed (refused, unreachable, timed out).
    Connect(io::Error),
    /// The whole exchange did not finish within this time.
    TimedOut(Duration),
    /// The peer reset or closed the connection before a complete response.
    Reset(String),
    /// The response could not be parsed.
    Protocol(ResponseError),
    /// Any other socket error.
    Io(io::Error),
}

impl ClientError {
    fn from_io(e: io::Error) -> ClientError {
        match e.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => ClientError::Reset(e.to_string()),
            _ => ClientError::Io(e),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "connect failed: {e}"),
            ClientError::TimedOut(d) => write!(f, "timed out after {} s", fmt_secs(*d)),
            ClientError::Reset(why) => write!(f, "connection lost: {why}"),
            ClientError::Protocol(e) => write!(f, "{e}"),
            ClientError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

/// `60`, `0.5`: seconds without trailing zeros.
fn fmt_secs(d: Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64());
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A complete response, borrowing the connection's buffer until the next request.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    pub status: u16,
    pub reason: &'a str,
    pub body: &'a [u8],
}

impl Response<'_> {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One keep-alive client connection.
pub struct Connection {
    stream: TcpStream,
    /// Bytes read from the socket; `buf[consumed..filled]` is not yet answered.
    buf: Vec<u8>,
    filled: usize,
    /// End of the last returned response (its bytes stay valid until the next request).
    consumed: usize,
    /// False after `Connection: close`, a timeout or a failed exchange.
    reusable: bool,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.stream.peer_addr().ok())
            .field("buffered", &(self.filled - self.consumed))
            .field("reusable", &self.reusable)
            .finish()
    }
}

impl Connection {
    /// Connects to `addr`, giving up after `timeout`; must run inside a glommio executor.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Connection, ClientError> {
        let timeout = timeout.max(Duration::from_millis(1));
        let stream = TcpStream::connect_timeout(addr, timeout)
            .await
            .map_err(|e| ClientError::Connect(e.into()))?;
        // Small requests and responses: never wait for Nagle.
        stream
            .set_nodelay(true)
            .map_err(|e| ClientError::Connect(e.into()))?;
        Ok(Connection {
            stream,
            buf: vec![0; INITIAL_BUFFER],
            filled: 0,
            consumed: 0,
            reusable: true,
        })
    }

    /// Whether another request may be sent on this connection.
    pub fn is_reusable(&self) -> bool {
        self.reusable
    }

    /// Sends `request` and reads one response, all within `timeout`.
    pub async fn request(
        &mut self,
        request: &[u8],
        timeout: Duration,
    ) -> Result<Response<'_>, ClientError> {
        if !self.reusable {
            return Err(ClientError::Reset("connection is closed".into()));
        }
        if timeout.is_zero() {
            return Err(ClientError::TimedOut(timeout));
        }
        // Pessimistic until the exchange completes: a timeout or error leaves
        // the stream in an unknown state.
        self.reusable = false;
        let head = match glommio::timer::timeout(timeout, async {
            Ok(self.exchange(request).await)
        })
        .await
        {
            Ok(result) => result?,
            Err(_) => return Err(ClientError::TimedOut(timeout)),
        };
        self.reusable = head.keep_alive;
        self.consumed = head.body.end;
        let reason = std::str::from_utf8(&self.buf[head.reason.clone()]).unwrap_or("");
        Ok(Response {
            status: head.status,
            reason,
            body: &self.buf[head.body],
        })
    }

    async fn exchange(&mut self, request: &[u8]) -> Result<ResponseHead, ClientError> {
        if self.consumed > 0 {
            self.buf.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
        }
        self.stream
            .write_all(request)
            .await
            .map_err(ClientError::from_io)?;
        loop {
            if self.filled > 0 {
                if let Some(head) =
                    parse_response(&self.buf[..self.filled]).map_err(ClientError::Protocol)?
                {
                    return Ok(head);
                }
            }
            if self.filled == self.buf.len() {
                let limit = MAX_HEAD_BYTES + MAX_BODY_BYTES;
                if self.buf.len() >= limit {
                    return Err(ClientError::Protocol(ResponseError::BodyTooLarge(
                        self.buf.len(),
                    )));
                }
                self.buf.resize((self.buf.len() * 2).min(limit), 0);
            }
            let n = self
                .stream
                .read(&mut self.buf[self.filled..])
                .await
                .map_err(ClientError::from_io)?;
            if n == 0 {
                return Err(ClientError::Reset(
                    "closed by the server before a complete response".into(),
                ));
            }
            self.filled += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nfast result 7";

    #[test]
    fn request_bytes() {
        assert_eq!(
            get_request("127.0.0.1:8888", "/fast?id=1"),
            b"GET /fast?id=1 HTTP/1.1\r\nHost: 127.0.0.1:8888\r\nUser-Agent: heavylift\r\n\r\n"
        );
    }

    #[test]
    fn talks_to_a_socket() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 1024];
            for _ in 0..2 {
                let _ = s.read(&mut req).unwrap();
                // Dribble the response out byte by byte.
                for b in OK {
                    s.write_all(&[*b]).unwrap();
                }
            }
        });
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(64 << 10)
            .make()
            .unwrap();
        ex.run(async move {
            let mut c = Connection::connect(addr, Duration::from_secs(2))
                .await
                .unwrap();
            let req = get_request("x", "/fast?id=7");
            for _ in 0..2 {
                let r = c.request(&req, Duration::from_secs(2)).await.unwrap();
                assert_eq!(r.status, 200);
                assert_eq!(r.body, b"fast result 7");
            }
            // The server is gone now: the third request fails instead of hanging.
            let err = c.request(&req, Duration::from_secs(2)).await.unwrap_err();
            assert!(matches!(err, ClientError::Reset(_)), "{err}");
        });
        server.join().unwrap();
    }
}

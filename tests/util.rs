//! Shared test helpers: an in-process `TestServer` (stopped and joined on
//! Drop) and small blocking HTTP clients with timeouts, so a broken server
//! fails a test instead of hanging it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use heavylift::{routes, CoreLayout, ServeConfig, Server, ServerHandle};

/// Read/write timeout of the test clients for quick requests.
pub const QUICK: Duration = Duration::from_secs(5);
/// Timeout for requests that wait on jobs.
pub const SLOW: Duration = Duration::from_secs(60);

pub struct TestServer {
    pub addr: SocketAddr,
    handle: Option<ServerHandle>,
}

impl TestServer {
    /// One I/O core and one compute core (shared on a 1-CPU machine).
    pub fn start() -> TestServer {
        TestServer::start_with(|_| {})
    }

    pub fn start_with(tweak: impl FnOnce(&mut ServeConfig)) -> TestServer {
        let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), one_io_one_compute());
        tweak(&mut config);
        let router = routes::seed_router(config.max_job_body);
        TestServer::start_router(config, router)
    }

    /// A server with a router of the test's own.
    pub fn start_router(config: ServeConfig, router: heavylift::Router) -> TestServer {
        let handle = Server::start(config, router).expect("server starts");
        TestServer {
            addr: handle.local_addr(),
            handle: Some(handle),
        }
    }

    pub fn handle(&self) -> &ServerHandle {
        self.handle.as_ref().expect("running")
    }

    /// Stops and joins now; returns whether join reported no error.
    pub fn stop(&mut self) -> bool {
        match self.handle.take() {
            Some(h) => {
                h.stop();
                h.join().is_ok()
            }
            None => true,
        }
    }

    pub fn get(&self, target: &str) -> Reply {
        get(self.addr, target, &[])
    }

    pub fn stats(&self) -> serde_json::Value {
        let reply = self.get("/stats");
        assert_eq!(reply.status, 200, "{reply:?}");
        serde_json::from_slice(&reply.body).expect("/stats is JSON")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// First usable CPU for I/O, last for compute (the same one on a 1-CPU machine).
pub fn one_io_one_compute() -> CoreLayout {
    let cpus = CoreLayout::usable_cpus();
    let first = cpus[0];
    let last = cpus[cpus.len() - 1];
    CoreLayout {
        io: vec![first],
        compute: vec![last],
        shared: first == last,
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn connect(addr: SocketAddr, timeout: Duration) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, QUICK).expect("connect");
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.set_write_timeout(Some(QUICK)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// GET with `Connection: close` and extra headers; panics on a broken reply.
pub fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = connect(addr, SLOW);
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    read_reply(&mut reader, false).expect("a reply")
}

/// Reads one response (status line, headers, Content-Length body).
/// `None` on EOF before a status line.
pub fn read_reply(reader: &mut impl BufRead, head_only: bool) -> Option<Reply> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let version = parts.next()?;
    assert!(version.starts_with("HTTP/1."), "bad status line {line:?}");
    let status: u16 = parts.next()?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; if head_only { 0 } else { len }];
    reader.read_exact(&mut body).ok()?;
    Some(Reply {
        status,
        headers,
        body,
    })
}

/// Sends raw bytes and reads everything until the server closes or `timeout` passes.
pub fn raw(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> Vec<u8> {
    let mut stream = connect(addr, timeout);
    let _ = stream.write_all(bytes);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    out
}

/// True when the server has closed `stream` (EOF or reset) within its read timeout.
pub fn is_closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Polls `/stats` until `check` holds or about `secs` pass; returns the last document.
pub fn wait_for_stats(
    server: &TestServer,
    secs: u64,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let stats = server.stats();
        if check(&stats) || std::time::Instant::now() > deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The job counters of a `/stats` document.
pub fn jobs(stats: &serde_json::Value) -> [u64; 6] {
    let j = &stats["jobs"];
    [
        "accepted",
        "completed",
        "failed",
        "rejected",
        "timed_out",
        "cancelled",
    ]
    .map(|k| {
        j[k].as_u64()
            .unwrap_or_else(|| panic!("jobs.{k} missing in {stats}"))
    })
}

/// accepted == completed + failed + timed_out + cancelled.
pub fn identity_holds(stats: &serde_json::Value) -> bool {
    let [accepted, completed, failed, _rejected, timed_out, cancelled] = jobs(stats);
    accepted == completed + failed + timed_out + cancelled
}

/// Path of the real binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_heavylift")
}

/// A `heavylift serve` child on port 0 (the real binary, whose main calls
/// the worker hook); killed on Drop.
pub struct ProcessServer {
    pub child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl ProcessServer {
    /// `serve --isolation process` with `extra` flags.
    pub fn start(extra: &[&str]) -> ProcessServer {
        let mut args = vec!["--isolation", "process"];
        args.extend_from_slice(extra);
        ProcessServer::serve(&args)
    }

    /// `serve --listen 127.0.0.1:0` with `args`; panics if it does not say
    /// where it listens.
    pub fn serve(args: &[&str]) -> ProcessServer {
        ProcessServer::serve_with(args, |_| {})
    }

    /// As [`ProcessServer::serve`], with `tweak` applied to the command
    /// before it runs.
    pub fn serve_with(args: &[&str], tweak: impl FnOnce(&mut Command)) -> ProcessServer {
        let mut command = Command::new(bin());
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stderr(Stdio::piped())
            .stdout(Stdio::null());
        tweak(&mut command);
        let mut child = command.spawn().expect("run heavylift");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let addr = loop {
            let line = lines.next().expect("serve logs its address").expect("line");
            log.lock().unwrap().push(line.clone());
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        ProcessServer { child, addr, log }
    }

    pub fn get(&self, target: &str) -> Reply {
        get(self.addr, target, &[])
    }

    pub fn stats(&self) -> serde_json::Value {
        let r = self.get("/stats");
        assert_eq!(r.status, 200, "{r:?}");
        serde_json::from_slice(&r.body).expect("/stats is JSON")
    }

    pub fn metrics(&self) -> String {
        self.get("/metrics").text()
    }

    /// Polls /stats until `check` holds or `secs` pass.
    pub fn wait_stats(
        &self,
        secs: u64,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.stats();
            if check(&s) || Instant::now() > deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn worker_pid(&self) -> u32 {
        let s = self.wait_stats(10, |s| s["compute_cores"][0]["worker_pid"].is_u64());
        s["compute_cores"][0]["worker_pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("no worker pid: {s}\n{}", self.log())) as u32
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn child_id(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ProcessServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True while `pid` is a live process (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

pub fn gone_within(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !alive(pid)
}

pub fn counter(metrics: &str, prefix: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{prefix} not in\n{metrics}"))
}

/// A job that naps `secs` in 10 ms steps, stopping at its cancel; answers
/// "rested".
pub fn nap(secs: f64) -> heavylift::Handler {
    heavylift::offload(move |_, ctx| {
        let until = Instant::now() + Duration::from_secs_f64(secs);
        while Instant::now() < until {
            if ctx.should_stop() {
                return Err(heavylift::Cancelled);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(heavylift::Response::text(200, "rested"))
    })
}

/// `len` incompressible bytes (xorshift32 from `seed`), the same each call.
pub fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

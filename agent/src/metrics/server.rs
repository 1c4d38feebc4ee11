//! `/metrics` and `/health` over HTTP/1.1, answered by hand: one thread, one connection at
//! a time, each request read within [`IO_TIMEOUT`] and [`MAX_REQUEST_BYTES`], answered with
//! `Connection: close`. [`IO_TIMEOUT`] bounds the whole request (and, apart, the whole
//! answer), not each read: a client that drips a byte every 200 ms would otherwise hold the
//! one metrics thread for 8 KiB × 200 ms, half an hour. Two read-only endpoints for a scraper on loopback need no more
//! (tiny_http, which served them before, was 40 KB of the armv7 binary and a thread
//! pool). The listener is bound first, on its own, so that an address already in use is a
//! startup error before any other thread runs; serving starts once the stages whose
//! counters it reads exist.
//!
//! Each request reads a fresh [`Snapshot`] through the closure it was given; the stages
//! keep counting in atomics and never wait on a scrape.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, warn};
use thiserror::Error;

use crate::support::text::untrusted;
use crate::support::wake::Wake;

use super::{Health, Snapshot, render};

/// Prometheus' content type for the text format.
const EXPOSITION_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// A request line and headers larger than this are not a scrape.
const MAX_REQUEST_BYTES: usize = 8 << 10;
/// How long one client may take to send its request or to read the answer: a client that
/// stalls holds the (single) metrics thread this long at most.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed accept (descriptors exhausted), so that the thread does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

#[derive(Debug, Error)]
pub enum MetricsError {
    #[error("cannot listen on {addr} for metrics: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the metrics thread: {0}")]
    Thread(std::io::Error),
}

impl MetricsError {
    /// Whether binding failed because something else holds the address.
    pub fn is_addr_in_use(&self) -> bool {
        matches!(self, Self::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse)
    }
}

/// A bound, not yet serving, listener.
pub struct MetricsListener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl MetricsListener {
    /// Binds `addr` (port 0: any free port; [`local_addr`](Self::local_addr) says which).
    pub fn bind(addr: SocketAddr) -> Result<Self, MetricsError> {
        let bind_error = |source| MetricsError::Bind { addr, source };
        let listener = TcpListener::bind(addr).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        Ok(Self { listener, addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// The running server; stops when dropped.
pub struct MetricsServer {
    stopping: Arc<AtomicBool>,
    /// Set by the thread as it ends, so a stop can wait for it with a bound.
    finished: Arc<(AtomicBool, Wake)>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

/// The longest a stop waits for the metrics thread: a client that never reads can hold
/// it in a write, and must not hold the agent's shutdown.
const STOP_GRACE: Duration = Duration::from_secs(2);

impl MetricsServer {
    /// Serves `listener`; `collect` reads the counters for each request.
    pub fn start(
        listener: MetricsListener,
        collect: impl Fn() -> Snapshot + Send + 'static,
    ) -> Result<Self, MetricsError> {
        let addr = listener.addr;
        let listener = listener.listener;
        let stopping = Arc::new(AtomicBool::new(false));
        let finished = Arc::new((AtomicBool::new(false), Wake::new()));
        let thread_stopping = stopping.clone();
        let thread_finished = finished.clone();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for connection in listener.incoming() {
                    if thread_stopping.load(Ordering::Acquire) {
                        break;
                    }
                    match connection {
                        Ok(stream) => serve(stream, &collect),
                        // A client that reset before it was accepted, or descriptors running
                        // out for a moment: the next accept may well work.
                        Err(error) => {
                            debug!("metrics: accept: {error}");
                            std::thread::sleep(ACCEPT_PAUSE);
                        }
                    }
                }
                thread_finished.0.store(true, Ordering::Release);
                thread_finished.1.notify();
            })
            .map_err(MetricsError::Thread)?;
        Ok(Self {
            stopping,
            finished,
            thread: Some(thread),
            addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        // A blocking accept wakes on a connection: ours, which the thread then drops.
        let _ = TcpStream::connect_timeout(&wake_addr(self.addr), IO_TIMEOUT);
        let (finished, wake) = &*self.finished;
        if !wake.wait_until(STOP_GRACE, || finished.load(Ordering::Acquire)) {
            warn!(
                "the metrics thread is still answering a client after {STOP_GRACE:?}; leaving it"
            );
            return;
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            warn!("the metrics thread panicked");
        }
    }
}

/// Where to connect to wake the accept: the bound address, or loopback for a wildcard.
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

fn serve(mut stream: TcpStream, collect: &impl Fn() -> Snapshot) {
    let answer = match read_request_line(&mut stream, Instant::now() + IO_TIMEOUT) {
        Ok(Some(line)) => answer(&line, collect),
        Ok(None) => Answer::plain(400, "bad request\n"),
        Err(error) => {
            debug!("metrics: reading a request: {error}");
            return;
        }
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.status,
        reason(answer.status),
        answer.content_type,
        answer.body.len()
    );
    let deadline = Instant::now() + IO_TIMEOUT;
    let written = write_all_by(&mut stream, head.as_bytes(), deadline).and_then(|()| {
        if answer.head_only {
            Ok(())
        } else {
            write_all_by(&mut stream, answer.body.as_bytes(), deadline)
        }
    });
    if let Err(error) = written {
        // The scraper went away; nothing to do for it.
        debug!("metrics: {}: {error}", untrusted(&answer.request));
    }
    let _ = stream.shutdown(Shutdown::Write);
}

/// What is left until `deadline`, or `TimedOut` when nothing is: set as the socket's
/// timeout before each read or write, so that their sum, not each, is bounded.
fn remaining(deadline: Instant) -> std::io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client took longer than the bound",
        ));
    }
    Ok(left)
}

/// `bytes` written whole by `deadline`, or an error.
fn write_all_by(stream: &mut TcpStream, bytes: &[u8], deadline: Instant) -> std::io::Result<()> {
    let mut rest = bytes;
    while !rest.is_empty() {
        stream.set_write_timeout(Some(remaining(deadline)?))?;
        match stream.write(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// The request's first line, once the whole head (up to the blank line) has arrived
/// within [`MAX_REQUEST_BYTES`] and by `deadline`; `None` for a head that is too long or
/// not text.
fn read_request_line(stream: &mut TcpStream, deadline: Instant) -> std::io::Result<Option<String>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
        if head.len() > MAX_REQUEST_BYTES {
            return Ok(None);
        }
    }
    let Ok(text) = std::str::from_utf8(&head) else {
        return Ok(None);
    };
    Ok(text.lines().next().map(str::to_owned))
}

struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
    head_only: bool,
    /// The request line, for the log (untrusted).
    request: String,
}

impl Answer {
    fn plain(status: u16, body: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_owned(),
            head_only: false,
            request: String::new(),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "",
    }
}

fn answer(request_line: &str, collect: &impl Fn() -> Snapshot) -> Answer {
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default();
    let readable = matches!(method, "GET" | "HEAD");
    let (status, content_type, body) = match path {
        _ if !readable => (
            405,
            "text/plain; charset=utf-8",
            "only GET and HEAD\n".to_owned(),
        ),
        "/metrics" => (200, EXPOSITION_TYPE, render(&collect())),
        "/health" => {
            let snapshot = collect();
            // Degraded is not dead: a full disk or a paused upstream is reported here and in
            // the metrics, while the status code stays the liveness verdict (a restart fixes
            // neither).
            let shipping = snapshot.shipping.as_ref();
            let body = serde_json::json!({
                "status": snapshot.health.name(),
                "samples": snapshot.sampler.samples,
                // A sensor that stopped answering (a loose wire) is not a stall: the agent
                // stays alive, retrying, and says why here.
                "sensor": snapshot.sampler.failing().unwrap_or_else(|| "ok".to_owned()),
                "windows": snapshot.pipeline.windows,
                "function_sha256": snapshot.pipeline.function_sha256,
                "disk": shipping.map(|s| if s.disk_degraded() { "refuses writes" } else { "ok" }),
                "shipping": shipping.map(|s| match s.paused {
                    Some(pause) => format!("paused: {}", pause.label()),
                    None => "ok".to_owned(),
                }),
                // The lines listener open to anyone: a warning, not a failure.
                "lines": snapshot.lines.as_ref().map(|l| l.exposed.unwrap_or("ok")),
            });
            let status = if snapshot.health == Health::Alive {
                200
            } else {
                503
            };
            (status, "application/json", format!("{body}\n"))
        }
        "/" => (
            200,
            "text/plain; charset=utf-8",
            "edge-agent: /metrics (Prometheus text format), /health (JSON; 200 alive, 503 not)\n"
                .to_owned(),
        ),
        _ => (404, "text/plain; charset=utf-8", "not found\n".to_owned()),
    };
    Answer {
        status,
        content_type,
        body,
        head_only: method == "HEAD",
        request: request_line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::metrics::{PipelineCounts, SamplerStats};

    fn alive() -> Snapshot {
        Snapshot {
            health: Health::Alive,
            sampler: SamplerStats::default(),
            pipeline: PipelineCounts::default(),
            shipping: None,
            resident_memory_bytes: None,
            start_time_seconds: 0.0,
            lines: None,
            rollout: None,
        }
    }

    fn serving() -> MetricsServer {
        let listener = MetricsListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        MetricsServer::start(listener, alive).unwrap()
    }

    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(request).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    #[test]
    fn answers_get_head_and_refuses_the_rest() {
        let server = serving();
        let addr = server.local_addr();
        let get = exchange(addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(get.starts_with("HTTP/1.1 200 OK\r\n"), "{get}");
        let (head, body) = get.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{get}"
        );
        assert!(body.contains("\"status\":\"ok\""), "{body}");

        let head = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(
            head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
        let post = exchange(addr, b"POST /metrics HTTP/1.1\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        let missing = exchange(addr, b"GET /nope?x=1 HTTP/1.1\r\n\r\n");
        assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
        let huge = [b'A'; MAX_REQUEST_BYTES + 600];
        assert!(exchange(addr, &huge).starts_with("HTTP/1.1 400 "));
    }

    #[test]
    fn health_says_when_the_lines_listener_is_open_to_anyone() {
        let listener = MetricsListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let server = MetricsServer::start(listener, || Snapshot {
            lines: Some(crate::sensor::lines::LinesCounts {
                exposed: Some(crate::sensor::lines::EXPOSED),
                ..Default::default()
            }),
            ..alive()
        })
        .unwrap();
        let get = exchange(server.local_addr(), b"GET /health HTTP/1.1\r\n\r\n");
        let (head, body) = get.split_once("\r\n\r\n").unwrap();
        // A warning, not a failure: still alive.
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{get}");
        let health: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(health["lines"], crate::sensor::lines::EXPOSED);
    }

    #[test]
    fn a_silent_client_holds_the_server_no_longer_than_the_timeout() {
        let server = serving();
        let addr = server.local_addr();
        let _silent = TcpStream::connect(addr).unwrap();
        let asked = Instant::now();
        let get = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(get.starts_with("HTTP/1.1 200 OK\r\n"), "{get}");
        assert!(asked.elapsed() < IO_TIMEOUT * 10, "{:?}", asked.elapsed());
        let stopping = Instant::now();
        drop(server);
        assert!(
            stopping.elapsed() < STOP_GRACE * 10,
            "{:?}",
            stopping.elapsed()
        );
    }

    /// A client that drips its request a byte every 100 ms, never finishing it, is cut
    /// off at the bound for the whole request: the next scraper is answered within it,
    /// not after the drip (each read alone comes well within the timeout).
    #[test]
    fn a_client_that_drips_its_request_is_cut_off_at_the_bound() {
        let server = serving();
        let addr = server.local_addr();
        let mut dripper = TcpStream::connect(addr).unwrap();
        let drip = std::thread::spawn(move || {
            let started = Instant::now();
            let mut request = b"GET /metrics HTTP/1.1\r\nX-Pad: "
                .iter()
                .chain(std::iter::repeat(&b'a'));
            // Until the server closes on it (a write fails) or 12 s, well past the bound.
            while started.elapsed() < IO_TIMEOUT * 6 {
                let byte = *request.next().unwrap();
                if dripper.write_all(&[byte]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let asked = Instant::now();
        let get = exchange(addr, b"GET /health HTTP/1.1\r\n\r\n");
        let waited = asked.elapsed();
        assert!(get.starts_with("HTTP/1.1 200 OK\r\n"), "{get}");
        assert!(waited < IO_TIMEOUT * 2, "answered after {waited:?}");
        drip.join().unwrap();
    }
}

//! `/metrics` and `/health` over HTTP/1.1 with `tiny_http`: synchronous, one thread of our
//! own (tiny_http adds a small pool for reading requests), no async runtime. The listener
//! is bound first, on its own, so that an address already in use is a startup error before
//! any other thread runs; serving starts once the stages whose counters it reads exist.
//!
//! Each request reads a fresh [`Snapshot`] through the closure it was given; the stages
//! keep counting in atomics and never wait on a scrape.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use log::{debug, warn};
use thiserror::Error;
use tiny_http::{Header, Method, Request, Response, Server};

use crate::support::wake::Wake;

use super::{Health, Snapshot, render};

/// Prometheus' content type for the text format.
const EXPOSITION_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Error)]
pub enum MetricsError {
    #[error("cannot listen on {addr} for metrics: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serve metrics: {0}")]
    Serve(String),
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
    server: Arc<Server>,
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
        let server = Arc::new(
            Server::from_listener(listener.listener, None)
                .map_err(|e| MetricsError::Serve(e.to_string()))?,
        );
        let stopping = Arc::new(AtomicBool::new(false));
        let finished = Arc::new((AtomicBool::new(false), Wake::new()));
        let (thread_server, thread_stopping) = (server.clone(), stopping.clone());
        let thread_finished = finished.clone();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                loop {
                    match thread_server.recv() {
                        Ok(request) => answer(request, &collect),
                        // `unblock` on stop, or the listener failing for good.
                        Err(_) if thread_stopping.load(Ordering::Acquire) => break,
                        Err(error) => {
                            warn!("metrics: {error}; no longer serving");
                            break;
                        }
                    }
                }
                thread_finished.0.store(true, Ordering::Release);
                thread_finished.1.notify();
            })
            .map_err(MetricsError::Thread)?;
        Ok(Self {
            server,
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
        self.server.unblock();
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

fn answer(request: Request, collect: &impl Fn() -> Snapshot) {
    let path = request
        .url()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let method = request.method().clone();
    let readable = matches!(method, Method::Get | Method::Head);
    let (status, content_type, body) = match path.as_str() {
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
                "windows": snapshot.pipeline.windows,
                "function_sha256": snapshot.pipeline.function_sha256,
                "disk": shipping.map(|s| if s.disk_degraded() { "refuses writes" } else { "ok" }),
                "shipping": shipping.map(|s| match s.paused {
                    Some(pause) => format!("paused: {}", pause.label()),
                    None => "ok".to_owned(),
                }),
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
    let mut response = Response::from_string(body).with_status_code(status);
    // The header's name and values are constants above, always valid.
    if let Ok(header) = Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes()) {
        response.add_header(header);
    }
    if let Err(error) = request.respond(response) {
        // The scraper went away; nothing to do for it.
        debug!(
            "metrics: {method} {}: {error}",
            crate::support::text::untrusted(&path)
        );
    }
}

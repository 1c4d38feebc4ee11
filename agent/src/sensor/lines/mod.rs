//! Sensors that are not on the I2C bus: samples as lines of text over TCP, UDP or standard
//! input (`[source] kind = "lines"`), into the same ring the BME680's sampler fills, so
//! the same windows, functions, spool and shipper see them. Each sample names its sensor
//! ([`crate::sensor::Sample::sensor_id`]) and the pipeline keeps windows per sensor.
//!
//! Layout: [`config`] the `[source]` section · [`tls`] the TLS server's configuration
//! and handshake · [`parse`] a line into a reading, or why not · [`feed`] readings into
//! samples (the sensor table, the queue policy, the counters) · [`listener`] bytes into
//! lines, per transport, and who sent them · this file starts one and hands back its
//! [`LinesHandle`]. Imports run tls → config → parse → feed → listener → here.
//!
//! Bounds: a line is at most `max_line_bytes` before it is buffered; at most
//! `max_connections` TCP clients (a thread and a line buffer each), closed after
//! `idle_timeout_s`, and with TLS after `tls_handshake_timeout_s` if their handshake is
//! not done; at most `max_sensors` sensors; at most `queue` samples waiting.

pub mod config;
pub mod feed;
pub mod listener;
pub mod parse;
pub mod tls;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use log::{info, warn};
use thiserror::Error;

pub use config::{
    Format, Network, SourceConfig, SourceKind, TimeFormat, TimeWithoutOffset, Transport,
};
pub use feed::{Feed, LinesCounts, LinesStats, WhenFull};
pub use parse::{LineParser, Parsed, Reading, Refused};

use crate::sensor::queue::SampleWriter;
use crate::support::wake::Stop;

#[derive(Debug, Error)]
pub enum LinesError {
    #[error("[source] listen: cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot start the lines reader thread: {0}")]
    Thread(std::io::Error),
    #[error("[source] {0}: {1}")]
    Tls(&'static str, String),
}

/// What `/health` says of a listener anyone who can reach it may feed.
pub const EXPOSED: &str = "open to the network without TLS or allow: anyone who can reach it may send any sensor's samples";

/// A running lines source. Dropping it stops it (and waits for its threads, but for a
/// standard input blocked in a read, which is left to the process's exit).
pub struct LinesHandle {
    transport: Transport,
    stop: Arc<Stop>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<LinesStats>,
    local_addr: Option<SocketAddr>,
    ended: Arc<AtomicBool>,
    /// UDP: where the kernel counts the datagrams it dropped.
    kernel_drops: Option<listener::KernelDrops>,
    /// What the counts say beyond the counters: TLS on, the listener exposed.
    notes: Notes,
}

#[derive(Debug, Clone, Copy, Default)]
struct Notes {
    tls: bool,
    exposed: bool,
}

impl LinesHandle {
    /// The bound address (TCP, UDP): with port 0 configured, the port taken.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    pub fn stats(&self) -> &Arc<LinesStats> {
        &self.stats
    }

    pub fn counts(&self) -> LinesCounts {
        counts(
            &self.stats,
            self.transport.name(),
            self.kernel_drops,
            self.notes,
        )
    }

    /// Reads the counts later, from another thread (the metrics server).
    pub fn counter(&self) -> impl Fn() -> LinesCounts + Send + Sync + 'static {
        let (stats, transport, drops, notes) = (
            self.stats.clone(),
            self.transport.name(),
            self.kernel_drops,
            self.notes,
        );
        move || counts(&stats, transport, drops, notes)
    }

    /// A finite stream (standard input) has ended: every line of it is in the queue or
    /// counted as refused.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Waits until [`Self::ended`] or `timeout`; answers whether it ended.
    pub fn wait_ended(&self, timeout: Duration) -> bool {
        self.stop.wait_until(timeout, || self.ended())
    }

    /// The listener's sign of life for the watchdog; `None` for standard input, whose
    /// reads block for as long as the writer is quiet (not a stall).
    pub fn progress(&self) -> Option<u64> {
        match self.transport {
            Transport::Stdin => None,
            _ => Some(self.stats.heartbeat.load(Ordering::Relaxed)),
        }
    }

    /// Stops reading and answers the final counts.
    pub fn stop(mut self) -> LinesCounts {
        self.shut();
        self.counts()
    }

    fn shut(&mut self) {
        self.stop.stop();
        if let Some(thread) = self.thread.take() {
            // Standard input cannot be interrupted: its thread ends with the process.
            if self.transport != Transport::Stdin || thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for LinesHandle {
    fn drop(&mut self) {
        self.shut();
    }
}

fn counts(
    stats: &LinesStats,
    transport: &'static str,
    drops: Option<listener::KernelDrops>,
    notes: Notes,
) -> LinesCounts {
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    LinesCounts {
        kernel_drops: drops.and_then(|d| d.read()),
        handshake_failures: notes.tls.then(|| {
            tls::HandshakeFailure::ALL
                .iter()
                .map(|f| (f.name(), load(&stats.handshake_failures[f.index()])))
                .collect()
        }),
        exposed: notes.exposed.then_some(EXPOSED),
        ..stats.counts(transport)
    }
}

/// Starts the configured transport feeding `writer`; lines naming no sensor are
/// `default_sensor`'s. Standard input is the process's.
pub fn start(
    config: &SourceConfig,
    default_sensor: &str,
    writer: SampleWriter,
) -> Result<LinesHandle, LinesError> {
    match config.transport {
        Transport::Stdin => start_reader(config, default_sensor, writer, std::io::stdin(), "stdin"),
        Transport::Tcp | Transport::Udp => start_socket(config, default_sensor, writer),
    }
}

/// Reads lines from `reader` (standard input, or a file in tests) until its end.
pub fn start_reader(
    config: &SourceConfig,
    default_sensor: &str,
    writer: SampleWriter,
    reader: impl Read + Send + 'static,
    origin: &str,
) -> Result<LinesHandle, LinesError> {
    let (stop, stats, feed) = parts(config, default_sensor, writer);
    let ended = Arc::new(AtomicBool::new(false));
    let config = Arc::new(config.clone());
    let mark = listener::EndMark {
        ended: ended.clone(),
        stop: stop.clone(),
    };
    let (thread_stop, origin) = (stop.clone(), origin.to_owned());
    let thread = std::thread::Builder::new()
        .name("lines-stdin".into())
        .spawn(move || {
            let _mark = mark;
            listener::read_stream(reader, &feed, &config, &thread_stop, &origin);
            info!("{origin}: ended");
        })
        .map_err(LinesError::Thread)?;
    Ok(LinesHandle {
        transport: Transport::Stdin,
        stop,
        thread: Some(thread),
        stats,
        local_addr: None,
        ended,
        kernel_drops: None,
        notes: Notes::default(),
    })
}

fn start_socket(
    config: &SourceConfig,
    default_sensor: &str,
    writer: SampleWriter,
) -> Result<LinesHandle, LinesError> {
    let addr = config.listen.trim();
    let bind_error = |source| LinesError::Bind {
        addr: addr.to_owned(),
        source,
    };
    // Checked with the configuration already: this is its second reading of the files.
    let tls = config
        .tls()
        .map_err(|(key, why)| LinesError::Tls(key, why))?;
    let notes = Notes {
        tls: tls.is_some(),
        exposed: config.exposed(),
    };
    let (stop, stats, feed) = parts(config, default_sensor, writer);
    let shared = Arc::new(config.clone());
    let thread_stop = stop.clone();
    let mut kernel_drops = None;
    let (local_addr, thread) = match config.transport {
        Transport::Udp => {
            let socket = UdpSocket::bind(addr).map_err(bind_error)?;
            let local = socket.local_addr().map_err(bind_error)?;
            let asked = config.udp_receive_buffer_bytes;
            match listener::set_receive_buffer(&socket, asked) {
                // Linux reports twice what it was asked for (its bookkeeping included).
                Ok(got) if asked > 0 && got < asked => warn!(
                    "UDP receive buffer: {got} bytes, not the {asked} asked for \
                     (raise net.core.rmem_max to allow more)"
                ),
                Ok(got) => info!("UDP receive buffer: {got} bytes"),
                Err(e) => warn!("UDP receive buffer: cannot set it: {e}"),
            }
            kernel_drops = listener::KernelDrops::of(&socket);
            let thread = std::thread::Builder::new()
                .name("lines-udp".into())
                .spawn(move || listener::serve_udp(socket, feed, shared, thread_stop));
            (local, thread)
        }
        _ => {
            let listener = TcpListener::bind(addr).map_err(bind_error)?;
            let local = listener.local_addr().map_err(bind_error)?;
            let thread = std::thread::Builder::new()
                .name("lines-tcp".into())
                .spawn(move || listener::serve_tcp(listener, feed, shared, tls, thread_stop));
            (local, thread)
        }
    };
    let thread = thread.map_err(LinesError::Thread)?;
    info!(
        "reading {:?} lines over {}{} on {local_addr}",
        config.format,
        config.transport.name(),
        match (notes.tls, config.tls_client_ca.is_some()) {
            (true, true) => " with TLS and client certificates",
            (true, false) => " with TLS",
            _ => "",
        }
    );
    if notes.exposed {
        warn!(
            "[source] listen = {:?}: {EXPOSED}; set tls_cert and tls_key, or allow (README, \"Lines from other sensors\")",
            config.listen
        );
    }
    Ok(LinesHandle {
        transport: config.transport,
        stop,
        thread: Some(thread),
        stats,
        local_addr: Some(local_addr),
        ended: Arc::new(AtomicBool::new(false)),
        kernel_drops,
        notes,
    })
}

fn parts(
    config: &SourceConfig,
    default_sensor: &str,
    writer: SampleWriter,
) -> (Arc<Stop>, Arc<LinesStats>, Arc<Feed>) {
    let stop = Arc::new(Stop::new());
    let stats = Arc::new(LinesStats::default());
    let feed = Arc::new(
        Feed::new(
            writer,
            default_sensor,
            config.max_sensors,
            Duration::from_secs(config.sensor_idle_s),
            stats.clone(),
            stop.clone(),
        )
        .with_max_future(Duration::from_secs(config.max_future_s)),
    );
    (stop, stats, feed)
}

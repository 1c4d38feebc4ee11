//! The transports: a TCP acceptor with a thread per client (at most `max_connections`,
//! each closed after `idle_timeout_s` of silence; with TLS, each handshake done within
//! `tls_handshake_timeout_s`), a UDP socket (one or more lines per datagram), and a
//! reader of standard input (or any stream, for tests). A sender outside `allow` is
//! closed or dropped before a byte of it is read. Each reads lines bounded by
//! `max_line_bytes` before they are buffered, parses them and hands them to the
//! [`Feed`], naming who sent them ([`Sender`]). A client's bad line is counted and logged, never the end of its
//! connection. A change to how bytes become lines goes here; to what a line means, in
//! `parse`.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, warn};

use crate::sensor::lines::config::{Network, SourceConfig};
use crate::sensor::lines::feed::{Feed, LinesStats, WhenFull};
use crate::sensor::lines::parse::{LineParser, MAX_SENSOR_ID_BYTES, Parsed, Reading, Refused};
use crate::sensor::lines::tls::{self, HandshakeFailure};
use crate::sensor::sample::Peer;
use crate::support::log_rate::LogRate;
use crate::support::wake::Stop;

/// How long a blocking read or accept waits before it looks at the stop flag and the
/// idle time: the bound on how late a stop is noticed.
pub const TURN: Duration = Duration::from_millis(200);
/// A connection thread's stack: parsing recurses little (serde_json stops at depth 128).
const CONNECTION_STACK: usize = 256 * 1024;
/// The largest UDP datagram.
const DATAGRAM_BYTES: usize = 65_536;

/// TCP keepalive on a client's socket: the first probe after this long without a byte
/// either way, then one every `KEEPALIVE_INTERVAL`, `KEEPALIVE_PROBES` in all. A sender
/// whose power or Wi-Fi went is then found gone in about two minutes, whatever
/// `idle_timeout_s` says, and its place under `max_connections` is freed.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_PROBES: u32 = 6;

/// One line read from a stream.
#[derive(Debug, PartialEq, Eq)]
pub enum LineEvent {
    /// A line (in the buffer) ended by a newline.
    Line,
    /// A line longer than the bound; its bytes were discarded as they came.
    TooLong,
    /// The stream ended in the middle of a line (in the buffer): no newline came, so it
    /// may have been cut short. One rule for TCP and standard input: refused, counted
    /// (`incomplete`).
    Unterminated,
    /// The end of the stream.
    End,
}

/// The line being read: at most `max` bytes are ever held.
#[derive(Debug)]
pub struct LineBuffer {
    pub line: Vec<u8>,
    too_long: bool,
    max: usize,
}

impl LineBuffer {
    pub fn new(max: usize) -> Self {
        Self {
            line: Vec::with_capacity(max.min(4096)),
            too_long: false,
            max,
        }
    }

    fn append(&mut self, chunk: &[u8]) {
        if self.too_long {
            return;
        }
        if self.line.len().saturating_add(chunk.len()) > self.max {
            self.too_long = true;
            self.line.clear();
        } else {
            self.line.extend_from_slice(chunk);
        }
    }

    /// Whether bytes of an unfinished line are held (or were discarded as too long).
    pub fn is_partial(&self) -> bool {
        self.too_long || !self.line.is_empty()
    }

    /// Ends an unfinished line because its stream ended (closed while idle, a read
    /// error, the stop): what it counts as, if there was one.
    pub fn abandon(&mut self) -> Option<Refused> {
        let outcome = if std::mem::take(&mut self.too_long) {
            Some(Refused::TooLong)
        } else if self.line.is_empty() {
            None
        } else {
            Some(Refused::Incomplete)
        };
        self.line.clear();
        outcome
    }

    fn take(&mut self) -> LineEvent {
        if std::mem::take(&mut self.too_long) {
            self.line.clear();
            LineEvent::TooLong
        } else {
            LineEvent::Line
        }
    }

    /// Reads up to the next newline. A read error (a timeout) returns with the partial
    /// line kept, so the next call carries on where this one stopped; the caller clears
    /// `line` once it has used a whole one.
    pub fn next(&mut self, reader: &mut impl BufRead) -> std::io::Result<LineEvent> {
        loop {
            let available = match reader.fill_buf() {
                Ok(available) => available,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok(if std::mem::take(&mut self.too_long) {
                    self.line.clear();
                    LineEvent::TooLong
                } else if self.line.is_empty() {
                    LineEvent::End
                } else {
                    LineEvent::Unterminated
                });
            }
            match available.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.append(&available[..end]);
                    reader.consume(end + 1);
                    return Ok(self.take());
                }
                None => {
                    let n = available.len();
                    self.append(&available[..n]);
                    reader.consume(n);
                }
            }
        }
    }
}

/// Who a stream's (or a datagram's) lines come from.
#[derive(Debug)]
pub struct Sender {
    /// For log lines: `tcp 192.168.1.7:50112`, `stdin`.
    pub origin: String,
    /// On each sample; `None` for standard input.
    pub peer: Option<Arc<Peer>>,
    /// With `bind_sensor_to_certificate`: the one sensor it may speak for.
    pub sensor: Option<Arc<str>>,
}

impl Sender {
    /// A local stream's (standard input's): no peer, any sensor.
    pub fn local(origin: &str) -> Self {
        Self {
            origin: origin.to_owned(),
            peer: None,
            sensor: None,
        }
    }

    /// `reading` as this sender may send it: its own sensor when bound to one (a line
    /// naming none is that sensor's), any otherwise.
    fn speaking_for<'a>(&'a self, reading: Reading<'a>) -> Result<Reading<'a>, Refused> {
        let Some(own) = &self.sensor else {
            return Ok(reading);
        };
        match &reading.sensor {
            Some(named) if **named != **own => Err(Refused::ForeignSensor),
            _ => Ok(Reading {
                sensor: Some(Cow::Borrowed(own)),
                ..reading
            }),
        }
    }
}

/// Whether `allow` lets `address` send: an empty list lets anyone.
pub fn allowed(allow: &[Network], address: IpAddr) -> bool {
    allow.is_empty() || allow.iter().any(|network| network.contains(address))
}

/// One line through the parser into the feed, counted either way.
pub fn handle_line(
    feed: &Feed,
    parser: &mut LineParser,
    when_full: WhenFull,
    sender: &Sender,
    line_no: u64,
    line: &[u8],
) {
    let stats = feed.stats();
    let origin = sender.origin.as_str();
    let Ok(text) = std::str::from_utf8(line) else {
        feed.refuse(Refused::Malformed, origin, line_no, line);
        return;
    };
    // Each line is counted once, where it ended up: lines read is the sum.
    let outcome = match parser.parse(text) {
        Ok(Parsed::Blank) => return,
        Ok(Parsed::Header) => {
            LinesStats::count(&stats.headers);
            Ok(())
        }
        Ok(Parsed::Reading(reading)) => sender
            .speaking_for(reading)
            .and_then(|reading| feed.offer_from(&reading, sender.peer.as_ref(), when_full)),
        Err(reason) => Err(reason),
    };
    match outcome {
        Err(Refused::BadHeader) => {
            let note = format!("; a header needs {}", parser.header_needs());
            feed.refuse_noted(Refused::BadHeader, origin, line_no, line, &note);
        }
        Err(reason) => feed.refuse(reason, origin, line_no, line),
        Ok(()) => {}
    }
}

fn too_long(feed: &Feed, origin: &str, line_no: u64) {
    feed.refuse(Refused::TooLong, origin, line_no, b"");
}

/// A stream's next whole line, handled (a stream waits for room in the queue rather than
/// lose a line), and the buffer made ready for the one after.
fn take_line(
    buffer: &mut LineBuffer,
    feed: &Feed,
    parser: &mut LineParser,
    sender: &Sender,
    line_no: &mut u64,
) {
    *line_no = line_no.saturating_add(1);
    handle_line(feed, parser, WhenFull::Wait, sender, *line_no, &buffer.line);
    buffer.line.clear();
}

/// A stream's unfinished line when the stream ends, however it ends: counted as
/// `incomplete` (or `too_long`), never judged.
fn abandon(buffer: &mut LineBuffer, feed: &Feed, origin: &str, line_no: &mut u64) {
    let partial = buffer.line.clone();
    if let Some(reason) = buffer.abandon() {
        *line_no = line_no.saturating_add(1);
        let note = match reason {
            Refused::Incomplete => " (the stream ended before its newline)",
            _ => "",
        };
        feed.refuse_noted(reason, origin, *line_no, &partial, note);
    }
}

/// Counts the bytes read through it: a client is idle when no byte came, whether or
/// not a line was completed.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes = self.bytes.saturating_add(n as u64);
        Ok(n)
    }
}

/// Reads `reader` to its end (or the stop), a line at a time; then sets `ended`.
pub fn read_stream(
    reader: impl Read,
    feed: &Feed,
    config: &SourceConfig,
    stop: &Stop,
    origin: &str,
) {
    let mut reader = BufReader::new(reader);
    let mut parser = LineParser::new(config);
    let mut buffer = LineBuffer::new(config.max_line_bytes);
    let mut line_no: u64 = 0;
    let sender = Sender::local(origin);
    while !stop.is_stopped() {
        match buffer.next(&mut reader) {
            Ok(LineEvent::Line) => {
                take_line(&mut buffer, feed, &mut parser, &sender, &mut line_no);
                LinesStats::count(&feed.stats().heartbeat);
            }
            Ok(LineEvent::TooLong) => {
                line_no = line_no.saturating_add(1);
                too_long(feed, origin, line_no);
            }
            Ok(LineEvent::Unterminated) => {
                abandon(&mut buffer, feed, origin, &mut line_no);
                break;
            }
            Ok(LineEvent::End) => break,
            Err(e) => {
                warn!("{origin}: read failed: {e}; no more lines from it");
                break;
            }
        }
    }
    abandon(&mut buffer, feed, origin, &mut line_no);
}

/// The TCP acceptor and its connections.
pub fn serve_tcp(
    listener: TcpListener,
    feed: Arc<Feed>,
    config: Arc<SourceConfig>,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: Arc<Stop>,
) {
    let stats = feed.stats().clone();
    if let Err(e) = listener.set_nonblocking(true) {
        warn!("lines over TCP: cannot poll the listener ({e}); no clients will be served");
        return;
    }
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    // A client reconnecting in a loop must not flood the log.
    let mut turned_away_log = LogRate::new(5, Duration::from_secs(60));
    while !stop.is_stopped() {
        LinesStats::count(&stats.heartbeat);
        match listener.accept() {
            Ok((stream, peer)) => {
                if !allowed(&config.allow, peer.ip()) {
                    LinesStats::count(&stats.not_allowed);
                    feed.warn_limited(|| format!("lines over TCP: {peer} is not in allow; closed"));
                    drop(stream);
                    continue;
                }
                connections.retain(|c| !c.is_finished());
                if connections.len() >= config.max_connections {
                    LinesStats::count(&stats.connections_refused);
                    if let Some(suppressed) = turned_away_log.allow() {
                        warn!(
                            "lines over TCP: {peer} turned away, {} clients connected already{}",
                            config.max_connections,
                            LogRate::note(suppressed)
                        );
                    }
                    drop(stream);
                    continue;
                }
                LinesStats::count(&stats.connections);
                let (feed, config, stop) = (feed.clone(), config.clone(), stop.clone());
                let tls = tls.clone();
                let spawned = std::thread::Builder::new()
                    .name("lines-client".into())
                    .stack_size(CONNECTION_STACK)
                    .spawn(move || serve_client(stream, peer, &feed, &config, tls.as_ref(), &stop));
                match spawned {
                    Ok(handle) => connections.push(handle),
                    Err(e) => warn!("lines over TCP: no thread for {peer}: {e}"),
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                stop.sleep(TURN);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of descriptors, mostly: wait a turn rather than spin.
                warn!("lines over TCP: accept failed: {e}");
                stop.sleep(TURN);
            }
        }
    }
    for connection in connections {
        let _ = connection.join();
    }
}

/// Counts a client while its thread lives.
struct Open<'a>(&'a LinesStats);

impl<'a> Open<'a> {
    fn new(stats: &'a LinesStats) -> Self {
        stats.connections_open.fetch_add(1, Ordering::Relaxed);
        Self(stats)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn serve_client(
    stream: TcpStream,
    peer: SocketAddr,
    feed: &Feed,
    config: &SourceConfig,
    tls: Option<&Arc<rustls::ServerConfig>>,
    stop: &Stop,
) {
    let stats = feed.stats().clone();
    let _open = Open::new(&stats);
    let origin = format!("{} {peer}", if tls.is_some() { "tls" } else { "tcp" });
    let handshake = Duration::from_secs(config.tls_handshake_timeout_s);
    // Accepted sockets may inherit the listener's non-blocking mode on some systems. A
    // write happens only in a handshake: one that cannot finish within its bound fails.
    if let Err(e) = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(TURN)))
        .and_then(|()| stream.set_write_timeout(Some(handshake)))
    {
        warn!("{origin}: cannot set a read timeout ({e}); closed");
        return;
    }
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    if let Err(e) = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive) {
        // The idle timeout still closes it; keepalive only finds a dead peer sooner.
        debug!("{origin}: no TCP keepalive ({e})");
    }
    let Some((inner, sender)) = secure(stream, peer, origin, feed, config, tls, stop) else {
        return;
    };
    let origin = sender.origin.as_str();
    let idle = Duration::from_secs(config.idle_timeout_s);
    let mut reader = BufReader::new(Counted { inner, bytes: 0 });
    let mut parser = LineParser::new(config);
    let mut buffer = LineBuffer::new(config.max_line_bytes);
    let mut line_no: u64 = 0;
    // Idle means no byte received: not "no line completed", or a sender that died
    // after half a line (`p1,1` and no newline) would hold its connection for ever.
    let mut last_data = Instant::now();
    let mut bytes_seen: u64 = 0;
    debug!("{origin}: connected");
    loop {
        if stop.is_stopped() {
            abandon(&mut buffer, feed, origin, &mut line_no);
            return;
        }
        let event = buffer.next(&mut reader);
        let bytes = reader.get_ref().bytes;
        if bytes != bytes_seen {
            bytes_seen = bytes;
            last_data = Instant::now();
        }
        match event {
            Ok(LineEvent::Line) => {
                take_line(&mut buffer, feed, &mut parser, &sender, &mut line_no);
            }
            Ok(LineEvent::TooLong) => {
                line_no = line_no.saturating_add(1);
                too_long(feed, origin, line_no);
            }
            Ok(LineEvent::Unterminated) => {
                debug!(
                    "{origin}: closed by the client in the middle of line {}",
                    line_no.saturating_add(1)
                );
                abandon(&mut buffer, feed, origin, &mut line_no);
                return;
            }
            Ok(LineEvent::End) => {
                debug!("{origin}: closed by the client after {line_no} lines");
                return;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if last_data.elapsed() >= idle {
                    LinesStats::count(&stats.connections_idle);
                    debug!(
                        "{origin}: closed after {idle:?} without a byte{}",
                        if buffer.is_partial() {
                            " (in the middle of a line)"
                        } else {
                            ""
                        }
                    );
                    abandon(&mut buffer, feed, origin, &mut line_no);
                    return;
                }
            }
            Err(e) => {
                debug!("{origin}: {e}; closed after {line_no} lines");
                abandon(&mut buffer, feed, origin, &mut line_no);
                return;
            }
        }
    }
}

/// The client's stream as lines are read from it, and who it is: the plain socket, or
/// the plaintext of a TLS connection once its handshake is done (bounded by
/// `tls_handshake_timeout_s`; a failure counted and closed). One line reader for both.
fn secure(
    stream: TcpStream,
    peer: SocketAddr,
    origin: String,
    feed: &Feed,
    config: &SourceConfig,
    tls: Option<&Arc<rustls::ServerConfig>>,
    stop: &Stop,
) -> Option<(Box<dyn Read>, Sender)> {
    let address = peer.ip().to_canonical();
    let Some(tls) = tls else {
        let peer = Some(Arc::new(Peer {
            address,
            name: None,
        }));
        let sender = Sender {
            origin,
            peer,
            sensor: None,
        };
        return Some((Box::new(stream), sender));
    };
    let within = Duration::from_secs(config.tls_handshake_timeout_s);
    let failed = |failure: HandshakeFailure, why: &str| {
        LinesStats::count(&feed.stats().handshake_failures[failure.index()]);
        feed.warn_limited(|| {
            format!(
                "{origin}: TLS handshake failed ({}): {}; closed",
                failure.name(),
                crate::support::text::untrusted(why)
            )
        });
    };
    let stream = match tls::accept(stream, tls, within, stop) {
        Ok(stream) => stream,
        Err(_) if stop.is_stopped() => return None,
        Err((failure, why)) => {
            failed(failure, &why);
            return None;
        }
    };
    let name = tls::certificate_name(&stream.conn);
    let sensor = match &name {
        _ if !config.bind_sensor_to_certificate => None,
        Some(name) if name.len() <= MAX_SENSOR_ID_BYTES => Some(name.clone()),
        _ => {
            failed(
                HandshakeFailure::Certificate,
                "bind_sensor_to_certificate: the client certificate names no sensor \
                 (a DNS subject alternative name of at most 128 bytes)",
            );
            return None;
        }
    };
    let sender = Sender {
        origin: match &name {
            Some(name) => format!("{origin} ({name})"),
            None => origin,
        },
        peer: Some(Arc::new(Peer { address, name })),
        sensor,
    };
    debug!("{}: TLS handshake done", sender.origin);
    Some((Box::new(stream), sender))
}

/// The UDP socket: each datagram is one or more lines. Datagrams never wait for room in
/// the queue (the sender cannot be slowed): at a full queue they are dropped, counted.
pub fn serve_udp(socket: UdpSocket, feed: Arc<Feed>, config: Arc<SourceConfig>, stop: Arc<Stop>) {
    let stats = feed.stats().clone();
    if let Err(e) = socket.set_read_timeout(Some(TURN)) {
        warn!("lines over UDP: cannot set a read timeout ({e}); no datagrams will be read");
        return;
    }
    let mut datagram = vec![0u8; DATAGRAM_BYTES];
    let mut parser = LineParser::new(&config);
    let mut line_no: u64 = 0;
    // One sender's datagrams in a row share their peer: no allocation each.
    let mut last_peer: Option<Arc<Peer>> = None;
    while !stop.is_stopped() {
        LinesStats::count(&stats.heartbeat);
        let (len, peer) = match socket.recv_from(&mut datagram) {
            Ok(received) => received,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                continue;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                warn!("lines over UDP: {e}");
                stop.sleep(TURN);
                continue;
            }
        };
        if !allowed(&config.allow, peer.ip()) {
            LinesStats::count(&stats.not_allowed);
            feed.warn_limited(|| format!("lines over UDP: {peer} is not in allow; dropped"));
            continue;
        }
        let address = peer.ip().to_canonical();
        let shared = match last_peer.take() {
            Some(last) if last.address == address => last,
            _ => Arc::new(Peer {
                address,
                name: None,
            }),
        };
        last_peer = Some(shared.clone());
        let sender = Sender {
            origin: format!("udp {peer}"),
            peer: Some(shared),
            sensor: None,
        };
        let origin = sender.origin.as_str();
        let body = datagram.get(..len).unwrap_or_default();
        for line in body.split(|&b| b == b'\n') {
            if line.is_empty() || line == b"\r" {
                continue;
            }
            line_no = line_no.saturating_add(1);
            if line.len() > config.max_line_bytes {
                too_long(&feed, origin, line_no);
                continue;
            }
            handle_line(&feed, &mut parser, WhenFull::Drop, &sender, line_no, line);
        }
    }
}

/// Sets a UDP socket's receive buffer (`SO_RCVBUF`) to `bytes` (0: leave the system's)
/// and answers what the kernel gave: Linux doubles the request for its bookkeeping and
/// caps it at `net.core.rmem_max`, so a smaller answer than asked means the cap.
pub fn set_receive_buffer(socket: &UdpSocket, bytes: usize) -> std::io::Result<usize> {
    let socket = socket2::SockRef::from(socket);
    if bytes > 0 {
        socket.set_recv_buffer_size(bytes)?;
    }
    socket.recv_buffer_size()
}

/// The kernel's count of datagrams a UDP socket lost because its receive buffer was
/// full: the `drops` column of `/proc/net/udp` (or `udp6`) on the socket's line, found by
/// its inode. Read when asked (a scrape), so it is never stale; `None` off Linux or when
/// the socket is not found.
#[derive(Debug, Clone, Copy)]
pub struct KernelDrops {
    inode: u64,
}

/// The most of `/proc/net/udp` read: about 150 bytes a socket, so some 28,000 sockets.
const PROC_NET_UDP_MAX_BYTES: u64 = 4 << 20;

impl KernelDrops {
    /// The socket's inode, from `/proc/self/fd`; `None` where there is no such thing.
    pub fn of(socket: &UdpSocket) -> Option<Self> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd as _;
            let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd())).ok()?;
            let inode = link
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()?;
            Some(Self { inode })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = socket;
            None
        }
    }

    /// Datagrams dropped so far.
    pub fn read(&self) -> Option<u64> {
        ["/proc/net/udp", "/proc/net/udp6"]
            .iter()
            .find_map(|path| self.read_from(path))
    }

    fn read_from(&self, path: &str) -> Option<u64> {
        let mut text = String::new();
        std::fs::File::open(path)
            .ok()?
            .take(PROC_NET_UDP_MAX_BYTES)
            .read_to_string(&mut text)
            .ok()?;
        drops_of(&text, self.inode)
    }
}

/// The `drops` of the socket with `inode` in a `/proc/net/udp` table: the 10th column
/// is the inode, the last the drops.
fn drops_of(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(9)?.parse::<u64>().ok()? != inode {
            return None;
        }
        fields.last()?.parse().ok()
    })
}

/// Marks the end of a finite stream when dropped (however its reader returns).
pub struct EndMark {
    pub ended: Arc<AtomicBool>,
    pub stop: Arc<Stop>,
}

impl Drop for EndMark {
    fn drop(&mut self) {
        self.ended.store(true, Ordering::Release);
        self.stop.notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_drop_count_is_found_by_inode() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
           12: 0100007F:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 4242 2 0000000000000000 17\n\
           13: 0100007F:1F91 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 4243 2 0000000000000000 5\n";
        assert_eq!(drops_of(table, 4243), Some(5));
        assert_eq!(drops_of(table, 4242), Some(17));
        assert_eq!(drops_of(table, 1), None);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        #[cfg(target_os = "linux")]
        assert_eq!(KernelDrops::of(&socket).and_then(|d| d.read()), Some(0));
        assert!(set_receive_buffer(&socket, 1 << 16).unwrap() >= 1 << 16);
    }

    #[test]
    fn lines_are_bounded_before_they_are_buffered() {
        let text = format!("short\n{}\nafter\nlast", "x".repeat(100));
        // A reader that returns a few bytes at a time, as a socket does.
        let mut reader = BufReader::with_capacity(7, text.as_bytes());
        let mut buffer = LineBuffer::new(10);
        let mut seen = Vec::new();
        loop {
            let event = buffer.next(&mut reader).unwrap();
            assert!(buffer.line.capacity() <= 4096 && buffer.line.len() <= 10);
            match event {
                LineEvent::Line => {
                    seen.push(String::from_utf8(buffer.line.clone()).unwrap());
                    buffer.line.clear();
                }
                LineEvent::TooLong => seen.push("<too long>".into()),
                LineEvent::Unterminated | LineEvent::End => break,
            }
        }
        assert_eq!(seen, ["short", "<too long>", "after"]);
        // The last line had no newline: the stream ended in its middle.
        assert_eq!(buffer.line, b"last");
        assert_eq!(buffer.abandon(), Some(Refused::Incomplete));
        assert_eq!(buffer.abandon(), None);
    }
}

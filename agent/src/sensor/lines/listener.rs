//! The transports: a TCP acceptor with a thread per client (at most `max_connections`,
//! each closed after `idle_timeout_s` of silence), a UDP socket (one or more lines per
//! datagram), and a reader of standard input (or any stream, for tests). Each reads lines
//! bounded by `max_line_bytes` before they are buffered, parses them and hands them to
//! the [`Feed`]. A client's bad line is counted and logged, never the end of its
//! connection. A change to how bytes become lines goes here; to what a line means, in
//! `parse`.

use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, warn};

use crate::sensor::lines::config::SourceConfig;
use crate::sensor::lines::feed::{Feed, LinesStats, WhenFull};
use crate::sensor::lines::parse::{LineParser, Parsed, Refused};
use crate::support::log_rate::LogRate;
use crate::support::wake::Stop;

/// How long a blocking read or accept waits before it looks at the stop flag and the
/// idle time: the bound on how late a stop is noticed.
pub const TURN: Duration = Duration::from_millis(200);
/// A connection thread's stack: parsing recurses little (serde_json stops at depth 128).
const CONNECTION_STACK: usize = 256 * 1024;
/// The largest UDP datagram.
const DATAGRAM_BYTES: usize = 65_536;

/// One line read from a stream.
#[derive(Debug, PartialEq, Eq)]
pub enum LineEvent {
    /// A line (in the buffer) ended by a newline or by the end of the stream.
    Line,
    /// A line longer than the bound; its bytes were discarded as they came.
    TooLong,
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
                return Ok(if self.line.is_empty() && !self.too_long {
                    LineEvent::End
                } else {
                    self.take()
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

/// One line through the parser into the feed, counted either way.
pub fn handle_line(
    feed: &Feed,
    parser: &mut LineParser,
    when_full: WhenFull,
    origin: &str,
    line_no: u64,
    line: &[u8],
) {
    let stats = feed.stats();
    let Ok(text) = std::str::from_utf8(line) else {
        LinesStats::count(&stats.lines);
        feed.refuse(Refused::Malformed, origin, line_no, line);
        return;
    };
    let outcome = match parser.parse(text) {
        Ok(Parsed::Blank) => return,
        Ok(Parsed::Header) => {
            LinesStats::count(&stats.lines);
            Ok(())
        }
        Ok(Parsed::Reading(reading)) => {
            LinesStats::count(&stats.lines);
            feed.offer(&reading, when_full)
        }
        Err(reason) => {
            LinesStats::count(&stats.lines);
            Err(reason)
        }
    };
    if let Err(reason) = outcome {
        feed.refuse(reason, origin, line_no, line);
    }
}

fn too_long(feed: &Feed, origin: &str, line_no: u64) {
    LinesStats::count(&feed.stats().lines);
    feed.refuse(Refused::TooLong, origin, line_no, b"");
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
    while !stop.is_stopped() {
        match buffer.next(&mut reader) {
            Ok(LineEvent::Line) => {
                line_no = line_no.saturating_add(1);
                handle_line(
                    feed,
                    &mut parser,
                    WhenFull::Wait,
                    origin,
                    line_no,
                    &buffer.line,
                );
                buffer.line.clear();
                LinesStats::count(&feed.stats().heartbeat);
            }
            Ok(LineEvent::TooLong) => {
                line_no = line_no.saturating_add(1);
                too_long(feed, origin, line_no);
            }
            Ok(LineEvent::End) => break,
            Err(e) => {
                warn!("{origin}: read failed: {e}; no more lines from it");
                break;
            }
        }
    }
}

/// The TCP acceptor and its connections.
pub fn serve_tcp(
    listener: TcpListener,
    feed: Arc<Feed>,
    config: Arc<SourceConfig>,
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
                let spawned = std::thread::Builder::new()
                    .name("lines-client".into())
                    .stack_size(CONNECTION_STACK)
                    .spawn(move || serve_client(stream, peer, &feed, &config, &stop));
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
    stop: &Stop,
) {
    let stats = feed.stats().clone();
    let _open = Open::new(&stats);
    let origin = format!("tcp {peer}");
    // Accepted sockets may inherit the listener's non-blocking mode on some systems.
    if let Err(e) = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(TURN)))
    {
        warn!("{origin}: cannot set a read timeout ({e}); closed");
        return;
    }
    let idle = Duration::from_secs(config.idle_timeout_s);
    let mut reader = BufReader::new(stream);
    let mut parser = LineParser::new(config);
    let mut buffer = LineBuffer::new(config.max_line_bytes);
    let mut line_no: u64 = 0;
    let mut last_data = Instant::now();
    debug!("{origin}: connected");
    loop {
        if stop.is_stopped() {
            return;
        }
        match buffer.next(&mut reader) {
            Ok(LineEvent::Line) => {
                last_data = Instant::now();
                line_no = line_no.saturating_add(1);
                handle_line(
                    feed,
                    &mut parser,
                    WhenFull::Wait,
                    &origin,
                    line_no,
                    &buffer.line,
                );
                buffer.line.clear();
            }
            Ok(LineEvent::TooLong) => {
                last_data = Instant::now();
                line_no = line_no.saturating_add(1);
                too_long(feed, &origin, line_no);
            }
            Ok(LineEvent::End) => {
                debug!("{origin}: closed by the client after {line_no} lines");
                return;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                // A partial line counts as activity: bytes are arriving.
                if !buffer.line.is_empty() {
                    last_data = Instant::now();
                }
                if last_data.elapsed() >= idle {
                    LinesStats::count(&stats.connections_idle);
                    debug!("{origin}: closed after {idle:?} without a line");
                    return;
                }
            }
            Err(e) => {
                debug!("{origin}: {e}; closed after {line_no} lines");
                return;
            }
        }
    }
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
        let origin = format!("udp {peer}");
        let body = datagram.get(..len).unwrap_or_default();
        for line in body.split(|&b| b == b'\n') {
            if line.is_empty() || line == b"\r" {
                continue;
            }
            line_no = line_no.saturating_add(1);
            if line.len() > config.max_line_bytes {
                too_long(&feed, &origin, line_no);
                continue;
            }
            handle_line(&feed, &mut parser, WhenFull::Drop, &origin, line_no, line);
        }
    }
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
                LineEvent::End => break,
            }
        }
        assert_eq!(seen, ["short", "<too long>", "after", "last"]);
    }
}

//! A static file server for the function registry's tests and benchmark: files published
//! under paths, served with an `ETag` (their sha256) and `Last-Modified`, answering 304 to
//! a matching `If-None-Match`, and counting every answer by path and status so a test can
//! say how many requests each agent made and how many were 304s. One connection per
//! request (`Connection: close`). It binds 127.0.0.1 only and stops when dropped. The
//! fault server (`fault_server.rs`) plays Elasticsearch; this one plays a web server or an
//! object store.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Files {
    files: BTreeMap<String, Vec<u8>>,
    /// (path, status) → answers.
    answers: BTreeMap<(String, u16), u64>,
    /// (path, status) → bytes read (request head) and written (head and body).
    bytes: BTreeMap<(String, u16), (u64, u64)>,
}

/// The running server.
pub struct StaticServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    port: u16,
    state: Arc<(Mutex<Files>, Condvar)>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StaticServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("an address").port();
        let state = Arc::new((Mutex::new(Files::default()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_state, thread_stop) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                // Drop wakes the accept with a connection of its own.
                if thread_stop.load(Ordering::Acquire) {
                    return;
                }
                if let Ok(stream) = stream {
                    let state = thread_state.clone();
                    std::thread::spawn(move || serve(stream, &state));
                }
            }
        });
        Self {
            url: format!("http://127.0.0.1:{port}"),
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Files> {
        self.state.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes (or replaces) `path` (starting with `/`).
    pub fn put(&self, path: &str, bytes: &[u8]) {
        self.lock().files.insert(path.to_owned(), bytes.to_vec());
    }

    /// Answers to `path` with `status` so far.
    pub fn answers(&self, path: &str, status: u16) -> u64 {
        self.lock()
            .answers
            .get(&(path.to_owned(), status))
            .copied()
            .unwrap_or(0)
    }

    /// Bytes read and written for `path` answered with `status`, over all such answers.
    pub fn bytes(&self, path: &str, status: u16) -> (u64, u64) {
        self.lock()
            .bytes
            .get(&(path.to_owned(), status))
            .copied()
            .unwrap_or((0, 0))
    }

    /// Every answer so far, by (path, status).
    pub fn all_answers(&self) -> BTreeMap<(String, u16), u64> {
        self.lock().answers.clone()
    }

    /// Waits until `done(answers)` holds, up to `timeout`; answers whether it did.
    pub fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&BTreeMap<(String, u16), u64>) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let mut files = self.lock();
        loop {
            if done(&files.answers) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            files = self
                .state
                .1
                .wait_timeout(files, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", &crate::sha256_hex(bytes)[..32])
}

fn serve(stream: TcpStream, state: &(Mutex<Files>, Condvar)) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut read = line.len();
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return;
    };
    let (method, path) = (method.to_owned(), path.to_owned());
    let mut if_none_match = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() {
            return;
        }
        read += header.len();
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("if-none-match")
        {
            if_none_match = Some(value.trim().to_owned());
        }
    }
    let (status, body, etag, path) = {
        let mut files = state.0.lock().unwrap_or_else(|p| p.into_inner());
        let found = files.files.get(&path).cloned();
        let (status, body, etag) = match (method.as_str(), found) {
            ("GET", Some(bytes)) => {
                let etag = etag_of(&bytes);
                if if_none_match.as_deref() == Some(etag.as_str()) {
                    (304, Vec::new(), Some(etag))
                } else {
                    (200, bytes, Some(etag))
                }
            }
            ("GET", None) => (404, b"not found".to_vec(), None),
            _ => (405, Vec::new(), None),
        };
        *files.answers.entry((path.clone(), status)).or_default() += 1;
        (status, body, etag, path)
    };
    state.1.notify_all();
    let reason = match status {
        200 => "OK",
        304 => "Not Modified",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    let mut stream = reader.into_inner();
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nConnection: close\r\nLast-Modified: Mon, 30 Nov 2026 09:00:00 GMT\r\n"
    );
    if let Some(etag) = etag {
        head.push_str(&format!("ETag: {etag}\r\n"));
    }
    if status != 304 {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    {
        let mut files = state.0.lock().unwrap_or_else(|p| p.into_inner());
        let entry = files.bytes.entry((path, status)).or_default();
        entry.0 += read as u64;
        entry.1 += (head.len() + body.len()) as u64;
    }
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
    let _ = stream.flush();
}

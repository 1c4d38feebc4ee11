//! A small HTTP(S) server that plays Elasticsearch's `_bulk` and template endpoints and
//! injects the faults a real cluster produces but osmem cannot: 429 (whole request and
//! per item), 5xx, 401/403 with Elasticsearch's bodies, 413 with an empty body, TLS with a
//! self-signed CA, a connection dropped mid-response, a slow server, a server that never
//! answers, a body that never ends and one of a gigabyte, per-item statuses of every kind.
//! It binds 127.0.0.1 only and stops when dropped (a hanging reply ends then too).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

/// One request as the server read it (a gzip body already inflated).
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `(_id, document)` of every `create` action in a `_bulk` body.
    pub fn bulk_documents(&self) -> Vec<(String, Value)> {
        let text = String::from_utf8_lossy(&self.body);
        let mut lines = text.lines();
        let mut documents = Vec::new();
        while let (Some(action), Some(source)) = (lines.next(), lines.next()) {
            let action: Value = serde_json::from_str(action).unwrap_or(Value::Null);
            let id = action["create"]["_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            documents.push((id, serde_json::from_str(source).unwrap_or(Value::Null)));
        }
        documents
    }
}

/// What the server does with one request.
pub enum Reply {
    /// Play Elasticsearch: store new documents (201), 409 for ids already stored.
    Bulk,
    /// Like `Bulk`, but these ids get this status and error type instead (and are not stored).
    BulkExcept(Vec<(String, u16, &'static str)>),
    /// A whole-request status with this body (empty for none).
    Status(u16, String),
    /// Store the documents like `Bulk`, then close the connection half-way through the
    /// response: the client cannot know they were taken.
    StoreThenDrop,
    /// Wait, then reply.
    Slow(Duration, Box<Reply>),
    /// Every item of a `_bulk` request gets this status and error type (nothing stored).
    Items(u16, &'static str),
    /// Read the request, never answer, until the server is dropped.
    Hang,
    /// Close the connection without a word: no status, as a cluster going down.
    Close,
    /// 200 and a chunked body that never ends (until the client goes away).
    Endless,
    /// 200 with `content-length` of this many bytes, all sent (until the client goes away).
    Huge(u64),
}

type Script = Box<dyn FnMut(&Request, usize) -> Reply + Send>;

#[derive(Default)]
struct State {
    stored: BTreeMap<String, Value>,
    requests: Vec<Request>,
    /// Set when the server is dropped: hanging replies end.
    stopped: bool,
}

/// The running server.
pub struct FaultServer {
    pub url: String,
    port: u16,
    state: Arc<(Mutex<State>, Condvar)>,
    script: Arc<Mutex<Script>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A CA and a server certificate for 127.0.0.1 and localhost, made for one test.
pub struct TestPki {
    pub ca_pem: String,
    config: Arc<rustls::ServerConfig>,
}

impl TestPki {
    pub fn new() -> Self {
        let pki = crate::pki::Pki::new("edge-agent test CA");
        let server = pki.issue(&["127.0.0.1", "localhost"], false);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(server.chain, server.key)
            .expect("the server config");
        Self {
            ca_pem: pki.ca_pem,
            config: Arc::new(config),
        }
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl FaultServer {
    /// Plain HTTP; `script` decides each reply from the request and its number (0-based).
    pub fn start(script: impl FnMut(&Request, usize) -> Reply + Send + 'static) -> Self {
        Self::serve(
            TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1"),
            None,
            Box::new(script),
        )
    }

    /// Plain HTTP on a given port: an upstream that was away comes back where it was.
    pub fn start_at(
        port: u16,
        script: impl FnMut(&Request, usize) -> Reply + Send + 'static,
    ) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("the port is free again");
        Self::serve(listener, None, Box::new(script))
    }

    /// A port nothing listens on (yet): connections to it are refused.
    pub fn unused_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.local_addr().expect("an address").port()
    }

    /// HTTPS with the test PKI's server certificate.
    pub fn start_tls(
        pki: &TestPki,
        script: impl FnMut(&Request, usize) -> Reply + Send + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        Self::serve(listener, Some(pki.config.clone()), Box::new(script))
    }

    /// Plays Elasticsearch without faults.
    pub fn healthy() -> Self {
        Self::start(|_, _| Reply::Bulk)
    }

    fn serve(
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        script: Script,
    ) -> Self {
        let port = listener.local_addr().expect("an address").port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let state = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let script = Arc::new(Mutex::new(script));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_state, thread_script, thread_stop) =
            (state.clone(), script.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            loop {
                match listener.accept() {
                    // Drop wakes the accept with a connection of its own.
                    _ if thread_stop.load(Ordering::Acquire) => return,
                    Ok((stream, _)) => {
                        let (state, script, tls) =
                            (thread_state.clone(), thread_script.clone(), tls.clone());
                        std::thread::spawn(move || {
                            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                            match tls {
                                Some(config) => {
                                    let Ok(connection) = rustls::ServerConnection::new(config)
                                    else {
                                        return;
                                    };
                                    serve_connection(
                                        rustls::StreamOwned::new(connection, stream),
                                        &state,
                                        &script,
                                    );
                                }
                                None => serve_connection(stream, &state, &script),
                            }
                        });
                    }
                    Err(_) => {}
                }
            }
        });
        Self {
            url: format!("{scheme}://127.0.0.1:{port}"),
            port,
            state,
            script,
            stop,
            thread: Some(thread),
        }
    }

    /// Replaces the script.
    pub fn set_script(&self, script: impl FnMut(&Request, usize) -> Reply + Send + 'static) {
        *self.script.lock().expect("script lock") = Box::new(script);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ids of the stored documents, sorted.
    pub fn stored_ids(&self) -> Vec<String> {
        self.lock().stored.keys().cloned().collect()
    }

    pub fn stored(&self) -> BTreeMap<String, Value> {
        self.lock().stored.clone()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// Waits until `done(requests seen, documents stored)` holds, at most `timeout`;
    /// answers whether it holds.
    pub fn wait_until(&self, timeout: Duration, done: impl Fn(usize, usize) -> bool) -> bool {
        let guard = self.lock();
        let (guard, _) = self
            .state
            .1
            .wait_timeout_while(guard, timeout, |s| !done(s.requests.len(), s.stored.len()))
            .unwrap_or_else(|p| p.into_inner());
        done(guard.requests.len(), guard.stored.len())
    }

    /// How many times each id was sent, over every `_bulk` request.
    pub fn sends_per_id(&self) -> BTreeMap<String, usize> {
        let mut sends = BTreeMap::new();
        for request in self.requests() {
            for (id, _) in request.bulk_documents() {
                *sends.entry(id).or_insert(0) += 1;
            }
        }
        sends
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.lock().stopped = true;
        self.state.1.notify_all();
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_connection<S: Read + Write>(
    stream: S,
    state: &(Mutex<State>, Condvar),
    script: &Mutex<Script>,
) {
    let mut reader = BufReader::new(stream);
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    let number = {
        let mut state = state.0.lock().unwrap_or_else(|p| p.into_inner());
        state.requests.push(request.clone());
        state.requests.len() - 1
    };
    // A waiter on requests seen learns of this one now, even if the reply never comes.
    state.1.notify_all();
    let reply = (script.lock().unwrap_or_else(|p| p.into_inner()))(&request, number);
    let mut stream = reader.into_inner();
    respond(&mut stream, &request, reply, state);
    let _ = stream.flush();
    state.1.notify_all();
}

/// One HTTP/1.1 request off `reader`: its line, headers and body (inflated if gzipped);
/// `None` when the client closed or sent something else.
pub fn read_request<S: Read>(reader: &mut BufReader<S>) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let gzipped = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("content-encoding") && v == "gzip");
    if gzipped {
        let mut inflated = Vec::new();
        flate2::read::GzDecoder::new(body.as_slice())
            .read_to_end(&mut inflated)
            .ok()?;
        body = inflated;
    }
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn respond<S: Write>(
    stream: &mut S,
    request: &Request,
    reply: Reply,
    shared: &(Mutex<State>, Condvar),
) {
    let state = &shared.0;
    match reply {
        Reply::Slow(delay, then) => {
            std::thread::sleep(delay);
            respond(stream, request, *then, shared);
        }
        Reply::Status(status, body) => write_response(stream, status, &body),
        Reply::Bulk => write_response(stream, 200, &bulk(request, &[], state)),
        Reply::BulkExcept(exceptions) => {
            write_response(stream, 200, &bulk(request, &exceptions, state))
        }
        Reply::Items(status, kind) => {
            let exceptions: Vec<(String, u16, &'static str)> = request
                .bulk_documents()
                .into_iter()
                .map(|(id, _)| (id, status, kind))
                .collect();
            write_response(stream, 200, &bulk(request, &exceptions, state))
        }
        Reply::Close => {}
        Reply::Hang => {
            let guard = state.lock().unwrap_or_else(|p| p.into_inner());
            let _unused = shared
                .1
                .wait_while(guard, |s| !s.stopped)
                .unwrap_or_else(|p| p.into_inner());
        }
        Reply::Endless => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            if stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            let chunk = format!("{:x}\r\n{}\r\n", 4096, " ".repeat(4096));
            while !state.lock().unwrap_or_else(|p| p.into_inner()).stopped {
                if stream.write_all(chunk.as_bytes()).is_err() || stream.flush().is_err() {
                    return;
                }
                // Slowly: a trickle, so only the time bound can end it.
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Reply::Huge(length) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n"
            );
            if stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            let block = vec![b' '; 64 << 10];
            let mut sent = 0u64;
            while sent < length {
                let n = block
                    .len()
                    .min(usize::try_from(length - sent).unwrap_or(usize::MAX));
                if stream.write_all(&block[..n]).is_err() {
                    return;
                }
                sent += n as u64;
            }
        }
        Reply::StoreThenDrop => {
            let body = bulk(request, &[], state);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body.as_bytes()[..body.len() / 2]);
        }
    }
}

/// Answers a `_bulk` (or template) request as Elasticsearch would.
fn bulk(
    request: &Request,
    exceptions: &[(String, u16, &'static str)],
    state: &Mutex<State>,
) -> String {
    if !request.path.contains("_bulk") {
        return json!({ "acknowledged": true }).to_string();
    }
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let mut errors = false;
    let items: Vec<Value> = request
        .bulk_documents()
        .into_iter()
        .map(|(id, document)| {
            if let Some((_, status, kind)) = exceptions.iter().find(|(e, _, _)| *e == id) {
                errors = true;
                return json!({ "create": { "_index": "i", "_id": id, "status": status,
                    "error": { "type": kind, "reason": format!("injected {kind} for [{id}]") } } });
            }
            if state.stored.contains_key(&id) {
                errors = true;
                return json!({ "create": { "_index": "i", "_id": id, "status": 409,
                    "error": { "type": "version_conflict_engine_exception",
                               "reason": format!("[{id}]: version conflict, document already exists (current version [1])") } } });
            }
            state.stored.insert(id.clone(), document);
            json!({ "create": { "_index": "i", "_id": id, "status": 201, "result": "created", "_version": 1 } })
        })
        .collect();
    json!({ "took": 1, "errors": errors, "items": items }).to_string()
}

fn write_response<S: Write>(stream: &mut S, status: u16, body: &str) {
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nX-Elastic-Product: Elasticsearch\r\nconnection: close\r\n\r\n",
        reason_phrase(status),
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        301 => "Moved Permanently",
        302 => "Found",
        404 => "Not Found",
        401 => "Unauthorized",
        403 => "Forbidden",
        413 => "Request Entity Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// An Elasticsearch error body of `kind` with `status`.
pub fn es_error_body(status: u16, kind: &str, reason: &str) -> String {
    json!({"error":{"root_cause":[{"type":kind,"reason":reason}],"type":kind,"reason":reason},"status":status}).to_string()
}

/// Elasticsearch 8's 401 body for a request without credentials.
pub fn es_401_body() -> String {
    json!({"error":{"root_cause":[{"type":"security_exception","reason":"missing authentication credentials for REST request [/_bulk]","header":{"WWW-Authenticate":["Basic realm=\"security\", charset=\"UTF-8\"","Bearer realm=\"security\"","ApiKey"]}}],"type":"security_exception","reason":"missing authentication credentials for REST request [/_bulk]","header":{"WWW-Authenticate":["Basic realm=\"security\", charset=\"UTF-8\"","Bearer realm=\"security\"","ApiKey"]}},"status":401}).to_string()
}

/// Elasticsearch 8's 403 body for a user without the write privilege.
pub fn es_403_body() -> String {
    json!({"error":{"root_cause":[{"type":"security_exception","reason":"action [indices:data/write/bulk[s]] is unauthorized for user [edge] with effective roles [viewer] on indices [edge-agent], this action is granted by the index privileges [create_doc,create,index,write,all]"}],"type":"security_exception","reason":"action [indices:data/write/bulk[s]] is unauthorized for user [edge] with effective roles [viewer] on indices [edge-agent], this action is granted by the index privileges [create_doc,create,index,write,all]"},"status":403}).to_string()
}

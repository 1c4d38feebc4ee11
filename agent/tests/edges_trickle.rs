//! A server that trickles: every HTTP exchange the agent makes (the shipper's `_bulk`,
//! the index template, the registry's manifest, signature and module) ends within ONE
//! wall-clock deadline, `timeout_ms`, body included. reqwest's blocking timeout bounds
//! each read, not their sum, so a server that drips a byte every 200 ms used to hold a
//! caller for as long as it dripped.
//!
//! The server here is real (127.0.0.1, one thread per connection, stopped and joined at
//! the end of each test) and measures, on its side, how long each client stayed: the time
//! from the request to the client closing the connection.

use std::collections::BTreeSet;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use edge_agent::registry::source::{Location, Source, Validators};
use edge_agent::ship::{BulkOutcome, Client, ClientError};
use edge_agent::spool::{Destination, Entry};
use edge_tests::agent::{Agent, http_get, write_test_config};
use edge_tests::fault_server::{Request, read_request};
use edge_tests::shipping::{ShipOptions, Shipping};
use serde_json::{Value, json};

/// One byte every DRIP: the trickle.
const DRIP: Duration = Duration::from_millis(200);
/// The exchange's bound in these tests.
const TIMEOUT: Duration = Duration::from_millis(1000);
/// How late after the deadline the server may see the client go: the client notices at
/// the deadline (plus scheduling), the server at its next byte written after the close.
const SLACK: Duration = Duration::from_millis(1500);
/// A failure guard, never a synchronisation.
const PATIENCE: Duration = Duration::from_secs(30);

/// What the server does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// 200 and a head at once, then a body of 150 bytes, one byte per [`DRIP`] (30 s).
    DripBody,
    /// The status line and headers themselves, one byte per [`DRIP`].
    DripHead,
    /// Elasticsearch: `_bulk` items all 201 (ids remembered), anything else acknowledged.
    Elasticsearch,
}

/// One request the server saw, and when its client went away.
#[derive(Clone, Debug)]
struct Served {
    path: String,
    answer: Answer,
    arrived: Instant,
    /// When a write failed because the client had closed; `None` while it is connected
    /// (or when the answer was written whole).
    client_gone: Option<Instant>,
}

impl Served {
    fn held(&self) -> Option<Duration> {
        self.client_gone
            .map(|gone| gone.duration_since(self.arrived))
    }
}

#[derive(Default)]
struct State {
    served: Vec<Served>,
    stored: BTreeSet<String>,
}

type Script = dyn Fn(&str, usize) -> Answer + Send + Sync;

struct DripServer {
    addr: SocketAddr,
    state: Arc<(Mutex<State>, Condvar)>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<Vec<JoinHandle<()>>>>,
}

impl DripServer {
    /// `script(path, request number)` decides each answer.
    fn start(script: impl Fn(&str, usize) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("an address");
        let state = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let (thread_state, thread_stop) = (state.clone(), stop.clone());
        let acceptor = std::thread::spawn(move || {
            let mut connections = Vec::new();
            for stream in listener.incoming() {
                // Drop wakes the accept with a connection of its own.
                if thread_stop.load(Ordering::Acquire) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (state, stop, script) =
                    (thread_state.clone(), thread_stop.clone(), script.clone());
                connections.push(std::thread::spawn(move || {
                    serve(stream, &state, &stop, &*script);
                }));
            }
            connections
        });
        Self {
            addr,
            state,
            stop,
            acceptor: Some(acceptor),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn stored(&self) -> BTreeSet<String> {
        self.state.0.lock().unwrap().stored.clone()
    }

    /// Waits (on the server's own signal) until `done` holds of what it served, at most
    /// [`PATIENCE`]; answers what it served then.
    fn until(&self, what: &str, done: impl Fn(&[Served]) -> bool) -> Vec<Served> {
        let guard = self.state.0.lock().unwrap();
        let (guard, _) = self
            .state
            .1
            .wait_timeout_while(guard, PATIENCE, |s| !done(&s.served))
            .unwrap();
        assert!(
            done(&guard.served),
            "the server never saw {what}: {:#?}",
            guard.served
        );
        guard.served.clone()
    }
}

impl Drop for DripServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take()
            && let Ok(connections) = acceptor.join()
        {
            for connection in connections {
                let _ = connection.join();
            }
        }
    }
}

fn serve(stream: TcpStream, state: &(Mutex<State>, Condvar), stop: &AtomicBool, script: &Script) {
    let _ = stream.set_read_timeout(Some(PATIENCE));
    let mut reader = BufReader::new(stream);
    let Some(Request { path, body, .. }) = read_request(&mut reader) else {
        return;
    };
    let mut stream = reader.into_inner();
    let (number, answer) = {
        let mut s = state.0.lock().unwrap();
        let number = s.served.len();
        let answer = script(&path, number);
        s.served.push(Served {
            path: path.clone(),
            answer,
            arrived: Instant::now(),
            client_gone: None,
        });
        (number, answer)
    };
    state.1.notify_all();
    let gone = |state: &(Mutex<State>, Condvar)| {
        state.0.lock().unwrap().served[number].client_gone = Some(Instant::now());
        state.1.notify_all();
    };
    let drip = |stream: &mut TcpStream, bytes: &[u8]| -> bool {
        for byte in bytes {
            if stop.load(Ordering::Acquire) {
                return true;
            }
            if stream
                .write_all(&[*byte])
                .and_then(|()| stream.flush())
                .is_err()
            {
                return false;
            }
            std::thread::sleep(DRIP);
        }
        true
    };
    match answer {
        Answer::DripBody => {
            // 30 s of body: a client bounded per read only stays all that time.
            let length = 150;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n"
            );
            if stream.write_all(head.as_bytes()).is_err() || !drip(&mut stream, &vec![b' '; length])
            {
                gone(state);
            }
        }
        Answer::DripHead => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-padding: {}\r\ncontent-length: 2\r\n\r\n{{}}",
                "p".repeat(100)
            );
            if !drip(&mut stream, head.as_bytes()) {
                gone(state);
            }
        }
        Answer::Elasticsearch => {
            let reply = if path.contains("_bulk") {
                let text = String::from_utf8_lossy(&body);
                let lines: Vec<&str> = text.lines().collect();
                let mut items = Vec::new();
                let mut s = state.0.lock().unwrap();
                for pair in lines.chunks(2) {
                    let action: Value = serde_json::from_str(pair[0]).unwrap_or(Value::Null);
                    let id = action["create"]["_id"].as_str().unwrap_or_default();
                    s.stored.insert(id.to_owned());
                    items.push(json!({"create": {"_id": id, "status": 201, "result": "created"}}));
                }
                json!({"took": 1, "errors": false, "items": items}).to_string()
            } else {
                json!({"acknowledged": true}).to_string()
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                reply.len()
            );
            state.1.notify_all();
        }
    }
}

fn entries(n: usize) -> Vec<Entry> {
    (0..n)
        .map(|i| Entry {
            seq: i as u64,
            id: format!("kitchen-{i}"),
            document: json!({ "@timestamp": i, "air_quality": 50.0 })
                .to_string()
                .into_bytes(),
            destination: Destination::Verdicts,
        })
        .collect()
}

/// Asserts that `call` returned within the deadline and that the server saw its client
/// go within it too.
fn assert_bounded(server: &DripServer, what: &str, took: Duration) {
    assert!(
        took < TIMEOUT + SLACK,
        "{what}: the exchange took {took:?} against a {TIMEOUT:?} deadline"
    );
    let served = server.until(&format!("{what}: the client go"), |s| {
        s.last().is_some_and(|s| s.client_gone.is_some())
    });
    let held = served.last().and_then(Served::held).unwrap_or_default();
    assert!(
        held < TIMEOUT + SLACK,
        "{what}: the server saw the client stay {held:?}"
    );
}

#[test]
fn every_shipper_exchange_ends_within_its_deadline() {
    for answer in [Answer::DripBody, Answer::DripHead] {
        let server = DripServer::start(move |_, _| answer);
        let client = Client::new(
            &server.url(),
            edge_agent::ship::Auth::None,
            None,
            false,
            TIMEOUT,
        )
        .unwrap();

        let started = Instant::now();
        let outcome = client.bulk("edge-agent", &entries(10));
        let took = started.elapsed();
        assert!(
            matches!(outcome, BulkOutcome::Retry(_) | BulkOutcome::NoAnswer(_)),
            "{answer:?}: a trickled _bulk answer is worth a retry, not {outcome:?}"
        );
        assert_bounded(&server, &format!("_bulk, {answer:?}"), took);

        let started = Instant::now();
        let state = client.template_state("edge-agent");
        let took = started.elapsed();
        assert!(
            matches!(state, Err(ClientError::Request(_))),
            "{answer:?}: {state:?}"
        );
        assert_bounded(&server, &format!("template GET, {answer:?}"), took);

        let started = Instant::now();
        let installed = client.install_template("edge-agent", false);
        let took = started.elapsed();
        assert!(
            matches!(installed, Err(ClientError::Request(_))),
            "{answer:?}: {installed:?}"
        );
        assert_bounded(&server, &format!("template PUT, {answer:?}"), took);
    }
}

/// The shipper with a spool: the first `_bulk` answers trickle; the request fails within
/// the deadline, is counted, tried again, and every document arrives once the server
/// answers.
#[test]
fn a_trickled_bulk_answer_is_retried_and_nothing_is_lost() {
    let server = DripServer::start(|path, _| {
        static TRICKLED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        if path.contains("_bulk") && TRICKLED.fetch_add(1, Ordering::AcqRel) < 2 {
            Answer::DripBody
        } else {
            Answer::Elasticsearch
        }
    });
    let documents: Vec<(String, Vec<u8>)> = entries(60)
        .into_iter()
        .map(|e| (e.id, e.document))
        .collect();
    let shipping = Shipping::start(
        &server.url(),
        &documents,
        ShipOptions {
            timeout: TIMEOUT,
            batch_max_docs: 30,
            ..ShipOptions::default()
        },
    );
    // The two trickled requests each ended within the deadline, on the server's clock.
    let served = server.until("two trickled _bulk requests end", |s| {
        s.iter()
            .filter(|s| s.answer == Answer::DripBody && s.client_gone.is_some())
            .count()
            >= 2
    });
    for trickled in served.iter().filter(|s| s.answer == Answer::DripBody) {
        let held = trickled.held().unwrap_or_default();
        assert!(
            held < TIMEOUT + SLACK,
            "{}: held {held:?} against a {TIMEOUT:?} deadline",
            trickled.path
        );
    }
    assert!(
        shipping.drained(PATIENCE),
        "the spool never drained: {:?}",
        shipping.counts()
    );
    let sent: BTreeSet<String> = documents.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(server.stored(), sent, "every document arrived");
    let retried = shipping.stats.retried.load(Ordering::Relaxed);
    assert!(
        retried >= 30,
        "the failed requests' documents are counted as retried: {retried}"
    );
}

#[test]
fn every_registry_read_ends_within_its_deadline() {
    for answer in [Answer::DripBody, Answer::DripHead] {
        let server = DripServer::start(move |_, _| answer);
        let source = Source::new(None, TIMEOUT).unwrap();
        // The manifest, its signature and a module: each read with its own size bound.
        for (path, max_bytes) in [
            ("/manifest.json", 256 << 10),
            ("/manifest.json.minisig", 4 << 10),
            ("/v2.wasm", 8 << 20),
        ] {
            let location = Location::parse(&format!("{}{path}", server.url())).unwrap();
            let started = Instant::now();
            let got = source.get(&location, &Validators::default(), max_bytes);
            let took = started.elapsed();
            assert!(got.is_err(), "{path}, {answer:?}: {got:?}");
            assert_bounded(&server, &format!("{path}, {answer:?}"), took);
        }
    }
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The agent polling a registry whose manifest trickles: each poll fails within the
/// deadline, is counted, and the agent polls again.
#[test]
fn a_trickled_manifest_fails_the_poll_counted_and_polling_goes_on() {
    let server = DripServer::start(|_, _| Answer::DripBody);
    let dir = tempfile::tempdir().unwrap();
    let key = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let public = key.pk.to_base64();
    let tail = format!(
        "\n[output]\npath = \"/dev/null\"\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n\n[registry]\nurl = \"{}/manifest.json\"\npublic_keys = [\"{public}\"]\npoll_interval_ms = 200\nretry_max_ms = 400\ntimeout_ms = {}\n",
        server.url(),
        TIMEOUT.as_millis()
    );
    let config = write_test_config(
        dir.path(),
        edge_tests::anomaly_wasm(),
        "[function.params]\nperiod = \"4\"\n\n",
        &tail,
    );
    let mut agent = Agent::simulated(
        std::path::Path::new(env!("CARGO_BIN_EXE_edge-agent")),
        &config,
        "60",
        &[],
    );
    let addr = agent.metrics_addr();

    // Three polls, each ended by the agent within the deadline.
    let served = server.until("three manifest polls end", |s| {
        s.iter().filter(|s| s.client_gone.is_some()).count() >= 3
    });
    for poll in served.iter().filter(|s| s.client_gone.is_some()) {
        let held = poll.held().unwrap_or_default();
        assert!(
            held < TIMEOUT + SLACK,
            "{}: held {held:?} against a {TIMEOUT:?} deadline",
            poll.path
        );
    }
    // Counted where an operator looks.
    let deadline = Instant::now() + PATIENCE;
    let text = loop {
        let (_, _, text) = http_get(addr, "/metrics");
        if metric(&text, "edge_agent_registry_errors_total") >= 2 {
            break text;
        }
        assert!(Instant::now() < deadline, "errors never counted:\n{text}");
        // /metrics cannot notify; the deadline above is the guard.
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        metric(&text, "edge_agent_registry_requests_total") >= 2,
        "{text}"
    );
    agent.signal("TERM");
    let (status, _, logs) = agent.stop();
    assert!(status.success(), "{}", logs.join("\n"));
}

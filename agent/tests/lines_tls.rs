//! A lines listener opened to a network, end to end through the binary: TLS with and
//! without client certificates (valid, missing, expired, from another CA), a plain-TCP
//! client on a TLS port, a sensor bound to its certificate's name, senders outside
//! `allow` on TCP and UDP, a client that connects and never says hello, and the
//! configuration errors that stop the start. Certificates are made here, per test
//! (rcgen). The truth is the records the agent writes (who sent each, `peer` and
//! `peer_name`) and its `/metrics` (what was refused, and why).

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;

use edge_tests::agent::{Agent, http_get};
use edge_tests::anomaly_wasm;
use edge_tests::lines::{by_reason, lines_addr, series, until_metrics, write_config};
use edge_tests::pki::{Issued, Pki, connect, send_and_close};
use serde_json::Value;

/// Unix ms of the first sample: 2026-01-01T00:00:00Z, in the past.
const T0: i64 = 1_767_225_600_000;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_edge-agent"))
}

fn start(config: &Path) -> Agent {
    Agent::start(binary(), &["run", "--config", config.to_str().unwrap()])
}

/// `n` CSV lines `timestamp,sensor_id,value` of `sensor`, a second apart.
fn csv(sensor: &str, n: i64) -> String {
    (0..n)
        .map(|i| format!("{},{sensor},{}\n", T0 + i * 1000, i % 5))
        .collect()
}

/// The `[source]` keys of a TLS listener: the server's files in `dir`, and `extra`.
fn tls_source(dir: &Path, pki: &Pki, extra: &str) -> String {
    let (cert, key) = pki.issue(&["127.0.0.1"], false).write(dir, "server");
    format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n{extra}",
        cert.display(),
        key.display()
    )
}

/// An agent with a TLS listener whose clients need a certificate `pki` issued, and
/// `extra` keys; with where it listens and serves metrics.
fn certified_agent(dir: &Path, pki: &Pki, extra: &str) -> (Agent, SocketAddr, SocketAddr) {
    let ca = pki.write_ca(dir, "sensors-ca");
    let source = tls_source(
        dir,
        pki,
        &format!("tls_client_ca = \"{}\"\n{extra}", ca.display()),
    );
    let mut agent = start(&write_config(dir, anomaly_wasm(), &source));
    let addr = lines_addr(&mut agent);
    let metrics = agent.metrics_addr();
    (agent, addr, metrics)
}

/// The records' (sensor, peer, peer_name), each once, sorted.
fn senders(verdicts: &[Value]) -> Vec<(String, String, String)> {
    let mut seen: Vec<_> = verdicts
        .iter()
        .map(|v| {
            let text = |field: &str| v[field].as_str().unwrap_or("-").to_owned();
            (text("sensor_id"), text("peer"), text("peer_name"))
        })
        .collect();
    seen.sort();
    seen.dedup();
    seen
}

/// A TLS client presenting `identity` sends `text`; a refused one may see its write fail.
fn tls_send(addr: SocketAddr, pki: &Pki, identity: Option<&Issued>, text: &str) {
    let mut stream = connect(addr, pki.client(identity));
    let _refused_or_sent = send_and_close(&mut stream, text);
}

#[test]
fn a_tls_listener_hears_certified_clients_alone_and_names_them_on_each_record() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("sensors CA");
    let (agent, addr, metrics) = certified_agent(
        dir.path(),
        &pki,
        "columns = [\"timestamp\", \"sensor_id\", \"value\"]\ntime_format = \"unix_ms\"",
    );

    tls_send(
        addr,
        &pki,
        Some(&pki.issue(&["kitchen"], false)),
        &csv("kitchen", 8),
    );
    // No certificate, an expired one, one from another CA: each handshake fails.
    tls_send(addr, &pki, None, &csv("nocert", 8));
    tls_send(
        addr,
        &pki,
        Some(&pki.issue(&["expired"], true)),
        &csv("expired", 8),
    );
    let foreign = Pki::new("another CA").issue(&["foreign"], false);
    tls_send(addr, &pki, Some(&foreign), &csv("foreign", 8));
    // Plain text on a TLS port is no TLS.
    let mut plain = TcpStream::connect(addr).unwrap();
    let _refused_or_sent = plain.write_all(csv("plain", 8).as_bytes());
    drop(plain);

    let failed = |reason: &str| by_reason("tls_handshakes_failed_total", "tcp", reason);
    until_metrics(
        metrics,
        &[
            (&failed("certificate"), 3),
            (&failed("protocol"), 1),
            (&failed("timeout"), 0),
            (&series("accepted_total", "tcp"), 8),
            (&series("read_total", "tcp"), 8),
            ("edge_agent_verdicts_total", 8),
        ],
    );
    let (_, verdicts, _) = agent.stop();
    assert_eq!(verdicts.len(), 8);
    assert_eq!(
        senders(&verdicts),
        [("kitchen".into(), "127.0.0.1".into(), "kitchen".into())]
    );
}

#[test]
fn a_connection_bound_to_its_certificate_speaks_for_its_sensor_alone() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("sensors CA");
    let (agent, addr, metrics) = certified_agent(
        dir.path(),
        &pki,
        "bind_sensor_to_certificate = true\nformat = \"ndjson\"\ntime_format = \"unix_ms\"",
    );

    // Its own sensor by name, then by saying none; another sensor's name is refused.
    let mut text = String::new();
    for i in 0..8i64 {
        let ms = T0 + i * 1000;
        match i % 2 {
            0 => {
                text += &format!("{{\"timestamp\":{ms},\"sensor_id\":\"kitchen\",\"value\":{i}}}\n")
            }
            _ => text += &format!("{{\"timestamp\":{ms},\"value\":{i}}}\n"),
        }
        if i < 2 {
            text += &format!("{{\"timestamp\":{ms},\"sensor_id\":\"hall\",\"value\":1}}\n");
        }
    }
    tls_send(addr, &pki, Some(&pki.issue(&["kitchen"], false)), &text);
    // A certificate naming no sensor (an IP address alone) cannot be bound to one.
    tls_send(
        addr,
        &pki,
        Some(&pki.issue(&["127.0.0.9"], false)),
        &csv("nameless", 4),
    );

    until_metrics(
        metrics,
        &[
            (&series("accepted_total", "tcp"), 8),
            (&by_reason("refused_total", "tcp", "foreign_sensor"), 2),
            (
                &by_reason("tls_handshakes_failed_total", "tcp", "certificate"),
                1,
            ),
            ("edge_agent_verdicts_total", 8),
        ],
    );
    let (_, verdicts, _) = agent.stop();
    assert_eq!(verdicts.len(), 8);
    assert_eq!(
        senders(&verdicts),
        [("kitchen".into(), "127.0.0.1".into(), "kitchen".into())]
    );
}

#[test]
fn senders_outside_allow_are_refused_before_a_byte_on_tcp_and_udp() {
    for transport in ["tcp", "udp"] {
        let dir = tempfile::tempdir().unwrap();
        let source = format!(
            "transport = \"{transport}\"\nallow = [\"127.0.0.2/32\", \"::1\"]\ncolumns = [\"timestamp\", \"sensor_id\", \"value\"]\ntime_format = \"unix_ms\""
        );
        let mut agent = start(&write_config(dir.path(), anomaly_wasm(), &source));
        let addr = lines_addr(&mut agent);
        let metrics = agent.metrics_addr();

        // From 127.0.0.1, outside the list: nothing of it is read.
        send_from("127.0.0.1", addr, transport, &csv("stranger", 8));
        until_metrics(metrics, &[(&series("not_allowed_total", transport), 1)]);
        // From 127.0.0.2, inside it.
        send_from("127.0.0.2", addr, transport, &csv("friend", 8));
        until_metrics(
            metrics,
            &[
                (&series("not_allowed_total", transport), 1),
                (&series("accepted_total", transport), 8),
                (&series("read_total", transport), 8),
                ("edge_agent_verdicts_total", 8),
            ],
        );
        let (_, _, body) = http_get(metrics, "/health");
        let health: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["lines"], "ok", "{body}");
        let (_, verdicts, _) = agent.stop();
        assert_eq!(
            senders(&verdicts),
            [("friend".into(), "127.0.0.2".into(), "-".into())],
            "{transport}"
        );
    }
}

/// Sends `text` to `addr` from the local address `from`, over TCP or in one datagram.
fn send_from(from: &str, addr: SocketAddr, transport: &str, text: &str) {
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    if transport == "udp" {
        let socket = UdpSocket::bind(local).unwrap();
        socket.send_to(text.as_bytes(), addr).unwrap();
        return;
    }
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&local.into()).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    // Refused: the listener may have closed it before this is written.
    let _refused_or_sent = stream.write_all(text.as_bytes());
}

#[test]
fn a_client_that_never_finishes_its_handshake_is_closed_after_the_bound_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("server CA");
    let source = tls_source(
        dir.path(),
        &pki,
        "tls_handshake_timeout_s = 1\nmax_connections = 1\ncolumns = [\"timestamp\", \"sensor_id\", \"value\"]\ntime_format = \"unix_ms\"",
    );
    let mut agent = start(&write_config(dir.path(), anomaly_wasm(), &source));
    let addr = lines_addr(&mut agent);
    let metrics = agent.metrics_addr();

    // Connects, takes the only place, says nothing; kept open on this side throughout.
    let silent = TcpStream::connect(addr).unwrap();
    until_metrics(
        metrics,
        &[
            (&series("connections_total", "tcp"), 1),
            (
                &by_reason("tls_handshakes_failed_total", "tcp", "timeout"),
                1,
            ),
            (&series("connections_open", "tcp"), 0),
        ],
    );
    // Its place is free: a client that does speak TLS is heard.
    tls_send(addr, &pki, None, &csv("patient", 8));
    until_metrics(
        metrics,
        &[
            (&series("accepted_total", "tcp"), 8),
            ("edge_agent_verdicts_total", 8),
        ],
    );
    drop(silent);
    let (_, verdicts, _) = agent.stop();
    assert_eq!(
        senders(&verdicts),
        [("patient".into(), "127.0.0.1".into(), "-".into())]
    );
}

#[test]
fn tls_files_that_cannot_serve_stop_the_start_with_exit_78_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("server CA");
    let (cert, key) = pki.issue(&["127.0.0.1"], false).write(dir.path(), "server");
    let (_, other_key) = pki.issue(&["127.0.0.1"], false).write(dir.path(), "other");
    let open_key = dir.path().join("open.key");
    std::fs::copy(&key, &open_key).unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let missing = dir.path().join("missing.crt");
    for (tls, named) in [
        ((&cert, &other_key), "source.tls_key"),
        ((&missing, &key), "source.tls_cert"),
        ((&cert, &open_key), "source.tls_key"),
    ] {
        let source = format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            tls.0.display(),
            tls.1.display()
        );
        let config = write_config(dir.path(), anomaly_wasm(), &source);
        let output = Command::new(binary())
            .args(["run", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(78), "{stderr}");
        assert!(stderr.contains(named), "{named}: {stderr}");
        assert!(
            !dir.path().join("state").exists(),
            "created before the check"
        );
    }
}

/// A client that closes its socket with bytes it never read makes the kernel reset the
/// connection, and the server loses what it had not read yet: the listener sends nothing
/// after the handshake (no session tickets), so there is nothing such a client leaves
/// unread.
#[test]
fn a_long_tls_stream_from_a_client_that_never_reads_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("server CA");
    let source = tls_source(
        dir.path(),
        &pki,
        "columns = [\"timestamp\", \"sensor_id\", \"value\"]\ntime_format = \"unix_ms\"",
    );
    let mut agent = start(&write_config(dir.path(), anomaly_wasm(), &source));
    let addr = lines_addr(&mut agent);
    let metrics = agent.metrics_addr();
    // Written, closed, dropped at once, never read from: as a small sensor does.
    tls_send(addr, &pki, None, &csv("long", 20_000));
    until_metrics(
        metrics,
        &[
            (&series("accepted_total", "tcp"), 20_000),
            (&series("read_total", "tcp"), 20_000),
        ],
    );
    let _ = agent.stop();
}

//! Fleet-safe catch-up and per-entry destinations, checked at the server: the drain cap
//! holds (documents per request and the time a backlog takes are counted where they
//! arrive), a spool written before destinations existed drains as verdicts, byte for byte
//! the requests it always made, and status documents go to their own index beside them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use edge_agent::config::ElasticsearchSection;
use edge_agent::ship::{Auth, Client, ShipStats, Shipper, ShipperSettings, Stopper};
use edge_agent::spool::{Destination, Spool, WhenFull};
use edge_tests::fault_server::FaultServer;
use edge_tests::shipping::{ShipOptions, Shipping};
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(120);

fn documents(prefix: &str, n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let body = json!({ "@timestamp": "2026-01-01T00:00:00Z", "n": i });
            (format!("{prefix}-{i}"), body.to_string().into_bytes())
        })
        .collect()
}

#[test]
fn the_drain_cap_holds_at_the_server() {
    let server = FaultServer::healthy();
    let (total, batch, rate) = (400usize, 50usize, 100u32);
    let started = Instant::now();
    let shipping = Shipping::start(
        &server.url,
        &documents("capped", total),
        ShipOptions {
            batch_max_docs: batch,
            drain_max_docs_per_sec: rate,
            ..ShipOptions::default()
        },
    );
    assert!(
        server.wait_until(PATIENCE, |_, stored| stored == total),
        "the backlog arrives"
    );
    let elapsed = started.elapsed();
    // A full batch may go at once (the bucket's burst); the rest at the cap at most. A
    // slower machine only makes this later, never earlier.
    let least = Duration::from_secs_f64((total - batch) as f64 / f64::from(rate));
    assert!(
        elapsed >= least,
        "{total} documents in {elapsed:?}: faster than {rate}/s"
    );
    let bulks: Vec<usize> = server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/_bulk"))
        .map(|r| r.bulk_documents().len())
        .collect();
    assert!(bulks.iter().all(|n| *n <= batch), "{bulks:?}");
    assert_eq!(bulks.iter().sum::<usize>(), total, "each document once");
    assert!(shipping.stats.throttled.load(Ordering::Relaxed) > 0);
    assert!(shipping.drained(PATIENCE));
    assert_eq!(shipping.counts().delivered, total as u64);
}

#[test]
fn without_a_cap_the_backlog_goes_in_full_batches() {
    let server = FaultServer::healthy();
    let shipping = Shipping::start(
        &server.url,
        &documents("free", 400),
        ShipOptions {
            batch_max_docs: 200,
            ..ShipOptions::default()
        },
    );
    assert!(shipping.drained(PATIENCE));
    assert_eq!(server.stored_ids().len(), 400);
    assert_eq!(shipping.stats.throttled.load(Ordering::Relaxed), 0);
    let bulks = server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/_bulk"))
        .count();
    assert!(bulks <= 3, "{bulks} requests for two batches");
}

fn shipper_on(
    spool: Arc<Spool>,
    url: &str,
    dir: &std::path::Path,
) -> edge_agent::ship::ShipperHandle {
    let client = Client::new(url, Auth::None, None, false, Duration::from_secs(10)).unwrap();
    let mut settings = ShipperSettings {
        batch_max_delay: Duration::ZERO,
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
        ..ElasticsearchSection::default().shipper_settings(dir)
    };
    edge_agent::fleet::FleetSection::default().apply(&mut settings);
    Shipper::new(
        client,
        spool,
        settings,
        Arc::new(ShipStats::default()),
        Arc::new(Stopper::default()),
    )
    .spawn()
    .unwrap()
}

/// The spool file of the version before destinations, as it wrote it: its table names,
/// its entry encoding (`id length u16 LE ‖ id ‖ JSON`) and its counters.
fn write_old_spool(path: &std::path::Path, documents: &[(String, Vec<u8>)]) {
    const ENTRIES: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("entries");
    const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut entries = txn.open_table(ENTRIES).unwrap();
        let mut bytes = 0u64;
        for (seq, (id, document)) in documents.iter().enumerate() {
            let mut value = u16::try_from(id.len()).unwrap().to_le_bytes().to_vec();
            value.extend_from_slice(id.as_bytes());
            value.extend_from_slice(document);
            bytes += value.len() as u64;
            entries.insert(seq as u64, value.as_slice()).unwrap();
        }
        let mut meta = txn.open_table(META).unwrap();
        meta.insert("next_seq", documents.len() as u64).unwrap();
        meta.insert("bytes", bytes).unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn a_spool_of_the_previous_version_drains_as_before_and_status_goes_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool.redb");
    let old = documents("pi.bme680.0000000000000001", 120);
    write_old_spool(&path, &old);

    let spool = Arc::new(Spool::open(&path, 64 << 20, WhenFull::DropOldest).unwrap());
    assert_eq!(spool.depth(), 120, "the old entries are all there");
    // The new version adds status documents behind them.
    spool
        .append_to(Destination::Status, &documents("pi.bme680.status", 3))
        .unwrap();
    let server = FaultServer::healthy();
    let shipper = shipper_on(spool.clone(), &server.url, dir.path());
    assert!(spool.wait_until(PATIENCE, |depth| depth == 0), "it drains");
    assert!(shipper.stop(Duration::from_secs(30)));

    let counts = spool.stats().snapshot();
    assert_eq!(
        (counts.delivered, counts.quarantined, counts.dead_lettered),
        (123, 0, 0)
    );
    let mut expected: Vec<String> = old.iter().map(|(id, _)| id.clone()).collect();
    expected.extend((0..3).map(|i| format!("pi.bme680.status-{i}")));
    expected.sort();
    assert_eq!(server.stored_ids(), expected);

    // Verdicts as they always went: to the verdict index's _bulk, no _index in the action;
    // status documents into their own index, named in the action.
    let mut verdict_actions = 0;
    let mut status_actions = 0;
    for request in server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/_bulk"))
    {
        assert_eq!(request.path, "/edge-agent/_bulk");
        let text = String::from_utf8_lossy(&request.body).into_owned();
        for action in text.lines().step_by(2) {
            let action: serde_json::Value = serde_json::from_str(action).unwrap();
            let id = action["create"]["_id"].as_str().unwrap();
            if id.contains("status") {
                assert_eq!(action["create"]["_index"], "edge-fleet", "{action}");
                status_actions += 1;
            } else {
                assert!(action["create"].get("_index").is_none(), "{action}");
                verdict_actions += 1;
            }
        }
    }
    assert_eq!((verdict_actions, status_actions), (120, 3));
    // Both templates were installed, each under its own name.
    let templates: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.starts_with("/_index_template/"))
        .map(|r| r.path.clone())
        .collect();
    assert!(templates.contains(&"/_index_template/edge-agent-edge-agent".to_owned()));
    assert!(templates.contains(&"/_index_template/edge-agent-edge-fleet".to_owned()));
}

//! Shipping to a real ES-API server (osmem-server, an in-memory OpenSearch 3.x imitation
//! from PyPI): the template, the documents, mapping errors, and the agent end to end.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use edge_agent::ship::{Auth, Client, ShipStats, Shipper, ShipperSettings, Stopper};
use edge_agent::spool::{Spool, WhenFull};
use edge_tests::agent::Agent;
use edge_tests::anomaly_wasm;
use edge_tests::osmem::Osmem;
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(60);

fn ship(
    server: &Osmem,
    index: &str,
    template: bool,
    documents: &[(String, Vec<u8>)],
) -> (Arc<Spool>, Arc<ShipStats>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(
        Spool::open(
            &dir.path().join("spool.redb"),
            1 << 30,
            WhenFull::DropOldest,
        )
        .unwrap(),
    );
    spool.append(documents).unwrap();
    let client = Client::new(
        &server.url,
        Auth::None,
        None,
        false,
        Duration::from_secs(10),
    )
    .unwrap();
    let settings = ShipperSettings {
        index: index.into(),
        data_stream: false,
        install_template: template,
        batch_max_docs: 200,
        batch_max_bytes: 1 << 20,
        batch_max_delay: Duration::ZERO,
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(100),
        auth_retry: Duration::from_millis(100),
        dead_letter: dir.path().join("dead-letter.ndjson"),
    };
    let stats = Arc::new(ShipStats::default());
    let stopper = Arc::new(Stopper::default());
    let thread = Shipper::new(
        client,
        spool.clone(),
        settings,
        stats.clone(),
        stopper.clone(),
    )
    .spawn()
    .unwrap();
    assert!(
        spool.wait_until(PATIENCE, |depth| depth == 0),
        "the spool drains"
    );
    stopper.stop();
    spool.wake();
    thread.join().unwrap();
    (spool, stats, dir)
}

fn verdicts(n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let ms = 1_700_000_000_000u64 + i as u64 * 1000;
            let document = json!({
                "@timestamp": edge_agent::series::format_timestamp(ms as i64),
                "host_id": "pi", "sensor_id": "kitchen", "air_quality": 80.0 - (i % 7) as f64,
                "temperature": 21.5, "humidity": 45.0, "pressure": 1013.2, "gas_resistance": 120000.0,
                "gas_valid": true, "heater_stable": true, "burn_in": false, "is_anomaly": i % 50 == 0,
                "function_sha256": "ab", "window_start": "2023-11-14T22:13:20Z", "window_end": "2023-11-14T22:30:20Z",
            });
            (format!("kitchen-{ms}"), document.to_string().into_bytes())
        })
        .collect()
}

#[test]
fn documents_land_once_under_the_template() {
    let server = Osmem::start();
    let documents = verdicts(450);
    let (_, stats, _dir) = ship(&server, "air", true, &documents);
    assert_eq!(stats.shipped.load(Ordering::Relaxed), 450);
    assert_eq!(server.count("air"), 450);
    let mut ids = server.ids("air");
    ids.sort();
    let mut expected: Vec<String> = documents.iter().map(|(id, _)| id.clone()).collect();
    expected.sort();
    assert_eq!(ids, expected);
    let mapping = server.get("/air/_mapping");
    let properties = &mapping["air"]["mappings"]["properties"];
    assert_eq!(properties["@timestamp"]["type"], "date");
    assert_eq!(properties["air_quality"]["type"], "float");
    assert_eq!(properties["is_anomaly"]["type"], "boolean");
    assert_eq!(properties["sensor_id"]["type"], "keyword");

    // Shipping the same documents again stores nothing twice: `create` answers 409.
    let (_, again, _dir) = ship(&server, "air", true, &documents);
    assert_eq!(again.duplicates.load(Ordering::Relaxed), 450);
    assert_eq!(server.count("air"), 450);
}

#[test]
fn documents_the_mapping_refuses_are_dead_lettered_with_the_servers_reason() {
    let server = Osmem::start();
    server.put(
        "/strict",
        &json!({ "mappings": { "properties": { "sensor_id": { "type": "integer" } } } }),
    );
    let (_, stats, dir) = ship(&server, "strict", false, &verdicts(5));
    assert_eq!(stats.dead_lettered.load(Ordering::Relaxed), 5);
    let dead = std::fs::read_to_string(dir.path().join("dead-letter.ndjson")).unwrap();
    assert_eq!(dead.lines().count(), 5);
    assert!(dead.contains("mapper_parsing_exception"), "{dead}");
    assert_eq!(server.count("strict"), 0);
}

#[test]
fn the_running_agent_ships_every_verdict() {
    let server = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, format!(
        "[sensor]\nstate_dir = \"{state}\"\n[function]\npath = \"{function}\"\n[function.params]\nperiod = 8\n[window]\nsize = 64\nhop = 16\n[elasticsearch]\nurl = \"{url}\"\nindex = \"kitchen\"\nbatch_max_delay_ms = 50\n",
        state = dir.path().join("state").display(),
        function = anomaly_wasm().display(),
        url = server.url,
    )).unwrap();
    let mut agent = Agent::start(
        Path::new(env!("CARGO_BIN_EXE_edge-agent")),
        &[
            "run",
            "--simulate",
            "--speed",
            "2000",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    agent.until_log("index template for kitchen installed");
    agent.until_log("spooled");
    let (status, verdicts, logs) = agent.stop();
    assert!(status.success(), "{}", logs.join("\n"));
    assert!(
        verdicts.is_empty(),
        "with Elasticsearch configured nothing goes to stdout"
    );
    let samples: u64 = number_before(&logs, "stopped in", " samples");
    let left: u64 = number_before(&logs, "shipping stopped", " left in the spool");
    assert!(samples > 0);
    assert_eq!(
        server.count("kitchen") + left,
        samples,
        "every sample shipped or still spooled"
    );
    let hits = server.get("/kitchen/_search?size=1");
    let document = &hits["hits"]["hits"][0]["_source"];
    assert_eq!(document["sensor_id"], "bme680");
    assert!(document["function_sha256"].as_str().unwrap().len() == 64);
}

/// The number just before `suffix` in the log line containing `marker`.
fn number_before(logs: &[String], marker: &str, suffix: &str) -> u64 {
    let line = logs
        .iter()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} line"));
    let head = &line[..line.find(suffix).unwrap()];
    head.rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

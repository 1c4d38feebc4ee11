//! Shipping to a real ES-API server (osmem-server, an in-memory OpenSearch 3.x imitation
//! from PyPI): the template, the documents, mapping errors, and the agent end to end.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use edge_tests::agent::Agent;
use edge_tests::anomaly_wasm;
use edge_tests::osmem::Osmem;
use edge_tests::shipping::{ShipOptions, Shipping};
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(60);

/// Ships `documents` into `index` and waits until the spool is empty.
fn ship(server: &Osmem, index: &str, template: bool, documents: &[(String, Vec<u8>)]) -> Shipping {
    let shipping = Shipping::start(
        &server.url,
        documents,
        ShipOptions {
            index: index.into(),
            install_template: template,
            batch_max_docs: 200,
            timeout: Duration::from_secs(10),
            ..ShipOptions::default()
        },
    );
    assert!(shipping.drained(PATIENCE), "the spool drains");
    shipping
}

fn verdicts(n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let ms = 1_700_000_000_000u64 + i as u64 * 1000;
            let document = json!({
                "@timestamp": edge_agent::support::timestamp::format(ms as i64),
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
    let shipped = ship(&server, "air", true, &documents);
    assert_eq!(shipped.stats.shipped.load(Ordering::Relaxed), 450);
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
    let again = ship(&server, "air", true, &documents);
    assert_eq!(again.stats.duplicates.load(Ordering::Relaxed), 450);
    assert_eq!(server.count("air"), 450);
}

#[test]
fn documents_the_mapping_refuses_are_dead_lettered_with_the_servers_reason() {
    let server = Osmem::start();
    server.put(
        "/strict",
        &json!({ "mappings": { "properties": { "sensor_id": { "type": "integer" } } } }),
    );
    let shipped = ship(&server, "strict", false, &verdicts(5));
    assert_eq!(shipped.stats.dead_lettered.load(Ordering::Relaxed), 5);
    let dead = shipped.dead_letters();
    assert_eq!(dead.len(), 5);
    for line in &dead {
        let reason = line["reason"].as_str().unwrap();
        assert!(reason.starts_with("mapper_parsing_exception"), "{reason}");
    }
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
            "200",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    agent.until_log("index template for kitchen installed");
    // Windows come every 16 samples (240 ms at 200x), so the shipper can catch up between;
    // caught up after verdicts were spooled (the start's status document may come first).
    agent.until_logs("caught up after verdicts", |logs| {
        logs.iter()
            .position(|l| l.contains("spooled") && l.contains("documents:"))
            .is_some_and(|first| logs[first..].iter().any(|l| l.contains("caught up")))
    });
    let (status, verdicts, logs) = agent.stop();
    assert!(status.success(), "{}", logs.join("\n"));
    assert!(
        verdicts.is_empty(),
        "with Elasticsearch configured nothing goes to stdout"
    );
    let samples: u64 = number_before(&logs, "stopped in", " samples");
    let left: u64 = number_before(&logs, "shipping stopped", " left in the spool");
    // The spool holds the agent's status documents too (the last one, of the stop, at
    // least): each is logged as it is spooled.
    let status = logs
        .iter()
        .filter(|l| l.contains("status document") && l.contains("spooled"))
        .count() as u64;
    assert!(samples > 0);
    assert!(status >= 2, "a start and a stop");
    assert!(server.count("kitchen") > 0);
    assert_eq!(
        server.count("kitchen") + server.count("edge-fleet") + left,
        samples + status,
        "every sample and status document shipped or still spooled"
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

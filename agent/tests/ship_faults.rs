//! The shipper against a server that fails the way Elasticsearch does: every document in
//! the spool ends up stored exactly once, or in the dead-letter file with the reason.

use std::sync::atomic::Ordering;
use std::time::Duration;

use edge_agent::ship::Auth;
use edge_tests::fault_server::{FaultServer, Reply, Request, TestPki, es_401_body, es_403_body};
use edge_tests::shipping::{ShipOptions, Shipping};
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(60);

fn id(i: usize) -> String {
    format!("kitchen-{}", 1_700_000_000_000u64 + i as u64 * 1000)
}

fn documents(n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let body = serde_json::json!({ "@timestamp": i, "air_quality": 50.0 + i as f64, "is_anomaly": false });
            (id(i), body.to_string().into_bytes())
        })
        .collect()
}

/// A hundred documents shipped to `url` in batches of 25.
fn rig(url: &str, options: ShipOptions) -> Shipping {
    Shipping::start(url, &documents(100), options)
}

fn drained(rig: &Shipping) -> bool {
    rig.drained(PATIENCE)
}

fn is_bulk(request: &Request) -> bool {
    request.path.contains("_bulk")
}

fn all_ids(n: usize) -> Vec<String> {
    let mut ids: Vec<String> = (0..n).map(id).collect();
    ids.sort();
    ids
}

#[test]
fn a_healthy_cluster_gets_everything_once_with_template_auth_and_gzip() {
    let server = FaultServer::healthy();
    let rig = rig(
        &server.url,
        ShipOptions {
            auth: Auth::Basic {
                username: "edge".into(),
                password: "s3cret".into(),
            },
            gzip: true,
            ..ShipOptions::default()
        },
    );
    assert!(drained(&rig));
    assert_eq!(server.stored_ids(), all_ids(100));
    let requests = server.requests();
    assert_eq!(requests[0].method, "PUT");
    assert_eq!(requests[0].path, "/_index_template/edge-agent-edge-agent");
    let template: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(
        template["template"]["mappings"]["properties"]["@timestamp"]["type"],
        "date"
    );
    for request in &requests {
        // base64("edge:s3cret")
        assert_eq!(
            request.header("authorization"),
            Some("Basic ZWRnZTpzM2NyZXQ=")
        );
    }
    let bulk: Vec<&Request> = requests.iter().filter(|r| is_bulk(r)).collect();
    assert_eq!(bulk.len(), 4, "100 documents in batches of 25");
    for request in bulk {
        assert_eq!(request.path, "/edge-agent/_bulk");
        assert_eq!(request.header("content-type"), Some("application/x-ndjson"));
        assert_eq!(request.header("content-encoding"), Some("gzip"));
        assert!(
            request.body.ends_with(b"\n"),
            "the body ends with a newline"
        );
    }
    assert_eq!(rig.stats.shipped.load(Ordering::Relaxed), 100);
}

#[test]
fn an_api_key_is_sent_as_elasticsearch_expects() {
    let server = FaultServer::healthy();
    let rig = rig(
        &server.url,
        ShipOptions {
            auth: Auth::ApiKey("aWQ6a2V5".into()),
            ..ShipOptions::default()
        },
    );
    assert!(drained(&rig));
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.header("authorization") == Some("ApiKey aWQ6a2V5"))
    );
}

#[test]
fn whole_request_429_and_5xx_are_retried_until_delivered() {
    // Counted over `_bulk` requests only: the template is looked for between tries.
    let mut bulk = 0;
    let server = FaultServer::start(move |request, _| {
        if !is_bulk(request) {
            return Reply::Bulk;
        }
        bulk += 1;
        match bulk {
        1 | 2 => Reply::Status(429, r#"{"error":{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation"},"status":429}"#.into()),
        3 => Reply::Status(503, r#"{"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"},"status":503}"#.into()),
        4 => Reply::Status(502, String::new()),
        _ => Reply::Bulk,
    }
    });
    let rig = rig(&server.url, ShipOptions::default());
    assert!(drained(&rig));
    assert_eq!(server.stored_ids(), all_ids(100));
    assert!(rig.stats.retried.load(Ordering::Relaxed) >= 3 * 25);
    assert_eq!(rig.dead_letters().len(), 0);
}

#[test]
fn per_item_429_retries_only_those_items() {
    let server = FaultServer::start(|request, n| match n {
        1 if is_bulk(request) => Reply::BulkExcept(vec![
            (id(3), 429, "es_rejected_execution_exception"),
            (id(7), 503, "unavailable_shards_exception"),
        ]),
        _ => Reply::Bulk,
    });
    let rig = rig(&server.url, ShipOptions::default());
    assert!(drained(&rig));
    assert_eq!(server.stored_ids(), all_ids(100));
    let sends = server.sends_per_id();
    for (sent_id, count) in &sends {
        let expected = if *sent_id == id(3) || *sent_id == id(7) {
            2
        } else {
            1
        };
        assert_eq!(*count, expected, "{sent_id} sent {count} times");
    }
    assert_eq!(rig.stats.retried.load(Ordering::Relaxed), 2);
}

#[test]
fn a_mapping_error_goes_to_the_dead_letter_file_with_the_reason() {
    let server = FaultServer::start(|_, _| {
        Reply::BulkExcept(vec![(id(5), 400, "document_parsing_exception")])
    });
    let rig = rig(&server.url, ShipOptions::default());
    assert!(drained(&rig));
    assert_eq!(server.stored_ids().len(), 99);
    let dead = rig.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["_id"], id(5).as_str());
    assert_eq!(dead[0]["status"], 400);
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("document_parsing_exception: injected")
    );
    assert_eq!(dead[0]["document"]["air_quality"], 55.0);
    assert_eq!(rig.stats.dead_lettered.load(Ordering::Relaxed), 1);
}

#[test]
fn unauthorised_and_forbidden_keep_the_spool_and_resume_when_fixed() {
    for (status, body) in [(401, es_401_body()), (403, es_403_body())] {
        let server = FaultServer::start(move |request, _| {
            if is_bulk(request) {
                Reply::Status(status, body.clone())
            } else {
                Reply::Bulk
            }
        });
        let rig = rig(&server.url, ShipOptions::default());
        assert!(
            server.wait_until(PATIENCE, |requests, _| requests >= 3),
            "it keeps trying, slowly"
        );
        assert_eq!(rig.spool.depth(), 100, "nothing leaves the spool");
        assert!(server.stored_ids().is_empty());
        assert!(
            rig.dead_letters().is_empty(),
            "credentials are not the documents' fault"
        );
        server.set_script(|_, _| Reply::Bulk);
        assert!(drained(&rig));
        assert_eq!(server.stored_ids(), all_ids(100));
    }
}

#[test]
fn a_413_with_an_empty_body_splits_the_batch() {
    let server = FaultServer::start(|request, _| {
        if is_bulk(request) && request.bulk_documents().len() > 6 {
            Reply::Status(413, String::new())
        } else {
            Reply::Bulk
        }
    });
    let rig = rig(&server.url, ShipOptions::default());
    assert!(drained(&rig));
    assert_eq!(server.stored_ids(), all_ids(100));
    assert!(rig.dead_letters().is_empty());
}

#[test]
fn a_connection_dropped_mid_response_is_retried_without_duplicates() {
    let server = FaultServer::start(|request, n| match n {
        1 if is_bulk(request) => Reply::StoreThenDrop,
        _ => Reply::Bulk,
    });
    let rig = rig(&server.url, ShipOptions::default());
    assert!(drained(&rig));
    assert_eq!(server.stored_ids(), all_ids(100));
    assert_eq!(
        rig.stats.duplicates.load(Ordering::Relaxed),
        25,
        "the retried batch was already there"
    );
    assert_eq!(rig.stats.shipped.load(Ordering::Relaxed), 75);
}

#[test]
fn a_slow_server_times_out_and_is_retried() {
    let server = FaultServer::start(|request, n| match n {
        1 if is_bulk(request) => Reply::Slow(Duration::from_secs(2), Box::new(Reply::Bulk)),
        _ => Reply::Bulk,
    });
    let rig = rig(
        &server.url,
        ShipOptions {
            timeout: Duration::from_millis(500),
            ..ShipOptions::default()
        },
    );
    assert!(drained(&rig));
    assert_eq!(server.stored_ids(), all_ids(100));
    assert!(rig.stats.retried.load(Ordering::Relaxed) >= 25);
}

#[test]
fn tls_with_the_configured_ca_delivers_and_without_it_refuses() {
    let pki = TestPki::new();
    let server = FaultServer::start_tls(&pki, |_, _| Reply::Bulk);
    assert!(server.url.starts_with("https://"));
    let trusted = rig(
        &server.url,
        ShipOptions {
            ca_pem: Some(pki.ca_pem.clone()),
            ..ShipOptions::default()
        },
    );
    assert!(drained(&trusted));
    assert_eq!(server.stored_ids(), all_ids(100));

    let other = TestPki::new();
    let untrusted = Shipping::start(
        &server.url,
        &documents(10),
        ShipOptions {
            ca_pem: Some(other.ca_pem.clone()),
            ..ShipOptions::default()
        },
    );
    assert!(
        !untrusted
            .spool
            .wait_until(Duration::from_secs(1), |depth| depth == 0),
        "a server whose certificate the CA did not sign gets nothing"
    );
    assert_eq!(untrusted.spool.depth(), 10);
}

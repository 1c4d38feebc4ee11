//! The README's shipping table, row by row, against the fault server: what leaves the spool
//! (delivered, dead-lettered, dropped), what pauses shipping and keeps the spool, what is
//! retried; bounded answers; shutdown within its grace whatever the upstream does; the
//! template put back when missing; counters that add up at every read.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use edge_agent::ship::{Pause, pause_code};
use edge_tests::fault_server::{FaultServer, Reply, Request, es_error_body};
use edge_tests::shipping::{ShipOptions, Shipping};

const PATIENCE: Duration = Duration::from_secs(60);

fn id(i: usize) -> String {
    format!("kitchen-{}", 1_700_000_000_000u64 + i as u64 * 1000)
}

fn documents(n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let body = serde_json::json!({ "@timestamp": i, "air_quality": 50.0 + i as f64 });
            (id(i), body.to_string().into_bytes())
        })
        .collect()
}

fn is_bulk(request: &Request) -> bool {
    request.path.contains("_bulk")
}

fn bulk_requests(server: &FaultServer) -> usize {
    server.requests().iter().filter(|r| is_bulk(r)).count()
}

fn template_puts(server: &FaultServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.starts_with("/_index_template/"))
        .count()
}

fn assert_adds_up(rig: &Shipping) {
    let c = rig.counts();
    assert_eq!(
        c.appended,
        c.delivered + c.dead_lettered + c.dropped + c.depth,
        "{c:?}"
    );
}

/// A pause row: `reply` for every `_bulk` until fixed. Nothing leaves the spool, nothing is
/// dead-lettered, the reason is published; once the cluster answers properly all arrive.
fn pauses_and_resumes(name: &str, why: Pause, reply: impl Fn() -> Reply + Send + 'static) {
    let server = FaultServer::start(move |request, _| {
        if is_bulk(request) {
            reply()
        } else {
            Reply::Bulk
        }
    });
    let rig = Shipping::start(&server.url, &documents(50), ShipOptions::default());
    assert!(
        // The template PUT, then three `_bulk` tries.
        server.wait_until(PATIENCE, |requests, _| requests >= 4),
        "{name}: it keeps trying"
    );
    assert_eq!(rig.spool.depth(), 50, "{name}: nothing leaves the spool");
    assert!(
        rig.dead_letters().is_empty(),
        "{name}: nothing dead-lettered"
    );
    assert_eq!(
        rig.stats.paused.load(Ordering::Relaxed),
        pause_code(why),
        "{name}: the reason is published"
    );
    assert!(rig.stats.pauses.load(Ordering::Relaxed) >= 1, "{name}");
    assert_adds_up(&rig);
    server.set_script(|_, _| Reply::Bulk);
    assert!(rig.drained(PATIENCE), "{name}: resumes when fixed");
    assert_eq!(server.stored_ids().len(), 50, "{name}");
    assert_eq!(rig.stats.paused.load(Ordering::Relaxed), 0, "{name}");
    let c = rig.counts();
    assert_eq!(
        (c.delivered, c.dead_lettered, c.dropped),
        (50, 0, 0),
        "{name}"
    );
    assert_adds_up(&rig);
}

#[test]
fn per_item_401_and_403_pause() {
    pauses_and_resumes("item 401", Pause::Unauthorized, || {
        Reply::Items(401, "security_exception")
    });
    pauses_and_resumes("item 403", Pause::Unauthorized, || {
        Reply::Items(403, "security_exception")
    });
}

#[test]
fn a_security_exception_under_http_200_pauses() {
    pauses_and_resumes("200 + security_exception", Pause::Unauthorized, || {
        Reply::Status(
            200,
            es_error_body(403, "security_exception", "action is unauthorized"),
        )
    });
}

#[test]
fn cluster_blocks_pause_per_item_and_per_request() {
    let reason = "index [edge-agent] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block]";
    pauses_and_resumes("item block", Pause::Blocked, || {
        Reply::Items(429, "cluster_block_exception")
    });
    pauses_and_resumes("request block 403", Pause::Blocked, move || {
        Reply::Status(403, es_error_body(403, "cluster_block_exception", reason))
    });
    pauses_and_resumes("request block 429", Pause::Blocked, move || {
        Reply::Status(429, es_error_body(429, "cluster_block_exception", reason))
    });
}

#[test]
fn misrouting_pauses_whatever_the_status() {
    for status in [301, 302, 202, 404] {
        pauses_and_resumes(&format!("HTTP {status}"), Pause::Misrouted, move || {
            Reply::Status(status, String::new())
        });
    }
    pauses_and_resumes("HTML under 200", Pause::Misrouted, || {
        Reply::Status(200, "<html><body>proxy login</body></html>".into())
    });
    // nginx's answer to plain HTTP on its HTTPS port: a 400 that is not Elasticsearch's
    // says nothing about the documents, so none of them is dead-lettered.
    pauses_and_resumes("HTML under 400", Pause::Misrouted, || {
        Reply::Status(
            400,
            "<html><body>The plain HTTP request was sent to HTTPS port</body></html>".into(),
        )
    });
}

#[test]
fn a_missing_index_pauses_reinstalls_the_template_and_resumes() {
    // An index deleted while running, on a cluster that does not auto-create: per item,
    // until the template is put back (the server "recreates" the index then).
    for whole_request in [false, true] {
        let server = FaultServer::healthy();
        let installs_at_start = 1;
        let deleted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = deleted.clone();
        server.set_script(move |request, _| {
            if request.method == "PUT" {
                flag.store(false, Ordering::SeqCst);
                return Reply::Bulk;
            }
            if is_bulk(request) && flag.load(Ordering::SeqCst) {
                return if whole_request {
                    Reply::Status(
                        404,
                        es_error_body(
                            404,
                            "index_not_found_exception",
                            "no such index [edge-agent]",
                        ),
                    )
                } else {
                    Reply::Items(404, "index_not_found_exception")
                };
            }
            Reply::Bulk
        });
        let rig = Shipping::start(&server.url, &documents(10), ShipOptions::default());
        assert!(rig.drained(PATIENCE));
        assert_eq!(template_puts(&server), installs_at_start);
        deleted.store(true, Ordering::SeqCst);
        rig.spool.append(&documents(20)[10..]).unwrap();
        assert!(
            rig.drained(PATIENCE),
            "delivered after the template is back"
        );
        assert_eq!(
            template_puts(&server),
            installs_at_start + 1,
            "installed again"
        );
        assert_eq!(server.stored_ids().len(), 20);
        assert!(rig.dead_letters().is_empty());
        assert_adds_up(&rig);
    }
}

#[test]
fn a_template_403_is_said_once_and_shipping_goes_on() {
    let server = FaultServer::start(|request, _| {
        if request.path.starts_with("/_index_template/") {
            Reply::Status(
                403,
                es_error_body(
                    403,
                    "security_exception",
                    "action [indices:admin/index_template/put] is unauthorized",
                ),
            )
        } else {
            Reply::Bulk
        }
    });
    let rig = Shipping::start(&server.url, &documents(30), ShipOptions::default());
    assert!(rig.drained(PATIENCE), "ships without the template");
    assert_eq!(server.stored_ids().len(), 30);
    assert_eq!(rig.stats.template_forbidden.load(Ordering::Relaxed), 1);
    assert_eq!(template_puts(&server), 1, "asked once, not retried forever");
}

#[test]
fn a_template_found_missing_after_an_outage_is_installed_again() {
    let server = FaultServer::healthy();
    let rig = Shipping::start(&server.url, &documents(10), ShipOptions::default());
    assert!(rig.drained(PATIENCE));
    // The cluster goes down (connections closed without an answer)...
    server.set_script(|_, _| Reply::Close);
    let outage = server.requests().len();
    rig.spool.append(&documents(20)[10..]).unwrap();
    assert!(server.wait_until(PATIENCE, |requests, _| requests > outage));
    // ...and comes back new and empty: no template. A bulk request already on its way
    // when the script changes is still part of the outage (closed): the cluster counts as
    // back from the shipper's first look for the template, which must come before any
    // document is accepted.
    let back = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    let at = back.clone();
    server.set_script(move |request, n| match request.method.as_str() {
        "GET" => {
            at.fetch_min(n, Ordering::SeqCst);
            Reply::Status(404, "{}".into())
        }
        _ if at.load(Ordering::SeqCst) == usize::MAX => Reply::Close,
        _ => Reply::Bulk,
    });
    assert!(rig.drained(PATIENCE));
    let requests = server.requests();
    let after = &requests[back.load(Ordering::SeqCst)..];
    assert_eq!(after[0].method, "GET", "the template is looked for first");
    assert!(
        after[1].method == "PUT" && after[1].path.starts_with("/_index_template/"),
        "and put back before any document"
    );
    assert_eq!(server.stored_ids().len(), 20);
    assert_eq!(rig.stats.template_installs.load(Ordering::Relaxed), 2);
}

#[test]
fn a_mapping_error_and_a_lone_413_are_dead_lettered_409_is_delivered() {
    let server = FaultServer::start(|request, _| {
        if !is_bulk(request) {
            return Reply::Bulk;
        }
        Reply::BulkExcept(vec![
            (id(1), 400, "document_parsing_exception"),
            (id(2), 400, "mapper_parsing_exception"),
            (id(3), 413, "request_entity_too_large"),
            (id(4), 409, "version_conflict_engine_exception"),
        ])
    });
    let rig = Shipping::start(&server.url, &documents(10), ShipOptions::default());
    assert!(rig.drained(PATIENCE));
    let dead: Vec<String> = rig
        .dead_letters()
        .iter()
        .map(|d| d["_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(dead, [id(1), id(2), id(3)]);
    let c = rig.counts();
    assert_eq!((c.delivered, c.dead_lettered), (7, 3));
    assert_eq!(rig.stats.duplicates.load(Ordering::Relaxed), 1);
    assert_adds_up(&rig);
}

#[test]
fn the_dead_letter_file_is_rotated_at_its_bound() {
    let server = FaultServer::start(|request, _| {
        if is_bulk(request) {
            Reply::Items(400, "document_parsing_exception")
        } else {
            Reply::Bulk
        }
    });
    let rig = Shipping::start(
        &server.url,
        &documents(200),
        ShipOptions {
            dead_letter_max_bytes: 4096,
            ..ShipOptions::default()
        },
    );
    assert!(rig.drained(PATIENCE));
    let path = rig.dead_letter_path().to_owned();
    let mut older = path.clone().into_os_string();
    older.push(".1");
    let current = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let rotated = std::fs::metadata(&older).unwrap().len();
    // One batch's lines may pass the bound before the next write rotates.
    assert!(current < 4096 + 25 * 400, "{current}");
    assert!(rotated < 4096 + 25 * 400, "{rotated}");
    assert!(rig.stats.dead_letter_rotations.load(Ordering::Relaxed) >= 2);
    assert_eq!(rig.counts().dead_lettered, 200);
}

#[test]
fn a_body_that_never_ends_is_cut_by_the_timeout_and_kept() {
    let server = FaultServer::start(|request, n| match n {
        1 if is_bulk(request) => Reply::Endless,
        _ => Reply::Bulk,
    });
    let rig = Shipping::start(
        &server.url,
        &documents(20),
        ShipOptions {
            timeout: Duration::from_millis(800),
            ..ShipOptions::default()
        },
    );
    assert!(rig.drained(PATIENCE), "delivered on the next try");
    assert_eq!(server.stored_ids().len(), 20);
    // Cut off (by the time bound), then sent again: the first answer settled nothing.
    assert_eq!(bulk_requests(&server), 2);
    assert_eq!(rig.stats.shipped.load(Ordering::Relaxed), 20);
    assert!(rig.dead_letters().is_empty());
}

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[test]
fn a_gigabyte_answer_is_not_read_whole() {
    let server = FaultServer::start(|request, _| {
        if is_bulk(request) {
            Reply::Huge(1 << 30)
        } else {
            Reply::Bulk
        }
    });
    let before = resident_bytes();
    let rig = Shipping::start(&server.url, &documents(20), ShipOptions::default());
    assert!(
        server.wait_until(PATIENCE, |requests, _| requests >= 3),
        "tried, and tried again"
    );
    let grown = resident_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "resident memory grew by {grown} bytes");
    assert_eq!(rig.spool.depth(), 20, "kept");
    assert_eq!(
        rig.stats.paused.load(Ordering::Relaxed),
        pause_code(Pause::Misrouted)
    );
}

#[test]
fn stopping_does_not_wait_for_a_hanging_upstream_and_keeps_the_spool() {
    let server = FaultServer::start(|request, _| {
        if is_bulk(request) {
            Reply::Hang
        } else {
            Reply::Bulk
        }
    });
    let mut rig = Shipping::start(
        &server.url,
        &documents(20),
        ShipOptions {
            timeout: Duration::from_secs(120),
            ..ShipOptions::default()
        },
    );
    assert!(server.wait_until(PATIENCE, |requests, _| requests >= 2));
    let started = Instant::now();
    let finished = rig.stop(Duration::from_millis(500));
    let took = started.elapsed();
    assert!(!finished, "the request is still hanging: abandoned");
    assert!(took < Duration::from_secs(5), "stopped in {took:?}");
    assert_eq!(
        rig.spool.depth(),
        20,
        "nothing acknowledged, everything kept"
    );
}

#[test]
fn the_counters_add_up_at_every_read_while_documents_move() {
    let server = FaultServer::start(|request, n| {
        if !is_bulk(request) {
            return Reply::Bulk;
        }
        match n % 4 {
            0 => Reply::BulkExcept(vec![(id(n), 400, "document_parsing_exception")]),
            1 => Reply::Status(503, String::new()),
            _ => Reply::Bulk,
        }
    });
    let rig = Shipping::start(&server.url, &documents(300), ShipOptions::default());
    let mut reads = 0;
    while !rig
        .spool
        .wait_until(Duration::from_millis(1), |depth| depth == 0)
    {
        assert_adds_up(&rig);
        reads += 1;
        assert!(reads < 1_000_000, "never drained");
    }
    assert_adds_up(&rig);
    assert_eq!(rig.counts().appended, 300);
}

//! The function registry proven on a simulated fleet: 50 `edge-agent` processes (each with
//! its own state directory and simulated sensor at speed) poll one registry served on
//! loopback. Publishing a module to 10 % swaps exactly the hashed cohort; raising it to
//! 100 % converges every agent on its first poll after the publish; a module that fails
//! probation is rolled back everywhere, reported, and remembered; a tampered manifest, a
//! signature by an untrusted key, tampered module bytes and a replayed older manifest are
//! refused everywhere and counted; a stopped registry changes nothing. Every check reads
//! the agent's own `/metrics` or its state directory. `FLEET_AGENTS` sets the fleet size
//! (the Makefile skips this test under qemu: 50 emulated processes would take an hour).

use std::path::Path;
use std::time::{Duration, Instant};

use edge_tests::fleet::{Fleet, FleetOptions, Publisher, View, in_cohort, module};
use edge_tests::sha256_hex;
use edge_tests::static_server::StaticServer;

const POLL_MS: u64 = 1000;
/// A failure guard, never a synchronisation: the fleet shares two cores with others.
const PATIENCE: Duration = Duration::from_secs(180);

#[test]
fn a_fleet_takes_signed_versions_by_cohort_rolls_back_and_refuses_tampering() {
    let count: usize = std::env::var("FLEET_AGENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let server = StaticServer::start();
    let publisher = Publisher::new();

    let base = module("v0", false);
    let base_path = dir.path().join("base.wasm");
    std::fs::write(&base_path, &base).unwrap();
    let sha_base = sha256_hex(&base);
    let v1 = module("v1", false);
    let sha_v1 = sha256_hex(&v1);
    let bad = module("bad", true);
    let sha_bad = sha256_hex(&bad);

    // Nothing published yet: every agent runs its file and waits.
    let registry = format!("{}/manifest.json", server.url);
    let fleet = Fleet::start(
        dir.path(),
        &FleetOptions {
            binary: Path::new(env!("CARGO_BIN_EXE_edge-agent")),
            count,
            function: &base_path,
            registry: &registry,
            public_key: &publisher.public_key(),
            poll_ms: POLL_MS,
            speed: "300",
        },
    );
    let until = |what: &str, done: &dyn Fn(usize, &View) -> bool| {
        let (views, took) = fleet.until(what, PATIENCE, done);
        println!("all agents {what} ({took:.1?})");
        views
    };
    until("wait for the registry", &|_, v| {
        v.state == "waiting" && v.errors >= 1 && v.function == sha_base
    });

    // v1 of the manifest: the module to 10 %. Exactly the hashed cohort takes it.
    let cohort: Vec<bool> = fleet
        .identities
        .iter()
        .map(|id| in_cohort(id, &sha_v1, 0.1))
        .collect();
    let taking = cohort.iter().filter(|c| **c).count();
    println!("cohort at 10 %: {taking} of {count}");
    if count >= 20 {
        assert!(taking > 0 && taking < count / 2, "{taking} of {count}");
    }
    let (old_manifest, old_signature) = publisher.publish(&server, 1, "v1.wasm", &v1, 0.1);
    let views = until("settle on manifest 1", &|n, v| {
        v.version == 1
            && if cohort[n] {
                v.state == "current"
            } else {
                v.state == "not_in_cohort"
            }
    });
    for (n, v) in views.iter().enumerate() {
        let expected = if cohort[n] { &sha_v1 } else { &sha_base };
        assert_eq!(&v.function, expected, "agent {n}");
    }

    // v2: the same module to 100 %. Every agent takes it at its first poll after the
    // publish: one 200 for the new manifest per agent, and 304s after it.
    let manifest_200_before = server.answers("/manifest.json", 200);
    publisher.publish(&server, 2, "v1.wasm", &v1, 1.0);
    let views = until("converge on v1", &|_, v| {
        v.version == 2 && v.function == sha_v1 && v.state == "current"
    });
    let manifest_200s = server.answers("/manifest.json", 200) - manifest_200_before;
    assert_eq!(
        manifest_200s, count as u64,
        "each agent read the new manifest exactly once"
    );
    assert!(views.iter().all(|v| v.swaps == 1), "{views:?}");
    assert_eq!(server.answers("/v1.wasm", 200), count as u64);

    // v3: a module that passes its canary and fails its probation. Every agent takes it,
    // rolls back to v1, reports it and remembers it.
    publisher.publish(&server, 3, "bad.wasm", &bad, 1.0);
    until("roll back the bad module", &|_, v| {
        v.version == 3 && v.state == "rolled_back" && v.rollbacks == 1 && v.function == sha_v1
    });
    for state in &fleet.state_dirs {
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(state.join("registry.json")).unwrap()).unwrap();
        assert_eq!(saved["highest_version"], 3);
        assert_eq!(saved["failed"], serde_json::json!([sha_bad]));
        assert_eq!(saved["accepted"]["sha256"], sha_v1.as_str());
    }
    // v4 names it again: not tried again anywhere.
    publisher.publish(&server, 4, "bad.wasm", &bad, 1.0);
    until("decline the failed module again", &|_, v| {
        v.version == 4 && v.state == "rolled_back" && v.rollbacks == 1 && v.function == sha_v1
    });

    // Tampering, each refused everywhere and counted once; v1 keeps running.
    let other = module("evil", false);
    server.put("/evil.wasm", &other);
    let refused = |n: u64, version: u64| {
        let sha_v1 = sha_v1.clone();
        move |_: usize, v: &View| {
            v.refused == n && v.version == version && v.function == sha_v1 && v.state == "refused"
        }
    };
    // (a) A manifest changed after signing: the v4 signature over new contents.
    server.put(
        "/manifest.json",
        &Publisher::manifest(5, "evil.wasm", &other, 1.0),
    );
    until("refuse a manifest changed after signing", &refused(1, 4));
    // (b) Signed by a key the agents do not trust.
    let stranger = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let forged = Publisher::manifest(6, "evil.wasm", &other, 1.0);
    server.put(
        "/manifest.json.minisig",
        &Publisher::sign(&stranger, &forged),
    );
    server.put("/manifest.json", &forged);
    until("refuse an untrusted signature", &refused(2, 4));
    // (c) A correctly signed manifest whose module was replaced on the server.
    let mut swapped = other.clone();
    swapped.extend_from_slice(b"\0\x04junk");
    server.put("/evil.wasm", &swapped);
    let genuine = Publisher::manifest(7, "evil.wasm", &other, 1.0);
    server.put(
        "/manifest.json.minisig",
        &Publisher::sign(&publisher.key, &genuine),
    );
    server.put("/manifest.json", &genuine);
    until("refuse module bytes that do not match", &refused(3, 7));
    // (d) The old, validly signed v1 manifest replayed.
    server.put("/manifest.json.minisig", &old_signature);
    server.put("/manifest.json", &old_manifest);
    let views = until("refuse a replayed older manifest", &refused(4, 7));
    assert!(
        views.iter().all(|v| v.swaps == 2),
        "only v1 and the bad module were swapped in: {views:?}"
    );

    // The registry goes away: requests fail, nothing else changes.
    let before = fleet.views();
    drop(server);
    let after = until("notice the registry is gone", &|n, v| {
        v.errors >= before[n].errors + 2
    });
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            (
                &a.state,
                &a.function,
                a.version,
                a.refused,
                a.rollbacks,
                a.swaps
            ),
            (
                &b.state,
                &b.function,
                b.version,
                b.refused,
                b.rollbacks,
                b.swaps
            )
        );
    }

    let stopping = Instant::now();
    fleet.stop().unwrap();
    println!("stopped in {:.1?}", stopping.elapsed());
}

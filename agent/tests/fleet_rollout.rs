//! The function registry proven on a simulated fleet: 50 `edge-agent` processes (each with
//! its own state directory and simulated sensor at speed) poll one registry served on
//! loopback. Publishing a module to 10 % swaps exactly the hashed cohort; raising it to
//! 100 % converges every agent on its first poll after the publish; a module that fails
//! probation is rolled back everywhere, reported, and remembered; a tampered manifest, a
//! signature by an untrusted key, tampered module bytes and a replayed older manifest are
//! refused everywhere and counted; a stopped registry changes nothing. Every check reads
//! the agent's own `/metrics` or its state directory. `FLEET_AGENTS` sets the fleet size
//! (the Makefile skips this test under qemu: 50 emulated processes would take an hour).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use edge_tests::agent::{Agent, http_get, write_test_config};
use edge_tests::sha256_hex;
use edge_tests::static_server::StaticServer;

const POLL_MS: u64 = 1000;
const GROUP: &str = "lab";
/// A failure guard, never a synchronisation: the fleet shares two cores with others.
const PATIENCE: Duration = Duration::from_secs(180);

/// An edge-ABI module answering "no anomaly" for windows of 64; `marker` makes its bytes
/// (and sha256) its own. With `fail_after_first`, every call after the first on an
/// instance traps: it passes its canary and then fails its probation.
fn module(marker: &str, fail_after_first: bool) -> Vec<u8> {
    let guard = if fail_after_first {
        "(if (global.get $calls) (then unreachable)) (global.set $calls (i32.const 1))"
    } else {
        ""
    };
    wat::parse_str(format!(
        r#"(module
          (memory (export "memory") 2)
          (global $calls (mut i32) (i32.const 0))
          (data (i32.const 4096) "\00\01")
          (data (i32.const 8192) "\00\40")
          (data (i32.const 12288) "{marker}")
          (func (export "edge_abi_version") (result i32) i32.const 1)
          (func (export "alloc") (param i32) (result i32) i32.const 16384)
          (func (export "dealloc") (param i32 i32))
          (func (export "init") (param i32 i32) (result i64) i64.const 0x0000100000000002)
          (func (export "execute") (param i32 i32) (result i64)
            {guard}
            i64.const 0x0000200000000082))"#
    ))
    .unwrap()
}

struct Publisher {
    key: minisign::KeyPair,
}

impl Publisher {
    fn manifest(version: u64, name: &str, bytes: &[u8], fraction: f64) -> Vec<u8> {
        serde_json::to_vec_pretty(&serde_json::json!({
            "format": 1,
            "version": version,
            "groups": {
                GROUP: {
                    "module": {"url": name, "sha256": sha256_hex(bytes), "size": bytes.len()},
                    "params": {"mode": "none"},
                    "min_window": 1,
                    "fraction": fraction,
                },
                "elsewhere": {
                    "module": {"url": "other.wasm", "sha256": "00".repeat(32), "size": 1},
                },
            },
        }))
        .unwrap()
    }

    fn sign(key: &minisign::KeyPair, bytes: &[u8]) -> Vec<u8> {
        minisign::sign(Some(&key.pk), &key.sk, bytes, None, None)
            .unwrap()
            .to_string()
            .into_bytes()
    }

    /// Puts the module and a signed manifest naming it on `server`; answers both files.
    fn publish(
        &self,
        server: &StaticServer,
        version: u64,
        name: &str,
        bytes: &[u8],
        fraction: f64,
    ) -> (Vec<u8>, Vec<u8>) {
        server.put(&format!("/{name}"), bytes);
        let manifest = Self::manifest(version, name, bytes, fraction);
        let signature = Self::sign(&self.key, &manifest);
        server.put("/manifest.json.minisig", &signature);
        server.put("/manifest.json", &manifest);
        (manifest, signature)
    }
}

/// One agent's view, from its `/metrics`.
#[derive(Clone, Debug, Default)]
struct View {
    state: String,
    function: String,
    version: u64,
    refused: u64,
    rollbacks: u64,
    requests: u64,
    not_modified: u64,
    errors: u64,
    swaps: u64,
}

fn view(addr: SocketAddr) -> View {
    let (status, _, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    let mut view = View::default();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let number = || value.parse::<f64>().unwrap_or(0.0) as u64;
        if let Some(state) = series
            .strip_prefix("edge_agent_registry_state{state=\"")
            .and_then(|s| s.strip_suffix("\"}"))
        {
            if value == "1" {
                view.state = state.to_owned();
            }
        } else if let Some(sha) = series
            .strip_prefix("edge_agent_function_info{sha256=\"")
            .and_then(|s| s.strip_suffix("\"}"))
        {
            view.function = sha.to_owned();
        } else {
            match series {
                "edge_agent_registry_manifest_version" => view.version = number(),
                "edge_agent_registry_refused_total" => view.refused = number(),
                "edge_agent_registry_rollbacks_total" => view.rollbacks = number(),
                "edge_agent_registry_requests_total" => view.requests = number(),
                "edge_agent_registry_not_modified_total" => view.not_modified = number(),
                "edge_agent_registry_errors_total" => view.errors = number(),
                "edge_agent_function_swaps_total" => view.swaps = number(),
                _ => {}
            }
        }
    }
    view
}

struct Fleet {
    agents: Vec<Agent>,
    addrs: Vec<SocketAddr>,
    identities: Vec<String>,
    states: Vec<std::path::PathBuf>,
}

impl Fleet {
    fn views(&self) -> Vec<View> {
        self.addrs.iter().map(|a| view(*a)).collect()
    }

    /// Asks every agent's `/metrics` until `done(agent, view)` holds for all of them.
    fn until(&self, what: &str, done: impl Fn(usize, &View) -> bool) -> Vec<View> {
        let started = Instant::now();
        let deadline = started + PATIENCE;
        loop {
            let views = self.views();
            let waiting: Vec<usize> = (0..views.len()).filter(|&n| !done(n, &views[n])).collect();
            if waiting.is_empty() {
                println!("all agents {what} ({:.1?})", started.elapsed());
                return views;
            }
            assert!(
                Instant::now() < deadline,
                "{} agents never {what}; e.g. agent {}: {:?}",
                waiting.len(),
                waiting[0],
                views[waiting[0]]
            );
            // Metrics servers cannot notify: the deadline above is the guard.
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The documented cohort rule, computed here from its definition.
fn in_cohort(identity: &str, module_sha: &str, fraction: f64) -> bool {
    let digest = sha256_hex(format!("{identity}\n{GROUP}\n{module_sha}").as_bytes());
    let point = u64::from_str_radix(&digest[..16], 16).unwrap() as f64 / 2f64.powi(64);
    point < fraction
}

fn start_fleet(dir: &Path, count: usize, base: &Path, registry: &str, public: &str) -> Fleet {
    let mut fleet = Fleet {
        agents: Vec::new(),
        addrs: Vec::new(),
        identities: Vec::new(),
        states: Vec::new(),
    };
    for n in 0..count {
        let home = dir.join(format!("agent-{n}"));
        std::fs::create_dir_all(&home).unwrap();
        let tail = format!(
            "\n[output]\npath = \"/dev/null\"\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n\n[registry]\nurl = \"{registry}/manifest.json\"\ngroup = \"{GROUP}\"\npublic_keys = [\"{public}\"]\npoll_interval_ms = {POLL_MS}\nretry_max_ms = 2000\ntimeout_ms = 5000\n"
        );
        let config =
            write_test_config(&home, base, "[function.params]\nmode = \"none\"\n\n", &tail);
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("test-host", &format!("fleet-{n}"));
        std::fs::write(&config, text).unwrap();
        fleet.agents.push(Agent::simulated(
            Path::new(env!("CARGO_BIN_EXE_edge-agent")),
            &config,
            "300",
            &[],
        ));
        fleet.identities.push(format!("fleet-{n}/kitchen"));
        fleet.states.push(home.join("state"));
    }
    for agent in &mut fleet.agents {
        fleet.addrs.push(agent.metrics_addr());
    }
    fleet
}

#[test]
fn a_fleet_takes_signed_versions_by_cohort_rolls_back_and_refuses_tampering() {
    let count: usize = std::env::var("FLEET_AGENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let server = StaticServer::start();
    let publisher = Publisher {
        key: minisign::KeyPair::generate_unencrypted_keypair().unwrap(),
    };
    let public = publisher.key.pk.to_base64();

    let base = module("v0", false);
    let base_path = dir.path().join("base.wasm");
    std::fs::write(&base_path, &base).unwrap();
    let sha_base = sha256_hex(&base);
    let v1 = module("v1", false);
    let sha_v1 = sha256_hex(&v1);
    let bad = module("bad", true);
    let sha_bad = sha256_hex(&bad);

    // Nothing published yet: every agent runs its file and waits.
    let starting = Instant::now();
    let fleet = start_fleet(dir.path(), count, &base_path, &server.url, &public);
    println!("{count} agents started in {:.1?}", starting.elapsed());
    fleet.until("wait for the registry", |_, v| {
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
    let views = fleet.until("settle on manifest 1", |n, v| {
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
    let published = Instant::now();
    publisher.publish(&server, 2, "v1.wasm", &v1, 1.0);
    let views = fleet.until("converge on v1", |_, v| {
        v.version == 2 && v.function == sha_v1 && v.state == "current"
    });
    let converged = published.elapsed();
    let manifest_200s = server.answers("/manifest.json", 200) - manifest_200_before;
    assert_eq!(
        manifest_200s, count as u64,
        "each agent read the new manifest exactly once"
    );
    // The agents of the 10 % swapped once, the others once now.
    assert!(views.iter().all(|v| v.swaps == 1), "{views:?}");
    println!(
        "converged from 10 % to 100 % in {converged:.1?} (poll interval {POLL_MS} ms), {} module downloads",
        server.answers("/v1.wasm", 200)
    );
    assert_eq!(server.answers("/v1.wasm", 200), count as u64);

    // v3: a module that passes its canary and fails its probation. Every agent takes it,
    // rolls back to v1, reports it and remembers it.
    publisher.publish(&server, 3, "bad.wasm", &bad, 1.0);
    fleet.until("roll back the bad module", |_, v| {
        v.version == 3 && v.state == "rolled_back" && v.rollbacks == 1 && v.function == sha_v1
    });
    for state in &fleet.states {
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(state.join("registry.json")).unwrap()).unwrap();
        assert_eq!(saved["highest_version"], 3);
        assert_eq!(saved["failed"], serde_json::json!([sha_bad]));
        assert_eq!(saved["accepted"]["sha256"], sha_v1.as_str());
    }
    // v4 names it again: not tried again anywhere.
    publisher.publish(&server, 4, "bad.wasm", &bad, 1.0);
    fleet.until("decline the failed module again", |_, v| {
        v.version == 4 && v.state == "rolled_back" && v.rollbacks == 1 && v.function == sha_v1
    });

    // Tampering, each refused everywhere and counted once; v1 keeps running.
    let other = module("evil", false);
    server.put("/evil.wasm", &other);
    // (a) A manifest changed after signing: the v4 signature over v5 contents.
    let forged = Publisher::manifest(5, "evil.wasm", &other, 1.0);
    server.put("/manifest.json", &forged);
    let sha_kept = sha_v1.clone();
    let refused = |n: u64| {
        let sha_v1 = sha_kept.clone();
        move |_: usize, v: &View| {
            v.refused == n && v.version == 4 && v.function == sha_v1 && v.state == "refused"
        }
    };
    fleet.until("refuse a manifest changed after signing", refused(1));
    // (b) Signed by a key the agents do not trust.
    let stranger = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let forged = Publisher::manifest(6, "evil.wasm", &other, 1.0);
    server.put(
        "/manifest.json.minisig",
        &Publisher::sign(&stranger, &forged),
    );
    server.put("/manifest.json", &forged);
    fleet.until("refuse an untrusted signature", refused(2));
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
    let seen = fleet.until("refuse module bytes that do not match", |_, v| {
        v.refused == 3 && v.version == 7 && v.function == sha_v1 && v.state == "refused"
    });
    // (d) The old, validly signed v1 manifest replayed.
    server.put("/manifest.json.minisig", &old_signature);
    server.put("/manifest.json", &old_manifest);
    fleet.until("refuse a replayed older manifest", |_, v| {
        v.refused == 4 && v.version == 7 && v.function == sha_v1 && v.state == "refused"
    });
    assert!(
        seen.iter().all(|v| v.swaps == 2),
        "only v1 and the bad module swapped in"
    );

    // The registry goes away: requests fail, nothing else changes.
    let before = fleet.views();
    drop(server);
    let after = fleet.until("notice the registry is gone", |n, v| {
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

    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for v in &after {
        *totals.entry("requests").or_default() += v.requests;
        *totals.entry("not_modified").or_default() += v.not_modified;
    }
    println!("manifest requests over the run: {totals:?}");
    // All told to stop at once: they stop side by side, not one after another.
    let stopping = Instant::now();
    for agent in &fleet.agents {
        agent.signal("TERM");
    }
    for agent in fleet.agents {
        let (status, _, logs) = agent.stop();
        assert!(status.success(), "{}", logs.join("\n"));
    }
    println!("stopped in {:.1?}", stopping.elapsed());
}

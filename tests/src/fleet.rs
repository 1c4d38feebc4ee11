//! A simulated fleet for the function registry's test (`agent/tests/fleet_rollout.rs`)
//! and benchmark (`agent/benches/fleet.rs`): `edge-agent` processes with their own state
//! directories and simulated sensors, all polling one registry; what each one says on its
//! `/metrics` ([`View`]); tiny wat modules with a sha256 of their own; a publisher that
//! signs manifests with minisign as an operator would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::agent::{Agent, http_get, write_test_config};
use crate::sha256_hex;
use crate::static_server::StaticServer;

/// The group every agent of the fleet is in.
pub const GROUP: &str = "lab";

/// An edge-ABI module answering "no anomaly" for windows of exactly 64 samples (the test
/// configuration's); `marker` makes its bytes (and sha256) its own. With
/// `fail_after_first`, every call after the first on an instance traps: it passes its
/// canary and then fails its probation.
pub fn module(marker: &str, fail_after_first: bool) -> Vec<u8> {
    let guard = if fail_after_first {
        "(if (global.get $calls) (then unreachable)) (global.set $calls (i32.const 1))"
    } else {
        ""
    };
    // init answers Ok(min window 1) at 4096; execute answers Ok(64 × (false, None)) at
    // 8192: postcard's tag, length 64, then 128 zero bytes of the zeroed memory.
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
    .expect("the fleet's module is valid wat")
}

/// Signs manifests as an operator does with `minisign -Sm`.
pub struct Publisher {
    pub key: minisign::KeyPair,
}

impl Default for Publisher {
    fn default() -> Self {
        Self::new()
    }
}

impl Publisher {
    pub fn new() -> Self {
        Self {
            key: minisign::KeyPair::generate_unencrypted_keypair().expect("a key pair"),
        }
    }

    /// The public key as the agents' configuration takes it.
    pub fn public_key(&self) -> String {
        self.key.pk.to_base64()
    }

    /// A manifest naming `bytes` (at `name`, beside the manifest) for [`GROUP`], and a
    /// module for another group that this fleet never fetches.
    pub fn manifest(version: u64, name: &str, bytes: &[u8], fraction: f64) -> Vec<u8> {
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
        .expect("JSON")
    }

    pub fn sign(key: &minisign::KeyPair, bytes: &[u8]) -> Vec<u8> {
        minisign::sign(Some(&key.pk), &key.sk, bytes, None, None)
            .expect("minisign signs")
            .to_string()
            .into_bytes()
    }

    /// Puts the module, then the signature, then the manifest on `server` (the order the
    /// README tells operators); answers the manifest and its signature.
    pub fn publish(
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

/// One agent as its `/metrics` shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct View {
    pub state: String,
    pub function: String,
    pub version: u64,
    pub refused: u64,
    pub rollbacks: u64,
    pub requests: u64,
    pub not_modified: u64,
    pub errors: u64,
    pub swaps: u64,
}

pub fn view(addr: SocketAddr) -> View {
    let (status, _, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "/metrics answers");
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

/// The documented cohort rule, computed from its definition: the first 8 bytes of
/// sha256(`identity` \n group \n module sha256) over 2^64, under the fraction.
pub fn in_cohort(identity: &str, module_sha: &str, fraction: f64) -> bool {
    let digest = sha256_hex(format!("{identity}\n{GROUP}\n{module_sha}").as_bytes());
    let point = u64::from_str_radix(&digest[..16], 16).expect("hex") as f64 / 2f64.powi(64);
    point < fraction
}

/// The fleet's agents, stopped (side by side) when dropped.
pub struct Fleet {
    pub agents: Vec<Agent>,
    pub addrs: Vec<SocketAddr>,
    /// `host_id/sensor_id` of each, as the cohort hash takes it.
    pub identities: Vec<String>,
    pub state_dirs: Vec<PathBuf>,
}

/// How a fleet is started.
pub struct FleetOptions<'a> {
    /// The `edge-agent` binary (`env!("CARGO_BIN_EXE_edge-agent")` in a test or bench).
    pub binary: &'a Path,
    pub count: usize,
    /// The function file each agent starts with.
    pub function: &'a Path,
    /// The manifest's URL.
    pub registry: &'a str,
    pub public_key: &'a str,
    pub poll_ms: u64,
    /// The simulated clock's speed-up.
    pub speed: &'a str,
}

impl Fleet {
    /// Starts the agents under `dir` (one folder each) and waits for their metrics servers.
    pub fn start(dir: &Path, options: &FleetOptions<'_>) -> Self {
        let mut fleet = Self {
            agents: Vec::new(),
            addrs: Vec::new(),
            identities: Vec::new(),
            state_dirs: Vec::new(),
        };
        for n in 0..options.count {
            let home = dir.join(format!("agent-{n}"));
            std::fs::create_dir_all(&home).expect("the agent's folder");
            let tail = format!(
                "\n[output]\npath = \"/dev/null\"\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n\n[registry]\nurl = \"{}\"\ngroup = \"{GROUP}\"\npublic_keys = [\"{}\"]\npoll_interval_ms = {}\nretry_max_ms = {}\ntimeout_ms = 5000\n",
                options.registry,
                options.public_key,
                options.poll_ms,
                options.poll_ms * 2
            );
            let config = write_test_config(
                &home,
                options.function,
                "[function.params]\nmode = \"none\"\n\n",
                &tail,
            );
            let text = std::fs::read_to_string(&config)
                .expect("the config")
                .replace("test-host", &format!("fleet-{n}"));
            std::fs::write(&config, text).expect("the config is written");
            fleet.agents.push(Agent::simulated(
                options.binary,
                &config,
                options.speed,
                &[],
            ));
            fleet.identities.push(format!("fleet-{n}/kitchen"));
            fleet.state_dirs.push(home.join("state"));
        }
        for agent in &mut fleet.agents {
            fleet.addrs.push(agent.metrics_addr());
        }
        fleet
    }

    pub fn views(&self) -> Vec<View> {
        self.addrs.iter().map(|a| view(*a)).collect()
    }

    /// Asks every agent's `/metrics` until `done(agent, view)` holds for all of them, up
    /// to `patience`; answers the views and how long it took.
    pub fn until(
        &self,
        what: &str,
        patience: Duration,
        done: impl Fn(usize, &View) -> bool,
    ) -> (Vec<View>, Duration) {
        let started = Instant::now();
        loop {
            let views = self.views();
            let waiting: Vec<usize> = (0..views.len()).filter(|&n| !done(n, &views[n])).collect();
            if waiting.is_empty() {
                return (views, started.elapsed());
            }
            assert!(
                started.elapsed() < patience,
                "{} agents never {what}; e.g. agent {}: {:?}",
                waiting.len(),
                waiting[0],
                views[waiting[0]]
            );
            // Metrics servers cannot notify: the patience above is the guard.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM to all, then waits for each: they stop side by side. Answers whether every
    /// one exited 0, with the logs of those that did not.
    pub fn stop(self) -> Result<(), String> {
        for agent in &self.agents {
            agent.signal("TERM");
        }
        let mut failed = Vec::new();
        for agent in self.agents {
            let (status, _, logs) = agent.stop();
            if !status.success() {
                failed.push(logs.join("\n"));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("\n----\n"))
        }
    }
}

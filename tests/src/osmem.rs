//! A real ES-API-compatible server for the tests: `osmem-server` from PyPI (an in-memory
//! imitation of OpenSearch 3.x, a static binary inside the wheel), installed once into a
//! virtualenv under `target/`, started on 127.0.0.1 on a free port, stopped by pid.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use crate::venv::python_venv;

/// Pinned: the tests rely on its behaviour (see shared/reference/ELASTICSEARCH_BULK.md §5).
pub const OSMEM_VERSION: &str = "0.1.6";

/// The server binary, installing the wheel into `target/osmem-venv` on first use. A file
/// lock keeps parallel test processes from installing it twice at once.
pub fn osmem_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let venv = python_venv(
            "osmem-venv",
            &[&format!("osmem-server=={OSMEM_VERSION}")],
            |venv| find_binary(venv).is_some(),
        );
        find_binary(&venv).expect("the osmem-server wheel carries its binary")
    })
}

fn find_binary(venv: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    lib.filter_map(Result::ok)
        .map(|entry| {
            entry
                .path()
                .join("site-packages/osmem_server/bin/osmem-server")
        })
        .find(|path| path.is_file())
}

/// A running osmem-server, killed when dropped.
pub struct Osmem {
    child: Child,
    pub url: String,
    http: reqwest::blocking::Client,
}

impl Osmem {
    pub fn start() -> Self {
        let mut child = Command::new(osmem_binary())
            .args(["--addr", "127.0.0.1:0", "--no-ja", "--no-stdin-watch"])
            .args(["--parent-pid", &std::process::id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("osmem-server starts");
        let stdout = child.stdout.take().expect("piped");
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("osmem-server says where it listens");
        let ready: Value = serde_json::from_str(&first).expect("a JSON ready line");
        let url = ready["url"].as_str().expect("a url").to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        // reqwest is built without a default crypto provider (see the agent's Cargo.toml).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            child,
            url,
            http: reqwest::blocking::Client::new(),
        }
    }

    pub fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .expect("osmem answers");
        serde_json::from_str(&response.text().expect("a body")).expect("JSON")
    }

    pub fn put(&self, path: &str, body: &Value) -> Value {
        let response = self
            .http
            .put(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .expect("osmem answers");
        serde_json::from_str(&response.text().expect("a body")).expect("JSON")
    }

    /// Documents in `index` (0 when it does not exist).
    pub fn count(&self, index: &str) -> u64 {
        self.get(&format!("/{index}/_count"))["count"]
            .as_u64()
            .unwrap_or(0)
    }

    /// The `_id` of every document in `index`.
    pub fn ids(&self, index: &str) -> Vec<String> {
        let hits = self.get(&format!("/{index}/_search?size=10000&_source=false"));
        hits["hits"]["hits"]
            .as_array()
            .map(|hits| {
                hits.iter()
                    .filter_map(|h| h["_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Osmem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

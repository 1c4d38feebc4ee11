//! A shipper draining a spool into a server, for the shipping tests and benchmark: the
//! agent's own `Spool`, `Client` and `Shipper`, started on given documents and stopped
//! when dropped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use edge_agent::config::ElasticsearchSection;
use edge_agent::ship::{Auth, Client, ShipStats, Shipper, ShipperHandle, ShipperSettings, Stopper};
use edge_agent::spool::SpoolCounts;
use edge_agent::spool::{Spool, WhenFull};
use serde_json::Value;

/// What differs between the tests; everything else is the agent's default.
pub struct ShipOptions {
    pub index: String,
    pub install_template: bool,
    pub auth: Auth,
    pub ca_pem: Option<String>,
    pub gzip: bool,
    pub batch_max_docs: usize,
    pub timeout: Duration,
    /// Retries in milliseconds rather than the production backoff, and no batching delay.
    pub fast: bool,
    /// The dead-letter file's bound before rotation.
    pub dead_letter_max_bytes: u64,
    /// Fleet-safe catch-up: the drain cap (0: none) and the first retry's spread (none by
    /// default here, so the other tests' timings are the backoff's alone).
    pub drain_max_docs_per_sec: u32,
    pub retry_spread: Duration,
}

impl Default for ShipOptions {
    fn default() -> Self {
        Self {
            index: "edge-agent".into(),
            install_template: true,
            auth: Auth::None,
            ca_pem: None,
            gzip: false,
            batch_max_docs: 25,
            timeout: Duration::from_secs(5),
            fast: true,
            dead_letter_max_bytes: 16 << 20,
            drain_max_docs_per_sec: 0,
            retry_spread: Duration::ZERO,
        }
    }
}

pub struct Shipping {
    pub spool: Arc<Spool>,
    pub stats: Arc<ShipStats>,
    shipper: Option<ShipperHandle>,
    dead_letter: PathBuf,
    _dir: tempfile::TempDir,
}

impl Shipping {
    /// Spools `documents` `(id, JSON)`, a window of 60 per commit, then starts shipping.
    pub fn start(url: &str, documents: &[(String, Vec<u8>)], options: ShipOptions) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let spool = Arc::new(
            Spool::open(
                &dir.path().join("spool.redb"),
                1 << 30,
                WhenFull::DropOldest,
            )
            .expect("the spool opens"),
        );
        for window in documents.chunks(60) {
            spool.append(window).expect("append");
        }
        let client = Client::new(
            url,
            options.auth,
            options.ca_pem.as_ref().map(|pem| pem.as_bytes()),
            options.gzip,
            options.timeout,
        )
        .expect("the client builds");
        let defaults = ElasticsearchSection::default().shipper_settings(dir.path());
        let mut settings = ShipperSettings {
            index: options.index,
            install_template: options.install_template,
            batch_max_docs: options.batch_max_docs,
            dead_letter_max_bytes: options.dead_letter_max_bytes,
            drain_max_docs_per_sec: options.drain_max_docs_per_sec,
            retry_spread: options.retry_spread,
            ..defaults
        };
        if options.fast {
            settings.batch_max_delay = Duration::ZERO;
            settings.retry_initial = Duration::from_millis(10);
            settings.retry_max = Duration::from_millis(50);
            settings.auth_retry = Duration::from_millis(100);
        }
        let dead_letter = settings.dead_letter.clone();
        let stats = Arc::new(ShipStats::default());
        let stopper = Arc::new(Stopper::default());
        let shipper = Shipper::new(client, spool.clone(), settings, stats.clone(), stopper)
            .spawn()
            .expect("the shipper starts");
        Self {
            spool,
            stats,
            shipper: Some(shipper),
            dead_letter,
            _dir: dir,
        }
    }

    /// Waits until the spool is empty; answers whether it emptied within `timeout`.
    pub fn drained(&self, timeout: Duration) -> bool {
        self.spool.wait_until(timeout, |depth| depth == 0)
    }

    /// The spool's counters, read together.
    pub fn counts(&self) -> SpoolCounts {
        self.spool.stats().snapshot()
    }

    /// Stops the shipper, giving it `grace`; answers whether it stopped within it.
    pub fn stop(&mut self, grace: Duration) -> bool {
        self.spool.wake();
        self.shipper
            .take()
            .is_none_or(|shipper| shipper.stop(grace))
    }

    pub fn dead_letter_path(&self) -> &std::path::Path {
        &self.dead_letter
    }

    /// The dead-letter file's lines.
    pub fn dead_letters(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.dead_letter)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

impl Drop for Shipping {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(30));
    }
}

//! The spool and the thread draining it to Elasticsearch: opened, started, said in the
//! status line, and stopped within what is left of the stop's time.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use log::{info, warn};

use super::AgentError;
use crate::config::{AgentConfig, ElasticsearchSection, ShipWhat};
use crate::fleet::FleetStats;
use crate::ship::{Auth, Client, ShipStats, Shipper, ShipperHandle, Stopper};
use crate::spool::Spool;

/// How long shipping may take to stop before an in-flight request is abandoned (its
/// documents stay spooled): well within the unit's TimeoutStopSec (20 s).
const SHIPPER_GRACE: Duration = Duration::from_secs(5);
/// What the shipper is given at the least, however long the pipeline took to drain: time
/// to finish a request that is just being answered.
const SHIPPER_LAST_WAIT: Duration = Duration::from_millis(500);

/// The spool and the thread draining it.
pub struct Upstream {
    pub spool: Arc<Spool>,
    pub only_anomalies: bool,
    pub stats: Arc<ShipStats>,
    shipper: ShipperHandle,
    /// The status reporter's counters (zero while it does not run).
    pub fleet: Arc<FleetStats>,
}

impl Upstream {
    /// Opens the spool (degraded, never failing, when the disk refuses) and starts the
    /// shipper. The configuration was checked whole before: its files are there.
    pub fn start(config: &AgentConfig, es: &ElasticsearchSection) -> Result<Self, AgentError> {
        let spool_path = config.spool_path();
        let spool = Arc::new(Spool::open_or_degraded(
            &spool_path,
            config.spool.max_bytes(),
            config.spool.when_full,
        ));
        let auth = Auth::resolve(
            es.username.as_deref(),
            es.password.as_deref(),
            es.password_file.as_deref(),
            es.api_key.as_deref(),
            es.api_key_file.as_deref(),
            |name| std::env::var(name).ok(),
        )
        .map_err(AgentError::stage("Elasticsearch credentials"))?;
        let ca = match &es.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(AgentError::stage(format!(
                "cannot read the CA file {}",
                path.display()
            )))?),
            None => None,
        };
        let client = Client::new(
            &es.url,
            auth,
            ca.as_deref(),
            es.gzip,
            Duration::from_millis(es.timeout_ms),
        )
        .map_err(AgentError::start)?;
        let mut settings = es.shipper_settings(&config.sensor.state_dir);
        config.fleet.apply(&mut settings);
        let stats = Arc::new(ShipStats::default());
        let stopper = Arc::new(Stopper::default());
        let shipper = Shipper::new(client, spool.clone(), settings, stats.clone(), stopper)
            .spawn()
            .map_err(AgentError::start)?;
        info!(
            "shipping to {} index {} ({} queued in {})",
            es.display_url(),
            es.index,
            spool.depth(),
            spool_path.display()
        );
        Ok(Self {
            spool,
            only_anomalies: es.ship == ShipWhat::Anomalies,
            stats,
            shipper,
            fleet: Arc::new(FleetStats::default()),
        })
    }

    /// Shipping's part of the status line.
    pub fn status(&self) -> String {
        let spool = self.spool.stats().snapshot();
        let disk = if spool.degraded {
            format!(
                ", DISK REFUSES WRITES ({} verdicts in memory)",
                spool.pending
            )
        } else {
            String::new()
        };
        format!(
            ", {} shipped, {} queued, {} dead-lettered, {} dropped{disk}",
            self.stats.shipped.load(Ordering::Relaxed),
            spool.depth,
            spool.dead_lettered,
            spool.dropped,
        )
    }

    /// Stops shipping whatever upstream does; whatever is not acknowledged stays in the
    /// spool. The shipper kept shipping while the pipeline drained since `stopping`: a
    /// request hanging since then has had that time already, so the graces overlap rather
    /// than add up.
    pub fn stop(self, stopping: Instant) {
        let grace = SHIPPER_GRACE
            .saturating_sub(stopping.elapsed())
            .max(SHIPPER_LAST_WAIT);
        self.spool.wake();
        if !self.shipper.stop(grace) {
            warn!(
                "a request to Elasticsearch is still in flight at the stop: abandoned, its documents stay in the spool"
            );
        }
        let spool = self.spool.stats().snapshot();
        info!(
            "shipping stopped: {} shipped, {} already there, {} left in the spool",
            self.stats.shipped.load(Ordering::Relaxed),
            self.stats.duplicates.load(Ordering::Relaxed),
            spool.depth.saturating_add(spool.pending)
        );
    }
}

//! The registry poller: one thread that asks for the manifest (conditionally, at a
//! jittered interval, backing off on errors), believes it only once its signature verifies
//! and its version has not gone down, and, when this agent's group names a module this
//! agent has not run, has not seen fail, and whose cohort includes this agent, fetches it,
//! checks it against the signed sha256 and size, and hands it to the pipeline as a swap
//! candidate, as the file watcher does. It then watches [`SwapStats`]' outcomes to learn
//! whether the pipeline's canary and probation passed it (kept, [`RolloutState::Current`])
//! or not (rolled back, remembered, never tried again here). Whatever the registry does,
//! the agent keeps running what it runs; every decision is in [`RolloutCell`].

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use edge_function::Params;
use log::{error, info, warn};

use super::manifest::{
    MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES, TrustedKeys, cohort_point, in_cohort, sha256_hex,
    verify,
};
use super::source::{Fetched, Location, Source, Validators};
use super::state::{Accepted, Persisted};
use super::{RegistryError, RegistrySection, RolloutCell, RolloutState};
use crate::function::last_good::LastGood;
use crate::function::{FunctionHost, FunctionModule, Limits, OutcomeKind, SwapStats};
use crate::support::backoff::{Backoff, Jitter};
use crate::support::log_rate::LogRate;
use crate::support::text::{short_sha, untrusted};
use crate::support::wake::{Stop, Wake};

/// How often the poller looks at the pipeline's verdict on a module it handed over.
const OUTCOME_TICK: Duration = Duration::from_millis(250);
/// The first poll after a start comes within this (or the poll interval, if shorter).
const FIRST_POLL_SPREAD: Duration = Duration::from_secs(30);

/// Everything the poller needs from the configuration.
#[derive(Clone, Debug)]
pub struct PollerConfig {
    pub registry: RegistrySection,
    /// `host_id/sensor_id`: what the cohort hash is drawn from.
    pub identity: String,
    pub state_dir: PathBuf,
    /// The configured window size: an entry needing longer windows is refused.
    pub window_size: usize,
    pub limits: Limits,
}

/// The running poller; dropping it stops the thread.
pub struct Poller {
    stop: Arc<Stop>,
    done: Arc<Wake>,
    thread: Option<JoinHandle<()>>,
}

/// How long a stop waits for a request in flight (up to `timeout_ms`) before leaving the
/// thread to end with the process: the unit's stop timeout is for the spool and shipper.
const STOP_GRACE: Duration = Duration::from_millis(500);

impl Poller {
    /// Starts polling. Before any request it hands over the module it last took from the
    /// registry (from the last-good copy), so an agent without network runs it.
    pub fn spawn(
        config: PollerConfig,
        candidates: Sender<FunctionHost>,
        swap: Arc<SwapStats>,
        cell: RolloutCell,
    ) -> Result<Self, RegistryError> {
        let keys = config.registry.keys().map_err(RegistryError::Manifest)?;
        let manifest = Location::parse(&config.registry.url).map_err(RegistryError::Manifest)?;
        let ca = config.registry.ca_pem().map_err(RegistryError::Client)?;
        let source = Source::new(ca.as_deref(), config.registry.timeout())?;
        let stop = Arc::new(Stop::new());
        let done = Arc::new(Wake::new());
        let (thread_stop, thread_done) = (stop.clone(), done.clone());
        let (state, jitter, backoff) = Worker::start_state(&config);
        let mut worker = Worker {
            config,
            keys,
            manifest,
            source,
            candidates,
            swap,
            cell,
            state,
            validators: Validators::default(),
            pending: None,
            settled: None,
            last_refusal: None,
            verified: None,
            module_errors: LogRate::every(Duration::from_secs(60)),
            failures: 0,
            jitter,
            backoff,
        };
        let thread = std::thread::Builder::new()
            .name("registry".into())
            .spawn(move || {
                worker.run(&thread_stop);
                thread_done.notify();
            })
            .map_err(|e| RegistryError::Client(format!("cannot start the poller: {e}")))?;
        Ok(Self {
            stop,
            done,
            thread: Some(thread),
        })
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.stop();
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.done.wait_until(STOP_GRACE, || thread.is_finished());
        if !thread.is_finished() {
            warn!("a registry request is still in flight at the stop: abandoned");
        } else if thread.join().is_err() {
            error!("the registry poller ended with a panic");
        }
    }
}

/// A module handed to the pipeline, waiting for its verdict.
struct Pending {
    sha256: String,
    params: std::collections::BTreeMap<String, String>,
    manifest_version: u64,
    /// Outcomes numbered above this are about this hand-over.
    after_seq: u64,
}

/// What processing a manifest came to.
enum Processed {
    /// Nothing more to do for these bytes until they change.
    Settled,
    /// Ask again at the next poll even if the manifest is unchanged (a module that could
    /// not be fetched, or did not match: it may be fixed in place).
    Retry,
}

struct Worker {
    config: PollerConfig,
    keys: TrustedKeys,
    manifest: Location,
    source: Source,
    candidates: Sender<FunctionHost>,
    swap: Arc<SwapStats>,
    cell: RolloutCell,
    state: Persisted,
    validators: Validators,
    pending: Option<Pending>,
    /// The manifest and signature last processed to a settled end, to skip them.
    settled: Option<String>,
    /// The last refusal counted, so one bad manifest or module counts once.
    last_refusal: Option<String>,
    /// The last manifest whose signature verified: its sha256 and contents.
    verified: Option<(String, super::Manifest)>,
    /// A module that cannot be fetched is asked for at every poll; said once a minute.
    module_errors: LogRate,
    failures: u32,
    jitter: Jitter,
    backoff: Backoff,
}

impl Worker {
    /// What a worker starts from: the registry state it kept (or none, said once), the
    /// jitter seeded by its identity, the backoff of its configuration.
    fn start_state(config: &PollerConfig) -> (Persisted, Jitter, Backoff) {
        let state = Persisted::load(&config.state_dir).unwrap_or_else(|e| {
            error!(
                "cannot read the registry state in {}: {e}; starting without it (an older manifest is refused again only once a newer one is seen)",
                config.state_dir.display()
            );
            Persisted::default()
        });
        let salt = u64::from_be_bytes(
            sha256_hex(config.identity.as_bytes())
                .as_bytes()
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .unwrap_or([0; 8]),
        );
        let interval = config.registry.poll_interval();
        let backoff = Backoff::new(interval, config.registry.retry_max().max(interval));
        (state, Jitter::seeded(salt), backoff)
    }

    fn run(&mut self, stop: &Stop) {
        let group = self.config.registry.group.clone();
        let (version, target) = (
            self.state.highest_version,
            self.state.accepted.as_ref().map(|a| a.sha256.clone()),
        );
        self.cell.update(|s| {
            s.state = RolloutState::Waiting;
            s.group = Some(group);
            s.manifest_version = version;
            s.target_sha256 = target;
        });
        self.start_offline();
        info!(
            "polling the function registry {} every {:?} at most, as group {}",
            self.manifest,
            self.config.registry.poll_interval(),
            untrusted(&self.config.registry.group)
        );
        // The first poll within the first interval (at most half a minute): a building's
        // worth of agents powered on together does not ask in the same second.
        let first = self
            .config
            .registry
            .poll_interval()
            .min(FIRST_POLL_SPREAD)
            .mul_f64(self.jitter.fraction());
        let mut next_poll = Instant::now()
            .checked_add(first)
            .unwrap_or_else(Instant::now);
        loop {
            let wait = next_poll.saturating_duration_since(Instant::now());
            let wait = if self.pending.is_some() {
                wait.min(OUTCOME_TICK)
            } else {
                wait
            };
            if !wait.is_zero() {
                stop.sleep(wait);
            }
            if stop.is_stopped() {
                return;
            }
            self.check_pending();
            if Instant::now() >= next_poll {
                let delay = self.poll();
                next_poll = Instant::now()
                    .checked_add(delay)
                    .unwrap_or_else(Instant::now);
            }
        }
    }

    /// Hands over the module last taken from the registry, if it is the last-good copy
    /// and not what already runs.
    fn start_offline(&mut self) {
        let Some(accepted) = self.state.accepted.clone() else {
            return;
        };
        if self.swap.running() == accepted.sha256 {
            self.cell.update(|s| s.state = RolloutState::Current);
            return;
        }
        let last_good = LastGood::in_dir(&self.config.state_dir);
        if last_good.sha256() != Some(accepted.sha256.as_str()) {
            return;
        }
        match last_good.host(params(&accepted.params), self.config.limits) {
            Ok(host) => {
                info!(
                    "starting the registry's function {} (manifest version {}) from the last good copy",
                    short_sha(&accepted.sha256),
                    accepted.manifest_version
                );
                self.hand_over(host, accepted.params, accepted.manifest_version);
            }
            Err(e) => warn!(
                "the registry's function {} does not start from the last good copy: {e}",
                short_sha(&accepted.sha256)
            ),
        }
    }

    /// One request for the manifest; answers the wait until the next.
    fn poll(&mut self) -> Duration {
        let interval = self.config.registry.poll_interval();
        self.cell
            .update(|s| s.requests = s.requests.saturating_add(1));
        let result = self
            .source
            .get(&self.manifest, &self.validators, MAX_MANIFEST_BYTES)
            .and_then(|fetched| match fetched {
                Fetched::NotModified => Ok(None),
                Fetched::Body { bytes, validators } => {
                    let signature = match self.source.get(
                        &self.manifest.signature(),
                        &Validators::default(),
                        MAX_SIGNATURE_BYTES,
                    )? {
                        Fetched::Body { bytes, .. } => bytes,
                        Fetched::NotModified => Vec::new(),
                    };
                    Ok(Some((bytes, signature, validators)))
                }
            });
        match result {
            Ok(None) => {
                self.failures = 0;
                self.cell
                    .update(|s| s.not_modified = s.not_modified.saturating_add(1));
            }
            Ok(Some((bytes, signature, validators))) => {
                self.failures = 0;
                let key = format!("{}{}", sha256_hex(&bytes), sha256_hex(&signature));
                if self.settled.as_deref() != Some(key.as_str()) {
                    match self.process(&bytes, &signature) {
                        Processed::Settled => {
                            self.settled = Some(key);
                            self.validators = validators;
                        }
                        Processed::Retry => {
                            self.settled = None;
                            self.validators = Validators::default();
                        }
                    }
                } else {
                    self.validators = validators;
                }
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                let reason = e.to_string();
                if self.failures == 1 {
                    warn!("{reason}; keeping the running function, asking again later");
                }
                self.cell.update(|s| {
                    s.fetch_errors = s.fetch_errors.saturating_add(1);
                    if s.state == RolloutState::Waiting {
                        s.reason = Some(reason);
                    }
                });
                return self.jitter.spread(self.backoff.delay(self.failures));
            }
        }
        self.jitter.spread(interval)
    }

    /// Decides what a fetched manifest means for this agent.
    fn process(&mut self, bytes: &[u8], signature: &[u8]) -> Processed {
        let digest = sha256_hex(bytes);
        // Bytes already verified need no signature again: a signature file replaced
        // before its manifest (a publish half done) must not make a good manifest bad.
        let known = self
            .verified
            .as_ref()
            .filter(|(known, _)| *known == digest)
            .map(|(_, manifest)| manifest.clone());
        let manifest = match known.map_or_else(|| verify(bytes, signature, &self.keys), Ok) {
            Ok(manifest) => {
                self.verified = Some((digest.clone(), manifest.clone()));
                manifest
            }
            Err(e) => {
                // Asked for in full again: a publisher may have uploaded the manifest
                // before its signature, and the pair read here was torn.
                self.refuse(&format!("manifest {digest}"), &e.to_string());
                return Processed::Retry;
            }
        };
        if let Some(highest) = self.state.highest_version {
            if manifest.version < highest {
                self.refuse(
                    &digest,
                    &format!(
                        "manifest version {} is older than version {highest}, already accepted (a replay?)",
                        manifest.version
                    ),
                );
                return Processed::Settled;
            }
            if manifest.version == highest
                && self
                    .state
                    .manifest_sha256
                    .as_deref()
                    .is_some_and(|known| known != digest)
            {
                self.refuse(
                    &digest,
                    &format!(
                        "manifest version {highest} was accepted with other contents; a change needs a higher version"
                    ),
                );
                return Processed::Settled;
            }
        }
        if self.state.highest_version != Some(manifest.version) {
            self.state.highest_version = Some(manifest.version);
            self.state.manifest_sha256 = Some(digest.clone());
            self.save();
        }
        let version = manifest.version;
        self.cell.update(|s| s.manifest_version = Some(version));

        let group = self.config.registry.group.clone();
        let Some(entry) = manifest.groups.get(&group) else {
            self.settle(
                RolloutState::NotInCohort,
                None,
                format!("manifest version {version} names nothing for this group"),
            );
            return Processed::Settled;
        };
        let target = entry.module.sha256.clone();
        if self
            .pending
            .as_ref()
            .is_some_and(|pending| pending.sha256 == target)
        {
            return Processed::Settled;
        }
        if self.state.has_failed(&target) {
            self.settle(
                RolloutState::RolledBack,
                Some(&target),
                format!(
                    "{} failed here before and is not tried again",
                    short_sha(&target)
                ),
            );
            return Processed::Settled;
        }
        if self.swap.running() == target {
            self.settle(
                RolloutState::Current,
                Some(&target),
                format!("running manifest version {version}"),
            );
            return Processed::Settled;
        }
        let point = cohort_point(&self.config.identity, &group, &target);
        if !in_cohort(point, entry.fraction) {
            self.settle(
                RolloutState::NotInCohort,
                Some(&target),
                format!(
                    "{} is rolled out to {:.1} % of the group; this agent is at {:.1} %",
                    short_sha(&target),
                    entry.fraction * 100.0,
                    point * 100.0
                ),
            );
            return Processed::Settled;
        }
        if entry.min_window > self.config.window_size {
            self.refuse(
                &target,
                &format!(
                    "{} needs windows of {} samples; this agent's are {}",
                    short_sha(&target),
                    entry.min_window,
                    self.config.window_size
                ),
            );
            return Processed::Settled;
        }
        let bytes = match super::fetch_module(&self.source, &self.manifest, entry) {
            Ok(bytes) => bytes,
            Err(e) if e.is_transient() => {
                if let Some(left_out) = self.module_errors.allow() {
                    warn!(
                        "cannot fetch the module {}: {e}; asking again at the next poll{}",
                        short_sha(&target),
                        LogRate::note(left_out)
                    );
                }
                self.cell.update(|s| {
                    s.fetch_errors = s.fetch_errors.saturating_add(1);
                    s.reason = Some(e.to_string());
                });
                return Processed::Retry;
            }
            Err(e) => {
                // Counted once for this manifest; asked again, as it may be fixed in place.
                self.refuse(&format!("{digest}{target}"), &e.to_string());
                return Processed::Retry;
            }
        };
        let host = FunctionModule::from_bytes(&bytes).and_then(|module| {
            FunctionHost::new(module, params(&entry.params), self.config.limits)
        });
        match host {
            Ok(host) => {
                info!(
                    "registry: manifest version {version} rolls {} out to this agent; handing it to the pipeline",
                    short_sha(&target)
                );
                self.hand_over(host, entry.params.clone(), version);
            }
            Err(e) => {
                // Signed but unusable: a failure like a canary's, not tried again.
                let reason = format!("{} does not start: {e}", short_sha(&target));
                self.fail(&target, &reason);
            }
        }
        Processed::Settled
    }

    fn hand_over(
        &mut self,
        host: FunctionHost,
        params: std::collections::BTreeMap<String, String>,
        manifest_version: u64,
    ) {
        let sha256 = host.module().sha256().to_owned();
        let after_seq = self.swap.outcome_seq();
        // Said before it is sent: whoever sees the candidate arrive sees `trying` too.
        let target = sha256.clone();
        self.cell.update(|s| {
            s.state = RolloutState::Trying;
            s.target_sha256 = Some(target);
            s.reason = Some(format!(
                "on canary and probation (manifest version {manifest_version})"
            ));
        });
        if self.candidates.send(host).is_err() {
            // The pipeline has stopped: nobody is left to try it.
            return;
        }
        self.pending = Some(Pending {
            sha256,
            params,
            manifest_version,
            after_seq,
        });
    }

    /// Reads the pipeline's verdict on the module handed over, if there is one yet.
    fn check_pending(&mut self) {
        let Some(pending) = &self.pending else {
            return;
        };
        let verdict = self
            .swap
            .outcomes_after(pending.after_seq)
            .into_iter()
            .find(|o| o.sha256 == pending.sha256);
        let Some(outcome) = verdict else {
            return;
        };
        let Some(pending) = self.pending.take() else {
            return;
        };
        match outcome.kind {
            OutcomeKind::Passed => {
                info!(
                    "registry: {} passed its probation; running manifest version {}",
                    short_sha(&pending.sha256),
                    pending.manifest_version
                );
                self.state.accepted = Some(Accepted {
                    sha256: pending.sha256.clone(),
                    params: pending.params,
                    manifest_version: pending.manifest_version,
                });
                self.save();
                self.settle(
                    RolloutState::Current,
                    Some(&pending.sha256),
                    format!("running manifest version {}", pending.manifest_version),
                );
            }
            OutcomeKind::Refused | OutcomeKind::RolledBack | OutcomeKind::FailedKept => {
                let reason = format!(
                    "{} {}: {}",
                    short_sha(&pending.sha256),
                    match outcome.kind {
                        OutcomeKind::Refused => "failed its canary",
                        OutcomeKind::RolledBack => "failed its probation and was rolled back",
                        _ => "failed its probation (nothing to roll back to)",
                    },
                    outcome.reason
                );
                self.fail(&pending.sha256, &reason);
            }
        }
    }

    /// A version that failed here: remembered, never tried again, reported.
    fn fail(&mut self, sha256: &str, reason: &str) {
        error!("registry: {reason}; it is not tried again on this agent");
        self.state.mark_failed(sha256);
        self.save();
        let (target, reason) = (sha256.to_owned(), reason.to_owned());
        self.cell.update(|s| {
            s.state = RolloutState::RolledBack;
            s.target_sha256 = Some(target);
            s.reason = Some(reason);
            s.rolled_back = s.rolled_back.saturating_add(1);
        });
    }

    /// Something the registry offered and this agent refuses; counted once per `key`.
    fn refuse(&mut self, key: &str, reason: &str) {
        if self.last_refusal.as_deref() == Some(key) {
            return;
        }
        self.last_refusal = Some(key.to_owned());
        error!(
            "registry: refusing {reason}; keeping {}",
            short_sha(&self.swap.running())
        );
        let reason = reason.to_owned();
        self.cell.update(|s| {
            s.state = RolloutState::Refused;
            s.reason = Some(reason);
            s.refused = s.refused.saturating_add(1);
        });
    }

    fn settle(&mut self, state: RolloutState, target: Option<&str>, reason: String) {
        let target = target.map(str::to_owned);
        self.cell.update(|s| {
            if s.state != state {
                info!("registry: {reason}");
            }
            s.state = state;
            if target.is_some() {
                s.target_sha256 = target;
            }
            s.reason = Some(reason);
        });
    }

    fn save(&self) {
        if let Err(e) = self.state.save(&self.config.state_dir) {
            warn!(
                "cannot keep the registry state in {}: {e}; it lasts until the agent stops",
                self.config.state_dir.display()
            );
        }
    }
}

fn params(map: &std::collections::BTreeMap<String, String>) -> Params {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::mpsc::{Receiver, channel};

    use super::*;
    use crate::registry::RolloutStatus;

    const WAIT: Duration = Duration::from_secs(30);

    /// A module answering windows of 64; `marker` makes its sha256 its own.
    fn module(marker: &str) -> Vec<u8> {
        wat::parse_str(format!(
            r#"(module (memory (export "memory") 2)
              (data (i32.const 4096) "\00\01")
              (data (i32.const 8192) "\00\40")
              (data (i32.const 12288) "{marker}")
              (func (export "edge_abi_version") (result i32) i32.const 1)
              (func (export "alloc") (param i32) (result i32) i32.const 16384)
              (func (export "dealloc") (param i32 i32))
              (func (export "init") (param i32 i32) (result i64) i64.const 0x0000100000000002)
              (func (export "execute") (param i32 i32) (result i64) i64.const 0x0000200000000082))"#
        ))
        .unwrap()
    }

    struct Registry {
        dir: PathBuf,
        key: minisign::KeyPair,
    }

    impl Registry {
        /// Writes `module` and a manifest naming it (with `sha` instead of its own if
        /// given), signed; answers the manifest and signature.
        fn publish(&self, version: u64, module: &[u8], sha: Option<&str>) -> (Vec<u8>, Vec<u8>) {
            let name = format!("m{version}.wasm");
            std::fs::write(self.dir.join(&name), module).unwrap();
            let manifest = serde_json::to_vec(&serde_json::json!({
                "format": 1, "version": version,
                "groups": {"lab": {
                    "module": {"url": name, "sha256": sha.map_or_else(|| sha256_hex(module), str::to_owned), "size": module.len()},
                    "params": {"k": "v"}, "min_window": 1, "fraction": 1.0}}
            }))
            .unwrap();
            let signature = minisign::sign(
                Some(&self.key.pk),
                &self.key.sk,
                manifest.as_slice(),
                None,
                None,
            )
            .unwrap()
            .to_string()
            .into_bytes();
            self.put(&manifest, &signature);
            (manifest, signature)
        }

        fn put(&self, manifest: &[u8], signature: &[u8]) {
            std::fs::write(self.dir.join("manifest.json.minisig"), signature).unwrap();
            // A rename, so a poll sees the old file or the new one, never half of one.
            std::fs::write(self.dir.join("manifest.new"), manifest).unwrap();
            std::fs::rename(
                self.dir.join("manifest.new"),
                self.dir.join("manifest.json"),
            )
            .unwrap();
        }
    }

    fn spawn(
        registry: &Registry,
        state: &Path,
        swap: &Arc<SwapStats>,
    ) -> (Poller, Receiver<FunctionHost>, RolloutCell) {
        let (tx, rx) = channel();
        let cell = RolloutCell::default();
        let config = PollerConfig {
            registry: RegistrySection {
                url: registry.dir.join("manifest.json").display().to_string(),
                group: "lab".into(),
                public_keys: vec![registry.key.pk.to_base64()],
                poll_interval_ms: 100,
                retry_max_ms: 200,
                ..RegistrySection::default()
            },
            identity: "host/sensor".into(),
            state_dir: state.to_owned(),
            window_size: 64,
            limits: Limits::default(),
        };
        let poller = Poller::spawn(config, tx, swap.clone(), cell.clone()).unwrap();
        (poller, rx, cell)
    }

    /// Polls the status until `done` (the cell has no notification; WAIT is the guard).
    fn until(
        cell: &RolloutCell,
        what: &str,
        done: impl Fn(&RolloutStatus) -> bool,
    ) -> RolloutStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            let status = cell.snapshot();
            if done(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "never {what}: {status:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn takes_verified_versions_remembers_failures_refuses_the_rest_and_starts_offline() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry {
            dir: dir.path().join("registry"),
            key: minisign::KeyPair::generate_unencrypted_keypair().unwrap(),
        };
        std::fs::create_dir_all(&registry.dir).unwrap();
        let state = dir.path().join("state");
        let swap = Arc::new(SwapStats::default());
        swap.set_running("base");
        let (poller, rx, cell) = spawn(&registry, &state, &swap);
        until(&cell, "wait for a registry", |s| {
            s.state == RolloutState::Waiting && s.fetch_errors >= 1
        });

        // v1: handed over with the signed parameters; the pipeline passes it.
        let good = module("good");
        let (v1_manifest, v1_signature) = registry.publish(1, &good, None);
        let candidate = rx.recv_timeout(WAIT).unwrap();
        assert_eq!(candidate.module().sha256(), sha256_hex(&good));
        assert_eq!(candidate.params().raw("k"), Some("v"));
        assert_eq!(cell.snapshot().state, RolloutState::Trying);
        swap.set_running(&sha256_hex(&good));
        swap.note_outcome(&sha256_hex(&good), OutcomeKind::Passed, "");
        until(&cell, "run v1", |s| {
            s.state == RolloutState::Current && s.manifest_version == Some(1)
        });
        // The pipeline keeps a passed module as the last good copy; here the test does.
        LastGood::in_dir(&state)
            .save(&FunctionModule::from_bytes(&good).unwrap())
            .unwrap();

        // v2 fails its probation: rolled back, remembered, never handed over again.
        let bad = module("bad");
        registry.publish(2, &bad, None);
        let candidate = rx.recv_timeout(WAIT).unwrap();
        assert_eq!(candidate.module().sha256(), sha256_hex(&bad));
        swap.note_outcome(&sha256_hex(&bad), OutcomeKind::RolledBack, "failed 3 of 5");
        let status = until(&cell, "roll back v2", |s| {
            s.state == RolloutState::RolledBack
        });
        assert_eq!(status.rolled_back, 1);
        assert!(status.reason.unwrap().contains("failed 3 of 5"));
        registry.publish(3, &bad, None);
        until(&cell, "decline v2's module again", |s| {
            s.manifest_version == Some(3)
                && s.reason
                    .as_deref()
                    .is_some_and(|r| r.contains("not tried again"))
        });
        assert!(rx.try_recv().is_err(), "a failed module is not tried again");

        // Refused and counted once each: a replayed v1, bytes that are not the signed ones.
        registry.put(&v1_manifest, &v1_signature);
        until(&cell, "refuse a replay", |s| {
            s.refused == 1 && s.state == RolloutState::Refused
        });
        registry.publish(4, &module("other"), Some(&"ab".repeat(32)));
        let status = until(&cell, "refuse a mismatch", |s| {
            s.refused == 2 && s.manifest_version == Some(4)
        });
        assert!(status.reason.unwrap().contains("the signed manifest says"));
        assert!(rx.try_recv().is_err());
        let requests = cell.snapshot().requests;
        until(&cell, "poll on", |s| s.requests > requests + 2);
        assert_eq!(cell.snapshot().refused, 2, "each refusal counted once");
        drop(poller);

        let saved = Persisted::load(&state).unwrap();
        assert_eq!(saved.highest_version, Some(4));
        assert_eq!(saved.failed, vec![sha256_hex(&bad)]);
        assert_eq!(saved.accepted.as_ref().unwrap().sha256, sha256_hex(&good));

        // A restart without the registry: v1 from the last good copy, before any answer.
        std::fs::remove_dir_all(&registry.dir).unwrap();
        let swap = Arc::new(SwapStats::default());
        swap.set_running("base");
        let (_poller, rx, cell) = spawn(&registry, &state, &swap);
        let candidate = rx.recv_timeout(WAIT).unwrap();
        assert_eq!(candidate.module().sha256(), sha256_hex(&good));
        assert_eq!(candidate.params().raw("k"), Some("v"));
        let status = until(&cell, "fail to reach the registry", |s| s.fetch_errors >= 1);
        assert_eq!(status.manifest_version, Some(4));
    }
}

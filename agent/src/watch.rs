//! Watches the function file and prepares replacements: when the file changes and has
//! stayed unchanged for one more look (so a file still being written is not taken), it is
//! compiled, checked and instantiated with the configured parameters, and handed to the
//! pipeline, which runs it once on the latest window before swapping it in. Anything that
//! fails keeps the running function and is logged with the reason; a later good file is
//! still picked up. A reload request (SIGHUP) re-reads the file at once.
//!
//! The file is only looked at with `stat` until it has settled, and read only if it is a
//! regular file within the module size cap (see `FunctionModule::load`), so a FIFO, a
//! device or a huge file cannot block or bloat the watcher. "Keeping" always names the
//! function actually running (from [`SwapStats`]), never the file just refused.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use edge_function::Params;
use log::{error, info, warn};

use crate::function::{FunctionHost, FunctionModule, Limits, SwapStats};
use crate::support::text::{short_sha, untrusted};
use crate::support::wake::Stop;

/// What identifies one version of the file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &std::path::Path) -> std::io::Result<Stamp> {
    let metadata = std::fs::metadata(path)?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&metadata);
    #[cfg(not(unix))]
    let inode = 0;
    Ok(Stamp {
        len: metadata.len(),
        modified: metadata.modified().ok(),
        inode,
    })
}

/// Everything a replacement is built with.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    pub path: PathBuf,
    pub params: Params,
    pub limits: Limits,
    pub interval: Duration,
}

/// Wakes the watcher early: for a reload request or to stop.
#[derive(Default)]
struct Wake {
    reload: AtomicBool,
    stop: Stop,
}

/// The running watcher; dropping it stops the thread.
pub struct Watcher {
    wake: Arc<Wake>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts watching. `stats` says which function is running (so touching the file
    /// without changing it swaps nothing); a file refused here counts in
    /// `stats.refused`, as do the pipeline's refusals.
    pub fn spawn(
        config: WatchConfig,
        candidates: Sender<FunctionHost>,
        stats: Arc<SwapStats>,
    ) -> std::io::Result<Self> {
        let wake = Arc::new(Wake::default());
        let thread_wake = wake.clone();
        let thread = std::thread::Builder::new()
            .name("function-watch".into())
            .spawn(move || watch(config, candidates, &thread_wake, &stats))?;
        Ok(Self {
            wake,
            thread: Some(thread),
        })
    }

    /// Re-reads the function file now.
    pub fn reload(&self) {
        self.wake.reload.store(true, Ordering::Release);
        self.notify();
    }

    fn notify(&self) {
        self.wake.stop.notify();
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.wake.stop.stop();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            error!("the function watcher ended with a panic");
        }
    }
}

fn watch(config: WatchConfig, candidates: Sender<FunctionHost>, wake: &Wake, stats: &SwapStats) {
    let shown = untrusted(&config.path.display().to_string());
    let mut seen = stamp(&config.path).ok();
    let mut settling: Option<Stamp> = None;
    let mut missing_reported = false;
    loop {
        wake.stop
            .wait_until(config.interval, || wake.reload.load(Ordering::Acquire));
        if wake.stop.is_stopped() {
            return;
        }
        let forced = wake.reload.swap(false, Ordering::AcqRel);
        let now = match stamp(&config.path) {
            Ok(now) => {
                missing_reported = false;
                now
            }
            Err(e) => {
                if !missing_reported {
                    warn!(
                        "cannot see {shown}: {e}; keeping {}",
                        short_sha(&stats.running())
                    );
                    missing_reported = true;
                }
                continue;
            }
        };
        if forced {
            info!("reload requested: re-reading {shown}");
        } else if Some(now) == seen {
            settling = None;
            continue;
        } else if settling != Some(now) {
            // Changed since the last look: take it only once it has stopped changing.
            settling = Some(now);
            continue;
        }
        seen = Some(now);
        settling = None;
        let running = stats.running();
        match prepare(&config, &running) {
            Ok(Some(candidate)) => {
                info!(
                    "new function {} ready; swapping at the next window",
                    short_sha(candidate.module().sha256())
                );
                if candidates.send(candidate).is_err() {
                    return;
                }
            }
            Ok(None) => info!("{shown} is unchanged ({})", short_sha(&running)),
            Err(reason) => {
                SwapStats::count(&stats.refused);
                error!(
                    "refusing new function in {shown}: {reason}; keeping {}",
                    short_sha(&running)
                );
            }
        }
    }
}

/// The replacement, `None` when the file holds the running function.
fn prepare(config: &WatchConfig, current: &str) -> Result<Option<FunctionHost>, String> {
    let module = FunctionModule::load(&config.path).map_err(|e| e.to_string())?;
    if module.sha256() == current {
        return Ok(None);
    }
    FunctionHost::new(module, config.params.clone(), config.limits)
        .map(Some)
        .map_err(|e| e.to_string())
}

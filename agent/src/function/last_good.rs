//! Last known good: the module the agent last ran successfully, kept in its state
//! directory so that one bad copy to the function path cannot brick the device.
//!
//! The pipeline [`save`](LastGood::save)s a function once it has passed its probation
//! (see `pipeline.rs`); at start, [`start`] loads the configured function and, if it
//! cannot be loaded or refuses its `init`, falls back to the saved one, saying so in
//! the log and in [`SwapStats::startup_fallbacks`]. The copy is written atomically
//! (temporary file, fsync, rename, fsync of the directory), so a power cut leaves the
//! old copy or the new one, never half of one.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use edge_function::Params;
use log::{info, warn};
use thiserror::Error;

use super::error::guest_text;
use super::{FunctionError, FunctionHost, FunctionModule, Limits, SwapStats};
use crate::support::text::short_sha;

/// The copy's name in the state directory.
pub const FILE_NAME: &str = "function.last-good.wasm";

/// The last-good copy in one state directory.
#[derive(Debug)]
pub struct LastGood {
    path: PathBuf,
    /// The copy's sha256, when there is a readable copy.
    sha256: Option<String>,
}

impl LastGood {
    /// The copy in `state_dir`, which need not exist yet.
    pub fn in_dir(state_dir: &Path) -> Self {
        let path = state_dir.join(FILE_NAME);
        let sha256 = FunctionModule::load(&path)
            .ok()
            .map(|module| module.sha256().to_owned());
        Self { path, sha256 }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sha256 of the copy, if there is one that loads.
    pub fn sha256(&self) -> Option<&str> {
        self.sha256.as_deref()
    }

    /// Keeps `module` as the last good one, unless it already is.
    pub fn save(&mut self, module: &FunctionModule) -> std::io::Result<()> {
        if self.sha256.as_deref() == Some(module.sha256()) {
            return Ok(());
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let temporary = dir.join(format!("{FILE_NAME}.tmp"));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)?;
        file.write_all(module.bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, &self.path)?;
        // The rename is durable only once the directory is.
        File::open(dir)?.sync_all()?;
        self.sha256 = Some(module.sha256().to_owned());
        Ok(())
    }

    /// The copy, loaded and instantiated with `params` under `limits`.
    pub fn host(&self, params: Params, limits: Limits) -> Result<FunctionHost, FunctionError> {
        FunctionHost::new(FunctionModule::load(&self.path)?, params, limits)
    }
}

/// Where the running function came from.
#[derive(Debug)]
pub enum Origin {
    /// The configured file.
    Configured,
    /// The last-good copy, because the configured file failed with this.
    LastGood { configured_failed: FunctionError },
}

/// The function the agent starts with.
pub struct Started {
    pub host: FunctionHost,
    pub origin: Origin,
}

/// Why no function started: the configured one failed, and there was no last good copy to
/// fall back to, or it failed too. One message each, said once (by whoever reports it).
#[derive(Debug, Error)]
pub enum StartError {
    #[error(
        "cannot start {path}: {configured}; there is no last good function to fall back to ({last_good} does not exist or does not load)"
    )]
    NoFallback {
        path: String,
        configured: FunctionError,
        last_good: String,
    },
    #[error(
        "cannot start {path}: {configured}; the last good function {sha} fails too: {fallback}"
    )]
    FallbackFails {
        path: String,
        configured: FunctionError,
        sha: String,
        fallback: Box<FunctionError>,
    },
}

impl StartError {
    /// The configured function's refusal of its parameters, when that is why nothing
    /// started (and the last good copy, if any, refused them too or failed): the
    /// configuration's fault, not the module's, so the agent exits 78 instead of being
    /// restarted every few seconds into the same refusal. The text is guest text,
    /// escaped and clipped.
    pub fn params_refused(&self) -> Option<String> {
        let configured = match self {
            Self::NoFallback { configured, .. } | Self::FallbackFails { configured, .. } => {
                configured
            }
        };
        match configured {
            FunctionError::Function(reason) => Some(reason.clone()),
            refused @ FunctionError::ParamsNotAccepted { .. } => Some(refused.to_string()),
            _ => None,
        }
    }
}

/// Loads the configured function at `path` with `params`; if it fails to load or
/// instantiate (its `start` or `init` included), starts the last good copy instead,
/// logs why and counts it in `stats.startup_fallbacks`. When neither starts, nothing is
/// logged here: the error says it all, and the caller reports it once.
pub fn start(
    path: &Path,
    params: Params,
    limits: Limits,
    last_good: &LastGood,
    stats: &SwapStats,
) -> Result<Started, StartError> {
    let shown = guest_text(&path.display().to_string());
    let configured = FunctionModule::load(path)
        .and_then(|module| FunctionHost::new(module, params.clone(), limits));
    let configured_failed = match configured {
        Ok(host) => {
            stats.set_running(host.module().sha256());
            return Ok(Started {
                host,
                origin: Origin::Configured,
            });
        }
        Err(e) => e,
    };
    let Some(sha) = last_good.sha256() else {
        return Err(StartError::NoFallback {
            path: shown,
            configured: configured_failed,
            last_good: guest_text(&last_good.path().display().to_string()),
        });
    };
    match last_good.host(params, limits) {
        Ok(host) => {
            SwapStats::count(&stats.startup_fallbacks);
            stats.set_running(host.module().sha256());
            warn!(
                "cannot start {shown}: {configured_failed}; falling back to the last good function {} from {}",
                short_sha(sha),
                last_good.path().display()
            );
            info!("replace {shown} with a working function to leave the fallback");
            Ok(Started {
                host,
                origin: Origin::LastGood { configured_failed },
            })
        }
        Err(fallback) => Err(StartError::FallbackFails {
            path: shown,
            configured: configured_failed,
            sha: short_sha(sha).to_owned(),
            fallback: Box::new(fallback),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module that starts and answers `init` with a minimum window of 1.
    fn good_module() -> Vec<u8> {
        wat::parse_str(
            r#"(module (memory (export "memory") 1)
              (data (i32.const 4096) "\00\01")
              (func (export "edge_abi_version") (result i32) i32.const 1)
              (func (export "alloc") (param i32) (result i32) i32.const 1024)
              (func (export "dealloc") (param i32 i32))
              (func (export "init") (param i32 i32) (result i64) i64.const 0x0000100000000002)
              (func (export "execute") (param i32 i32) (result i64) unreachable))"#,
        )
        .unwrap()
    }

    /// A module whose `init` refuses its parameters as the SDK's `Params::only` does.
    fn refusing_module() -> Vec<u8> {
        wat::parse_str(
            r#"(module (memory (export "memory") 1)
              (data (i32.const 4096) "\01\19unknown parameter `perod`")
              (func (export "edge_abi_version") (result i32) i32.const 1)
              (func (export "alloc") (param i32) (result i32) i32.const 1024)
              (func (export "dealloc") (param i32 i32))
              (func (export "init") (param i32 i32) (result i64) i64.const 0x000010000000001b)
              (func (export "execute") (param i32 i32) (result i64) unreachable))"#,
        )
        .unwrap()
    }

    #[test]
    fn refused_parameters_are_said_once_as_the_configuration_s_fault() {
        let dir = tempfile::tempdir().unwrap();
        let stats = SwapStats::default();
        let configured = dir.path().join("f.wasm");
        std::fs::write(&configured, refusing_module()).unwrap();
        let params = Params::from([("perod", "12")]);
        let mut last_good = LastGood::in_dir(dir.path());
        let run = |last_good: &LastGood| {
            start(
                &configured,
                params.clone(),
                Limits::default(),
                last_good,
                &stats,
            )
        };

        let alone = run(&last_good).err().unwrap();
        assert_eq!(
            alone.params_refused().as_deref(),
            Some("unknown parameter `perod`")
        );
        let text = alone.to_string();
        assert!(text.contains("there is no last good function"), "{text}");
        assert!(!text.contains("fails too"), "{text}");

        // The last good copy refuses them too: still the parameters, said once.
        last_good
            .save(&FunctionModule::from_bytes(&refusing_module()).unwrap())
            .unwrap();
        let both = run(&last_good).err().unwrap();
        assert!(both.params_refused().is_some());
        let text = both.to_string();
        assert!(
            text.contains("fails too") && !text.contains("no last good"),
            "{text}"
        );

        // A last good copy that takes them runs instead: the file was what was wrong.
        last_good
            .save(&FunctionModule::from_bytes(&good_module()).unwrap())
            .unwrap();
        let started = run(&last_good).unwrap();
        assert!(matches!(started.origin, Origin::LastGood { .. }));
    }

    #[test]
    fn a_saved_module_is_found_again_and_started_in_place_of_a_broken_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut last_good = LastGood::in_dir(dir.path());
        assert_eq!(last_good.sha256(), None);
        let stats = SwapStats::default();
        let missing = dir.path().join("missing.wasm");
        let err = start(
            &missing,
            Params::new(),
            Limits::default(),
            &last_good,
            &stats,
        )
        .err()
        .unwrap();
        assert!(
            err.to_string().contains("there is no last good function"),
            "{err}"
        );
        assert_eq!(
            err.params_refused(),
            None,
            "a missing file is not the parameters"
        );

        let module = FunctionModule::from_bytes(&good_module()).unwrap();
        last_good.save(&module).unwrap();
        assert_eq!(std::fs::read(last_good.path()).unwrap(), good_module());
        assert!(!dir.path().join(format!("{FILE_NAME}.tmp")).exists());
        let again = LastGood::in_dir(dir.path());
        assert_eq!(again.sha256(), Some(module.sha256()));

        let broken = dir.path().join("broken.wasm");
        std::fs::write(&broken, b"not wasm").unwrap();
        let started = start(&broken, Params::new(), Limits::default(), &again, &stats).unwrap();
        assert!(matches!(started.origin, Origin::LastGood { .. }));
        assert_eq!(started.host.module().sha256(), module.sha256());
        assert_eq!(SwapStats::get(&stats.startup_fallbacks), 1);
        assert_eq!(stats.running(), module.sha256());
    }
}

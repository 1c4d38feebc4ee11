//! Python packages from PyPI for the tests, each set in its own virtualenv under `target/`,
//! installed once (a file lock keeps parallel test processes from installing it twice).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::workspace;

/// The virtualenv `target/<name>`, with `requirements` (pinned `pip` specifiers) installed
/// on first use; `installed` tells whether an existing one is complete.
pub fn python_venv(
    name: &str,
    requirements: &[&str],
    installed: impl Fn(&Path) -> bool,
) -> PathBuf {
    let target = workspace().join("target");
    std::fs::create_dir_all(&target).expect("target/ can be created");
    let lock = File::create(target.join(format!("{name}.lock"))).expect("the lock file");
    lock.lock().expect("the install lock");
    let venv = target.join(name);
    if !installed(&venv) {
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let ok = Command::new(&python)
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{python} -m venv failed: install python3-venv");
        let ok = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(requirements)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "pip install {} failed", requirements.join(" "));
    }
    venv
}

//! The Python reference for S-H-ESD: pyculiarity 0.0.7 (a port of Twitter's R
//! AnomalyDetection) from PyPI, installed into `target/pyculiarity-venv` as osmem-server
//! is, and run on a batch of cases by `tests/reference/pyculiarity_flags.py`.
//!
//! pyculiarity 0.0.7 does not run on today's pandas (it calls `DataFrame.append` and
//! `pd.Int64Index`, gone in pandas 2, and imports `six` without declaring it), so the
//! versions that do are pinned here, every package, with Python 3.11 wheels.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::venv::python_venv;
use crate::workspace;

pub const REQUIREMENTS: &[&str] = &[
    "pyculiarity==0.0.7",
    "rstl==0.1.3",
    "six==1.16.0",
    "pandas==1.5.3",
    "numpy==1.26.4",
    "scipy==1.11.4",
    "statsmodels==0.14.1",
    "patsy==1.0.3",
    "packaging==26.4",
    "python-dateutil==4.0.0",
    "pytz==2026.6",
    "tzdata==2026.6",
];

/// One case for the reference: the options in pyculiarity's names.
#[derive(Clone, Debug)]
pub struct Case {
    pub values: Vec<f32>,
    pub period: usize,
    pub max_anoms: f32,
    pub alpha: f64,
    /// `both`, `pos` or `neg`.
    pub direction: &'static str,
    /// `med_max`, `p95` or `p99`.
    pub threshold: Option<&'static str>,
    pub longterm_period: Option<usize>,
}

fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let installed = |venv: &Path| {
            Command::new(venv.join("bin/python"))
                .args(["-c", "import pyculiarity, six"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        python_venv("pyculiarity-venv", REQUIREMENTS, installed).join("bin/python")
    })
}

/// pyculiarity's flags (sorted, distinct) for each case, or its error text.
pub fn flags(cases: &[Case]) -> Vec<Result<Vec<usize>, String>> {
    let input: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({
                // Widened exactly: the reference sees the very values the function does.
                "values": c.values.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
                "period": c.period,
                "max_anoms": f64::from(c.max_anoms),
                "alpha": c.alpha,
                "direction": c.direction,
                "threshold": c.threshold,
                "longterm_period": c.longterm_period,
            })
        })
        .collect();
    let mut child = Command::new(python())
        .arg(workspace().join("tests/reference/pyculiarity_flags.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the reference script starts");
    let mut stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || {
        stdin
            .write_all(Value::Array(input).to_string().as_bytes())
            .expect("the cases are written")
    });
    let output = child.wait_with_output().expect("the reference script ends");
    writer.join().expect("the writer");
    assert!(output.status.success(), "the reference script failed");
    let answers: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON answers");
    assert_eq!(answers.len(), cases.len());
    answers
        .iter()
        .map(|answer| match answer.get("flags") {
            Some(flags) => Ok(flags
                .as_array()
                .expect("a list")
                .iter()
                .map(|f| f.as_u64().expect("an index") as usize)
                .collect()),
            None => Err(answer["error"].as_str().unwrap_or("?").to_owned()),
        })
        .collect()
}

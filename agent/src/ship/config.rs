//! The `[elasticsearch]` section: the cluster verdicts are shipped to, its credentials,
//! and how the shipper batches and retries. Checked with the rest of the file
//! (`config.rs` calls [`ElasticsearchSection::check`]): everything that can be known
//! without talking to the cluster.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Auth, AuthError, SECRET_FILE_MAX_BYTES, ShipperSettings, redact_url};
use crate::support::check::{Refusal, creatable, within};
use crate::support::file::read_regular_capped;

/// Where status documents go unless `[fleet] index` says otherwise: outside the
/// verdicts' `edge-agent*` data view.
pub const DEFAULT_STATUS_INDEX: &str = "edge-fleet";

/// The ranges that make sense on a Raspberry Pi.
pub mod bounds {
    use std::ops::RangeInclusive;

    pub const DEAD_LETTER_MAX_MIB: RangeInclusive<u64> = 1..=1024;
    /// Bounds the `_bulk` response the agent reads as well as the request.
    pub const BATCH_MAX_DOCS: RangeInclusive<usize> = 1..=10_000;
    /// Elasticsearch refuses requests above `http.max_content_length` (100 MB) anyway.
    pub const BATCH_MAX_BYTES: RangeInclusive<usize> = 1024..=(64 << 20);
    pub const BATCH_MAX_DELAY_MS: RangeInclusive<u64> = 0..=600_000;
    pub const TIMEOUT_MS: RangeInclusive<u64> = 100..=300_000;
    pub const RETRY_MS: RangeInclusive<u64> = 1..=86_400_000;
    pub const AUTH_RETRY_MS: RangeInclusive<u64> = 1_000..=86_400_000;
    /// Elasticsearch's own limit on an index name.
    pub const INDEX_BYTES: RangeInclusive<usize> = 1..=255;
    /// 0 is no cap; a Pi makes about 1 document a second, a catch-up at 100 000 a second
    /// would be no cap at all.
    pub const DRAIN_MAX_DOCS_PER_SEC: RangeInclusive<u32> = 0..=100_000;
    /// Up to an hour: a fleet of tens of thousands may want its returns spread that wide.
    pub const RETRY_SPREAD_MS: RangeInclusive<u64> = 0..=3_600_000;
}

/// What to send upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipWhat {
    /// Every sample with its verdict, so a dashboard can draw the series.
    #[default]
    All,
    /// Only the flagged samples, for thin links.
    Anomalies,
}

/// The Elasticsearch (or OpenSearch) cluster verdicts are shipped to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticsearchSection {
    pub url: String,
    /// Index (or data stream) name.
    pub index: String,
    /// Write to a data stream (the template says so; only `create` is used either way).
    pub data_stream: bool,
    pub ship: ShipWhat,
    pub install_template: bool,
    pub username: Option<String>,
    /// Prefer the environment (`EDGE_AGENT_ES_PASSWORD`) or `password_file`.
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    /// The `encoded` API key; prefer `EDGE_AGENT_ES_API_KEY` or `api_key_file`.
    pub api_key: Option<String>,
    pub api_key_file: Option<PathBuf>,
    /// PEM file of the CA to trust instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Compress request bodies.
    pub gzip: bool,
    pub batch_max_docs: usize,
    pub batch_max_bytes: usize,
    pub batch_max_delay_ms: u64,
    pub timeout_ms: u64,
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// Wait after 401/403 before trying again.
    pub auth_retry_ms: u64,
    /// Default `dead-letter.ndjson` in `[sensor] state_dir`.
    pub dead_letter_path: Option<PathBuf>,
    /// The dead-letter file is rotated (one older file kept, `.1`) past this size.
    pub dead_letter_max_mib: u64,
    /// Fleet-safe catch-up: documents per second at most (0: no cap).
    pub drain_max_docs_per_sec: u32,
    /// Fleet-safe catch-up: the first try after a failure waits a random share of this.
    pub retry_spread_ms: u64,
}

impl Default for ElasticsearchSection {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:9200".into(),
            index: "edge-agent".into(),
            data_stream: false,
            ship: ShipWhat::All,
            install_template: true,
            username: None,
            password: None,
            password_file: None,
            api_key: None,
            api_key_file: None,
            ca_file: None,
            gzip: false,
            batch_max_docs: 1000,
            batch_max_bytes: 5 << 20,
            batch_max_delay_ms: 2000,
            timeout_ms: 30_000,
            retry_initial_ms: 500,
            retry_max_ms: 60_000,
            auth_retry_ms: 300_000,
            dead_letter_path: None,
            dead_letter_max_mib: 16,
            drain_max_docs_per_sec: 0,
            retry_spread_ms: 30_000,
        }
    }
}

impl ElasticsearchSection {
    /// The shipper's settings; the dead-letter file defaults into `state_dir`.
    pub fn shipper_settings(&self, state_dir: &Path) -> ShipperSettings {
        ShipperSettings {
            index: self.index.clone(),
            data_stream: self.data_stream,
            install_template: self.install_template,
            batch_max_docs: self.batch_max_docs,
            batch_max_bytes: self.batch_max_bytes,
            batch_max_delay: Duration::from_millis(self.batch_max_delay_ms),
            retry_initial: Duration::from_millis(self.retry_initial_ms),
            retry_max: Duration::from_millis(self.retry_max_ms),
            auth_retry: Duration::from_millis(self.auth_retry_ms),
            dead_letter: self
                .dead_letter_path
                .clone()
                .unwrap_or_else(|| state_dir.join("dead-letter.ndjson")),
            dead_letter_max_bytes: self.dead_letter_max_mib.saturating_mul(1 << 20),
            status_index: DEFAULT_STATUS_INDEX.into(),
            status_template: None,
            drain_max_docs_per_sec: self.drain_max_docs_per_sec,
            retry_spread: Duration::from_millis(self.retry_spread_ms),
        }
    }
}

impl ElasticsearchSection {
    /// Everything about the upstream that can be known without talking to it: the URL as
    /// reqwest will parse it, the index name as Elasticsearch will judge it, the ranges,
    /// and the files it names (read now, so a missing one stops nothing half-started).
    pub fn check(&self) -> Result<(), Refusal> {
        let at = |key: &'static str| move |reason: String| (key, reason);
        check_url(&self.url).map_err(at("elasticsearch.url"))?;
        check_index(&self.index).map_err(at("elasticsearch.index"))?;
        within(
            "elasticsearch.batch_max_docs",
            self.batch_max_docs,
            &bounds::BATCH_MAX_DOCS,
        )?;
        within(
            "elasticsearch.batch_max_bytes",
            self.batch_max_bytes,
            &bounds::BATCH_MAX_BYTES,
        )?;
        within(
            "elasticsearch.batch_max_delay_ms",
            self.batch_max_delay_ms,
            &bounds::BATCH_MAX_DELAY_MS,
        )?;
        within(
            "elasticsearch.timeout_ms",
            self.timeout_ms,
            &bounds::TIMEOUT_MS,
        )?;
        within(
            "elasticsearch.retry_initial_ms",
            self.retry_initial_ms,
            &bounds::RETRY_MS,
        )?;
        within(
            "elasticsearch.retry_max_ms",
            self.retry_max_ms,
            &(self.retry_initial_ms..=*bounds::RETRY_MS.end()),
        )?;
        within(
            "elasticsearch.auth_retry_ms",
            self.auth_retry_ms,
            &bounds::AUTH_RETRY_MS,
        )?;
        within(
            "elasticsearch.drain_max_docs_per_sec",
            self.drain_max_docs_per_sec,
            &bounds::DRAIN_MAX_DOCS_PER_SEC,
        )?;
        within(
            "elasticsearch.retry_spread_ms",
            self.retry_spread_ms,
            &bounds::RETRY_SPREAD_MS,
        )?;
        within(
            "elasticsearch.dead_letter_max_mib",
            self.dead_letter_max_mib,
            &bounds::DEAD_LETTER_MAX_MIB,
        )?;
        if let Some(path) = &self.dead_letter_path {
            creatable("elasticsearch.dead_letter_path", path)?;
        }
        if let Some(path) = &self.password_file {
            read_small("elasticsearch.password_file", path)?;
        }
        if let Some(path) = &self.api_key_file {
            read_small("elasticsearch.api_key_file", path)?;
        }
        if let Some(path) = &self.ca_file {
            let pem = read_small("elasticsearch.ca_file", path)?;
            check_pem(&pem).map_err(at("elasticsearch.ca_file"))?;
        }
        let auth = Auth::resolve(
            self.username.as_deref(),
            self.password.as_deref(),
            self.password_file.as_deref(),
            self.api_key.as_deref(),
            self.api_key_file.as_deref(),
            |name| std::env::var(name).ok(),
        );
        let api_key_key = if self.api_key_file.is_some() {
            "elasticsearch.api_key_file"
        } else {
            "elasticsearch.api_key"
        };
        match auth {
            // Sent as `Authorization: ApiKey <key>`: a byte a header cannot carry (a stray
            // NUL, DEL or space from a copied file) would fail every request, not the start.
            Ok(Auth::ApiKey(key)) if !key.bytes().all(|b| b.is_ascii_graphic()) => Err((
                api_key_key,
                "the API key must be printable ASCII without spaces (the base64 `encoded` \
                     form Elasticsearch returns)"
                    .into(),
            )),
            Ok(_) => Ok(()),
            Err(AuthError::NoUsername) => Err((
                if self.password_file.is_some() {
                    "elasticsearch.password_file"
                } else {
                    "elasticsearch.password"
                },
                "a password is configured but no username".into(),
            )),
            Err(e @ AuthError::Both) => Err(("elasticsearch.api_key", e.to_string())),
            Err(e @ AuthError::Read { .. }) => Err(("elasticsearch.password_file", e.to_string())),
        }
    }

    /// The URL for a log line: user name and password removed.
    pub fn display_url(&self) -> String {
        redact_url(&self.url)
    }
}

pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme must be http or https, not {}",
            parsed.scheme()
        ));
    }
    match parsed.host_str() {
        None | Some("") => return Err("the URL names no host".into()),
        Some(_) => {}
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("the URL must not carry a query or a fragment".into());
    }
    Ok(())
}

/// Elasticsearch's rules for index names (and data streams), so a bad one is refused here
/// rather than by every request.
pub fn check_index(index: &str) -> Result<(), String> {
    if !bounds::INDEX_BYTES.contains(&index.len()) {
        return Err(format!(
            "must be 1 to {} bytes long",
            bounds::INDEX_BYTES.end()
        ));
    }
    if index == "." || index == ".." {
        return Err("must not be . or ..".into());
    }
    if index.starts_with(['_', '-', '+']) {
        return Err("must not start with _, - or +".into());
    }
    if index.chars().any(|c| c.is_uppercase()) {
        return Err("must be lowercase".into());
    }
    if let Some(c) = index.chars().find(|c| {
        matches!(
            c,
            ' ' | '"' | '*' | '\\' | '<' | '>' | '|' | ',' | '/' | '?' | '#' | ':'
        ) || c.is_control()
    }) {
        return Err(format!("must not contain {c:?}"));
    }
    Ok(())
}

fn read_small(key: &'static str, path: &Path) -> Result<Vec<u8>, Refusal> {
    let bytes = read_regular_capped(path, SECRET_FILE_MAX_BYTES)
        .map_err(|e| (key, format!("{key}: cannot read {}: {e}", path.display())))?;
    // A BOM and a newline are an empty file's too (Notepad saves one so).
    if crate::support::text::bytes_without_bom(&bytes)
        .iter()
        .all(u8::is_ascii_whitespace)
    {
        return Err((key, format!("{key}: {} is empty", path.display())));
    }
    Ok(bytes)
}

fn check_pem(pem: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(pem);
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err("not a PEM certificate (no BEGIN CERTIFICATE block)".into());
    }
    match reqwest::Certificate::from_pem_bundle(pem) {
        Ok(certificates) if !certificates.is_empty() => Ok(()),
        Ok(_) => Err("holds no certificate".into()),
        Err(e) => Err(format!("not a PEM certificate: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_follow_elasticsearch() {
        for bad in [
            "", ".", "..", "_x", "-x", "+x", "A", "a b", "a#b", "a/b", "a,b", "a?b", "a\\b", "a*b",
            "a<b", "a>b", "a|b", "a\"b", "a:b",
        ] {
            assert!(check_index(bad).is_err(), "{bad:?}");
        }
        assert!(check_index(&"a".repeat(256)).is_err());
        assert!(check_index(&"a".repeat(255)).is_ok());
        for good in ["edge-agent", "air.quality", "logs-edge_1"] {
            assert!(check_index(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn urls_are_judged_by_the_url_parser_and_printed_without_secrets() {
        for bad in [
            "http://",
            "http://a b:9200",
            "http://h:99999",
            "ftp://h",
            "h:9200",
            "http://h/?q",
        ] {
            assert!(check_url(bad).is_err(), "{bad:?}");
        }
        assert!(check_url("https://es.example.net:9200/prefix").is_ok());
        let shown = crate::ship::redact_url("https://edge:s3cret@es.example.net:9200");
        assert_eq!(shown, "https://es.example.net:9200");
    }

    /// Notepad's empty file is a BOM and perhaps a CRLF: empty all the same, refused at
    /// the start instead of sending an empty password.
    #[test]
    fn a_secret_file_of_a_bom_and_a_newline_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "\u{feff}\r\n").unwrap();
        let (key, reason) = read_small("elasticsearch.password_file", &file).unwrap_err();
        assert_eq!(key, "elasticsearch.password_file");
        assert!(reason.ends_with("is empty"), "{reason}");
        std::fs::write(&file, "\u{feff}x\r\n").unwrap();
        assert!(read_small("elasticsearch.password_file", &file).is_ok());
    }
}

//! Reading from a registry: a static HTTP(S) location or a local path, every body read
//! through a bound, the manifest with a conditional request (`If-None-Match`,
//! `If-Modified-Since`; for a file, its size and mtime) so an unchanged manifest costs a
//! 304 and no parsing. A new kind of location goes in [`Location`] and [`Source::get`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::Url;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};

use super::RegistryError;
use crate::support::file::read_regular_capped;
use crate::support::http::{BodyError, Http, describe};
use crate::support::text::{clip, untrusted};

/// The longest validator (ETag, Last-Modified) kept and sent back.
const MAX_VALIDATOR_BYTES: usize = 256;

/// Where a registry object is: a URL (`http`, `https`) or a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Http(Url),
    File(PathBuf),
}

impl Location {
    /// `https://…`, `http://…`, `file:///…`, or an absolute path.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("no URL: the manifest's https://, http://, file:// URL or path".into());
        }
        if text.starts_with('/') {
            return Ok(Self::File(PathBuf::from(text)));
        }
        let url = Url::parse(text).map_err(|e| format!("not a URL or an absolute path: {e}"))?;
        match url.scheme() {
            "http" | "https" if url.host_str().is_some_and(|h| !h.is_empty()) => {
                Ok(Self::Http(url))
            }
            "file" => url
                .to_file_path()
                .map(Self::File)
                .map_err(|()| "a file: URL must name an absolute path".into()),
            scheme => Err(format!(
                "the scheme must be https, http or file, not {scheme}"
            )),
        }
    }

    /// `reference` (a module URL in the manifest) resolved against this location. A
    /// manifest served over HTTP may not point into the agent's own file system.
    pub fn join(&self, reference: &str) -> Result<Self, String> {
        match self {
            Self::Http(base) => {
                let url = base
                    .join(reference)
                    .map_err(|e| format!("bad module URL: {e}"))?;
                match url.scheme() {
                    "http" | "https" => Ok(Self::Http(url)),
                    other => Err(format!(
                        "a manifest served over HTTP may only name http(s) modules, not {other}"
                    )),
                }
            }
            Self::File(path) => {
                if reference.contains("://") || reference.starts_with('/') {
                    return Self::parse(reference);
                }
                let dir = path.parent().unwrap_or(Path::new("/"));
                Ok(Self::File(dir.join(reference)))
            }
        }
    }

    /// The signature beside it: the same name with `.minisig` appended.
    pub fn signature(&self) -> Self {
        match self {
            Self::Http(url) => {
                let mut url = url.clone();
                let path = format!("{}.minisig", url.path());
                url.set_path(&path);
                Self::Http(url)
            }
            Self::File(path) => {
                let mut name = path.clone().into_os_string();
                name.push(".minisig");
                Self::File(PathBuf::from(name))
            }
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Http(url) => {
                let mut shown = url.clone();
                // Credentials in a URL are not for the log.
                let _ = shown.set_username("");
                let _ = shown.set_password(None);
                f.write_str(&untrusted(shown.as_str()))
            }
            Self::File(path) => f.write_str(&untrusted(&path.display().to_string())),
        }
    }
}

/// What identifies the version of the manifest last read, sent back to ask "changed?".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// A conditional read's answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    NotModified,
    Body {
        bytes: Vec<u8>,
        validators: Validators,
    },
}

/// Reads registry objects: one HTTP client, kept (its connections too) across polls.
pub struct Source {
    /// Every exchange (manifest, signature, module) ends within `timeout_ms`, body
    /// included: a server that trickles cannot hold the poller.
    http: Http,
}

impl Source {
    /// The agent's HTTP client (`support::http`): the system's roots or `ca_pem`, no
    /// redirects (a signed manifest is what the agent trusts, not a location), the whole
    /// exchange under `timeout`.
    pub fn new(ca_pem: Option<&[u8]>, timeout: Duration) -> Result<Self, RegistryError> {
        let http = Http::new(ca_pem, timeout).map_err(RegistryError::Client)?;
        Ok(Self { http })
    }

    /// `location`'s bytes, at most `max_bytes`; `NotModified` when `known` still holds.
    pub fn get(
        &self,
        location: &Location,
        known: &Validators,
        max_bytes: u64,
    ) -> Result<Fetched, RegistryError> {
        match location {
            Location::File(path) => get_file(path, known, max_bytes),
            Location::Http(url) => self.get_http(url, known, max_bytes),
        }
    }

    fn get_http(
        &self,
        url: &Url,
        known: &Validators,
        max_bytes: u64,
    ) -> Result<Fetched, RegistryError> {
        let mut request = self.http.get(url.clone());
        if let Some(etag) = &known.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(date) = &known.last_modified {
            request = request.header(IF_MODIFIED_SINCE, date);
        }
        let shown = Location::Http(url.clone());
        let exchange = self.http.send(request).map_err(|e| {
            RegistryError::Unreachable(format!("{shown}: {}", untrusted(&describe(&e))))
        })?;
        let status = exchange.response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(RegistryError::Unreachable(format!(
                "{shown}: HTTP {status}"
            )));
        }
        let header = |name| {
            exchange
                .response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| v.len() <= MAX_VALIDATOR_BYTES)
                .map(str::to_owned)
        };
        let validators = Validators {
            etag: header(ETAG),
            last_modified: header(LAST_MODIFIED),
        };
        let bytes = exchange.body(max_bytes).map_err(|e| match e {
            BodyError::TooLong { max_bytes } => RegistryError::TooLarge {
                what: shown.to_string(),
                max_bytes,
            },
            e => RegistryError::Unreachable(format!("{shown}: {}", untrusted(&e.to_string()))),
        })?;
        Ok(Fetched::Body { bytes, validators })
    }
}

/// A file's size, mtime and inode stand in for an ETag.
fn get_file(path: &Path, known: &Validators, max_bytes: u64) -> Result<Fetched, RegistryError> {
    let shown = Location::File(path.to_owned());
    let stamp =
        file_stamp(path).map_err(|e| RegistryError::Unreachable(format!("{shown}: {e}")))?;
    if known.etag.as_deref() == Some(stamp.as_str()) {
        return Ok(Fetched::NotModified);
    }
    if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > max_bytes) {
        return Err(RegistryError::TooLarge {
            what: shown.to_string(),
            max_bytes,
        });
    }
    let bytes = read_regular_capped(path, max_bytes)
        .map_err(|e| RegistryError::Unreachable(format!("{shown}: {}", clip(&e, 512))))?;
    Ok(Fetched::Body {
        bytes,
        validators: Validators {
            etag: Some(stamp),
            last_modified: None,
        },
    })
}

fn file_stamp(path: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt as _;
    let metadata = std::fs::metadata(path)?;
    Ok(format!(
        "{}-{}.{}-{}",
        metadata.len(),
        metadata.mtime(),
        metadata.mtime_nsec(),
        metadata.ino()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_join_and_name_their_signature() {
        let http = Location::parse("https://r.example/fleet/manifest.json").unwrap();
        assert_eq!(
            http.join("m/v2.wasm").unwrap(),
            Location::parse("https://r.example/fleet/m/v2.wasm").unwrap()
        );
        assert_eq!(
            http.signature(),
            Location::parse("https://r.example/fleet/manifest.json.minisig").unwrap()
        );
        assert!(http.join("file:///etc/passwd").is_err());
        let file = Location::parse("/srv/registry/manifest.json").unwrap();
        assert_eq!(
            file.join("v1.wasm").unwrap(),
            Location::File("/srv/registry/v1.wasm".into())
        );
        assert_eq!(
            file.signature(),
            Location::File("/srv/registry/manifest.json.minisig".into())
        );
        assert_eq!(
            Location::parse("file:///srv/m.json").unwrap(),
            Location::File("/srv/m.json".into())
        );
        assert!(Location::parse("relative/m.json").is_err());
        assert!(Location::parse("ftp://x/m.json").is_err());
        assert!(Location::parse("").is_err());
        let shown = Location::parse("https://u:secret@r.example/m.json")
            .unwrap()
            .to_string();
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn a_file_is_read_again_only_when_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        std::fs::write(&path, b"one").unwrap();
        let source = Source::new(None, Duration::from_secs(1)).unwrap();
        let location = Location::File(path.clone());
        let Fetched::Body { bytes, validators } =
            source.get(&location, &Validators::default(), 100).unwrap()
        else {
            panic!("a first read has a body");
        };
        assert_eq!(bytes, b"one");
        assert_eq!(
            source.get(&location, &validators, 100).unwrap(),
            Fetched::NotModified
        );
        std::fs::write(dir.path().join("new"), b"two!").unwrap();
        std::fs::rename(dir.path().join("new"), &path).unwrap();
        assert!(matches!(
            source.get(&location, &validators, 100).unwrap(),
            Fetched::Body { bytes, .. } if bytes == b"two!"
        ));
        assert!(matches!(
            source.get(&location, &Validators::default(), 3),
            Err(RegistryError::TooLarge { .. })
        ));
        assert!(matches!(
            source.get(&Location::File(dir.path().join("gone")), &validators, 100),
            Err(RegistryError::Unreachable(_))
        ));
    }
}

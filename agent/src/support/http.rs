//! The agent's one way to talk HTTP: reqwest's blocking client on rustls with the ring
//! provider (no OpenSSL, no aws-lc), the system's roots or a configured CA bundle, no
//! redirects, and ONE wall-clock deadline per exchange, from the connect to the body's
//! last byte, with the body read through a size bound. The shipper and the registry both
//! talk through an [`Http`]; a TLS, timeout or size policy changes here.
//!
//! Why the deadline is set per request: reqwest's blocking `ClientBuilder::timeout` bounds
//! the wait for the response head and then each read of the body on its own, so a server
//! that drips a byte every 200 ms holds a caller for as long as it likes. A per-request
//! timeout is reqwest's "total" timeout instead: one timer from the request's start that
//! also ends a body still arriving. [`read_body`] checks the same deadline between reads,
//! so the bound holds whichever of the two notices first.

use std::io::Read;
use std::time::{Duration, Instant};

use reqwest::blocking::{RequestBuilder, Response};
use thiserror::Error;

/// The longest a TCP connect may take, whatever the exchange's bound.
const CONNECT_TIMEOUT_MAX: Duration = Duration::from_secs(10);

/// Bytes asked for per read of a body: small enough that the deadline is looked at often
/// on a slow link, large enough not to matter on a fast one.
const READ_CHUNK: usize = 16 << 10;

/// A blocking client whose every exchange ends within `timeout` of its start.
#[derive(Clone, Debug)]
pub struct Http {
    client: reqwest::blocking::Client,
    timeout: Duration,
}

/// A request on its way: the response head arrived, the body is still to read, and the
/// deadline is the exchange's, set when the request left.
#[derive(Debug)]
pub struct Exchange {
    pub response: Response,
    pub deadline: Instant,
}

/// Why a body could not be read whole.
#[derive(Debug, Error)]
pub enum BodyError {
    #[error("the body is longer than {max_bytes} bytes")]
    TooLong { max_bytes: u64 },
    #[error("the whole exchange did not end within its deadline (timeout_ms)")]
    TimedOut,
    #[error("the body broke off: {0}")]
    Broken(std::io::Error),
}

impl Http {
    /// `timeout` bounds each whole exchange, body included (a server that trickles is cut
    /// off); `ca_pem`, when given, is the only trust (a private CA). No redirect is
    /// followed: for the shipper a redirect turns a POST into a GET elsewhere (misrouting,
    /// to be seen as such), and the registry trusts signatures, not locations. The error
    /// is text for the caller's own error type.
    pub fn new(ca_pem: Option<&[u8]>, timeout: Duration) -> Result<Self, String> {
        // reqwest leaves the choice of crypto to us; ring is already there for rustls. A
        // second install (the other client) is refused harmlessly.
        let _ = crate::support::tls::provider().install_default();
        let mut builder = reqwest::blocking::Client::builder()
            // Each read's own bound, as before; the exchange's is set per request.
            .timeout(timeout)
            .connect_timeout(timeout.min(CONNECT_TIMEOUT_MAX))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("edge-agent/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("the CA file is not PEM: {e}"))?;
            builder = builder.tls_certs_only(certificates);
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        Ok(Self { client, timeout })
    }

    /// The bound on one whole exchange.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn get(&self, url: impl reqwest::IntoUrl) -> RequestBuilder {
        self.client.get(url)
    }

    pub fn put(&self, url: impl reqwest::IntoUrl) -> RequestBuilder {
        self.client.put(url)
    }

    pub fn post(&self, url: impl reqwest::IntoUrl) -> RequestBuilder {
        self.client.post(url)
    }

    /// Sends `request` under the exchange's deadline, which starts now and covers the
    /// body too: read it with [`read_body`] (or [`Exchange::body`]).
    pub fn send(&self, request: RequestBuilder) -> reqwest::Result<Exchange> {
        let deadline = deadline_after(self.timeout);
        let response = request.timeout(self.timeout).send()?;
        Ok(Exchange { response, deadline })
    }
}

impl Exchange {
    /// The body, at most `max_bytes`, by the exchange's deadline.
    pub fn body(self, max_bytes: u64) -> Result<Vec<u8>, BodyError> {
        read_body(self.response, max_bytes, self.deadline)
    }
}

/// `now + timeout`. The configuration bounds `timeout_ms` far below what an `Instant` can
/// add; one that could not be added is spent at once rather than unbounded.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or(now)
}

/// Reads at most `max_bytes` of `response`'s body by `deadline`: a declared length over
/// the bound is refused before a byte is read, a longer body is cut off at the bound + 1,
/// and a body still arriving at the deadline is abandoned (the response's own total
/// timeout ends a read blocked past it).
pub fn read_body(
    response: Response,
    max_bytes: u64,
    deadline: Instant,
) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > max_bytes) {
        return Err(BodyError::TooLong { max_bytes });
    }
    let mut limited = response.take(max_bytes.saturating_add(1));
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        if Instant::now() >= deadline {
            return Err(BodyError::TimedOut);
        }
        match limited.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // reqwest's total timeout surfaces as an error of its own kind; past the
            // deadline, whatever broke the read, the exchange ran out of time.
            Err(_) if Instant::now() >= deadline => return Err(BodyError::TimedOut),
            Err(e) => return Err(BodyError::Broken(e)),
        }
    }
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > max_bytes {
        return Err(BodyError::TooLong { max_bytes });
    }
    Ok(bytes)
}

/// `url` without its userinfo; text that is not a URL is not printed at all.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string().trim_end_matches('/').to_owned()
        }
        Err(_) => "(an unparsable URL)".into(),
    }
}

/// reqwest's errors hide their cause behind "error sending request"; show the chain (a
/// timeout, a refusal, TLS). The URL in them loses its userinfo: a password in a URL
/// never reaches the log.
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    match error.url() {
        Some(url) if !url.username().is_empty() || url.password().is_some() => {
            text.replace(url.as_str(), &redact_url(url.as_str()))
        }
        _ => text,
    }
}

//! The agent's one way to build an HTTP client: reqwest's blocking client on rustls with
//! the ring provider (no OpenSSL, no aws-lc), the system's roots or a configured CA
//! bundle, no redirects, and a bound on the whole exchange. The shipper and the registry
//! both talk through one of these; a TLS or timeout policy changes here.

use std::time::Duration;

/// The longest a TCP connect may take, whatever the exchange's bound.
const CONNECT_TIMEOUT_MAX: Duration = Duration::from_secs(10);

/// A blocking client: `timeout` bounds the whole exchange, body included (a server that
/// trickles is cut off); `ca_pem`, when given, is the only trust (a private CA). No
/// redirect is followed: for the shipper a redirect turns a POST into a GET elsewhere
/// (misrouting, to be seen as such), and the registry trusts signatures, not locations.
/// The error is text for the caller's own error type.
pub fn client(
    ca_pem: Option<&[u8]>,
    timeout: Duration,
) -> Result<reqwest::blocking::Client, String> {
    // reqwest leaves the choice of crypto to us; ring is already there for rustls. A
    // second install (the other client) is refused harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(CONNECT_TIMEOUT_MAX))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("edge-agent/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca_pem {
        let certificates = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("the CA file is not PEM: {e}"))?;
        builder = builder.tls_certs_only(certificates);
    }
    builder.build().map_err(|e| e.to_string())
}

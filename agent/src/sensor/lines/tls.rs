//! TLS on the lines source's TCP listener, with rustls (the client the shipper uses, on
//! the same ring provider): the server's configuration from PEM files, refused at start
//! when a file cannot be read or the key does not fit the certificate; the handshake,
//! bounded in time, and why it failed; the name a client certificate carries. After the
//! handshake a connection's plaintext goes through the same line reader as plain TCP
//! (`listener`): nothing here knows what a line is.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

use crate::support::file::read_regular_capped;
use crate::support::wake::Stop;

/// A client's connection once its handshake is done: reads give the plaintext.
pub type TlsStream = StreamOwned<ServerConnection, TcpStream>;

/// The most read of a certificate, key or CA file: a few KiB in practice.
pub const PEM_FILE_BYTES: u64 = 1 << 20;

/// Why a handshake did not finish, as the metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// Not done within `tls_handshake_timeout_s` (a client that connects and says
    /// nothing, or too little).
    Timeout,
    /// The client's certificate was missing, expired, or not issued by `tls_client_ca`;
    /// or, with `bind_sensor_to_certificate`, it names no sensor.
    Certificate,
    /// Anything else: not TLS at all (a plain-TCP client), no common version or
    /// cipher, a close in the middle.
    Protocol,
}

impl HandshakeFailure {
    pub const ALL: [HandshakeFailure; 3] = [Self::Timeout, Self::Certificate, Self::Protocol];

    pub fn name(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Certificate => "certificate",
            Self::Protocol => "protocol",
        }
    }

    pub fn index(self) -> usize {
        Self::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }
}

/// The server's configuration: `cert` (a PEM chain, the server's own first), `key` (its
/// PEM private key, ECDSA (`support::tls`), not readable by every user), and, with `client_ca`, clients must
/// present a certificate that CA issued. Errors name the `[source]` key.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, (&'static str, String)> {
    let chain = certificates("tls_cert", cert)?;
    private_to_the_service(key)?;
    let pem = read("tls_key", key)?;
    let private = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        (
            "tls_key",
            format!("{}: no PEM private key ({e})", key.display()),
        )
    })?;
    let provider = Arc::new(crate::support::tls::provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ("tls_cert", e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let at =
                |e: &dyn std::fmt::Display| ("tls_client_ca", format!("{}: {e}", path.display()));
            let mut roots = RootCertStore::empty();
            for ca in certificates("tls_client_ca", path)? {
                roots.add(ca).map_err(|e| at(&e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| at(&e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, private).map_err(|e| {
        (
            "tls_key",
            format!(
                "{} cannot serve the certificate in tls_cert {}: {e} (the key must be the \
                 certificate's, and ECDSA: P-256 or P-384)",
                key.display(),
                cert.display()
            ),
        )
    })?;
    // Nothing is sent after the handshake: a sensor that writes, closes and never reads
    // would otherwise close with the tickets unread, its kernel would answer with a
    // reset, and ours would throw away whatever of its lines it had not read yet. A
    // sensor connects for hours; resuming a session saves it nothing worth that.
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, (&'static str, String)> {
    read_regular_capped(path, PEM_FILE_BYTES)
        .map_err(|e| (key, format!("cannot read {}: {e}", path.display())))
}

fn certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, (&'static str, String)> {
    let pem = read(key, path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            (
                key,
                format!("{}: not a PEM certificate ({e})", path.display()),
            )
        })?;
    if chain.is_empty() {
        return Err((
            key,
            format!(
                "{}: no certificate (no BEGIN CERTIFICATE block)",
                path.display()
            ),
        ));
    }
    Ok(chain)
}

/// A private key every user of the machine may read is no secret: refused, as ssh does.
fn private_to_the_service(path: &Path) -> Result<(), (&'static str, String)> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .map_err(|e| ("tls_key", format!("cannot read {}: {e}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o004 != 0 {
        return Err((
            "tls_key",
            format!(
                "{} is readable by every user (mode {:o}): make it 0600 for the service's \
                 user, or 0640 with the service's group (chmod o-r)",
                path.display(),
                mode & 0o777
            ),
        ));
    }
    Ok(())
}

/// Runs the server's side of the handshake on `stream` (whose reads time out every turn)
/// until done, `within` has passed since the accept, or the stop.
pub fn accept(
    mut stream: TcpStream,
    config: &Arc<ServerConfig>,
    within: Duration,
    stop: &Stop,
) -> Result<TlsStream, (HandshakeFailure, String)> {
    let started = Instant::now();
    let mut connection = ServerConnection::new(config.clone())
        .map_err(|e| (HandshakeFailure::Protocol, e.to_string()))?;
    while connection.is_handshaking() {
        if stop.is_stopped() || started.elapsed() >= within {
            return Err((
                HandshakeFailure::Timeout,
                format!("no handshake within {within:?}"),
            ));
        }
        match connection.complete_io(&mut stream) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err((classify(&e), e.to_string())),
        }
    }
    Ok(StreamOwned::new(connection, stream))
}

fn classify(error: &std::io::Error) -> HandshakeFailure {
    let tls = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented) => {
            HandshakeFailure::Certificate
        }
        _ => HandshakeFailure::Protocol,
    }
}

/// The name in the client's certificate: its first DNS subject alternative name (what
/// `openssl req -addext subjectAltName=DNS:kitchen` writes); `None` without a
/// certificate or such a name.
pub fn certificate_name(connection: &ServerConnection) -> Option<Arc<str>> {
    let first = connection.peer_certificates()?.first()?;
    let certificate = webpki::EndEntityCert::try_from(first).ok()?;
    certificate.valid_dns_names().next().map(Arc::from)
}

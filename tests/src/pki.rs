//! Certificates made by a test for itself (rcgen): a CA, certificates it issues (for a
//! server on 127.0.0.1, for a client named after its sensor, expired ones), written to
//! files as a service would read them, and rustls clients that present them. Nothing is
//! kept between runs: no private key is ever committed.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A certificate authority of the test's own.
pub struct Pki {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    pub ca_pem: String,
}

/// A certificate and its key, as PEM and as rustls takes them.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Pki {
    pub fn new(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().expect("a key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let ca = rcgen::CertifiedIssuer::self_signed(params, key).expect("the CA");
        Self {
            ca_pem: ca.pem(),
            ca,
        }
    }

    /// A certificate for `names` (IP addresses or DNS names, in that order as subject
    /// alternative names), valid now or, with `expired`, only in 2020.
    pub fn issue(&self, names: &[&str], expired: bool) -> Issued {
        let key = rcgen::KeyPair::generate().expect("a key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("params");
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 12, 31);
        }
        let certificate = params.signed_by(&key, &self.ca).expect("a certificate");
        Issued {
            cert_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
            chain: vec![certificate.der().clone()],
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        }
    }

    /// The CA's certificate in `dir/<stem>.crt`.
    pub fn write_ca(&self, dir: &Path, stem: &str) -> PathBuf {
        let path = dir.join(format!("{stem}.crt"));
        std::fs::write(&path, &self.ca_pem).expect("write the CA");
        path
    }

    /// A rustls client trusting this CA, presenting `identity` if given.
    pub fn client(&self, identity: Option<&Issued>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.ca.der().clone())
            .expect("the CA is a certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots);
        let config = match identity {
            Some(issued) => builder
                .with_client_auth_cert(issued.chain.clone(), issued.key.clone_key())
                .expect("a client certificate"),
            None => builder.with_no_client_auth(),
        };
        Arc::new(config)
    }
}

impl Issued {
    /// `dir/<stem>.crt` and `dir/<stem>.key`, the key readable by its owner only.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("write the certificate");
        std::fs::write(&key, &self.key_pem).expect("write the key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .expect("chmod the key");
        (cert, key)
    }
}

/// A TLS connection to 127.0.0.1 as `client` makes it (the handshake happens with the
/// first write).
pub fn connect(
    addr: SocketAddr,
    client: Arc<rustls::ClientConfig>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let name = ServerName::try_from("127.0.0.1").expect("a server name");
    let connection = rustls::ClientConnection::new(client, name).expect("a client connection");
    let stream = TcpStream::connect(addr).expect("connect");
    rustls::StreamOwned::new(connection, stream)
}

/// Sends `text` over `stream` and closes it the TLS way (close_notify), so the server
/// reads every line and then a clean end. Errors are the server's refusal, answered.
pub fn send_and_close(
    stream: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    text: &str,
) -> std::io::Result<()> {
    stream.write_all(text.as_bytes())?;
    stream.flush()?;
    stream.conn.send_close_notify();
    stream.flush()?;
    stream.sock.shutdown(std::net::Shutdown::Write)
}

//! The one rustls crypto provider the agent uses, for the HTTP client's TLS and the lines
//! listener's: ring's, loading ECDSA private keys only. The client never presents a key,
//! and the lines listener's key is ECDSA (P-256 or P-384, what an ESP32's mbedTLS
//! verifies fastest); leaving RSA and Ed25519 signing unreferenced keeps their code out
//! of the binary (about 19 KB on armv7: ring's RSA private-key operations and Ed25519's
//! scalar arithmetic). Verifying RSA and Ed25519 signatures (servers' certificates, the
//! registry's minisign) is not signing and stays.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::SigningKey;

/// ring's provider with [`EcdsaKeys`] for its keys.
pub fn provider() -> CryptoProvider {
    CryptoProvider {
        key_provider: &EcdsaKeys,
        ..rustls::crypto::ring::default_provider()
    }
}

/// Loads ECDSA private keys (PKCS#8 or SEC1) and refuses any other kind.
#[derive(Debug)]
pub struct EcdsaKeys;

impl rustls::crypto::KeyProvider for EcdsaKeys {
    fn load_private_key(
        &self,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        rustls::crypto::ring::sign::any_ecdsa_type(&key)
    }
}

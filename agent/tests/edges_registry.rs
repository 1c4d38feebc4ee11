//! Registry reasons: with several trusted keys, a manifest that fails to verify is
//! reported with the failure of the key its signature names, not with the last key
//! tried ("signed by a key this agent does not trust" for a manifest a trusted key
//! signed and someone altered). Signed with the minisign crate, as `minisign -Sm` does.

use edge_agent::registry::{TrustedKeys, verify};
use edge_tests::fleet::Publisher;

fn manifest(version: u64) -> Vec<u8> {
    Publisher::manifest(version, "v.wasm", b"\0asm\x01\0\0\0", 1.0)
}

fn reason(bytes: &[u8], signature: &[u8], keys: &TrustedKeys) -> String {
    match verify(bytes, signature, keys) {
        Ok(_) => panic!("verified: {}", String::from_utf8_lossy(bytes)),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_altered_manifest_reports_the_signing_keys_failure_whatever_the_key_order() {
    let (a, b, stranger) = (Publisher::new(), Publisher::new(), Publisher::new());
    let bytes = manifest(7);
    let signature = Publisher::sign(&a.key, &bytes);
    let mut altered = bytes.clone();
    let at = altered
        .windows(3)
        .position(|w| w == b": 7")
        .expect("the version in the manifest");
    altered[at + 2] = b'8';

    for keys in [
        [a.public_key(), b.public_key()],
        [b.public_key(), a.public_key()],
    ] {
        let keys = TrustedKeys::parse(&keys).unwrap();
        assert!(
            verify(&bytes, &signature, &keys).is_ok(),
            "the original verifies"
        );

        let why = reason(&altered, &signature, &keys);
        assert!(!why.contains("does not trust"), "{why}");
        assert!(why.contains("does not match"), "{why}");

        // The trusted comment altered: the signing key's reason again.
        let text = String::from_utf8(signature.clone()).unwrap();
        let comment = text
            .lines()
            .find(|l| l.starts_with("trusted comment:"))
            .unwrap()
            .to_owned();
        let forged = text.replace(&comment, "trusted comment: timestamp:0\tfile:other");
        let why = reason(&bytes, forged.as_bytes(), &keys);
        assert!(!why.contains("does not trust"), "{why}");
        assert!(why.contains("trusted comment"), "{why}");

        // A key nobody trusts is still named as such, with its id.
        let by_stranger = Publisher::sign(&stranger.key, &bytes);
        let why = reason(&bytes, &by_stranger, &keys);
        assert!(why.contains("does not trust"), "{why}");
        assert!(why.contains("key id"), "{why}");
    }
}

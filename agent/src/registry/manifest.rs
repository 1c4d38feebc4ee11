//! The registry's manifest: what it says (per group: the module's URL, sha256 and size,
//! its parameters, the window it needs, the rollout fraction), how its minisign signature
//! is checked against the configured public keys, and which agents a fraction takes (the
//! stable cohort hash). Nothing in a manifest is believed before [`verify`] has checked
//! its signature; a new field goes in [`GroupEntry`], in `edge-agent manifest`
//! (`cli/manifest.rs`) and in the README's "Fleet: registry" section.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::RegistryError;
use super::minisign::{MinisignError, PublicKey, Signature};
use crate::function::MAX_MODULE_BYTES;
use crate::support::text::untrusted;

/// The manifest format this agent reads.
pub const FORMAT: u32 = 1;
/// The most bytes of a manifest the agent reads: a few hundred per group, so room for
/// hundreds of groups.
pub const MAX_MANIFEST_BYTES: u64 = 256 << 10;
/// The most bytes of a minisign signature file: about 300 with a long trusted comment.
pub const MAX_SIGNATURE_BYTES: u64 = 4 << 10;
/// Groups one manifest may name.
pub const MAX_GROUPS: usize = 1024;
/// Parameters one group may set, and the longest name or value.
pub const MAX_PARAMS: usize = 64;
pub const MAX_PARAM_BYTES: usize = 1024;
/// The longest group label and module URL.
pub const MAX_GROUP_BYTES: usize = 128;
pub const MAX_URL_BYTES: usize = 2048;

/// A signed manifest, as published.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// Only ever goes up: an agent refuses a manifest older than the newest it accepted.
    pub version: u64,
    pub groups: BTreeMap<String, GroupEntry>,
}

/// What one group of agents runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupEntry {
    pub module: ModuleRef,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The shortest window (samples) the function needs; an agent configured with shorter
    /// windows refuses the entry rather than run it on windows it cannot judge.
    #[serde(default = "one")]
    pub min_window: usize,
    /// The share of the group's agents that take this module, 0.0 to 1.0.
    #[serde(default = "all")]
    pub fraction: f64,
}

fn one() -> usize {
    1
}

fn all() -> f64 {
    1.0
}

/// Where a module is and what it must be.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleRef {
    /// Absolute, or relative to the manifest's URL.
    pub url: String,
    /// Lowercase hex.
    pub sha256: String,
    pub size: u64,
}

impl Manifest {
    /// Parses manifest bytes (already verified) and checks every bound.
    pub fn parse(bytes: &[u8]) -> Result<Self, RegistryError> {
        let bad = |reason: String| RegistryError::Manifest(untrusted(&reason));
        let manifest: Manifest =
            // The signature covers the BOM with the rest; JSON has no place for one.
            serde_json::from_slice(crate::support::text::bytes_without_bom(bytes)).map_err(|e| bad(format!("not a manifest: {e}")))?;
        if manifest.format != FORMAT {
            return Err(bad(format!(
                "format {} (this agent reads {FORMAT})",
                manifest.format
            )));
        }
        if manifest.groups.len() > MAX_GROUPS {
            return Err(bad(format!("more than {MAX_GROUPS} groups")));
        }
        for (group, entry) in &manifest.groups {
            entry
                .check()
                .map_err(|reason| bad(format!("group {group:?}: {reason}")))?;
            if group.is_empty() || group.len() > MAX_GROUP_BYTES {
                return Err(bad(format!(
                    "a group label must be 1 to {MAX_GROUP_BYTES} bytes"
                )));
            }
        }
        Ok(manifest)
    }
}

impl GroupEntry {
    fn check(&self) -> Result<(), String> {
        let module = &self.module;
        if module.url.is_empty() || module.url.len() > MAX_URL_BYTES {
            return Err(format!("the module URL must be 1 to {MAX_URL_BYTES} bytes"));
        }
        if module.sha256.len() != 64
            || !module
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err("sha256 must be 64 lowercase hex digits".into());
        }
        if module.size == 0 || module.size > MAX_MODULE_BYTES {
            return Err(format!(
                "size {} is outside 1..={MAX_MODULE_BYTES}",
                module.size
            ));
        }
        if !(0.0..=1.0).contains(&self.fraction) {
            return Err(format!("fraction {} is outside 0..=1", self.fraction));
        }
        if self.params.len() > MAX_PARAMS {
            return Err(format!("more than {MAX_PARAMS} parameters"));
        }
        if self
            .params
            .iter()
            .any(|(k, v)| k.is_empty() || k.len() > MAX_PARAM_BYTES || v.len() > MAX_PARAM_BYTES)
        {
            return Err(format!(
                "parameter names are 1 to {MAX_PARAM_BYTES} bytes, values at most {MAX_PARAM_BYTES}"
            ));
        }
        Ok(())
    }
}

/// Public keys an agent trusts, parsed from the configuration's base64 lines.
#[derive(Clone)]
pub struct TrustedKeys(Vec<PublicKey>);

impl std::fmt::Debug for TrustedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustedKeys({})", self.0.len())
    }
}

impl TrustedKeys {
    /// Each key as `minisign -G` prints it: the base64 line of the `.pub` file (its
    /// comment line, if given too, is skipped).
    pub fn parse(keys: &[String]) -> Result<Self, String> {
        let mut parsed = Vec::with_capacity(keys.len());
        for (n, key) in keys.iter().enumerate() {
            let line = key
                .lines()
                .map(|line| crate::support::text::without_bom(line.trim()).trim())
                .rfind(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
                .unwrap_or_default();
            let key = PublicKey::from_base64(line)
                .map_err(|e| format!("key {}: not a minisign public key: {e}", n + 1))?;
            parsed.push(key);
        }
        if parsed.is_empty() {
            return Err("at least one public key is needed".into());
        }
        Ok(Self(parsed))
    }
}

/// The manifest, believed only if `signature` (a `.minisig` file's text) is a valid
/// minisign signature of exactly `bytes` by one of `keys`. Legacy (not pre-hashed)
/// signatures are accepted too: `minisign -S` made them by default before 0.11.
pub fn verify(
    bytes: &[u8],
    signature: &[u8],
    keys: &TrustedKeys,
) -> Result<Manifest, RegistryError> {
    let text = std::str::from_utf8(signature)
        .map_err(|_| RegistryError::Signature("the signature file is not text".into()))?;
    let signature = Signature::decode(text)
        .map_err(|e| RegistryError::Signature(format!("not a minisign signature: {e}")))?;
    // The signature names its key. Only that key's verdict says why it failed: with
    // several trusted keys, the others' "signed by another key" is no reason at all, and
    // reporting the last key tried would call an altered manifest untrusted.
    let mut named = None;
    let mut other = None;
    for (n, key) in keys.0.iter().enumerate() {
        match key.verify(bytes, &signature) {
            Ok(()) => return Manifest::parse(bytes),
            Err(MinisignError::OtherKey(id)) => other = Some(id),
            Err(e) => named = Some((n, e)),
        }
    }
    Err(RegistryError::Signature(match (named, other) {
        (Some((n, e)), _) => format!(
            "does not verify with trusted key {} (the key the signature names): {e}",
            n + 1
        ),
        (None, Some(id)) => {
            format!("signed by a key this agent does not trust (key id {id})")
        }
        (None, None) => "no key to verify with".into(),
    }))
}

/// Where this agent falls in `[0, 1)` for a module: the first 8 bytes of
/// sha256(`identity` \n `group` \n `module_sha256`) over 2^64. The module's sha256 rather
/// than the manifest version: raising a module's fraction in a new manifest keeps the
/// agents that already have it and adds others, while a new module draws a new cohort so
/// the same agents are not always first.
pub fn cohort_point(identity: &str, group: &str, module_sha256: &str) -> f64 {
    let digest =
        crate::support::digest::sha256(format!("{identity}\n{group}\n{module_sha256}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) as f64 / 18_446_744_073_709_551_616.0
}

/// Whether an agent at `point` takes a module rolled out to `fraction`.
pub fn in_cohort(point: f64, fraction: f64) -> bool {
    fraction >= 1.0 || point < fraction
}

pub use crate::support::digest::sha256_hex;

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair() -> (minisign::KeyPair, String) {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let public = pair.pk.to_base64();
        (pair, public)
    }

    fn sign(pair: &minisign::KeyPair, bytes: &[u8]) -> Vec<u8> {
        minisign::sign(Some(&pair.pk), &pair.sk, bytes, None, None)
            .unwrap()
            .to_string()
            .into_bytes()
    }

    fn manifest_bytes(version: u64) -> Vec<u8> {
        serde_json::to_vec(&Manifest {
            format: FORMAT,
            version,
            groups: [(
                "lab".to_owned(),
                GroupEntry {
                    module: ModuleRef {
                        url: "m.wasm".into(),
                        sha256: "ab".repeat(32),
                        size: 10,
                    },
                    params: [("period".to_owned(), "20".to_owned())].into(),
                    min_window: 64,
                    fraction: 0.5,
                },
            )]
            .into(),
        })
        .unwrap()
    }

    #[test]
    fn only_the_trusted_key_and_the_exact_bytes_verify() {
        let (pair, public) = keypair();
        let (other, other_public) = keypair();
        let keys = TrustedKeys::parse(&[public]).unwrap();
        let bytes = manifest_bytes(3);
        let signature = sign(&pair, &bytes);
        let manifest = verify(&bytes, &signature, &keys).unwrap();
        assert_eq!(manifest.version, 3);
        assert_eq!(manifest.groups["lab"].params["period"], "20");

        let mut tampered = bytes.clone();
        let at = tampered.iter().position(|b| *b == b'3').unwrap();
        tampered[at] = b'4';
        let err = verify(&tampered, &signature, &keys).unwrap_err();
        assert!(matches!(err, RegistryError::Signature(_)), "{err}");

        let by_other = sign(&other, &bytes);
        let err = verify(&bytes, &by_other, &keys).unwrap_err();
        assert!(err.to_string().contains("does not trust"), "{err}");
        // Trusting both keys (a rotation) accepts either.
        let both = TrustedKeys::parse(&[other_public, pair.pk.to_base64()]).unwrap();
        assert!(verify(&bytes, &by_other, &both).is_ok());
        assert!(verify(&bytes, &signature, &both).is_ok());

        let err = verify(&bytes, b"garbage", &keys).unwrap_err();
        assert!(
            err.to_string().contains("not a minisign signature"),
            "{err}"
        );
    }

    #[test]
    fn a_public_key_file_with_its_comment_line_is_accepted() {
        let (pair, _) = keypair();
        let text = pair.pk.to_box().unwrap().to_string();
        assert!(text.starts_with("untrusted comment:"));
        assert!(TrustedKeys::parse(&[text]).is_ok());
        assert!(TrustedKeys::parse(&["not a key".into()]).is_err());
        assert!(TrustedKeys::parse(&[]).is_err());
    }

    /// Files saved on Windows: a key file, a signature and a manifest with a BOM first
    /// and CRLF line ends. None of them is a different file for that.
    #[test]
    fn a_bom_and_crlf_in_keys_signatures_and_manifests_are_read() {
        let (pair, public) = keypair();
        let windows = |text: &str| format!("\u{feff}{}", text.replace('\n', "\r\n"));
        let boxed = pair.pk.to_box().unwrap().to_string();
        for key in [windows(&public), windows(&boxed)] {
            assert!(
                TrustedKeys::parse(std::slice::from_ref(&key)).is_ok(),
                "{key:?}"
            );
        }
        let keys = TrustedKeys::parse(&[windows(&public)]).unwrap();
        let mut bytes = b"\xef\xbb\xbf".to_vec();
        bytes.extend_from_slice(&manifest_bytes(5));
        let signature = String::from_utf8(sign(&pair, &bytes)).unwrap();
        let manifest = verify(&bytes, windows(&signature).as_bytes(), &keys).unwrap();
        assert_eq!(manifest.version, 5);
    }

    #[test]
    fn bounds_are_checked_after_the_signature() {
        let good = manifest_bytes(1);
        assert!(Manifest::parse(&good).is_ok());
        let text = String::from_utf8(good).unwrap();
        for (from, to) in [
            ("\"fraction\":0.5", "\"fraction\":1.5"),
            ("\"size\":10", "\"size\":0"),
            (&format!("\"{}\"", "ab".repeat(32)), "\"AB\""),
            ("\"format\":1", "\"format\":2"),
            ("\"version\":1", "\"version\":-1"),
            ("\"min_window\":64", "\"min_window\":64,\"extra\":1"),
        ] {
            let changed = text.replace(from, to);
            assert_ne!(changed, text, "{from}");
            assert!(Manifest::parse(changed.as_bytes()).is_err(), "{to}");
        }
    }

    #[test]
    fn a_cohort_is_stable_and_grows_with_its_fraction() {
        let sha = "cd".repeat(32);
        let agents: Vec<String> = (0..1000).map(|n| format!("host-{n}/sensor")).collect();
        let take = |fraction: f64| -> Vec<&String> {
            agents
                .iter()
                .filter(|a| in_cohort(cohort_point(a, "lab", &sha), fraction))
                .collect()
        };
        let tenth = take(0.1);
        let half = take(0.5);
        assert_eq!(take(0.1), tenth, "the same agents every time");
        assert!((60..=140).contains(&tenth.len()), "{}", tenth.len());
        assert!(
            tenth.iter().all(|a| half.contains(a)),
            "10 % is inside 50 %"
        );
        assert_eq!(take(1.0).len(), 1000);
        assert!(take(0.0).is_empty());
        // Another module draws another cohort.
        let other = "ef".repeat(32);
        let tenth_other: Vec<&String> = agents
            .iter()
            .filter(|a| in_cohort(cohort_point(a, "lab", &other), 0.1))
            .collect();
        assert_ne!(tenth, tenth_other);
    }
}

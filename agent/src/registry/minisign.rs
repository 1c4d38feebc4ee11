//! minisign signatures, verified: the formats of `minisign -G` (public key) and
//! `minisign -S` (signature file), checked with ring's Ed25519, which the agent already
//! carries for TLS. A signature made by `-S` since minisign 0.11 signs the BLAKE2b-512 of
//! the file (algorithm `ED`); older ones sign the file itself (`Ed`); both are accepted.
//! The trusted comment is covered by the second, global, signature and checked too.
//! The formats are read here; the cryptography is well-kept crates': ring's Ed25519 and
//! RustCrypto's `blake2` (rather than `minisign-verify`, whose own Ed25519 would be a
//! second copy next to ring's, 35 KiB of the armv7 binary).

use ring::signature::{ED25519, UnparsedPublicKey};

/// A public key: its id (which a signature names) and the Ed25519 key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key_id: [u8; 8],
    key: [u8; 32],
}

/// A signature file, decoded.
#[derive(Clone, Debug)]
pub struct Signature {
    prehashed: bool,
    key_id: [u8; 8],
    signature: [u8; 64],
    trusted_comment: String,
    global_signature: [u8; 64],
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MinisignError {
    #[error("{0}")]
    Format(&'static str),
    #[error("signed by another key (key id {0})")]
    OtherKey(String),
    #[error("the signature does not match the file")]
    Mismatch,
    #[error("the trusted comment was altered")]
    TrustedComment,
}

impl PublicKey {
    /// The base64 line of a `.pub` file.
    pub fn from_base64(line: &str) -> Result<Self, MinisignError> {
        let bytes = base64_decode(line.trim()).ok_or(MinisignError::Format("not base64"))?;
        let [b'E', b'd', rest @ ..] = bytes.as_slice() else {
            return Err(MinisignError::Format("not an Ed25519 minisign key"));
        };
        let (key_id, key) = split::<8, 32>(rest).ok_or(MinisignError::Format("wrong length"))?;
        Ok(Self { key_id, key })
    }

    /// Whether `signature` is this key's over exactly `data`.
    pub fn verify(&self, data: &[u8], signature: &Signature) -> Result<(), MinisignError> {
        if signature.key_id != self.key_id {
            return Err(MinisignError::OtherKey(hex(&signature.key_id)));
        }
        let key = UnparsedPublicKey::new(&ED25519, &self.key);
        let verified = if signature.prehashed {
            key.verify(&blake2b512(data), &signature.signature)
        } else {
            key.verify(data, &signature.signature)
        };
        verified.map_err(|_| MinisignError::Mismatch)?;
        let mut global = Vec::with_capacity(64 + signature.trusted_comment.len());
        global.extend_from_slice(&signature.signature);
        global.extend_from_slice(signature.trusted_comment.as_bytes());
        key.verify(&global, &signature.global_signature)
            .map_err(|_| MinisignError::TrustedComment)
    }
}

impl Signature {
    /// The four lines of a `.minisig` file.
    pub fn decode(text: &str) -> Result<Self, MinisignError> {
        let mut lines = crate::support::text::without_bom(text).lines();
        let mut next = || lines.next().ok_or(MinisignError::Format("too few lines"));
        if !next()?.starts_with("untrusted comment:") {
            return Err(MinisignError::Format("no untrusted comment line"));
        }
        let bytes = base64_decode(next()?.trim()).ok_or(MinisignError::Format("not base64"))?;
        let (algorithm, rest) = bytes
            .split_at_checked(2)
            .ok_or(MinisignError::Format("short"))?;
        let prehashed = match algorithm {
            b"ED" => true,
            b"Ed" => false,
            _ => return Err(MinisignError::Format("not an Ed25519 minisign signature")),
        };
        let (key_id, signature) =
            split::<8, 64>(rest).ok_or(MinisignError::Format("wrong length"))?;
        let trusted_comment = next()?
            .strip_prefix("trusted comment: ")
            .ok_or(MinisignError::Format("no trusted comment line"))?
            .to_owned();
        let global = base64_decode(next()?.trim()).ok_or(MinisignError::Format("not base64"))?;
        let global_signature = <[u8; 64]>::try_from(global.as_slice())
            .map_err(|_| MinisignError::Format("wrong length"))?;
        Ok(Self {
            prehashed,
            key_id,
            signature,
            trusted_comment,
            global_signature,
        })
    }
}

/// `bytes` as exactly an `A`-byte and a `B`-byte array.
fn split<const A: usize, const B: usize>(bytes: &[u8]) -> Option<([u8; A], [u8; B])> {
    if bytes.len() != A + B {
        return None;
    }
    let (a, b) = bytes.split_at(A);
    Some((a.try_into().ok()?, b.try_into().ok()?))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().rev().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02X}");
        out
    })
}

/// Standard base64 with padding, as minisign writes it; `None` for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let chunks = bytes.chunks_exact(4);
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.enumerate() {
        let padding = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 || (padding > 0 && i != last) {
            return None;
        }
        let mut word = 0u32;
        for &c in &chunk[..4 - padding] {
            word = word << 6 | value(c)?;
        }
        word <<= 6 * padding as u32;
        let decoded = word.to_be_bytes();
        out.extend_from_slice(&decoded[1..4 - padding]);
    }
    Some(out)
}

/// BLAKE2b with a 64-byte digest and no key (RFC 7693), for `ED` signatures: RustCrypto's
/// `blake2`, since cryptography is never ours to write.
fn blake2b512(data: &[u8]) -> [u8; 64] {
    use blake2::{Blake2b512, Digest};
    Blake2b512::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_lower(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn blake2b_matches_rfc_7693_and_the_reference() {
        assert_eq!(
            hex_lower(&blake2b512(b"abc")),
            "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1\
             7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
        );
        assert_eq!(
            hex_lower(&blake2b512(b"")),
            "786a02f742015903c6c6fd852552d272912f4740e15847618a86e217f71f5419\
             d25e1031afee585313896444934eb04b903a685b1448b755d56f701afe9be2ce"
        );
    }

    #[test]
    fn base64_as_minisign_writes_it() {
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        for bad in ["", "YWJ", "Y===", "YQ==YWJj", "YW J", "YWJ\u{e9}"] {
            assert_eq!(base64_decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn signatures_by_the_minisign_tool_verify_and_nothing_else_does() {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let key = PublicKey::from_base64(&pair.pk.to_base64()).unwrap();
        // Sizes around BLAKE2b's 128-byte blocks, empty included.
        for len in [0usize, 1, 127, 128, 129, 256, 1000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let text = minisign::sign(
                Some(&pair.pk),
                &pair.sk,
                std::io::Cursor::new(&data),
                Some("v7"),
                None,
            )
            .unwrap()
            .into_string();
            let signature = Signature::decode(&text).unwrap();
            assert!(signature.prehashed);
            key.verify(&data, &signature).unwrap();
            let mut changed = data.clone();
            changed.push(0);
            assert_eq!(
                key.verify(&changed, &signature),
                Err(MinisignError::Mismatch)
            );
            let forged = text.replace("trusted comment: v7", "trusted comment: v8");
            let forged = Signature::decode(&forged).unwrap();
            assert_eq!(
                key.verify(&data, &forged),
                Err(MinisignError::TrustedComment)
            );
        }
        let other = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let other = PublicKey::from_base64(&other.pk.to_base64()).unwrap();
        let text = minisign::sign(
            Some(&pair.pk),
            &pair.sk,
            std::io::Cursor::new(b"x"),
            None,
            None,
        )
        .unwrap()
        .into_string();
        assert!(matches!(
            other.verify(b"x", &Signature::decode(&text).unwrap()),
            Err(MinisignError::OtherKey(_))
        ));
        assert!(Signature::decode("untrusted comment: x\nAAAA\n").is_err());
        assert!(PublicKey::from_base64("RWQ=").is_err());
    }

    fn base64_encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let mut word = [0u8; 3];
            word[..chunk.len()].copy_from_slice(chunk);
            let n = u32::from(word[0]) << 16 | u32::from(word[1]) << 8 | u32::from(word[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// Legacy (`Ed`, the file itself signed) as minisign before 0.11 wrote it; made here
    /// with ring, since the minisign crate signs pre-hashed only.
    #[test]
    fn legacy_signatures_verify_too() {
        use ring::signature::{Ed25519KeyPair, KeyPair as _};
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let key_id = [1, 2, 3, 4, 5, 6, 7, 8];
        let mut public = b"Ed".to_vec();
        public.extend_from_slice(&key_id);
        public.extend_from_slice(pair.public_key().as_ref());
        let key = PublicKey::from_base64(&base64_encode(&public)).unwrap();
        let data = b"a manifest";
        let signature = pair.sign(data);
        let mut line = b"Ed".to_vec();
        line.extend_from_slice(&key_id);
        line.extend_from_slice(signature.as_ref());
        let mut global = signature.as_ref().to_vec();
        global.extend_from_slice(b"v1");
        let text = format!(
            "untrusted comment: x\n{}\ntrusted comment: v1\n{}\n",
            base64_encode(&line),
            base64_encode(pair.sign(&global).as_ref())
        );
        let decoded = Signature::decode(&text).unwrap();
        assert!(!decoded.prehashed);
        key.verify(data, &decoded).unwrap();
        assert_eq!(
            key.verify(b"another", &decoded),
            Err(MinisignError::Mismatch)
        );
    }
}

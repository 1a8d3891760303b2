//! Tool arguments in the audit trail, as configured: not at all, as a SHA-256 digest (proves what
//! was sent without keeping it), or encrypted with AES-256-GCM under a key from the environment.
//! The envelope names its key id, so keys can rotate and `mcp-gateway audit show` picks the right one.
//!
//! Envelope: `v1:<key id>:<base64 nonce>:<base64 ciphertext>`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

const AAD: &[u8] = b"mcp-gateway audit arguments v1";

/// How arguments are stored.
pub enum ArgumentsMode {
    None,
    Sha256,
    Encrypted {
        key_id: String,
        cipher: Box<Aes256Gcm>,
    },
}

impl std::fmt::Debug for ArgumentsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a key or an envelope could not be used. Never names the key or the plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("not hex or base64")]
    KeyEncoding,
    #[error("the key must be 256 bits (32 bytes)")]
    KeyLength,
    #[error("not an encrypted arguments envelope")]
    NotAnEnvelope,
    #[error("no key with id {0:?}")]
    UnknownKey(String),
    #[error("bad nonce")]
    Nonce,
    #[error("bad ciphertext encoding")]
    Ciphertext,
    #[error("cannot decrypt with key {0:?}: wrong key or altered data")]
    Decrypt(String),
    #[error("decrypted arguments are not UTF-8")]
    NotUtf8,
}

/// Parses a 256-bit key written as 64 hex digits or standard base64.
pub fn parse_key(text: &str) -> Result<[u8; 32], SealError> {
    let t = text.trim();
    let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(t).map_err(|_| SealError::KeyEncoding)?
    } else {
        STANDARD.decode(t).map_err(|_| SealError::KeyEncoding)?
    };
    bytes.try_into().map_err(|_| SealError::KeyLength)
}

/// Why an `id:key,…` list of older keys cannot be read: which entry, and why (never the key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyListError {
    #[error("entry {0}: write id:key (the key in 64 hex digits or base64)")]
    Entry(usize),
    #[error("entry {0}: {1}")]
    Key(usize, SealError),
}

/// Older keys as `id:key,…` (blank entries skipped), each key as [`parse_key`] reads it.
pub fn parse_key_list(text: &str) -> Result<Vec<(String, [u8; 32])>, KeyListError> {
    let mut keys = Vec::new();
    for (i, entry) in text.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let (id, key) = entry.split_once(':').ok_or(KeyListError::Entry(i))?;
        let key = parse_key(key).map_err(|e| KeyListError::Key(i, e))?;
        keys.push((id.trim().to_string(), key));
    }
    Ok(keys)
}

impl ArgumentsMode {
    pub fn encrypted(key_id: &str, key: &[u8; 32]) -> Self {
        ArgumentsMode::Encrypted {
            key_id: key_id.to_string(),
            cipher: Box::new(Aes256Gcm::new(key.into())),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ArgumentsMode::None => "none",
            ArgumentsMode::Sha256 => "sha256",
            ArgumentsMode::Encrypted { .. } => "encrypted",
        }
    }

    pub fn wants_arguments(&self) -> bool {
        !matches!(self, ArgumentsMode::None)
    }

    /// What to store for these raw JSON arguments.
    pub fn seal(&self, raw: &str) -> Option<String> {
        match self {
            ArgumentsMode::None => None,
            ArgumentsMode::Sha256 => Some(hex::encode(Sha256::digest(raw.as_bytes()))),
            ArgumentsMode::Encrypted { key_id, cipher } => {
                envelope(key_id, cipher, AAD, raw.as_bytes())
            }
        }
    }
}

/// `v1:<key id>:<nonce>:<ciphertext>` of `plain`, bound to `aad` (what the envelope is for: one
/// kind of envelope never opens as another).
pub fn envelope(key_id: &str, cipher: &Aes256Gcm, aad: &[u8], plain: &[u8]) -> Option<String> {
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(&Nonce::from(nonce), Payload { msg: plain, aad })
        .ok()?;
    Some(format!(
        "v1:{key_id}:{}:{}",
        STANDARD.encode(nonce),
        STANDARD.encode(ct)
    ))
}

/// Opens an arguments envelope with one of the given `(key id, key)` pairs.
pub fn open(envelope: &str, keys: &[(String, [u8; 32])]) -> Result<String, SealError> {
    open_for(envelope, keys, AAD)
}

/// Opens an envelope made for `aad` with one of the given `(key id, key)` pairs.
pub fn open_for(
    envelope: &str,
    keys: &[(String, [u8; 32])],
    aad: &[u8],
) -> Result<String, SealError> {
    let mut parts = envelope.splitn(4, ':');
    let (Some("v1"), Some(kid), Some(nonce), Some(ct)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SealError::NotAnEnvelope);
    };
    let (_, key) = keys
        .iter()
        .find(|(id, _)| id == kid)
        .ok_or_else(|| SealError::UnknownKey(kid.to_string()))?;
    let nonce: [u8; 12] = STANDARD
        .decode(nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or(SealError::Nonce)?;
    let ct = STANDARD.decode(ct).map_err(|_| SealError::Ciphertext)?;
    let plain = Aes256Gcm::new(key.into())
        .decrypt(&Nonce::from(nonce), Payload { msg: &ct, aad })
        .map_err(|_| SealError::Decrypt(kid.to_string()))?;
    String::from_utf8(plain).map_err(|_| SealError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypt_open_and_wrong_key() {
        let key = [7u8; 32];
        let mode = ArgumentsMode::encrypted("k1", &key);
        let env = mode.seal(r#"{"a":1}"#).unwrap();
        assert!(!env.contains("\"a\""));
        assert_eq!(open(&env, &[("k1".into(), key)]).unwrap(), r#"{"a":1}"#);
        assert!(open(&env, &[("k1".into(), [8u8; 32])])
            .unwrap_err()
            .to_string()
            .contains("wrong key"));
        assert!(open(&env, &[("k2".into(), key)])
            .unwrap_err()
            .to_string()
            .contains("no key"));
        assert_eq!(ArgumentsMode::Sha256.seal("x").unwrap().len(), 64);
        assert_eq!(parse_key(&"ab".repeat(32)).unwrap(), [0xab; 32]);
        assert!(parse_key("short").is_err());
    }
}

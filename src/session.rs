//! Session ids without shared state. The id a client sees seals, with AES-256-GCM under a key every
//! gateway instance shares, the scope, the upstream the session lives on, the upstream's own session
//! id and a hash of the user it was issued to. Any instance (or a restarted one) can route it, the
//! upstream's id is never shown, and another user presenting it fails the check.
//!
//! Format: `base64url(key id (4) ‖ nonce (12) ‖ ciphertext)`. Keys rotate by listing a new secret
//! first: new ids are sealed with it, ids sealed with the older ones still open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const AAD: &[u8] = b"mcp-gateway session v1";

/// The longest id opened: a composed scope's id names a session on each of its (at most 16)
/// servers.
const MAX_ID: usize = 8192;

/// What a sealed session id carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionBinding {
    /// Scope name.
    #[serde(rename = "s")]
    pub scope: String,
    /// Upstream address (`ip:port`) the session lives on.
    #[serde(rename = "u")]
    pub upstream: String,
    /// The upstream's own `Mcp-Session-Id`.
    #[serde(rename = "i")]
    pub upstream_session: String,
    /// Hash of the user (and tenant) it was issued to.
    #[serde(rename = "h")]
    pub user_hash: String,
}

/// The session keys.
pub struct SessionKeys {
    keys: Vec<([u8; 4], Aes256Gcm)>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionKeys({} keys)", self.keys.len())
    }
}

/// The hash of a user stored in session ids: the user id never appears in them.
pub fn user_hash(user: &str, tenant: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(b"mcp-gateway user\0");
    h.update(user.as_bytes());
    h.update([0]);
    h.update(tenant.unwrap_or("").as_bytes());
    URL_SAFE_NO_PAD.encode(&h.finalize()[..16])
}

impl SessionKeys {
    pub fn new(secrets: &[Vec<u8>]) -> Self {
        let keys = secrets
            .iter()
            .map(|s| {
                let key: [u8; 32] = Sha256::new()
                    .chain_update(b"mcp-gateway session key\0")
                    .chain_update(s)
                    .finalize()
                    .into();
                let id: [u8; 32] = Sha256::digest(key).into();
                ([id[0], id[1], id[2], id[3]], Aes256Gcm::new(&key.into()))
            })
            .collect();
        Self { keys }
    }

    /// Seals a binding into the id the client will see.
    pub fn seal(&self, binding: &SessionBinding) -> Option<String> {
        self.seal_as(binding, AAD)
    }

    /// Opens an id a client presented; `None` for anything forged, altered or sealed with an
    /// unknown key.
    pub fn open(&self, id: &str) -> Option<SessionBinding> {
        self.open_as(id, AAD)
    }

    /// Seals any value for one purpose (`aad`): the consent page's links, states and cookies use
    /// the session keys too, and a value sealed for one purpose never opens as another.
    pub fn seal_as<T: Serialize>(&self, value: &T, aad: &[u8]) -> Option<String> {
        let (kid, cipher) = self.keys.first()?;
        let plain = serde_json::to_vec(value).ok()?;
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: &plain, aad })
            .ok()?;
        let mut out = Vec::with_capacity(16 + sealed.len());
        out.extend_from_slice(kid);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Some(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens what [`SessionKeys::seal_as`] sealed for `aad`.
    pub fn open_as<T: serde::de::DeserializeOwned>(&self, id: &str, aad: &[u8]) -> Option<T> {
        if id.len() > MAX_ID {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(id).ok()?;
        if raw.len() < 16 + 16 {
            return None;
        }
        let (kid, rest) = raw.split_at(4);
        let (nonce, sealed) = rest.split_at(12);
        let (_, cipher) = self.keys.iter().find(|(k, _)| k == kid)?;
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        let plain = cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: sealed, aad })
            .ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> SessionBinding {
        SessionBinding {
            scope: "calculator".into(),
            upstream: "127.0.0.1:9".into(),
            upstream_session: "upstream-secret-id".into(),
            user_hash: user_hash("alice", None),
        }
    }

    #[test]
    fn seal_open_and_tamper() {
        let keys = SessionKeys::new(&[b"k1-k1-k1-k1-k1-k1".to_vec()]);
        let id = keys.seal(&binding()).unwrap();
        assert!(!id.contains("upstream-secret-id"));
        assert_eq!(keys.open(&id), Some(binding()));
        let mut raw = URL_SAFE_NO_PAD.decode(&id).unwrap();
        let n = raw.len() - 1;
        raw[n] ^= 1;
        assert_eq!(keys.open(&URL_SAFE_NO_PAD.encode(raw)), None);
        assert_eq!(keys.open("garbage"), None);
        assert_ne!(user_hash("alice", None), user_hash("bob", None));
    }

    #[test]
    fn rotation_keeps_old_ids_open() {
        let old = SessionKeys::new(&[b"old-old-old-old-old".to_vec()]);
        let id = old.seal(&binding()).unwrap();
        let rotated = SessionKeys::new(&[
            b"new-new-new-new-new".to_vec(),
            b"old-old-old-old-old".to_vec(),
        ]);
        assert_eq!(rotated.open(&id), Some(binding()));
        let other = SessionKeys::new(&[b"new-new-new-new-new".to_vec()]);
        assert_eq!(other.open(&id), None);
    }

    /// Altered ids never open to anything but what was sealed: a client cannot forge or redirect
    /// a session by editing its id (including invalid UTF-8 and base64 it cannot decode).
    #[test]
    fn mutated_ids_never_open_to_another_binding() {
        let keys = SessionKeys::new(&[b"k1-k1-k1-k1-k1-k1".to_vec()]);
        let id = keys.seal(&binding()).unwrap();
        let seeds: [&[u8]; 1] = [id.as_bytes()];
        for raw in crate::mutate::mutations(&seeds, 20_000, 7) {
            let Ok(text) = std::str::from_utf8(&raw) else {
                continue;
            };
            if let Some(b) = keys.open(text) {
                assert_eq!(b, binding(), "{text}");
            }
        }
    }
}

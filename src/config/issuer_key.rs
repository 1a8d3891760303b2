//! The development issuer's signing key: an Ed25519 key derived from the gateway's JWT secret, so
//! the issuer (in `run` or as its own process) and every gateway sharing that secret agree on it
//! without another file to distribute, and it survives restarts. Development only: anyone holding
//! the JWT secret can sign as the issuer, which is no more than they can already do with HS256.

use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use hmac::{Hmac, Mac};
use jsonwebtoken::{DecodingKey, EncodingKey};
use sha2::{Digest, Sha256};

/// The issuer's key pair and its key id.
pub struct IssuerKey {
    signing: SigningKey,
    /// First 16 hex digits of the public key's SHA-256: stable for a given secret.
    pub kid: String,
}

/// Two keys are the same key when their key ids (hashes of the public key) are.
impl PartialEq for IssuerKey {
    fn eq(&self, other: &Self) -> bool {
        self.kid == other.kid
    }
}

impl std::fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl IssuerKey {
    /// The key for a JWT secret.
    pub fn derive(jwt_secret: &[u8]) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(jwt_secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"mcp-gateway development issuer signing key v1");
        let seed: [u8; 32] = mac.finalize().into_bytes().into();
        let signing = SigningKey::from_bytes(&seed);
        let kid = hex::encode(&Sha256::digest(signing.verifying_key().as_bytes())[..8]);
        Self { signing, kid }
    }

    /// For signing tokens.
    pub fn encoding_key(&self) -> Result<EncodingKey, ed25519_dalek::pkcs8::Error> {
        let der = self.signing.to_pkcs8_der()?;
        Ok(EncodingKey::from_ed_der(der.as_bytes()))
    }

    /// For verifying them.
    pub fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_ed_der(self.signing.verifying_key().as_bytes())
    }

    /// The public key as a JWK (RFC 8037), for the issuer's JWKS document.
    pub fn jwk(&self) -> serde_json::Value {
        use base64::Engine;
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.signing.verifying_key().as_bytes());
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.kid, "alg": "EdDSA", "use": "sig"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, Header, Validation};

    #[test]
    fn same_secret_same_key_and_tokens_verify() {
        let a = IssuerKey::derive(b"0123456789abcdef0123456789abcdef");
        let b = IssuerKey::derive(b"0123456789abcdef0123456789abcdef");
        let c = IssuerKey::derive(b"another secret, another key......");
        assert_eq!(a.kid, b.kid);
        assert_ne!(a.kid, c.kid);
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &serde_json::json!({"sub": "u", "exp": 4_000_000_000u64}),
            &a.encoding_key().unwrap(),
        )
        .unwrap();
        let v = Validation::new(Algorithm::EdDSA);
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &b.decoding_key(), &v).is_ok());
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &c.decoding_key(), &v).is_err());
        // The JWK form verifies too (what a gateway reading the JWKS uses).
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(a.jwk()).unwrap();
        let k = DecodingKey::from_jwk(&jwk).unwrap();
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &k, &v).is_ok());
    }
}

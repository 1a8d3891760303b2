//! Who is calling: the bearer JWT checked against the configured algorithms and keys, turned into
//! an [`Identity`]. A verified token is cached until it stops being valid, so a client's repeated
//! calls cost a hash lookup instead of a signature check.

pub mod jwks;
pub mod mint;

pub use crate::error::AuthError;

use crate::config::JwtSettings;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The caller, as the token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub tenant: Option<String>,
    pub roles: Vec<String>,
    pub api_version: Option<String>,
    /// Unix time after which this identity must be verified again.
    pub valid_until: u64,
    /// OAuth scopes the token carries (`scope`, space-separated, or `scp`); `None` when it names
    /// none at all.
    pub oauth_scopes: Option<Box<[String]>>,
    /// When the token's audience is not one of the configured audiences but URLs (RFC 8707
    /// resource indicators): those URLs. The proxy accepts the token only on an endpoint they
    /// name (see `proxy::authn`).
    pub resources: Option<Box<[String]>>,
    /// Every claim of the verified token (conditions read them as `claims`).
    pub claims: Arc<Map<String, Value>>,
}

impl Identity {
    /// Whether the token carries every scope in `required`.
    pub fn has_scopes(&self, required: &[String]) -> bool {
        required.is_empty()
            || self
                .oauth_scopes
                .as_ref()
                .is_some_and(|have| required.iter().all(|r| have.contains(r)))
    }
}

/// What a cached token costs in memory: the token, its claims, and a fixed overhead measured
/// for the cache entry, the shared identity and allocator rounding (about 0.5 KB). Never less than
/// `floor`, so the entry count stays bounded too.
#[derive(Clone)]
struct CacheWeight {
    floor: u64,
}

const CACHE_ENTRY_OVERHEAD: usize = 480;

impl quick_cache::Weighter<Box<str>, Arc<Identity>> for CacheWeight {
    fn weight(&self, token: &Box<str>, id: &Arc<Identity>) -> u64 {
        let claims = id.user.len()
            + id.tenant.as_ref().map_or(0, String::len)
            + id.api_version.as_ref().map_or(0, String::len)
            + id.roles.iter().map(|r| r.len() + 24).sum::<usize>()
            + [&id.oauth_scopes, &id.resources]
                .into_iter()
                .flatten()
                .flat_map(|l| l.iter())
                .map(|s| s.len() + 24)
                .sum::<usize>();
        // The claims kept whole (for conditions) take about the token's length again, parsed.
        ((2 * token.len() + claims + CACHE_ENTRY_OVERHEAD) as u64).max(self.floor)
    }
}

/// Verifies bearer tokens.
pub struct Authenticator {
    settings: JwtSettings,
    hmac: Option<DecodingKey>,
    public: Option<DecodingKey>,
    jwks: Option<Arc<jwks::Jwks>>,
    /// The development issuer's `iss`, key id and key.
    dev: Option<(String, String, DecodingKey)>,
    cache: quick_cache::sync::Cache<Box<str>, Arc<Identity>, CacheWeight>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("algorithms", &self.settings.algorithms)
            .finish_non_exhaustive()
    }
}

/// The longest user id (`sub`) accepted: it is written to every audit row and log line.
pub const MAX_USER_ID: usize = 256;
const USER_ID_TOO_LONG: &str = "longer than 256 bytes";

/// The latest time claim accepted (year 3000): anything later is a forged or broken token.
const MAX_TIMESTAMP: u64 = 32_503_680_000;

/// A NumericDate claim: absent, or a non-negative number up to `MAX_TIMESTAMP` (whole seconds;
/// fractions are cut). A string or an absurd value fails the token rather than being ignored.
fn timestamp(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, AuthError> {
    let Some(v) = claims.get(name).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let secs = v
        .as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        .ok_or_else(|| AuthError::bad_claim(name, "is not a non-negative number"))?;
    if secs > MAX_TIMESTAMP {
        return Err(AuthError::bad_claim(name, "is out of range"));
    }
    Ok(Some(secs))
}

/// Whether the token's protected header names `crit`.
fn has_crit(token: &str) -> bool {
    use base64::Engine;
    let Some(header) = token.split('.').next() else {
        return false;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()
        .and_then(|raw| serde_json::from_slice::<Map<String, Value>>(&raw).ok())
        .is_some_and(|h| h.contains_key("crit"))
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// Why the token verifier could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("jwt.public_key_file: not an RSA, EC or Ed25519 public key in PEM form")]
    NotAPublicKey,
}

impl Authenticator {
    pub fn new(settings: JwtSettings) -> Result<Self, KeyError> {
        let hmac = settings.secret.as_deref().map(DecodingKey::from_secret);
        let public = match &settings.public_key_pem {
            Some(pem) => Some(
                DecodingKey::from_rsa_pem(pem)
                    .or_else(|_| DecodingKey::from_ec_pem(pem))
                    .or_else(|_| DecodingKey::from_ed_pem(pem))
                    .map_err(|_| KeyError::NotAPublicKey)?,
            ),
            None => None,
        };
        let jwks = settings
            .jwks_url
            .as_ref()
            .map(|u| Arc::new(jwks::Jwks::new(u.clone(), settings.jwks_refresh)));
        let floor = (settings.cache_bytes / settings.cache_entries as u64).max(1);
        let cache = quick_cache::sync::Cache::with_weighter(
            settings.cache_entries,
            settings.cache_bytes,
            CacheWeight { floor },
        );
        let dev = settings
            .dev_issuer
            .as_ref()
            .map(|(url, key)| (url.clone(), key.kid.clone(), key.decoding_key()));
        Ok(Self {
            settings,
            hmac,
            public,
            jwks,
            dev,
            cache,
        })
    }

    /// The settings it checks tokens with (a reload keeps this authenticator, and its cache,
    /// when they stay the same).
    pub fn settings(&self) -> &JwtSettings {
        &self.settings
    }

    /// The JWKS key set, when one is configured, so the server can refresh it in the background.
    pub fn jwks(&self) -> Option<Arc<jwks::Jwks>> {
        self.jwks.clone()
    }

    /// Extracts the bearer token from an `Authorization` header value.
    pub fn bearer(header: Option<&[u8]>) -> Result<&str, AuthError> {
        let value = header.ok_or(AuthError::Missing)?;
        let value = std::str::from_utf8(value).map_err(|_| AuthError::MalformedHeader)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::NotBearer);
        }
        Ok(token.trim())
    }

    /// Verifies a token, from the cache when it was verified before and is still valid.
    pub async fn verify(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        if let Some(id) = self.cache.get(token) {
            if id.valid_until > now() {
                return Ok(id);
            }
            self.cache.remove(token);
        }
        // Boxed: a cached token is the rule, and every request's future would otherwise carry the
        // uncached path's state (a key fetch).
        let id = Arc::new(Box::pin(self.verify_uncached(token)).await?);
        self.cache.insert(token.into(), id.clone());
        Ok(id)
    }

    async fn verify_uncached(&self, token: &str) -> Result<Identity, AuthError> {
        if has_crit(token) {
            return Err(AuthError::Crit);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::MalformedToken)?;
        let alg = header.alg;
        // The development issuer's tokens: its own key and `iss`, whatever `jwt.algorithms` says.
        if let Some((iss, kid, key)) = &self.dev {
            if alg == Algorithm::EdDSA && header.kid.as_deref() == Some(kid.as_str()) {
                let claims = self.decode(token, alg, key)?;
                return self.check_claims(&claims, now(), Some(iss));
            }
        }
        if !self.settings.algorithms.contains(&alg) {
            return Err(AuthError::AlgorithmNotAllowed(alg));
        }
        let fetched;
        let key: &DecodingKey = if is_hmac(alg) {
            self.hmac
                .as_ref()
                .ok_or(AuthError::AlgorithmNotAllowed(alg))?
        } else if let Some(jwks) = &self.jwks {
            fetched = jwks.key_for(header.kid.as_deref(), alg).await?;
            &fetched
        } else {
            let key = self
                .public
                .as_ref()
                .ok_or(AuthError::AlgorithmNotAllowed(alg))?;
            if key.family() != alg.family() {
                return Err(AuthError::AlgorithmMismatch(alg));
            }
            key
        };
        let claims = self.decode(token, alg, key)?;
        self.check_claims(&claims, now(), None)
    }

    /// The signature check; every claim is checked by `check_claims`.
    fn decode(
        &self,
        token: &str,
        alg: Algorithm,
        key: &DecodingKey,
    ) -> Result<Map<String, Value>, AuthError> {
        let mut validation = Validation::new(alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind::*;
                match e.kind() {
                    InvalidSignature => AuthError::Signature,
                    InvalidAlgorithm | InvalidAlgorithmName => AuthError::AlgorithmMismatch(alg),
                    Json(_) => AuthError::ClaimsNotObject,
                    _ => AuthError::MalformedToken,
                }
            })?;
        Ok(data.claims)
    }

    /// The claim checks, with configurable claim names and one clock-skew allowance. `issuer`
    /// overrides the configured one (the development issuer's tokens).
    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        now: u64,
        issuer: Option<&String>,
    ) -> Result<Identity, AuthError> {
        let s = &self.settings;
        let names = &s.claims;
        let valid_until = self.check_times(claims, now)?;
        if let Some(issuer) = issuer.or(s.issuer.as_ref()) {
            if claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str()) {
                return Err(AuthError::Issuer);
            }
        }
        let resources = self.check_audience(claims.get("aud"))?;
        let oauth_scopes = string_list(claims.get("scope").or_else(|| claims.get("scp")))
            .map(Vec::into_boxed_slice);
        let user = match claims.get(&names.user_id) {
            Some(Value::String(u)) if u.len() > MAX_USER_ID => {
                return Err(AuthError::bad_claim(&names.user_id, USER_ID_TOO_LONG))
            }
            Some(Value::String(u)) if !u.is_empty() => u.clone(),
            Some(Value::String(_)) | None => {
                return Err(AuthError::missing_claim(&names.user_id, " (user id)"))
            }
            Some(_) => return Err(AuthError::bad_claim(&names.user_id, "is not a string")),
        };
        let roles = string_list(claims.get(&names.roles)).unwrap_or_default();
        // The tenant travels to upstreams as `X-Tenant-ID` and into every audit row: bounded
        // like the user id.
        let tenant = match claims.get(&names.tenant).and_then(Value::as_str) {
            Some(t) if t.len() > MAX_USER_ID => {
                return Err(AuthError::bad_claim(&names.tenant, USER_ID_TOO_LONG))
            }
            t => t.map(str::to_string),
        };
        let api_version = match &names.api_version {
            Some(claim) => {
                let v = claims.get(claim).and_then(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                });
                match v {
                    Some(v) if s.allowed_api_versions.contains(&v) => Some(v),
                    _ => return Err(AuthError::ApiVersion),
                }
            }
            None => None,
        };
        Ok(Identity {
            user,
            tenant,
            roles,
            api_version,
            valid_until,
            oauth_scopes,
            resources,
            claims: Arc::new(claims.clone()),
        })
    }

    /// `exp`, `nbf`, `iat` and the maximum token age, each with the clock-skew allowance.
    /// Returns until when the token is valid (the earlier of its expiry and its maximum age).
    fn check_times(&self, claims: &Map<String, Value>, now: u64) -> Result<u64, AuthError> {
        let s = &self.settings;
        let names = &s.claims;
        let skew = s.clock_skew;
        let exp = timestamp(claims, &names.exp)?
            .ok_or_else(|| AuthError::missing_claim(&names.exp, ""))?;
        if now > exp.saturating_add(skew) {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = timestamp(claims, "nbf")? {
            if now.saturating_add(skew) < nbf {
                return Err(AuthError::NotYetValid);
            }
        }
        let mut valid_until = exp.saturating_add(skew);
        let iat = timestamp(claims, &names.iat)?;
        if let Some(iat) = iat {
            if iat > now.saturating_add(skew) {
                return Err(AuthError::IssuedInFuture);
            }
        }
        if let Some(max_age) = s.max_age {
            let iat = iat.ok_or_else(|| {
                AuthError::missing_claim(&names.iat, " (a maximum token age is set)")
            })?;
            let oldest = iat.saturating_add(max_age.as_secs()).saturating_add(skew);
            if now > oldest {
                return Err(AuthError::TooOld);
            }
            valid_until = valid_until.min(oldest);
        }
        Ok(valid_until)
    }

    /// `aud` must name a configured audience; failing that, URLs (resource indicators) are kept
    /// for the proxy to match against the endpoint called. Without configured audiences the
    /// audience is not checked.
    fn check_audience(&self, aud: Option<&Value>) -> Result<Option<Box<[String]>>, AuthError> {
        let configured = &self.settings.audience;
        if configured.is_empty() {
            return Ok(None);
        }
        let values: Vec<&str> = match aud {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if values.iter().any(|a| configured.iter().any(|x| x == a)) {
            return Ok(None);
        }
        let urls: Box<[String]> = values
            .iter()
            .filter(|a| a.starts_with("https://") || a.starts_with("http://"))
            .map(|a| a.to_string())
            .collect();
        if urls.is_empty() {
            return Err(AuthError::Audience);
        }
        Ok(Some(urls))
    }
}

/// A claim holding a list of names: a JSON array of strings, or one space-separated string
/// (OAuth's `scope`).
fn string_list(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::String(s) => Some(s.split_whitespace().map(str::to_string).collect()),
        Value::Array(list) => Some(
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::ClaimsFile;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn settings() -> JwtSettings {
        JwtSettings {
            algorithms: vec![Algorithm::HS256],
            secret: Some(SECRET.to_vec()),
            public_key_pem: None,
            jwks_url: None,
            jwks_refresh: std::time::Duration::from_secs(60),
            issuer: Some("iss".into()),
            audience: vec!["mcp-gateway".into()],
            max_age: None,
            clock_skew: 0,
            claims: ClaimsFile::default(),
            allowed_api_versions: vec![],
            cache_entries: 16,
            cache_bytes: 1 << 20,
            required_scopes: vec![],
            dev_issuer: None,
        }
    }

    fn sign(claims: Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn critical_header_parameters_are_refused() {
        use base64::Engine;
        use hmac::Mac;
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
        };
        let t = now();
        let claims = json!({"sub": "alice", "iss": "iss", "aud": "mcp-gateway", "exp": t + 60});
        let signed = |header: Value| {
            let input = format!("{}.{}", b64(&header), b64(&claims));
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
            mac.update(input.as_bytes());
            let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(mac.finalize().into_bytes());
            format!("{input}.{sig}")
        };
        let auth = Authenticator::new(settings()).unwrap();
        assert!(auth.verify(&signed(json!({"alg": "HS256"}))).await.is_ok());
        let err = auth
            .verify(&signed(
                json!({"alg": "HS256", "crit": ["b64"], "b64": true}),
            ))
            .await
            .unwrap_err();
        assert_eq!(err, AuthError::Crit);
    }

    #[tokio::test]
    async fn good_token_and_each_failed_check() {
        let auth = Authenticator::new(settings()).unwrap();
        let t = now();
        let base = json!({"sub": "alice", "iss": "iss", "aud": "mcp-gateway", "exp": t + 60, "iat": t, "roles": "a b"});
        let id = auth.verify(&sign(base.clone())).await.unwrap();
        assert_eq!(id.user, "alice");
        assert_eq!(id.roles, vec!["a", "b"]);
        let cases = [
            (json!({"exp": t - 10}), "token expired"),
            (json!({"nbf": t + 100}), "token not yet valid (nbf)"),
            (json!({"iss": "other"}), "wrong issuer"),
            (json!({"aud": ["x", "y"]}), "wrong audience"),
            (json!({"iat": t + 100}), "token issued in the future (iat)"),
            (json!({"sub": ""}), "missing sub claim (user id)"),
            (json!({"sub": 42}), "sub claim is not a string"),
            (
                json!({"sub": "u".repeat(257)}),
                "sub claim longer than 256 bytes",
            ),
            (json!({"exp": 1e300}), "exp claim is out of range"),
            (
                json!({"iat": t.to_string()}),
                "iat claim is not a non-negative number",
            ),
            (json!({"nbf": -5}), "nbf claim is not a non-negative number"),
        ];
        for (patch, want) in cases {
            let mut c = base.clone();
            for (k, v) in patch.as_object().unwrap() {
                c[k] = v.clone();
            }
            assert_eq!(auth.verify(&sign(c)).await.unwrap_err().to_string(), want);
        }
        let wrong_key = encode(
            &Header::new(Algorithm::HS256),
            &base,
            &EncodingKey::from_secret(b"another-secret-another-secret-00"),
        )
        .unwrap();
        assert_eq!(
            auth.verify(&wrong_key).await.unwrap_err(),
            AuthError::Signature
        );
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &base,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(
            auth.verify(&hs512).await.unwrap_err().to_string(),
            "algorithm HS512 is not allowed"
        );
    }

    /// Fresh tokens cannot grow the cache past its memory budget; repeated ones still hit.
    #[tokio::test]
    async fn token_cache_is_bounded_by_bytes() {
        let mut s = settings();
        s.cache_entries = 10_000;
        s.cache_bytes = 16 * 1024;
        let auth = Authenticator::new(s).unwrap();
        let t = now();
        let claims = |i: u32| json!({"sub": format!("user{i}"), "iss": "iss", "aud": "mcp-gateway", "exp": t + 60, "roles": "a"});
        for i in 0..200 {
            auth.verify(&sign(claims(i))).await.unwrap();
        }
        assert!(auth.cache.weight() <= 16 * 1024, "{}", auth.cache.weight());
        assert!(
            auth.cache.len() < 200 && auth.cache.len() > 5,
            "{}",
            auth.cache.len()
        );
        // A token used again and again stays cached: the same identity comes back.
        let hot = sign(claims(9999));
        let first = auth.verify(&hot).await.unwrap();
        let again = auth.verify(&hot).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again));
    }

    #[test]
    fn the_user_id_limit_is_the_one_named() {
        assert_eq!(USER_ID_TOO_LONG, format!("longer than {MAX_USER_ID} bytes"));
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(Authenticator::bearer(Some(b"Bearer abc")).unwrap(), "abc");
        assert_eq!(Authenticator::bearer(Some(b"bearer abc")).unwrap(), "abc");
        assert!(Authenticator::bearer(Some(b"Basic abc")).is_err());
        assert!(Authenticator::bearer(None).is_err());
    }
}

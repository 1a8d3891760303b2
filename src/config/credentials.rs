//! Secrets the gateway sends to an upstream (`headers:` of an upstream): a value comes from the
//! environment (`${VAR}`, expanded like every value) or is sealed in the file (`enc:v1:…`,
//! AES-256-GCM under `MCP_GATEWAY_SECRETS_KEY`; values sealed under older keys open with
//! `MCP_GATEWAY_SECRETS_OLD_KEYS`, `id:key,…`). Opened values live only in [`Secret`]s, which
//! never print and go only to the upstream they are configured for.

use super::problem::Problem;
use super::Sources;
use aes_gcm::aead::KeyInit;
use sha2::{Digest, Sha256};

pub const KEY_VAR: &str = "MCP_GATEWAY_SECRETS_KEY";
pub const OLD_KEYS_VAR: &str = "MCP_GATEWAY_SECRETS_OLD_KEYS";
/// What starts a sealed value in a configuration file.
pub const SEALED: &str = "enc:";
/// Binds the envelope to its use: an audit envelope never opens as a configuration secret.
const AAD: &[u8] = b"mcp-gateway configuration secret v1";

/// A header value only its upstream sees: `Debug` never shows it, and it is marked sensitive (an
/// HTTP/2 encoder keeps it out of its tables).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub http::HeaderValue);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// The value as a header; `None` when it cannot be one (a line break, a control character).
    pub fn new(value: &str) -> Option<Self> {
        let mut v = http::HeaderValue::from_str(value).ok()?;
        v.set_sensitive(true);
        Some(Self(v))
    }
}

/// A key's id: the first 4 bytes of its SHA-256, in hex.
pub fn key_id(key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(key)[..4])
}

/// Why the sealing keys cannot be read (never naming a key).
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("{KEY_VAR}: {0}")]
    Current(crate::seal::SealError),
    #[error("{OLD_KEYS_VAR}: {0}")]
    Old(crate::seal::KeyListError),
}

/// The keys the environment gives: the current one first (`None` when unset), then the older.
pub fn keys(
    current: Option<&str>,
    old: Option<&str>,
) -> Result<Vec<(String, [u8; 32])>, KeysError> {
    let mut keys = Vec::new();
    if let Some(k) = current {
        let key = crate::seal::parse_key(k).map_err(KeysError::Current)?;
        keys.push((key_id(&key), key));
    }
    keys.extend(crate::seal::parse_key_list(old.unwrap_or("")).map_err(KeysError::Old)?);
    Ok(keys)
}

/// Seals `value` under the current key: what `mcp-gateway encrypt` prints.
pub fn seal(value: &str, keys: &[(String, [u8; 32])]) -> Option<String> {
    let (id, key) = keys.first()?;
    let cipher = aes_gcm::Aes256Gcm::new(key.into());
    crate::seal::envelope(id, &cipher, AAD, value.as_bytes()).map(|e| format!("{SEALED}{e}"))
}

/// A configured value: a sealed one opened, any other as it is.
pub fn reveal(value: &str, keys: &[(String, [u8; 32])]) -> Result<String, String> {
    let Some(envelope) = value.strip_prefix(SEALED) else {
        return Ok(value.to_string());
    };
    if keys.is_empty() {
        return Err(format!("a sealed value needs {KEY_VAR} in the environment"));
    }
    crate::seal::open_for(envelope, keys, AAD)
        .map_err(|e| format!("the sealed value cannot be opened: {e}"))
}

/// The sealing keys of `sources`, a problem (naming the variable) when they are unreadable.
pub fn keys_of(sources: &Sources, problems: &mut Vec<Problem>) -> Vec<(String, [u8; 32])> {
    match keys(sources.var(KEY_VAR), sources.var(OLD_KEYS_VAR)) {
        Ok(k) => k,
        Err(e) => {
            let var = match e {
                KeysError::Current(_) => KEY_VAR,
                _ => OLD_KEYS_VAR,
            };
            problems.push(Problem::env(var, e.to_string()));
            Vec::new()
        }
    }
}

/// Whether `s` is an absolute http(s) URL with a host (token endpoints, authorization servers,
/// webhooks).
pub(super) fn is_http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// `auth: { oauth_client_credentials: … }` of an upstream, its secret opened.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub client_auth: super::file::TokenClientAuth,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// `auth: { token_exchange: … }` of an upstream, its secret opened.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenExchange {
    pub token_url: String,
    pub audience: String,
    pub scope: Option<String>,
    /// The gateway as a client of the token endpoint (id, opened secret), when configured.
    pub client: Option<(String, String)>,
    pub client_auth: super::file::TokenClientAuth,
}

impl std::fmt::Debug for TokenExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenExchange")
            .field("token_url", &self.token_url)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// `auth: per_user_oauth` of an upstream: how the gateway is known to the upstream's
/// authorization server (discovered from the upstream's protected-resource metadata).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PerUserOauth {
    /// A client registered by hand (id, opened secret); otherwise the gateway registers itself.
    pub client: Option<(String, Option<String>)>,
    pub scope: Option<String>,
    /// Named in the configuration instead of found through the upstream's metadata.
    pub authorization_server: Option<String>,
    pub resource: Option<String>,
}

impl std::fmt::Debug for PerUserOauth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerUserOauth")
            .field("client_id", &self.client.as_ref().map(|c| &c.0))
            .field("scope", &self.scope)
            .field("authorization_server", &self.authorization_server)
            .finish_non_exhaustive()
    }
}

/// How the gateway authenticates to one upstream besides its `headers:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAuth {
    /// A machine token of the gateway's own.
    ClientCredentials(std::sync::Arc<ClientCredentials>),
    /// The caller's token exchanged for one bound to the upstream.
    TokenExchange(std::sync::Arc<TokenExchange>),
    /// Each user's own token at the upstream, after their consent.
    PerUser(std::sync::Arc<PerUserOauth>),
}

/// `auth:` of an upstream validated: token URLs that are http(s) URLs, secrets opened.
pub fn upstream_auth(
    path: &std::path::Path,
    at: &dyn Fn(&str) -> String,
    auth: &super::file::UpstreamAuthFile,
    keys: &[(String, [u8; 32])],
    problems: &mut Vec<Problem>,
) -> Option<UpstreamAuth> {
    use super::file::UpstreamAuthFile;
    let (kind, token_url, secret) = match auth {
        UpstreamAuthFile::OauthClientCredentials(c) => (
            "oauth_client_credentials",
            &c.token_url,
            Some(&c.client_secret),
        ),
        UpstreamAuthFile::TokenExchange(t) => {
            ("token_exchange", &t.token_url, t.client_secret.as_ref())
        }
        UpstreamAuthFile::PerUserOauth(p) => {
            let secret = match p
                .client_secret
                .as_ref()
                .map(|s| reveal(s, keys))
                .transpose()
            {
                Ok(s) => s,
                Err(why) => {
                    let f = at("auth.per_user_oauth.client_secret");
                    problems.push(Problem::new(path, f, why));
                    return None;
                }
            };
            if secret.is_some() && p.client_id.is_none() {
                let f = at("auth.per_user_oauth.client_secret");
                problems.push(Problem::new(path, f, "a client_secret needs its client_id"));
                return None;
            }
            let urls = [
                ("authorization_server", &p.authorization_server),
                ("resource", &p.resource),
            ];
            for (name, value) in urls {
                if !value.as_deref().is_none_or(is_http_url) {
                    let f = at(&format!("auth.per_user_oauth.{name}"));
                    problems.push(Problem::new(path, f, "not an http(s) URL"));
                    return None;
                }
            }
            return Some(UpstreamAuth::PerUser(std::sync::Arc::new(PerUserOauth {
                client: p.client_id.clone().map(|id| (id, secret)),
                scope: p.scope.clone(),
                authorization_server: p.authorization_server.clone(),
                resource: p.resource.clone(),
            })));
        }
    };
    let field = |f: &str| at(&format!("auth.{kind}.{f}"));
    let url_ok = is_http_url(token_url);
    if !url_ok {
        problems.push(Problem::new(path, field("token_url"), "not an http(s) URL"));
    }
    let secret = match secret.map(|s| reveal(s, keys)).transpose() {
        Ok(s) => s,
        Err(why) => {
            problems.push(Problem::new(path, field("client_secret"), why));
            return None;
        }
    };
    if !url_ok {
        return None;
    }
    Some(match auth {
        UpstreamAuthFile::OauthClientCredentials(c) => {
            UpstreamAuth::ClientCredentials(std::sync::Arc::new(ClientCredentials {
                token_url: c.token_url.clone(),
                client_id: c.client_id.clone(),
                client_secret: secret.unwrap_or_default(),
                scope: c.scope.clone(),
                audience: c.audience.clone(),
                client_auth: c.client_auth,
            }))
        }
        UpstreamAuthFile::TokenExchange(t) => {
            UpstreamAuth::TokenExchange(std::sync::Arc::new(TokenExchange {
                token_url: t.token_url.clone(),
                audience: t.audience.clone(),
                scope: t.scope.clone(),
                client: t
                    .client_id
                    .clone()
                    .map(|id| (id, secret.unwrap_or_default())),
                client_auth: t.client_auth,
            }))
        }
        UpstreamAuthFile::PerUserOauth(_) => return None,
    })
}

/// Header names an upstream's `headers:` may not set: the gateway writes or judges them itself.
/// `Authorization` may be set (an API key the upstream reads there): the client's never passes.
pub fn settable(name: &http::HeaderName) -> bool {
    let n = name.as_str().replace('_', "-");
    n == "authorization" || !(super::headers::is_own(&n) || n.starts_with("mcp-"))
}

/// What `auth: per_user_oauth` needs of the rest of the configuration: the consent page's public
/// address, an authorization server that tells the page who the user is, the sealing key when
/// logins are kept in the database, and a scope's own upstream (a composed scope's servers are
/// reached by its composer, which holds no user's token). Returns the keys that seal the logins.
pub fn per_user_needs(
    sources: &Sources,
    scopes: &std::collections::BTreeMap<String, super::ScopeConfig>,
    public_url: Option<&str>,
    authorization_servers: &[String],
    database: bool,
    problems: &mut Vec<Problem>,
) -> Vec<(String, [u8; 32])> {
    let per_user = |u: &super::UpstreamTarget| matches!(u.auth, Some(UpstreamAuth::PerUser(_)));
    let path = sources.path.as_path();
    let mut used = false;
    for s in scopes.values() {
        if s.upstreams.iter().any(per_user) {
            used = true;
        }
        let servers = s.composed.iter().flat_map(|c| c.servers.iter());
        for server in servers.filter(|v| v.scope.upstreams.iter().any(per_user)) {
            let at = format!("scopes.{}.servers.{}", s.name, server.name);
            problems.push(Problem::new(
                path,
                at,
                "per_user_oauth is served on a scope's own upstreams, not on a composed scope's servers",
            ));
        }
    }
    if !used {
        return Vec::new();
    }
    if public_url.is_none() {
        problems.push(Problem::new(
            path,
            "public_url",
            "auth: per_user_oauth needs the gateway's public URL: users sign in on its consent page",
        ));
    }
    if authorization_servers.is_empty() {
        problems.push(Problem::new(
            path,
            "authorization_servers",
            "auth: per_user_oauth needs an authorization server: the consent page signs the user in there first",
        ));
    }
    let keys = keys_of(sources, problems);
    if database && keys.is_empty() {
        problems.push(Problem::env(
            KEY_VAR,
            "auth: per_user_oauth keeps users' upstream tokens in the database sealed under this key: set it (64 hex digits)",
        ));
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_current_and_old_keys_only() {
        let (a, b) = ("11".repeat(32), "22".repeat(32));
        let keys_a = keys(Some(&a), None).unwrap();
        let sealed = seal("api-key-123", &keys_a).unwrap();
        assert!(sealed.starts_with("enc:v1:") && !sealed.contains("api-key-123"));
        assert_eq!(reveal(&sealed, &keys_a).unwrap(), "api-key-123");
        assert_eq!(reveal("plain", &[]).unwrap(), "plain");
        // Rotated: b is current, a is listed as old under its id.
        let old = format!("{}:{a}", key_id(&crate::seal::parse_key(&a).unwrap()));
        let rotated = keys(Some(&b), Some(&old)).unwrap();
        assert_eq!(reveal(&sealed, &rotated).unwrap(), "api-key-123");
        let only_b = keys(Some(&b), None).unwrap();
        let err = reveal(&sealed, &only_b).unwrap_err();
        assert!(
            err.contains("no key with id") && !err.contains("api-key"),
            "{err}"
        );
        assert!(reveal(&sealed, &[]).unwrap_err().contains(KEY_VAR));
        // An audit envelope under the same key is not a configuration secret.
        let audit = crate::seal::ArgumentsMode::encrypted(&keys_a[0].0, &keys_a[0].1)
            .seal("x")
            .unwrap();
        assert!(reveal(&format!("enc:{audit}"), &keys_a).is_err());
        assert!(keys(Some("short"), None).is_err());
        assert!(keys(None, Some("nocolon")).is_err());
    }

    #[test]
    fn own_headers_cannot_be_set() {
        for ok in ["x-api-key", "authorization", "x-team"] {
            assert!(settable(&http::HeaderName::from_static(ok)), "{ok}");
        }
        for own in [
            "x-gateway-auth",
            "x-user-id",
            "host",
            "mcp-session-id",
            "x-forwarded-for",
            "x_user_id",
        ] {
            assert!(
                !settable(&http::HeaderName::from_bytes(own.as_bytes()).unwrap()),
                "{own}"
            );
        }
    }
}

//! `jwt:` in gateway.yaml, and the claim names it reads.

use super::duration;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `jwt:` in gateway.yaml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtFile {
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// HMAC secret for HS* algorithms.
    #[serde(default)]
    pub secret: Option<String>,
    /// PEM public key for RS*, PS*, ES*, EdDSA.
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
    /// JWKS document URL; keys are picked by `kid`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    #[serde(default = "default_jwks_refresh", with = "duration")]
    pub jwks_refresh: Duration,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub audience: Option<OneOrMany>,
    /// Oldest accepted `iat`, in minutes; 0 disables the check.
    #[serde(default)]
    pub max_token_age_minutes: u64,
    #[serde(default = "default_skew")]
    pub clock_skew_seconds: u64,
    #[serde(default)]
    pub claims: ClaimsFile,
    /// Accepted values of the API version claim (when `claims.api_version` is set).
    #[serde(default)]
    pub allowed_api_versions: Vec<String>,
    /// Verified tokens kept in memory, so repeated calls skip the signature check: at most this
    /// many tokens...
    #[serde(default = "default_cache_entries")]
    pub cache_entries: usize,
    /// ...and at most this much memory (estimated per token: its length, its claims and the
    /// cache's own overhead), so that fresh tokens cannot grow the gateway without bound.
    #[serde(default = "default_cache_bytes")]
    pub cache_bytes: u64,
    /// OAuth scopes a token must carry (in its `scope` or `scp` claim) to call a scope, with
    /// `{scope}` standing for the scope's name, e.g. `["mcp:{scope}"]`. Listed as
    /// `scopes_supported` in the protected-resource metadata; a token without them gets 403
    /// `insufficient_scope` naming them (step-up). Empty (the default): not checked.
    #[serde(default)]
    pub required_scopes: Vec<String>,
}

fn default_jwks_refresh() -> Duration {
    Duration::from_secs(300)
}
fn default_skew() -> u64 {
    60
}
fn default_cache_entries() -> usize {
    20_000
}
fn default_cache_bytes() -> u64 {
    8 << 20
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Claim names, for identity providers that do not use the usual ones.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimsFile {
    #[serde(default = "claim_sub")]
    pub user_id: String,
    #[serde(default = "claim_roles")]
    pub roles: String,
    #[serde(default = "claim_tenant")]
    pub tenant: String,
    #[serde(default = "claim_exp")]
    pub exp: String,
    #[serde(default = "claim_iat")]
    pub iat: String,
    #[serde(default)]
    pub api_version: Option<String>,
}

impl Default for ClaimsFile {
    fn default() -> Self {
        Self {
            user_id: claim_sub(),
            roles: claim_roles(),
            tenant: claim_tenant(),
            exp: claim_exp(),
            iat: claim_iat(),
            api_version: None,
        }
    }
}

fn claim_sub() -> String {
    "sub".into()
}
fn claim_roles() -> String {
    "roles".into()
}
fn claim_tenant() -> String {
    "tenant".into()
}
fn claim_exp() -> String {
    "exp".into()
}
fn claim_iat() -> String {
    "iat".into()
}

//! `policies/policy.yaml`: roles and rate limits.

use serde::Deserialize;
use std::collections::BTreeMap;

/// `policies/policy.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub roles: BTreeMap<String, RoleFile>,
    /// Every matching limit must pass.
    #[serde(default)]
    pub rate_limits: Vec<RateLimitFile>,
}

/// One rate limit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    pub name: String,
    /// What the budget belongs to.
    pub key: RateLimitKey,
    /// `N/s`, `N/min`, `N/h` (or `N/day`).
    pub rate: String,
    /// Calls allowed beyond `N` at once.
    #[serde(default)]
    pub burst: u32,
    /// JSON-RPC methods counted (default: `tools/call` only).
    #[serde(default = "default_limit_methods")]
    pub methods: Vec<String>,
    #[serde(default, rename = "match")]
    pub matches: RateLimitMatch,
}

/// One `allow` entry: a pattern, or `{ tool | resource | prompt: "scope/pattern", when: CEL }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowFile {
    Pattern(String),
    Conditional(ConditionalFile),
}

/// A grant that holds only when its condition (a CEL expression) is true for the request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionalFile {
    #[serde(default)]
    pub tool: Option<String>,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub prompt: Option<String>,
    pub when: String,
}

impl From<&str> for AllowFile {
    fn from(s: &str) -> Self {
        AllowFile::Pattern(s.to_string())
    }
}

impl<'de> Deserialize<'de> for AllowFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_yaml_ng::Value::deserialize(d)? {
            serde_yaml_ng::Value::String(s) => Ok(AllowFile::Pattern(s)),
            v @ serde_yaml_ng::Value::Mapping(_) => serde_yaml_ng::from_value(v)
                .map(AllowFile::Conditional)
                .map_err(|e| D::Error::custom(format!("a grant with a condition: {e}"))),
            _ => Err(D::Error::custom(
                "expected \"scope/tool\" or { tool: \"scope/tool\", when: EXPRESSION }",
            )),
        }
    }
}

fn default_limit_methods() -> Vec<String> {
    vec![crate::protocol::method::TOOLS_CALL.into()]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitKey {
    User,
    Tenant,
    Role,
    Tool,
    UserTool,
    Scope,
}

/// Which requests a limit applies to (globs; absent means all).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitMatch {
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// A CEL condition on the request (the variables of a grant's `when`).
    #[serde(default)]
    pub when: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleFile {
    /// `scope/tool` patterns with `*` globs, e.g. `calculator/*`, or a grant with a condition.
    #[serde(default)]
    pub allow: Vec<AllowFile>,
    /// When set, the role counts only on a connection with a verified client certificate whose
    /// subject (RFC 4514, e.g. `CN=ci-7,O=Example`) matches this `*` glob: a token alone does
    /// not carry it.
    #[serde(default)]
    pub client_cert: Option<String>,
}

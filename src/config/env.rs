//! The environment's part in configuration: `${VAR}` references inside YAML values, and the
//! `JWT_*` / `TOOL_GATEWAY_SHARED_SECRET` variables operators already know, which override the file.

use super::file::{GatewayFile, OneOrMany};
use super::source::Env;
use super::Problem;
use serde_yaml_ng::Value;
use std::path::Path;

/// Replaces `${VAR}` in every string value of a parsed YAML document. Expansion happens after
/// parsing so a secret holding `#` or `: ` cannot change the document's structure, and so comments
/// never need their variables set.
pub fn expand(
    value: &mut Value,
    file: &Path,
    field: &mut String,
    env: &Env,
    problems: &mut Vec<Problem>,
) {
    match value {
        Value::String(s) if s.contains("${") => match expand_str(s, env) {
            Ok(v) => *s = v,
            Err(reason) => problems.push(Problem::new(file, field.as_str(), reason)),
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = field.len();
                field.push_str(&format!("[{i}]"));
                expand(item, file, field, env, problems);
                field.truncate(len);
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let len = field.len();
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(k.as_str().unwrap_or("?"));
                expand(v, file, field, env, problems);
                field.truncate(len);
            }
        }
        _ => {}
    }
}

pub fn expand_str(s: &str, env: &Env) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed ${{ in {s:?}"))?;
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad variable name {name:?}"));
        }
        match env.get(name) {
            Some(v) => out.push_str(v),
            None => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Applies the well-known environment variables on top of gateway.yaml.
/// Which fields of gateway.yaml the environment set, so that a problem with one of them names
/// the variable (the file did not say it).
#[derive(Default)]
pub struct Overrides(Vec<(&'static str, &'static str)>);

impl Overrides {
    /// Rewrites the problems of overridden fields of `gateway` as problems of the environment.
    pub fn blame(&self, gateway: &Path, problems: &mut [Problem]) {
        let file = gateway.display().to_string();
        for p in problems.iter_mut().filter(|p| p.file == file) {
            let var = self.0.iter().find(|(field, _)| {
                p.field == *field
                    || p.field
                        .strip_prefix(field)
                        .is_some_and(|rest| rest.starts_with('[') || rest.starts_with('.'))
            });
            if let Some((_, var)) = var {
                *p = Problem::env(var, std::mem::take(&mut p.reason));
            }
        }
    }
}

/// Applies the variables operators already know, which override gateway.yaml; returns which
/// fields they set.
pub fn apply_overrides(g: &mut GatewayFile, env: &Env, problems: &mut Vec<Problem>) -> Overrides {
    let mut set = Overrides::default();
    let mut var = |name: &'static str, field: &'static str| {
        let v = env.get(name).filter(|v| !v.trim().is_empty()).cloned();
        if v.is_some() {
            set.0.push((field, name));
        }
        v
    };
    let list = |v: String| {
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
    };
    let mut number = |name: &str, v: String| -> Option<u64> {
        match v.trim().parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                problems.push(Problem::env(
                    name,
                    format!("expected a whole number, got {v:?}"),
                ));
                None
            }
        }
    };
    if let (Some(v), Some(issuer)) = (
        var("MCP_GATEWAY_ISSUER_TOKEN", "dev_issuer.admin_token"),
        g.dev_issuer.as_mut(),
    ) {
        issuer.admin_token = Some(v);
    }
    let jwt = &mut g.jwt;
    if let Some(v) = var("JWT_SECRET_KEY", "jwt.secret") {
        jwt.secret = Some(v);
    }
    if let Some(v) = var("JWT_ALGORITHM", "jwt.algorithms") {
        jwt.algorithms = vec![v.trim().to_string()];
    }
    if let Some(v) = var("JWT_ALLOWED_ALGORITHMS", "jwt.algorithms") {
        jwt.algorithms = list(v);
    }
    if let Some(v) = var("JWT_ISSUER", "jwt.issuer") {
        jwt.issuer = Some(v);
    }
    if let Some(v) = var("JWT_AUDIENCE", "jwt.audience") {
        jwt.audience = Some(OneOrMany::Many(list(v)));
    }
    if let Some(v) = var("JWT_MAX_TOKEN_AGE_MINUTES", "jwt.max_token_age_minutes") {
        if let Some(n) = number("JWT_MAX_TOKEN_AGE_MINUTES", v) {
            jwt.max_token_age_minutes = n;
        }
    }
    if let Some(v) = var("JWT_CLOCK_SKEW_SECONDS", "jwt.clock_skew_seconds") {
        if let Some(n) = number("JWT_CLOCK_SKEW_SECONDS", v) {
            jwt.clock_skew_seconds = n;
        }
    }
    for (name, field, slot) in [
        (
            "JWT_USER_ID_CLAIM",
            "jwt.claims.user_id",
            &mut jwt.claims.user_id,
        ),
        ("JWT_ROLES_CLAIM", "jwt.claims.roles", &mut jwt.claims.roles),
        (
            "JWT_TENANT_CLAIM",
            "jwt.claims.tenant",
            &mut jwt.claims.tenant,
        ),
        ("JWT_EXP_CLAIM", "jwt.claims.exp", &mut jwt.claims.exp),
        ("JWT_IAT_CLAIM", "jwt.claims.iat", &mut jwt.claims.iat),
    ] {
        if let Some(v) = var(name, field) {
            *slot = v.trim().to_string();
        }
    }
    if let Some(v) = var("JWT_API_VERSION_CLAIM", "jwt.claims.api_version") {
        jwt.claims.api_version = Some(v.trim().to_string());
    }
    if let Some(v) = var("JWT_ALLOWED_API_VERSIONS", "jwt.allowed_api_versions") {
        jwt.allowed_api_versions = list(v);
    }
    if let Some(v) = var("TOOL_GATEWAY_SHARED_SECRET", "upstream_shared_secret") {
        g.upstream_shared_secret = Some(v);
    }
    if let Some(v) = var("MCP_GATEWAY_SESSION_SECRETS", "session_secrets") {
        g.session_secrets = list(v);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_and_names_missing_variables() {
        let env = Env::from([("MCPGW_TEST_A".to_string(), "alpha".to_string())]);
        assert_eq!(
            expand_str("x-${MCPGW_TEST_A}-y", &env).unwrap(),
            "x-alpha-y"
        );
        let err = expand_str("${MCPGW_TEST_SURELY_MISSING}", &env).unwrap_err();
        assert!(err.contains("MCPGW_TEST_SURELY_MISSING"), "{err}");
        assert!(expand_str("${oops", &env).is_err());
    }
}

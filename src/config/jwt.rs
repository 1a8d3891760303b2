//! `jwt:` and `dev_issuer:`: how tokens are checked, and the development authorization server.

use super::file::GatewayFile;
use super::{issuer_key, secrets, DevIssuer, JwtSettings, Problem, Sources};
use jsonwebtoken::Algorithm;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

pub(super) fn build_jwt(
    sources: &Sources,
    g: &GatewayFile,
    dev: Option<&secrets::DevSecrets>,
    problems: &mut Vec<Problem>,
) -> Option<JwtSettings> {
    let path = sources.path.as_path();
    let jwt = &g.jwt;
    let start = problems.len();
    let algorithms = algorithms(path, &jwt.algorithms, problems);
    let wants_hmac = algorithms
        .iter()
        .any(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512));
    let wants_public = algorithms
        .iter()
        .any(|a| !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512));
    let secret = jwt.secret.clone().or_else(|| {
        if wants_hmac {
            dev.map(|d| d.jwt_secret.clone())
        } else {
            None
        }
    });
    if wants_hmac {
        match &secret {
            None => problems.push(Problem::new(
                path,
                "jwt.secret",
                "HS algorithms need a secret (JWT_SECRET_KEY)",
            )),
            Some(s) if s.len() < 32 => problems.push(Problem::new(
                path,
                "jwt.secret",
                "must be at least 32 bytes for HS algorithms",
            )),
            _ => {}
        }
    }
    let public_key_pem = public_key_pem(sources, jwt.public_key_file.as_deref(), problems);
    if wants_public && public_key_pem.is_none() && jwt.jwks_url.is_none() && problems.len() == start
    {
        problems.push(Problem::new(
            path,
            "jwt",
            "RS/PS/ES/EdDSA algorithms need public_key_file or jwks_url",
        ));
    }
    if let Some(u) = &jwt.jwks_url {
        if url::Url::parse(u).is_err() {
            problems.push(Problem::new(
                path,
                "jwt.jwks_url",
                format!("{u:?} is not a URL"),
            ));
        }
    }
    if jwt.claims.api_version.is_some() && jwt.allowed_api_versions.is_empty() {
        problems.push(Problem::new(
            path,
            "jwt.allowed_api_versions",
            "list the accepted versions of claims.api_version",
        ));
    }
    if problems.len() > start {
        return None;
    }
    Some(JwtSettings {
        algorithms,
        secret: secret.map(String::into_bytes),
        public_key_pem,
        jwks_url: jwt.jwks_url.clone(),
        jwks_refresh: jwt.jwks_refresh,
        issuer: jwt.issuer.clone(),
        audience: jwt
            .audience
            .clone()
            .map(|a| a.into_vec())
            .unwrap_or_default(),
        max_age: (jwt.max_token_age_minutes > 0)
            .then(|| Duration::from_secs(jwt.max_token_age_minutes * 60)),
        clock_skew: jwt.clock_skew_seconds,
        claims: jwt.claims.clone(),
        allowed_api_versions: jwt.allowed_api_versions.clone(),
        cache_entries: jwt.cache_entries.max(1),
        cache_bytes: jwt.cache_bytes.max(1024),
        required_scopes: jwt.required_scopes.clone(),
        dev_issuer: None,
    })
}

/// `jwt.algorithms`: at least one, each one `jsonwebtoken` knows.
fn algorithms(path: &Path, names: &[String], problems: &mut Vec<Problem>) -> Vec<Algorithm> {
    let mut algorithms = Vec::new();
    if names.is_empty() {
        problems.push(Problem::new(
            path,
            "jwt.algorithms",
            "name at least one algorithm, e.g. [HS256]",
        ));
    }
    for (i, a) in names.iter().enumerate() {
        match Algorithm::from_str(a.trim()) {
            Ok(alg) => algorithms.push(alg),
            Err(_) => problems.push(Problem::new(
                path,
                format!("jwt.algorithms[{i}]"),
                format!("{a:?} is not supported (HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA)"),
            )),
        }
    }
    algorithms
}

/// `jwt.public_key_file`, read.
fn public_key_pem(
    sources: &Sources,
    file: Option<&Path>,
    problems: &mut Vec<Problem>,
) -> Option<Vec<u8>> {
    let path = sources.path.as_path();
    match file {
        Some(f) => match sources.file(&sources.base().join(f)) {
            Ok(pem) => Some(pem.to_vec()),
            Err(e) => {
                problems.push(Problem::new(
                    path,
                    "jwt.public_key_file",
                    format!("cannot read {}: {e}", f.display()),
                ));
                None
            }
        },
        None => None,
    }
}

/// The development issuer: a loopback address unless told otherwise, a URL, and its key derived
/// from the JWT secret (configured or generated).
pub(super) fn build_dev_issuer(
    path: &Path,
    g: &GatewayFile,
    dev: Option<&secrets::DevSecrets>,
    problems: &mut Vec<Problem>,
) -> Option<DevIssuer> {
    let d = g.dev_issuer.as_ref()?;
    let start = problems.len();
    match d.listen.parse::<std::net::SocketAddr>() {
        Ok(a) if !a.ip().is_loopback() && !d.insecure_dev => problems.push(Problem::new(
            path,
            "dev_issuer.listen",
            "not a loopback address: anyone who reaches the development issuer can log in as anyone (set insecure_dev: true to allow it)",
        )),
        Ok(_) => {}
        Err(_) => problems.push(Problem::new(
            path,
            "dev_issuer.listen",
            format!("{:?} is not an IP:port address", d.listen),
        )),
    }
    let url = d
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{}", d.listen));
    let url = url.trim_end_matches('/').to_string();
    if !url::Url::parse(&url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
        problems.push(Problem::new(
            path,
            "dev_issuer.url",
            format!("{url:?} is not an http(s) URL"),
        ));
    }
    let secret = g
        .jwt
        .secret
        .clone()
        .or_else(|| dev.map(|d| d.jwt_secret.clone()));
    let Some(secret) = secret else {
        problems.push(Problem::new(
            path,
            "dev_issuer",
            "needs a JWT secret (jwt.secret, JWT_SECRET_KEY or dev_secrets_file): its signing key is derived from it",
        ));
        return None;
    };
    if d.token_ttl.is_zero() {
        problems.push(Problem::new(
            path,
            "dev_issuer.token_ttl",
            "must be greater than 0",
        ));
    }
    if problems.len() > start {
        return None;
    }
    Some(DevIssuer {
        listen: d.listen.clone(),
        url,
        admin_token: d.admin_token.clone(),
        token_ttl: d.token_ttl,
        key: std::sync::Arc::new(issuer_key::IssuerKey::derive(secret.as_bytes())),
        insecure_dev: d.insecure_dev,
    })
}

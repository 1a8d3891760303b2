//! `forward_headers:` — request and answer headers an operator lets cross the gateway beyond the
//! built-in allow-lists (`proxy::allowed`). The gateway's own headers (identity, forwarding,
//! session, framing, credentials) cannot be added, also not under another spelling: names are
//! compared with `_` read as `-`, as many frameworks read them.

use super::problem::Problem;
use http::HeaderName;
use serde::Deserialize;
use std::path::Path;

/// `forward_headers:` in gateway.yaml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardHeadersFile {
    /// Extra request headers the upstream gets from the client.
    #[serde(default)]
    pub request: Vec<String>,
    /// Extra answer headers the client gets from the upstream.
    #[serde(default)]
    pub response: Vec<String>,
}

/// The validated extras.
#[derive(Debug, Default, Clone)]
pub struct ForwardHeaders {
    pub request: Vec<HeaderName>,
    pub response: Vec<HeaderName>,
}

/// Names the gateway writes or judges itself.
const OWN: [&str; 16] = [
    "authorization",
    "cookie",
    "set-cookie",
    "host",
    "x-gateway-auth",
    "x-user-id",
    "x-tenant-id",
    "x-request-id",
    "forwarded",
    "mcp-session-id",
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
    "upgrade",
    "www-authenticate",
];

/// Whether the gateway writes or judges the header itself (`name` lower-case, `_` read as `-`).
pub fn is_own(name: &str) -> bool {
    OWN.contains(&name) || name.starts_with("x-forwarded-") || name.starts_with("access-control-")
}

/// Validates `forward_headers`, one problem per bad name.
pub fn validate(
    path: &Path,
    file: &ForwardHeadersFile,
    problems: &mut Vec<Problem>,
) -> ForwardHeaders {
    let mut names = |list: &[String], field: &str| -> Vec<HeaderName> {
        let mut out = Vec::new();
        for (i, raw) in list.iter().enumerate() {
            let field = format!("forward_headers.{field}[{i}]");
            let Ok(name) = HeaderName::from_bytes(raw.as_bytes()) else {
                problems.push(Problem::new(
                    path,
                    field,
                    format!("{raw:?} is not a header name"),
                ));
                continue;
            };
            let normal = name.as_str().replace('_', "-");
            if is_own(&normal) {
                problems.push(Problem::new(
                    path,
                    field,
                    format!("{raw:?} is written or judged by the gateway itself and cannot be forwarded"),
                ));
                continue;
            }
            out.push(name);
        }
        out
    };
    let request = names(&file.request, "request");
    let response = names(&file.response, "response");
    ForwardHeaders { request, response }
}

#[cfg(test)]
mod tests {
    /// What the gateway writes itself cannot be forwarded from either side: an upstream's CORS
    /// answer (`cors::decorate` relies on it) or forwarding chain, a client's framing.
    #[test]
    fn own_names_cannot_be_forwarded() {
        for name in [
            "access-control-allow-origin",
            "access-control-allow-credentials",
            "x-forwarded-for",
            "x-forwarded-anything",
            "content-length",
            "www-authenticate",
        ] {
            assert!(super::is_own(name), "{name}");
        }
        for name in ["x-team", "accept-language", "access-token"] {
            assert!(!super::is_own(name), "{name}");
        }
    }
}

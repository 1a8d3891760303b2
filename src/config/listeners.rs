//! `listen:` / `listeners:` validated. A TLS listener's rustls `ServerConfig` is built here, from
//! the PEM bytes `Sources` read, so a certificate without a key, a key that does not match, an
//! unknown TLS version or a CA file without certificates is a configuration problem naming the
//! file and field (and a reload with one keeps the running certificate).

use super::file::{ClientAuth, ListenerFile, TlsFile};
use super::pem::{certificates, provider};
use super::{Problem, Sources};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where a listener without `listeners:` or `listen:` binds.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";

/// One listener of the proxy.
#[derive(Debug, Clone)]
pub struct Listener {
    pub address: SocketAddr,
    pub tls: Option<Arc<TlsListener>>,
}

/// A TLS listener's settings, ready for handshakes.
pub struct TlsListener {
    pub server: Arc<rustls::ServerConfig>,
    pub client_auth: Option<ClientAuth>,
    pub cert_file: PathBuf,
    /// The leaf certificate's expiry (Unix seconds), for `mcp_tls_certificate_expiry_timestamp_seconds`.
    pub not_after: i64,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("cert_file", &self.cert_file)
            .field("client_auth", &self.client_auth)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Validates `listen` and `listeners` (only one of them may be set).
pub fn build(
    sources: &Sources,
    listen: Option<&str>,
    listeners: &[ListenerFile],
    problems: &mut Vec<Problem>,
) -> Vec<Listener> {
    let path = sources.path.as_path();
    if listen.is_some() && !listeners.is_empty() {
        problems.push(Problem::new(
            path,
            "listen",
            "set either listen (one plain listener) or listeners, not both",
        ));
        return Vec::new();
    }
    let shorthand;
    let entries: Vec<(String, &str, Option<&TlsFile>)> = if listeners.is_empty() {
        shorthand = listen.unwrap_or(DEFAULT_LISTEN).to_string();
        vec![("listen".into(), shorthand.as_str(), None)]
    } else {
        listeners
            .iter()
            .enumerate()
            .map(|(i, l)| {
                (
                    format!("listeners[{i}]"),
                    l.address.as_str(),
                    l.tls.as_ref(),
                )
            })
            .collect()
    };
    let mut out: Vec<Listener> = Vec::new();
    for (field, address, tls) in entries {
        let Ok(address) = address.parse::<SocketAddr>() else {
            let field = if field == "listen" {
                field
            } else {
                format!("{field}.address")
            };
            problems.push(Problem::new(
                path,
                field,
                format!("{address:?} is not an IP:port address"),
            ));
            continue;
        };
        if out.iter().any(|l| l.address.port() == address.port()) {
            problems.push(Problem::new(
                path,
                format!("{field}.address"),
                format!(
                    "port {} is already used by another listener",
                    address.port()
                ),
            ));
            continue;
        }
        let tls = match tls {
            Some(t) => match build_tls(sources, &format!("{field}.tls"), t, problems) {
                Some(t) => Some(Arc::new(t)),
                None => continue,
            },
            None => None,
        };
        out.push(Listener { address, tls });
    }
    out
}

/// A listener's TLS files read and checked, before rustls puts them together.
struct TlsParts {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
    client_auth: Option<ClientAuth>,
    roots: rustls::RootCertStore,
}

fn build_tls(
    sources: &Sources,
    field: &str,
    t: &TlsFile,
    problems: &mut Vec<Problem>,
) -> Option<TlsListener> {
    let parts = tls_parts(sources, field, t, problems)?;
    let not_after = x509_parser::parse_x509_certificate(&parts.certs[0])
        .map(|(_, c)| c.validity().not_after.timestamp())
        .unwrap_or(0);
    let client_auth = parts.client_auth;
    match server_config(t, parts) {
        Ok(mut server) => {
            // HTTP/2 first: MCP clients that speak it multiplex their calls on one connection.
            server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Some(TlsListener {
                server: Arc::new(server),
                client_auth,
                cert_file: sources.base().join(&t.cert_file),
                not_after,
            })
        }
        Err((f, reason)) => {
            problems.push(Problem::new(
                sources.path.as_path(),
                format!("{field}.{f}"),
                reason,
            ));
            None
        }
    }
}

/// Reads the certificate chain, key and client CAs, and checks the version and client-auth
/// settings; every problem is named, and none of it is returned if there was one.
fn tls_parts(
    sources: &Sources,
    field: &str,
    t: &TlsFile,
    problems: &mut Vec<Problem>,
) -> Option<TlsParts> {
    let path = sources.path.as_path();
    let base = sources.base();
    let before = problems.len();
    let mut problem = |f: &str, reason: String| {
        problems.push(Problem::new(path, format!("{field}.{f}"), reason));
    };
    let read = |f: &str, file: &Path, problem: &mut dyn FnMut(&str, String)| {
        let full = base.join(file);
        match sources.file(&full) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                problem(f, format!("{}: {e}", full.display()));
                None
            }
        }
    };
    let cert_pem = read("cert_file", &t.cert_file, &mut problem);
    let key_pem = read("key_file", &t.key_file, &mut problem);
    let ca_pem = t
        .client_ca_file
        .as_ref()
        .and_then(|f| read("client_ca_file", f, &mut problem));
    let certs: Vec<CertificateDer<'static>> = cert_pem
        .and_then(|b| {
            certificates(b)
                .map_err(|e| problem("cert_file", format!("{}: {e}", t.cert_file.display())))
                .ok()
        })
        .unwrap_or_default();
    let key = key_pem.and_then(|b| match PrivateKeyDer::from_pem_slice(b) {
        Ok(k) => Some(k),
        Err(e) => {
            problem(
                "key_file",
                format!("{}: no private key in it ({e})", t.key_file.display()),
            );
            None
        }
    });
    let versions = match t.min_version.as_deref().unwrap_or("1.2") {
        "1.2" => vec![&rustls::version::TLS13, &rustls::version::TLS12],
        "1.3" => vec![&rustls::version::TLS13],
        other => {
            problem(
                "min_version",
                format!("{other:?} is not a TLS version this gateway offers (\"1.2\" or \"1.3\")"),
            );
            Vec::new()
        }
    };
    let client_auth = match (&t.client_ca_file, t.client_auth) {
        (None, Some(_)) => {
            problem(
                "client_auth",
                "needs client_ca_file (the CAs client certificates are checked against)".into(),
            );
            None
        }
        (Some(_), auth) => Some(auth.unwrap_or(ClientAuth::Required)),
        (None, None) => None,
    };
    let mut roots = rustls::RootCertStore::empty();
    if let (Some(ca), Some(file)) = (&ca_pem, &t.client_ca_file) {
        let added = certificates(ca).and_then(|list| {
            list.into_iter()
                .try_for_each(|c| roots.add(c))
                .map_err(|e| e.to_string())
        });
        if let Err(e) = added {
            problem("client_ca_file", format!("{}: {e}", file.display()));
        }
    }
    if problems.len() > before || versions.is_empty() {
        return None;
    }
    Some(TlsParts {
        certs,
        key: key?,
        versions,
        client_auth,
        roots,
    })
}

/// Puts the parts together; a refusal names the field (under the listener's `tls`) and why.
fn server_config(
    t: &TlsFile,
    parts: TlsParts,
) -> Result<rustls::ServerConfig, (&'static str, String)> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&parts.versions)
        .map_err(|e| ("min_version", e.to_string()))?;
    let builder = match parts.client_auth {
        Some(auth) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(parts.roots), provider());
            let verifier = if auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| ("client_ca_file", e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(parts.certs, parts.key)
        .map_err(|e| {
            (
                "key_file",
                format!(
                    "{} does not fit {}: {e}",
                    t.key_file.display(),
                    t.cert_file.display()
                ),
            )
        })
}

/// The files `listeners:` names (read by `Sources` with the rest).
pub fn named_files(value: &serde_yaml_ng::Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(list) = value.get("listeners").and_then(|l| l.as_sequence()) else {
        return out;
    };
    for l in list {
        let Some(tls) = l.get("tls") else { continue };
        for key in ["cert_file", "key_file", "client_ca_file"] {
            if let Some(s) = tls.get(key).and_then(|v| v.as_str()) {
                out.push(s.to_string());
            }
        }
    }
    out
}

/// `connections:` settings, validated.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Client connections held at once; new ones beyond it are closed.
    pub max_connections: usize,
    /// Client connections held at once from one IP address.
    pub max_per_address: usize,
    /// From a connection's start (or a keep-alive request's first byte) to a complete head.
    pub head_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// From a complete head to the body's last byte, at most.
    pub body_timeout: Duration,
    /// Bytes per second a body must keep up (see `body_deadline`).
    pub body_min_rate: u64,
    /// Requests of one user whose body is still arriving.
    pub bodies_per_user: u32,
}

impl ConnectionLimits {
    /// How long a body of `length` bytes may take: one second plus its length at the minimum
    /// rate, never more than `body_timeout`. A trickling client holds a slot only that long.
    pub fn body_deadline(&self, length: u64) -> Duration {
        let at_min_rate = Duration::from_millis(length.saturating_mul(1000) / self.body_min_rate);
        (Duration::from_secs(1) + at_min_rate).min(self.body_timeout)
    }
}

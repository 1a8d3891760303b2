//! TLS toward a scope's `https` upstreams (`tls:` in tools.yaml): the CAs their certificates must
//! chain to (instead of the system roots), the client certificate the gateway presents to tool
//! servers that require mTLS, and the name checked in their certificate (and sent as SNI) when it
//! is not the URL's host. Built from the bytes `Sources` read, so validation stays pure; the
//! proxy and the health checks put the result on every upstream connection.

use super::file::UpstreamTlsFile;
use super::pem::{certificates, provider};
use super::{Problem, Sources};
use pingora::protocols::tls::CaType;
use pingora::utils::tls::{CertKey, WrappedX509};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

/// A scope's upstream TLS settings, ready for Pingora's peers.
pub struct UpstreamTls {
    /// Replaces the system roots for these upstreams.
    pub ca: Option<Arc<CaType>>,
    /// Presented when the upstream asks for a client certificate.
    pub client: Option<Arc<CertKey>>,
    /// Checked in the certificate and sent as SNI (default: the URL's host).
    pub server_name: Option<String>,
    /// Hash of the files and settings: equal settings keep a scope's pool on reload.
    fingerprint: [u8; 32],
}

impl PartialEq for UpstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("ca", &self.ca.is_some())
            .field("client_certificate", &self.client.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// Validates `scopes.<name>.tls` (`field` is that path; files are relative to `tools_path`).
pub fn build(
    sources: &Sources,
    tools_path: &Path,
    field: &str,
    t: &UpstreamTlsFile,
    problems: &mut Vec<Problem>,
) -> Option<UpstreamTls> {
    let base = tools_path.parent().unwrap_or(Path::new("."));
    let before = problems.len();
    let mut fingerprint = Sha256::new();
    let mut read = |f: &str, file: &Option<std::path::PathBuf>, problems: &mut Vec<Problem>| {
        let full = base.join(file.as_ref()?);
        fingerprint.update(f.as_bytes());
        match sources.file(&full) {
            Ok(bytes) => {
                fingerprint.update(bytes);
                Some((full, bytes))
            }
            Err(e) => {
                problems.push(Problem::new(
                    tools_path,
                    format!("{field}.{f}"),
                    format!("{}: {e}", full.display()),
                ));
                None
            }
        }
    };
    let ca = read("ca_file", &t.ca_file, problems);
    let cert = read("client_cert_file", &t.client_cert_file, problems);
    let key = read("client_key_file", &t.client_key_file, problems);
    let mut problem = |f: &str, reason: String| {
        problems.push(Problem::new(tools_path, format!("{field}.{f}"), reason));
    };
    if t.client_cert_file.is_some() != t.client_key_file.is_some() {
        problem(
            "client_cert_file",
            "client_cert_file and client_key_file go together".into(),
        );
    }
    let ca = ca.and_then(|(full, pem)| match certificates(pem) {
        Ok(list) => Some(
            list.into_iter()
                .map(|der| WrappedX509::new(der.to_vec(), pingora::utils::tls::parse_x509))
                .collect::<Vec<_>>(),
        ),
        Err(e) => {
            problem("ca_file", format!("{}: {e}", full.display()));
            None
        }
    });
    let chain = cert.and_then(|(full, pem)| {
        certificates(pem)
            .map_err(|e| problem("client_cert_file", format!("{}: {e}", full.display())))
            .ok()
    });
    let key = key.and_then(|(full, pem)| {
        PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| {
                problem(
                    "client_key_file",
                    format!("{}: no private key in it ({e})", full.display()),
                )
            })
            .ok()
    });
    let client = match (chain, key) {
        (Some(chain), Some(key)) => client_cert(chain, key)
            .map_err(|e| {
                problem(
                    "client_key_file",
                    format!("does not fit client_cert_file: {e}"),
                )
            })
            .ok(),
        _ => None,
    };
    if let Some(n) = &t.server_name {
        fingerprint.update(n.as_bytes());
        if rustls::pki_types::ServerName::try_from(n.as_str()).is_err() {
            problem(
                "server_name",
                format!("{n:?} is not a DNS name or IP address"),
            );
        }
    }
    if problems.len() > before {
        return None;
    }
    Some(UpstreamTls {
        ca: ca.map(Arc::from),
        client,
        server_name: t.server_name.clone(),
        fingerprint: fingerprint.finalize().into(),
    })
}

/// The client certificate and key, after the check rustls makes when a connection is set up:
/// the key must be usable and belong to the certificate.
fn client_cert(
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertKey>, String> {
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_client_auth_cert(chain.clone(), key.clone_key())
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(CertKey::new(
        chain.iter().map(|c| c.to_vec()).collect(),
        key.secret_der().to_vec(),
    )))
}

/// The files the scopes' `tls:` sections name, relative to tools.yaml (read by `Sources`).
pub fn named_files(tools: &serde_yaml_ng::Value) -> Vec<String> {
    let Some(scopes) = tools.get("scopes").and_then(|s| s.as_mapping()) else {
        return Vec::new();
    };
    scopes
        .values()
        .filter_map(|s| s.get("tls"))
        .flat_map(|tls| {
            ["ca_file", "client_cert_file", "client_key_file"]
                .into_iter()
                .filter_map(|k| tls.get(k)?.as_str().map(str::to_string))
        })
        .collect()
}

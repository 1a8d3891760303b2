//! PEM material named by the configuration (listener certificates and client CAs, upstream CAs
//! and client certificates), parsed the same way everywhere so a bad file gets the same words.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;

/// The certificates of a PEM file, each checked to be a certificate that parses (Pingora parses
/// upstream CAs again, and would panic on one that does not); at least one.
pub fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut out = Vec::new();
    for c in CertificateDer::pem_slice_iter(pem) {
        let c = c.map_err(|e| format!("not PEM: {e}"))?;
        x509_parser::parse_x509_certificate(&c)
            .map_err(|e| format!("a certificate that does not parse: {e}"))?;
        out.push(c);
    }
    if out.is_empty() {
        return Err("no CERTIFICATE in it".into());
    }
    Ok(out)
}

/// The provider Pingora installs too (ring), named explicitly so that a TLS configuration built
/// here does not depend on a process-wide default.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

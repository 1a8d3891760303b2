//! The HTTP client for the gateway's own requests to a scope's `https` upstreams (bridged
//! sessions, discovery, legacy event streams), with the scope's `tls:` settings, so those requests
//! verify and authenticate exactly as proxied ones do: the scope's CAs (else the system roots),
//! its client certificate, and `server_name` as the name checked in the certificate.

use crate::config::upstream_tls::UpstreamTls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use std::time::Duration;

/// Verifies the certificate against a fixed name instead of the URL's host.
#[derive(Debug)]
struct Named {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for Named {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _url_host: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Builds the client (reads the system roots when the scope names no CA file: part of building
/// the runtime, never of validation).
pub fn client(tls: &UpstreamTls) -> Result<reqwest::Client, super::Cause> {
    let provider = crate::config::pem::provider();
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca {
        Some(ca) => {
            for c in ca.iter() {
                roots
                    .add(CertificateDer::from(c.borrow_raw_cert().clone()))
                    .map_err(|e| format!("upstream CA: {e}"))?;
            }
        }
        None => {
            let system = rustls_native_certs::load_native_certs()
                .map_err(|e| format!("cannot read the system's CA certificates: {e}"))?;
            roots.add_parsable_certificates(system);
        }
    }
    let webpki =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let verifier: Arc<dyn ServerCertVerifier> = match &tls.server_name {
        Some(n) => Arc::new(Named {
            inner: webpki,
            name: ServerName::try_from(n.clone())?,
        }),
        None => webpki,
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &tls.client {
        Some(ck) => {
            let mut chain = vec![CertificateDer::from(ck.leaf().borrow_raw_cert().clone())];
            chain.extend(
                ck.intermediates()
                    .into_iter()
                    .map(|c| CertificateDer::from(c.borrow_raw_cert().clone())),
            );
            let key = PrivateKeyDer::try_from(ck.key().clone())?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .connect_timeout(Duration::from_secs(10))
        .build()?)
}

//! TLS termination, inside the listener's own accept step rather than Pingora's listener TLS: the
//! connection limits apply before a handshake is paid for, the head deadline also bounds the
//! handshake, and each listener's settings (certificate, client CAs, versions) come from the
//! validated configuration (Pingora's `TlsSettings` always allows TLS 1.2).

use crate::config::listeners::Listener;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::listeners::tls::Acceptor;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;

/// A verified client certificate, attached to the connection's TLS digest.
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// The subject's distinguished name (RFC 4514 form), at most 256 bytes.
    pub subject: String,
}

/// Longest subject kept: it lands in every audit row of the connection.
const MAX_SUBJECT: usize = 256;

/// After a handshake: the client certificate's subject, when one was sent (rustls has verified it
/// against the listener's client CAs by then).
struct Identify;

#[async_trait]
impl TlsAccept for Identify {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        let der = tls.peer_certificate_der()?;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut subject = cert.subject().to_string();
        if subject.len() > MAX_SUBJECT {
            let mut end = MAX_SUBJECT;
            while !subject.is_char_boundary(end) {
                end -= 1;
            }
            subject.truncate(end);
        }
        Some(Arc::new(ClientCert { subject }))
    }
}

/// One listener's TLS acceptor; a reload replaces it (new certificate, client CAs, versions) for
/// the handshakes that start after it, established connections keep theirs.
struct Terminator {
    address: SocketAddr,
    acceptor: ArcSwap<Acceptor>,
}

/// The TLS listeners of the proxy, found by the local address a connection arrived on.
#[derive(Default)]
pub struct Terminators {
    listeners: Vec<Terminator>,
}

impl Terminators {
    pub fn new(listeners: &[Listener]) -> Self {
        Self {
            listeners: listeners
                .iter()
                .filter_map(|l| {
                    let tls = l.tls.as_ref()?;
                    Some(Terminator {
                        address: l.address,
                        acceptor: ArcSwap::from_pointee(Acceptor::from_server_config(
                            tls.server.clone(),
                        )),
                    })
                })
                .collect(),
        }
    }

    /// Takes each TLS listener's settings from `listeners` (a reload: the same addresses, each
    /// still TLS or still plain, which the reload checked).
    pub fn update(&self, listeners: &[Listener]) {
        for t in &self.listeners {
            let tls = listeners
                .iter()
                .find(|l| l.address == t.address)
                .and_then(|l| l.tls.as_ref());
            if let Some(tls) = tls {
                t.acceptor
                    .store(Arc::new(Acceptor::from_server_config(tls.server.clone())));
            }
        }
    }

    /// The acceptor of the TLS listener a connection to `local` came in on.
    fn for_local(&self, local: &SocketAddr) -> Option<Arc<Acceptor>> {
        self.listeners
            .iter()
            .find(|t| {
                t.address.port() == local.port()
                    && (t.address.ip().is_unspecified() || t.address.ip() == local.ip())
            })
            .map(|t| t.acceptor.load_full())
    }

    /// Completes the TLS handshake when the connection came to a TLS listener; `Ok(stream)`
    /// unchanged for a plain one; `Err(reason)` when the handshake failed or timed out.
    pub async fn terminate(
        &self,
        stream: pingora::protocols::Stream,
        deadline: std::time::Duration,
    ) -> Result<pingora::protocols::Stream, &'static str> {
        if self.listeners.is_empty() {
            return Ok(stream);
        }
        let local = stream
            .get_socket_digest()
            .and_then(|d| d.local_addr().and_then(|a| a.as_inet()).copied());
        let Some(acceptor) = local.and_then(|a| self.for_local(&a)) else {
            return Ok(stream);
        };
        // The listener hands over its TCP stream boxed; the handshake needs the concrete type.
        let Ok(tcp) = stream
            .into_any()
            .downcast::<pingora::protocols::l4::stream::Stream>()
        else {
            return Err("tls_handshake");
        };
        // Boxed: the handshake's state is several kilobytes, and held inline it would be part of
        // every connection's task, TLS or not, for the connection's whole life.
        let handshake = Box::pin(pingora::protocols::tls::server::handshake_with_callback(
            &acceptor, *tcp, &Identify,
        ));
        match tokio::time::timeout(deadline, handshake).await {
            Ok(Ok(s)) => Ok(Box::new(s)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                Err("tls_handshake")
            }
            Err(_) => Err("tls_handshake_timeout"),
        }
    }
}

/// The verified client certificate of the connection a request came on.
pub fn client_cert(session: &pingora::proxy::Session) -> Option<&ClientCert> {
    session
        .digest()?
        .ssl_digest
        .as_ref()?
        .extension
        .get::<ClientCert>()
}

/// Publishes each TLS listener's certificate expiry.
pub fn publish_expiry(listeners: &[Listener]) {
    for l in listeners {
        if let Some(tls) = &l.tls {
            crate::metrics::TLS_CERT_EXPIRY
                .with_label_values(&[&l.address.to_string()])
                .set(tls.not_after);
        }
    }
}

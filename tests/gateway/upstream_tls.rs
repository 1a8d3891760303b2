//! TLS toward upstreams: an `https` tool server with a private CA that requires the gateway's
//! client certificate, reached by requests and health checks alike; one whose certificate does
//! not verify is a 502 (-32008) with the reason in the audit row, never a plain-text fallback.

use crate::common::recorder::Recorder;
use crate::common::*;
use crate::tls::{certs, client_identity, Certs};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A TLS front for a plain tool server on `backend`: presents `c`'s certificate and, with
/// `client_ca`, requires a client certificate from that CA. Counts completed handshakes.
async fn tls_front(backend: u16, c: &Certs, client_ca: &str) -> (u16, Arc<AtomicUsize>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(client_ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()
            .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            CertificateDer::pem_slice_iter(c.cert.as_bytes())
                .map(Result::unwrap)
                .collect(),
            PrivateKeyDer::from_pem_slice(c.key.as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counted = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, counted) = (acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                counted.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", backend)).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                }
            });
        }
    });
    (port, handshakes)
}

/// A gateway whose `calculator` scope reaches `https://127.0.0.1:front` with `tls` settings.
fn https_spec(front: u16, tls: &str) -> GatewaySpec {
    let mut spec = GatewaySpec::new(&[front]);
    spec.tools_yaml = edit(
        &spec.tools_yaml,
        &format!("url: http://127.0.0.1:{front}/mcp"),
        &format!("url: https://127.0.0.1:{front}/mcp"),
    );
    spec.scope_setting(&format!("tls: {tls}"));
    spec
}

#[tokio::test]
async fn https_upstream_with_private_ca_and_client_certificate() {
    let calc = calculator(true).await;
    let server = certs();
    let (gateway_ca, gateway_identity) = client_identity("mcp-gateway");
    let (front, handshakes) = tls_front(calc.port, &server, &gateway_ca).await;

    let spec = https_spec(
        front,
        "{ ca_file: upstream-ca.pem, client_cert_file: gateway.pem, client_key_file: gateway.pem }",
    );
    let d = spec.dir.path();
    std::fs::write(d.join("upstream-ca.pem"), &server.ca).unwrap();
    std::fs::write(d.join("gateway.pem"), &gateway_identity).unwrap();
    let gw = spec.start().await;
    let alice = gw.developer("alice");
    let r = alice
        .call(
            1,
            "exact_calculate",
            json!({"operator": "multiply", "operands": ["6", "7"]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(rpc_body(r).await.to_string().contains("42"));
    assert!(handshakes.load(Ordering::Relaxed) >= 1);
    let m = gw.metrics_text().await;
    assert_eq!(
        metric(
            &m,
            &format!("mcp_upstream_healthy{{scope=\"calculator\",upstream=\"127.0.0.1:{front}\"}}")
        ),
        1.0,
        "the health check passes with the same TLS settings"
    );
}

/// The upstream's certificate does not chain to the configured CA (a request), and it does not
/// name the configured server name: 502 (-32008), the reason audited, nothing sent in plain text.
#[tokio::test]
async fn an_upstream_certificate_that_does_not_verify_is_a_502() {
    let calc = Recorder::start().await;
    let server = certs();
    let (gateway_ca, gateway_identity) = client_identity("mcp-gateway");
    let (front, handshakes) = tls_front(calc.port, &server, &gateway_ca).await;
    let cases = [
        ("another CA", "{ ca_file: other-ca.pem, client_cert_file: gateway.pem, client_key_file: gateway.pem }"),
        ("another name", "{ ca_file: upstream-ca.pem, client_cert_file: gateway.pem, client_key_file: gateway.pem, server_name: tools.example.com }"),
    ];
    for (label, tls) in cases {
        let mut spec = https_spec(front, tls);
        // No health check: the request itself meets the certificate.
        spec.without_health_check();
        let d = spec.dir.path();
        std::fs::write(d.join("upstream-ca.pem"), &server.ca).unwrap();
        std::fs::write(d.join("other-ca.pem"), certs().ca).unwrap();
        std::fs::write(d.join("gateway.pem"), &gateway_identity).unwrap();
        let gw = spec.start().await;
        let r = gw
            .developer("alice")
            .call(
                1,
                "exact_calculate",
                json!({"operator": "add", "operands": ["1", "1"]}),
            )
            .await;
        assert_eq!(r.status(), 502, "{label}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], -32008, "{label}: {v}");
        let row = gw.audit_rows(1).await.pop().unwrap();
        assert!(
            row["reason"].as_str().unwrap_or("").contains("TLS"),
            "{label}: {row}"
        );
        let log = gw.log_with("upstream connect failed").await;
        assert!(
            log.contains("certificate"),
            "{label}: the log says why:\n{log}"
        );
    }
    assert_eq!(
        handshakes.load(Ordering::Relaxed),
        0,
        "no handshake completed"
    );
    assert!(calc.received().is_empty(), "nothing reached the tool");
}

/// The gateway's own requests (a 2026-07-28 client bridged to a 2025-11-25 scope: the gateway
/// opens its own upstream session) use the scope's TLS settings too: the private CA, the client
/// certificate and the server name.
#[tokio::test]
async fn bridged_sessions_use_the_scope_tls_settings() {
    let calc = calculator(true).await;
    let server = certs();
    let (gateway_ca, gateway_identity) = client_identity("mcp-gateway");
    let (front, handshakes) = tls_front(calc.port, &server, &gateway_ca).await;
    let mut spec = https_spec(
        front,
        "{ ca_file: upstream-ca.pem, client_cert_file: gateway.pem, client_key_file: gateway.pem, server_name: localhost }",
    );
    spec.scope_setting("upstream_version: 2025-11-25");
    let d = spec.dir.path();
    std::fs::write(d.join("upstream-ca.pem"), &server.ca).unwrap();
    std::fs::write(d.join("gateway.pem"), &gateway_identity).unwrap();
    let gw = spec.start().await;
    let analyst = token("ann", &["analyst"], json!({}));
    let url = gw.url("/calculator/mcp");
    let seen = python_client_script("modern_client.py", &[&url, &analyst, "2026-07-28"], &[]).await;
    assert_eq!(seen["protocol"], "2026-07-28", "{seen}");
    assert_analyst_view(&seen, "bridged over https");
    assert!(
        handshakes.load(Ordering::Relaxed) >= 2,
        "the gateway's own session and the calls"
    );
}

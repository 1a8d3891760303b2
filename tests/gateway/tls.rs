//! TLS at the listener: HTTP/2 and HTTP/1.1 by ALPN, TLS 1.2/1.3, clients that verify, and the
//! plain listener beside it.

use crate::common::*;
use serde_json::json;

/// A CA and a server certificate for `localhost` / 127.0.0.1 signed by it, as PEM.
pub struct Certs {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

/// A new self-signed CA named `cn`, with its key.
fn ca(cn: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert, key)
}

pub fn certs() -> Certs {
    certs_with(|_| {})
}

/// A CA and a server certificate for `localhost` / 127.0.0.1, with `adjust` applied to the
/// server certificate's parameters.
fn certs_with(adjust: impl FnOnce(&mut rcgen::CertificateParams)) -> Certs {
    let (ca, ca_key) = ca("test CA");
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    adjust(&mut params);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    Certs {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// Puts a TLS listener with `c`'s certificate and the `settings` (more `tls:` fields) beside the
/// spec's plain one; returns its port.
fn with_tls_listener(spec: &mut GatewaySpec, c: &Certs, settings: &str) -> u16 {
    let tls_port = free_port();
    std::fs::write(spec.dir.path().join("server.pem"), &c.cert).unwrap();
    std::fs::write(spec.dir.path().join("server.key"), &c.key).unwrap();
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        &format!("listen: 127.0.0.1:{}\n", spec.port),
        &format!(
            "listeners:\n  - address: 127.0.0.1:{tls_port}\n    tls: {{ cert_file: server.pem, key_file: server.key, {settings} }}\n  - address: 127.0.0.1:{}\n",
            spec.port
        ),
    );
    tls_port
}

/// A gateway with a TLS listener (`min_version`) beside its plain one; returns the TLS port.
async fn tls_gateway(upstream: u16, c: &Certs, min_version: &str) -> (Gateway, u16) {
    let mut spec = GatewaySpec::new(&[upstream]);
    let tls_port = with_tls_listener(&mut spec, c, &format!("min_version: \"{min_version}\""));
    // Reloads in these tests come from SIGHUP only (a watcher could see a half-written rotation).
    spec.gateway_yaml.push_str("watch_interval: 0s\n");
    (spec.start().await, tls_port)
}

/// `GET url` with a client built from `builder` (a new connection, so a new handshake).
async fn get_with(
    builder: reqwest::ClientBuilder,
    url: impl reqwest::IntoUrl,
) -> reqwest::Result<reqwest::Response> {
    builder.build().unwrap().get(url).send().await
}

fn verifying(c: &Certs) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(c.ca.as_bytes()).unwrap())
}

async fn call_over(http: reqwest::Client, url: String) -> (reqwest::Version, serde_json::Value) {
    let mut client = Client::new(url, Some(token("alice", &["developer"], json!({}))));
    client.http = http;
    client.initialize().await;
    let r = client
        .call(
            1,
            "exact_calculate",
            json!({"operator": "multiply", "operands": ["6", "7"]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let version = r.version();
    (version, rpc_body(r).await)
}

/// One MCP session over HTTP/2 and one over HTTP/1.1, both through TLS, each completing a
/// `tools/call`; the plain listener still answers; a client that does not trust the CA is refused.
#[tokio::test]
async fn mcp_over_tls_with_h2_and_http1() {
    let upstream = calculator(false).await;
    let c = certs();
    let (gw, tls_port) = tls_gateway(upstream.port, &c, "1.2").await;
    let url = format!("https://localhost:{tls_port}/calculator/mcp");

    let (v, body) = call_over(verifying(&c).build().unwrap(), url.clone()).await;
    assert_eq!(v, reqwest::Version::HTTP_2, "ALPN picks h2");
    assert!(body.to_string().contains("42"), "{body}");

    let (v, body) = call_over(verifying(&c).http1_only().build().unwrap(), url.clone()).await;
    assert_eq!(v, reqwest::Version::HTTP_11);
    assert!(body.to_string().contains("42"), "{body}");

    // TLS 1.2 only, still accepted by a "1.2" listener.
    let r = get_with(
        verifying(&c).max_tls_version(reqwest::tls::Version::TLS_1_2),
        format!("https://localhost:{tls_port}/healthz"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);

    // A client that verifies and does not know the CA: no connection.
    let untrusting = get_with(
        reqwest::Client::builder().use_rustls_tls(),
        format!("https://localhost:{tls_port}/healthz"),
    )
    .await;
    assert!(untrusting.is_err(), "an unknown CA must fail verification");

    // A wrong host name fails verification too (the certificate names localhost, not this).
    let wrong_host = get_with(
        verifying(&c).resolve(
            "wrong.example.com",
            format!("127.0.0.1:{tls_port}").parse().unwrap(),
        ),
        format!("https://wrong.example.com:{tls_port}/healthz"),
    )
    .await;
    assert!(wrong_host.is_err(), "a wrong host name must fail");

    let plain = reqwest::get(gw.url("/healthz")).await.unwrap();
    assert_eq!(plain.status(), 200, "the plain listener stays");
    drop(gw);
}

/// A gateway serving an expired certificate is refused by a client that verifies (the gateway
/// serves what it is given; the expiry metric is what warns the operator in time).
#[tokio::test]
async fn an_expired_certificate_is_refused_by_a_verifying_client() {
    let upstream = calculator(true).await;
    let expired = certs_with(|p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let (gw, tls_port) = tls_gateway(upstream.port, &expired, "1.2").await;
    let r = get_with(
        verifying(&expired),
        format!("https://localhost:{tls_port}/healthz"),
    )
    .await;
    assert!(r.is_err(), "an expired certificate must fail verification");
    let m = gw.metrics_text().await;
    let expiry = metric(
        &m,
        &format!(
            "mcp_tls_certificate_expiry_timestamp_seconds{{listener=\"127.0.0.1:{tls_port}\"}}"
        ),
    );
    assert_eq!(expiry, 1_609_459_200.0, "2021-01-01T00:00:00Z");
}

/// `min_version: "1.3"` refuses a client that offers at most TLS 1.2 and accepts TLS 1.3.
#[tokio::test]
async fn min_version_1_3_refuses_tls_1_2() {
    let upstream = calculator(false).await;
    let c = certs();
    let (gw, tls_port) = tls_gateway(upstream.port, &c, "1.3").await;
    let url = format!("https://localhost:{tls_port}/healthz");
    let old = get_with(
        verifying(&c).max_tls_version(reqwest::tls::Version::TLS_1_2),
        &url,
    )
    .await;
    assert!(old.is_err(), "TLS 1.2 must be refused");
    let new = get_with(verifying(&c), &url).await.unwrap();
    assert_eq!(new.status(), 200);
    let m = gw.metrics_text().await;
    assert!(
        metric(
            &m,
            "mcp_connections_refused_total{reason=\"tls_handshake\"}"
        ) >= 1.0,
        "{m}"
    );
    assert!(m.contains("mcp_tls_certificate_expiry_timestamp_seconds{"));
}

/// A certificate file without a matching key is a config error naming the field.
#[tokio::test]
async fn a_key_that_does_not_fit_is_a_config_error() {
    let c = certs();
    let other = certs();
    let mut spec = GatewaySpec::new(&[free_port()]);
    std::fs::write(spec.dir.path().join("server.pem"), &c.cert).unwrap();
    std::fs::write(spec.dir.path().join("server.key"), &other.key).unwrap();
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        &format!("listen: 127.0.0.1:{}\n", spec.port),
        "listeners:\n  - address: 127.0.0.1:1\n    tls: { cert_file: server.pem, key_file: server.key, min_version: \"1.4\" }\n",
    );
    let (ok, err) = spec.check();
    assert!(!ok);
    assert!(err.contains("listeners[0].tls.min_version"), "{err}");
    spec.gateway_yaml = edit(&spec.gateway_yaml, "\"1.4\"", "\"1.3\"");
    let (ok, err) = spec.check();
    assert!(!ok);
    assert!(err.contains("listeners[0].tls.key_file"), "{err}");
}

/// A client certificate for `cn`, signed by a new CA: (CA PEM, cert + key PEM).
pub fn client_identity(cn: &str) -> (String, String) {
    let (ca, ca_key) = ca("client CA");
    (ca.pem(), signed_by(&ca, &ca_key, cn))
}

/// A client certificate for `cn` signed by `ca`, with its key, as PEM.
fn signed_by(ca: &rcgen::Certificate, ca_key: &rcgen::KeyPair, cn: &str) -> String {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca, ca_key).unwrap();
    format!("{}{}", cert.pem(), key.serialize_pem())
}

/// mTLS: `required` refuses a client without a certificate and one from another CA, accepts a
/// verified one and writes its subject in the audit row; `optional` also lets anonymous clients in.
#[tokio::test]
async fn client_certificates_required_and_optional() {
    let upstream = calculator(false).await;
    let c = certs();
    let (client_ca, identity) = client_identity("agent-1");
    let (_, stranger) = client_identity("agent-1");
    for auth in ["required", "optional"] {
        let mut spec = GatewaySpec::new(&[upstream.port]);
        std::fs::write(spec.dir.path().join("clients.pem"), &client_ca).unwrap();
        let tls_port = with_tls_listener(
            &mut spec,
            &c,
            &format!("client_ca_file: clients.pem, client_auth: {auth}"),
        );
        let gw = spec.start().await;
        let url = format!("https://localhost:{tls_port}/calculator/mcp");
        let with = |pem: &str| {
            verifying(&c)
                .identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap())
                .build()
                .unwrap()
        };
        let (_, body) = call_over(with(&identity), url.clone()).await;
        assert!(body.to_string().contains("42"), "{auth}: {body}");
        let rows = gw.audit_rows(3).await;
        let call = rows
            .iter()
            .find(|r| r["method"] == "tools/call")
            .expect("a tools/call row");
        assert_eq!(call["client_cert"], "CN=agent-1", "{auth}: {call}");

        let from_stranger = get_with(
            verifying(&c).identity(reqwest::Identity::from_pem(stranger.as_bytes()).unwrap()),
            format!("https://localhost:{tls_port}/healthz"),
        )
        .await;
        assert!(
            from_stranger.is_err(),
            "{auth}: a certificate of another CA"
        );

        let anonymous = get_with(
            verifying(&c),
            format!("https://localhost:{tls_port}/healthz"),
        )
        .await;
        match auth {
            "required" => assert!(anonymous.is_err(), "no certificate must be refused"),
            _ => assert_eq!(anonymous.unwrap().status(), 200),
        }
    }
}

/// Certificate rotation without restart: new files and `SIGHUP` → new handshakes get the new
/// certificate while an established connection goes on; a key that does not fit keeps the
/// current certificate, and the refusal names the field.
#[tokio::test]
async fn certificates_rotate_without_restart() {
    let upstream = calculator(false).await;
    let (old, new) = (certs(), certs());
    let (gw, tls_port) = tls_gateway(upstream.port, &old, "1.2").await;
    let url = format!("https://localhost:{tls_port}/calculator/mcp");
    let health = format!("https://localhost:{tls_port}/healthz");
    // One HTTP/2 connection, kept open by the client's pool.
    let kept = verifying(&old).build().unwrap();
    let (v, body) = call_over(kept.clone(), url.clone()).await;
    assert_eq!(v, reqwest::Version::HTTP_2);
    assert!(body.to_string().contains("42"), "{body}");

    gw.write_file("server.pem", &new.cert);
    gw.write_file("server.key", &new.key);
    assert_eq!(gw.sighup().await, "ok");

    // The open connection still works: a new one would not verify against the old CA.
    let r = kept.get(&health).send().await.unwrap();
    assert_eq!(r.status(), 200, "the established connection goes on");
    let fresh_old = get_with(verifying(&old), &health).await;
    assert!(
        fresh_old.is_err(),
        "new handshakes no longer show the old certificate"
    );
    let (_, body) = call_over(verifying(&new).build().unwrap(), url.clone()).await;
    assert!(body.to_string().contains("42"), "{body}");

    // A key of another certificate: refused, the current certificate stays.
    gw.write_file("server.key", &certs().key);
    assert_eq!(gw.sighup().await, "rejected");
    let log = gw.log_with("configuration reload refused").await;
    assert!(log.contains("listeners[0].tls.key_file"), "{log}");
    let r = get_with(verifying(&new), &health).await.unwrap();
    assert_eq!(r.status(), 200);
}

/// The official Python SDK completes a session through TLS, over HTTP/2 and over HTTP/1.1,
/// verifying the gateway's certificate against the test CA.
#[tokio::test]
async fn the_python_sdk_over_tls_with_h2_and_http1() {
    let upstream = calculator(false).await;
    let c = certs();
    let (gw, tls_port) = tls_gateway(upstream.port, &c, "1.2").await;
    let ca_file = gw.dir.path().join("ca.pem");
    std::fs::write(&ca_file, &c.ca).unwrap();
    let url = format!("https://localhost:{tls_port}/calculator/mcp");
    let analyst = token("ann", &["analyst"], json!({}));
    for (version, expected) in [("h2", "HTTP/2"), ("http1", "HTTP/1.1")] {
        let seen = python_client_script(
            "tls_client.py",
            &[&url, &analyst, ca_file.to_str().unwrap(), version],
            &[],
        )
        .await;
        assert_analyst_view(&seen, version);
        assert_eq!(
            seen["http_versions"],
            json!([expected]),
            "{version}: {seen}"
        );
    }
}

/// A role bound to a client certificate (`client_cert:` in policy.yaml) counts only on a
/// connection whose verified certificate matches: the same token gets nothing without one, or
/// with a certificate of another name; the audit row shows the roles that stood.
#[tokio::test]
async fn a_role_bound_to_a_client_certificate_needs_it() {
    let upstream = calculator(true).await;
    let c = certs();
    let mut spec = GatewaySpec::new(&[upstream.port]);
    // Both identities chain to one client CA: only the subject differs.
    let (ca_cert, ca_key) = ca("client CA");
    let agent = signed_by(&ca_cert, &ca_key, "agent-1");
    let intern = signed_by(&ca_cert, &ca_key, "intern-laptop");
    std::fs::write(spec.dir.path().join("clients.pem"), ca_cert.pem()).unwrap();
    let tls_port = with_tls_listener(
        &mut spec,
        &c,
        "client_ca_file: clients.pem, client_auth: optional",
    );
    spec.policy_yaml =
        "roles:\n  machine:\n    allow: [\"calculator/*\"]\n    client_cert: \"CN=agent-*\"\n"
            .into();
    let gw = spec.start().await;
    let url = format!("https://localhost:{tls_port}/calculator/mcp");
    let machine = token("build-bot", &["machine"], json!({}));
    let over = |identity: Option<&str>| {
        let mut b = verifying(&c);
        if let Some(pem) = identity {
            b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        let mut client = Client::new(url.clone(), Some(machine.clone()));
        client.http = b.build().unwrap();
        client
    };
    let add = json!({"operator": "add", "operands": ["1", "1"]});

    let r = over(Some(&agent))
        .call(1, "exact_calculate", add.clone())
        .await;
    assert_eq!(r.status(), 200, "the bound certificate carries the role");

    for (label, client) in [
        ("no certificate", over(None)),
        ("another subject", over(Some(&intern))),
        ("the plain listener", {
            let mut p = over(None);
            p.url = gw.url("/calculator/mcp");
            p
        }),
    ] {
        let r = client.call(2, "exact_calculate", add.clone()).await;
        assert_eq!(r.status(), 403, "{label}");
    }
    let rows = gw.audit_rows(4).await;
    assert_eq!(rows[0]["roles"], json!(["machine"]), "{}", rows[0]);
    assert_eq!(rows[1]["roles"], json!([]), "{}", rows[1]);
}

/// Over HTTP/2 through TLS, the server-to-client stream still passes event by event.
#[tokio::test]
async fn sse_stays_unbuffered_over_h2() {
    let upstream = calculator(false).await;
    let c = certs();
    let (_gw, tls_port) = tls_gateway(upstream.port, &c, "1.2").await;
    let mut client = Client::new(
        format!("https://localhost:{tls_port}/calculator/mcp"),
        Some(token("alice", &["developer"], json!({}))),
    );
    client.http = verifying(&c).build().unwrap();
    client.initialize().await;
    let r = client.open_stream().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    first_event_while_open(r).await;
}

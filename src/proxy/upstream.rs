//! Step 6, the upstream: the session's upstream, else a healthy one from the scope's load balancer;
//! and the request as the upstream sees it: its own path (the client's query string is dropped),
//! its own session id, the gateway's headers, forwarding headers naming the real peer, and never
//! the client's credentials or `Expect` (the gateway answered it and holds the whole body).

use super::ctx::{Admitted, RequestCtx};
use super::names;
use crate::error::GatewayError;
use crate::upstream::Picked;
use http::header::{self, InvalidHeaderValue};
use http::{HeaderMap, HeaderValue};
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use std::time::Duration;

/// The peer for this attempt.
pub fn peer(ctx: &mut RequestCtx) -> Result<Box<HttpPeer>, GatewayError> {
    let caller = ctx.admitted()?;
    let scope = caller.scope.clone();
    if !ctx.pinned() {
        let picked = scope.select(caller.identity.user.as_bytes(), &ctx.upstream.tried);
        let picked = picked.ok_or_else(|| {
            ctx.upstream
                .connect_error
                .take()
                .unwrap_or_else(|| GatewayError::NoHealthyUpstream(scope.scope.name.clone()))
        })?;
        ctx.upstream.picked = Some(picked);
    }
    let picked = ctx.upstream.picked.as_ref().ok_or(GatewayError::Internal)?;
    if ctx.rt.upstream_inflight.enabled() {
        ctx.upstream.slot = None;
        ctx.upstream.slot = Some(
            ctx.rt
                .upstream_inflight
                .acquire(&picked.addr)
                .ok_or(GatewayError::UpstreamSaturated)?,
        );
    }
    let mut peer = HttpPeer::new(picked.sock, picked.target.tls, picked.target.host.clone());
    let o = &mut peer.options;
    o.connection_timeout = Some(scope.scope.connect_timeout);
    o.read_timeout = Some(scope.scope.read_timeout);
    o.write_timeout = Some(scope.scope.read_timeout);
    o.idle_timeout = Some(Duration::from_secs(60));
    if let (true, Some(tls)) = (picked.target.tls, &scope.scope.upstream_tls) {
        crate::upstream::apply_tls(&mut peer, tls);
    }
    Ok(Box::new(peer))
}

/// The request header for the upstream, made new (Pingora sends it in place of a copy of the
/// client's: `ProxyHttp::upstream_request_header`, vendor/pingora-proxy/PATCH.md). Without a
/// picked upstream and an admitted caller the request is not sent at all (fail closed): the
/// client's headers never go out unrewritten.
pub fn request_header(
    client: &RequestHeader,
    ctx: &RequestCtx,
    peer: Option<std::net::SocketAddr>,
) -> Result<RequestHeader, GatewayError> {
    let (Some(picked), Ok(caller)) = (&ctx.upstream.picked, ctx.admitted()) else {
        return Err(GatewayError::Internal);
    };
    let headers =
        headers(&client.headers, ctx, caller, picked, peer).map_err(|_| GatewayError::Internal)?;
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = client.method.clone();
    parts.uri = match ctx.legacy().and_then(|l| l.upstream_path()) {
        Some(path) => path.clone(),
        None => picked.uri.clone(),
    };
    parts.headers = headers;
    // A header block without a second map for the names' case: the upstream gets them in lower
    // case (HTTP/1.1 names are case-insensitive), and nothing is parsed or copied per header.
    Ok(RequestHeader::from(parts))
}

/// The upstream's header block, built from nothing: the client's headers on the allow-list
/// (`allowed`), then the gateway's own.
fn headers(
    client: &HeaderMap,
    ctx: &RequestCtx,
    caller: &Admitted,
    picked: &Picked,
    peer: Option<std::net::SocketAddr>,
) -> Result<HeaderMap, InvalidHeaderValue> {
    let mut h = HeaderMap::with_capacity(client.len() + 8);
    super::allowed::copy_request(client, &mut h, &ctx.rt.config.forward_headers.request);
    if let Some(peer) = peer {
        forwarding(client, &mut h, ctx, peer)?;
    }
    h.insert(header::HOST, picked.host_header.clone());
    h.insert(names::GATEWAY_AUTH, caller.scope.auth_header.clone());
    h.insert(names::REQUEST_ID, ctx.request_id.header());
    for (name, secret) in &picked.target.headers {
        h.insert(name.clone(), secret.0.clone());
    }
    super::credentials::write(&mut h, ctx);
    let id = &caller.identity;
    h.insert(names::USER_ID, HeaderValue::try_from(id.user.as_str())?);
    // Absent when the caller has none: the block is built anew and the client's is never copied.
    if let Some(t) = &id.tenant {
        h.insert(names::TENANT_ID, HeaderValue::try_from(t.as_str())?);
    }
    if let Some(t) = &ctx.body.rewritten {
        super::translate::up::rewrite_headers(&mut h, t)?;
    }
    super::traced::headers(&mut h, ctx)?;
    if let Some((version, _)) = ctx.bridged() {
        h.insert(names::PROTOCOL_VERSION, HeaderValue::from_static(version));
    }
    if ctx.legacy().is_some() {
        // Legacy clients accept whatever the stream carries; the upstream speaks Streamable HTTP.
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
    }
    match &caller.session {
        Some(s) => {
            h.insert(
                names::SESSION_ID,
                HeaderValue::try_from(s.upstream_session.as_str())?,
            );
        }
        None => {
            h.remove(&names::SESSION_ID);
        }
    }
    Ok(h)
}

/// `X-Forwarded-For` and `Forwarded` from the real peer; a trusted proxy's chain is kept in front.
fn forwarding(
    client: &HeaderMap,
    h: &mut HeaderMap,
    ctx: &RequestCtx,
    peer: std::net::SocketAddr,
) -> Result<(), InvalidHeaderValue> {
    let ip = peer.ip();
    let trusted = ctx
        .rt
        .config
        .trusted_proxies
        .iter()
        .any(|n| n.contains(&ip));
    // A trusted proxy's chain, as one comma-separated value; nobody else's is read at all.
    let chain = |name: &http::HeaderName| -> Option<String> {
        if !trusted {
            return None;
        }
        let parts: Vec<&str> = client
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    };
    // The peer's own values, with a trusted proxy's chain (when there is one) in front.
    let (own_xff, own_forwarded) = peer_values(ip)?;
    let xff = match chain(&names::X_FORWARDED_FOR) {
        Some(chain) => in_front(chain, &own_xff)?,
        None => own_xff,
    };
    let forwarded = match chain(&header::FORWARDED) {
        Some(chain) => in_front(chain, &own_forwarded)?,
        None => own_forwarded,
    };
    h.insert(names::X_FORWARDED_FOR, xff);
    h.insert(header::FORWARDED, forwarded);
    Ok(())
}

/// `chain, own`: the peer's own value after a trusted proxy's chain.
fn in_front(chain: String, own: &HeaderValue) -> Result<HeaderValue, InvalidHeaderValue> {
    let mut value = chain.into_bytes();
    value.extend_from_slice(b", ");
    value.extend_from_slice(own.as_bytes());
    HeaderValue::from_maybe_shared(bytes::Bytes::from(value))
}

/// The peer's own `X-Forwarded-For` and `Forwarded` values, kept per proxy thread for the last
/// peer seen: the requests of a keep-alive connection, and those a load balancer sends,
/// come from one address, and formatting an address cost more than the rest of the header block.
fn peer_values(ip: std::net::IpAddr) -> Result<(HeaderValue, HeaderValue), InvalidHeaderValue> {
    use std::cell::RefCell;
    type Values = (std::net::IpAddr, HeaderValue, HeaderValue);
    thread_local! {
        static LAST: RefCell<Option<Values>> = const { RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| {
        if let Some((seen, xff, forwarded)) = last.as_ref() {
            if *seen == ip {
                return Ok((xff.clone(), forwarded.clone()));
            }
        }
        // Values made from shared bytes: each request's copy is a reference, not a new buffer.
        let node = match ip {
            std::net::IpAddr::V4(v4) => format!("for={v4}"),
            std::net::IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
        };
        let xff = HeaderValue::from_maybe_shared(bytes::Bytes::from(ip.to_string()))?;
        let forwarded = HeaderValue::from_maybe_shared(bytes::Bytes::from(node))?;
        *last = Some((ip, xff.clone(), forwarded.clone()));
        Ok((xff, forwarded))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::testing::{admitted, TestRuntime};

    fn client_request() -> RequestHeader {
        let mut req = RequestHeader::build("POST", b"/calculator/mcp?sessionId=abc", None).unwrap();
        for (k, v) in [
            ("authorization", "Bearer secret-token"),
            ("cookie", "s=1"),
            ("x-forwarded-for", "10.9.9.9"),
            ("x-real-ip", "10.9.9.9"),
            ("x-user-id", "mallory"),
            ("x-tenant-id", "other-tenant"),
            ("mcp-session-id", "client-sealed-id"),
            ("expect", "100-continue"),
        ] {
            req.insert_header(k, v).unwrap();
        }
        req
    }

    #[test]
    fn the_upstream_sees_the_gateway_not_the_client() {
        let rt = TestRuntime::new().build();
        let mut ctx = admitted(&rt, "alice", &["analyst"]);
        peer(&mut ctx).unwrap();
        let client: std::net::SocketAddr = "192.0.2.7:5555".parse().unwrap();
        let req = request_header(&client_request(), &ctx, Some(client)).unwrap();
        let h = |n: &str| req.headers.get(n).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(req.uri.to_string(), "/mcp");
        for gone in [
            "authorization",
            "cookie",
            "x-real-ip",
            "expect",
            "mcp-session-id",
            "x-tenant-id",
        ] {
            assert_eq!(h(gone), None, "{gone}");
        }
        assert_eq!(h("x-user-id").as_deref(), Some("alice"));
        assert_eq!(h("x-forwarded-for").as_deref(), Some("192.0.2.7"));
        assert_eq!(h("forwarded").as_deref(), Some("for=192.0.2.7"));
        assert_eq!(h("x-request-id"), Some(ctx.request_id.to_string()));
        assert!(h("x-gateway-auth").is_some());
        // The values kept for the last peer are that peer's: the next one gets its own.
        for (addr, xff, forwarded) in [
            ("192.0.2.7:6000", "192.0.2.7", "for=192.0.2.7"),
            ("[2001:db8::9]:443", "2001:db8::9", "for=\"[2001:db8::9]\""),
            ("198.51.100.1:1", "198.51.100.1", "for=198.51.100.1"),
            ("198.51.100.1:2", "198.51.100.1", "for=198.51.100.1"),
        ] {
            let req = request_header(&client_request(), &ctx, Some(addr.parse().unwrap())).unwrap();
            let h = |n: &str| req.headers.get(n).map(|v| v.to_str().unwrap().to_string());
            assert_eq!(h("x-forwarded-for").as_deref(), Some(xff));
            assert_eq!(h("forwarded").as_deref(), Some(forwarded));
        }
    }

    #[test]
    fn without_a_caller_or_a_pick_nothing_is_sent() {
        let rt = TestRuntime::new().build();
        let req = client_request();
        let ctx = crate::proxy::ctx::RequestCtx::new(rt.clone());
        assert!(matches!(
            request_header(&req, &ctx, None),
            Err(GatewayError::Internal)
        ));
        let mut unpicked = admitted(&rt, "alice", &["analyst"]);
        assert!(request_header(&req, &unpicked, None).is_err());
        let mut anonymous = crate::proxy::ctx::RequestCtx::new(rt);
        assert!(matches!(peer(&mut anonymous), Err(GatewayError::Internal)));
        unpicked.caller = None;
        assert!(peer(&mut unpicked).is_err());
    }
}

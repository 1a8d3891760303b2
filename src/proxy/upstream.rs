//! Step 6, the upstream: the session's upstream, else a healthy one from the scope's load balancer;
//! and the request as the upstream sees it: its own path (the client's query string is dropped),
//! its own session id, the gateway's headers, forwarding headers naming the real peer, and never
//! the client's credentials or `Expect` (the gateway answered it and holds the whole body).

use super::ctx::{Admitted, RequestCtx};
use super::names;
use crate::error::GatewayError;
use crate::upstream::Picked;
use http::header;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use std::time::Duration;

/// The peer for this attempt.
pub fn peer(ctx: &mut RequestCtx) -> Result<Box<HttpPeer>, GatewayError> {
    let caller = ctx.admitted()?;
    let scope = caller.scope.clone();
    if caller.session.is_none() {
        let picked = scope.select(caller.identity.user.as_bytes(), &ctx.tried);
        let picked = picked.ok_or_else(|| {
            ctx.connect_error
                .take()
                .unwrap_or_else(|| GatewayError::NoHealthyUpstream(scope.scope.name.clone()))
        })?;
        ctx.picked = Some(picked);
    }
    let picked = ctx.picked.as_ref().ok_or(GatewayError::Internal)?;
    if ctx.rt.upstream_inflight.enabled() {
        ctx.upstream_slot = None;
        ctx.upstream_slot = Some(
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
    Ok(Box::new(peer))
}

/// Forwarding headers a client may not set for itself: only a trusted proxy's are kept.
const FORWARDING: [&str; 6] = [
    "x-real-ip",
    "x-forwarded-user",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-original-forwarded-for",
];

/// Rewrites the request for the upstream. Without a picked upstream and an admitted caller the
/// request is not sent at all (fail closed): the client's headers never go out unrewritten.
pub fn rewrite_request(
    req: &mut RequestHeader,
    ctx: &RequestCtx,
    peer: Option<std::net::SocketAddr>,
) -> Result<(), GatewayError> {
    let (Some(picked), Ok(caller)) = (&ctx.picked, ctx.admitted()) else {
        return Err(GatewayError::Internal);
    };
    rewrite(req, ctx, caller, picked, peer).map_err(|_| GatewayError::Internal)
}

fn rewrite(
    req: &mut RequestHeader,
    ctx: &RequestCtx,
    caller: &Admitted,
    picked: &Picked,
    peer: Option<std::net::SocketAddr>,
) -> pingora::Result<()> {
    req.set_uri(picked.uri.clone());
    req.remove_header(&header::EXPECT);
    forwarding(req, ctx, peer)?;
    req.remove_header(&header::AUTHORIZATION);
    req.remove_header(&header::COOKIE);
    req.insert_header(header::HOST, picked.host_header.clone())?;
    req.insert_header(
        names::written::GATEWAY_AUTH,
        caller.scope.auth_header.clone(),
    )?;
    req.insert_header(names::written::REQUEST_ID, ctx.request_id.as_str())?;
    let id = &caller.identity;
    req.insert_header(names::written::USER_ID, id.user.as_str())?;
    match &id.tenant {
        Some(t) => req.insert_header(names::written::TENANT_ID, t.as_str())?,
        None => {
            req.remove_header(&names::TENANT_ID);
        }
    }
    match &caller.session {
        Some(s) => req.insert_header(names::written::SESSION_ID, s.upstream_session.as_str())?,
        None => {
            req.remove_header(&names::SESSION_ID);
        }
    }
    Ok(())
}

/// `X-Forwarded-For` and `Forwarded` from the real peer; a trusted proxy's chain is kept in front.
fn forwarding(
    req: &mut RequestHeader,
    ctx: &RequestCtx,
    peer: Option<std::net::SocketAddr>,
) -> pingora::Result<()> {
    for name in FORWARDING {
        req.remove_header(name);
    }
    let Some(peer) = peer else {
        req.remove_header(&names::X_FORWARDED_FOR);
        req.remove_header(&header::FORWARDED);
        return Ok(());
    };
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
        let parts: Vec<&str> = req
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    };
    let xff = match chain(&names::X_FORWARDED_FOR) {
        Some(chain) => format!("{chain}, {ip}"),
        None => ip.to_string(),
    };
    let node = match ip {
        std::net::IpAddr::V4(v4) => format!("for={v4}"),
        std::net::IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
    };
    let forwarded = match chain(&header::FORWARDED) {
        Some(chain) => format!("{chain}, {node}"),
        None => node,
    };
    req.insert_header(names::X_FORWARDED_FOR, xff)?;
    req.insert_header(header::FORWARDED, forwarded)?;
    Ok(())
}

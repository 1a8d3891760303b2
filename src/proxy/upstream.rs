//! Step 6, the upstream: the session's upstream, else a healthy one from the scope's load balancer;
//! and the request as the upstream sees it (its own path and session id, the gateway's headers,
//! never the client's credentials).

use super::ctx::RequestCtx;
use super::names;
use crate::error::GatewayError;
use http::header;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use std::time::Duration;

/// The peer for this attempt.
pub fn peer(ctx: &mut RequestCtx) -> Result<Box<HttpPeer>, GatewayError> {
    let scope = ctx.scope.clone().ok_or(GatewayError::Internal)?;
    if ctx.session.is_none() {
        let key = ctx
            .identity
            .as_ref()
            .map(|i| i.user.as_bytes())
            .unwrap_or(b"");
        let picked = scope.select(key, &ctx.tried).ok_or_else(|| {
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

/// Rewrites the request for the upstream.
pub fn rewrite_request(req: &mut RequestHeader, ctx: &RequestCtx) -> pingora::Result<()> {
    let (Some(picked), Some(scope)) = (&ctx.picked, &ctx.scope) else {
        return Ok(());
    };
    let uri = match req.uri.query() {
        Some(q) => format!("{}?{}", picked.target.path, q)
            .parse::<http::Uri>()
            .map_err(|_| pingora::Error::new_str("bad upstream path"))?,
        None => picked.uri.clone(),
    };
    req.set_uri(uri);
    req.remove_header(&header::AUTHORIZATION);
    req.remove_header(&header::COOKIE);
    req.insert_header(header::HOST, picked.host_header.clone())?;
    req.insert_header(names::written::GATEWAY_AUTH, scope.auth_header.clone())?;
    req.insert_header(names::written::REQUEST_ID, ctx.request_id.as_str())?;
    match &ctx.identity {
        Some(id) => {
            req.insert_header(names::written::USER_ID, id.user.as_str())?;
            match &id.tenant {
                Some(t) => req.insert_header(names::written::TENANT_ID, t.as_str())?,
                None => {
                    req.remove_header(&names::TENANT_ID);
                }
            }
        }
        None => {
            req.remove_header(&names::USER_ID);
            req.remove_header(&names::TENANT_ID);
        }
    }
    match &ctx.session {
        Some(s) => req.insert_header(names::written::SESSION_ID, s.upstream_session.as_str())?,
        None => {
            req.remove_header(&names::SESSION_ID);
        }
    }
    Ok(())
}

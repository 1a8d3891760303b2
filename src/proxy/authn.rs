//! Step 2, authenticate: the bearer token becomes an `Identity`; then a presented session id is
//! opened and checked against that identity.

use super::ctx::{Admitted, RequestCtx};
use super::names;
use crate::auth::{AuthError, Authenticator, Identity};
use crate::error::GatewayError;
use crate::session::user_hash;
use crate::upstream::ScopeUpstreams;
use pingora_proxy::Session;
use std::sync::Arc;

/// Verifies the caller's token and sets `ctx.caller` on the request's scope.
pub async fn authenticate(session: &Session, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    let identity = identity(session, ctx).await?;
    ctx.verified = Some(identity.clone());
    ctx.client_cert = crate::listen::tls::client_cert(session).map(|c| c.subject.as_str().into());
    let scope = ctx.scope.clone().ok_or(GatewayError::Internal)?;
    admit_on(ctx, identity, scope)
}

/// The caller behind the request's bearer token (verified once, then cached), with the roles that
/// stand on this connection.
pub async fn identity(session: &Session, ctx: &RequestCtx) -> Result<Arc<Identity>, GatewayError> {
    let mut all = session
        .req_header()
        .headers
        .get_all(http::header::AUTHORIZATION)
        .iter();
    let header = all.next().map(|v| v.as_bytes());
    // Which of two tokens counts is a guess an attacker could exploit: neither does.
    if all.next().is_some() {
        return Err(GatewayError::Unauthorized(AuthError::RepeatedHeader));
    }
    let token = Authenticator::bearer(header).map_err(GatewayError::Unauthorized)?;
    let identity = ctx
        .rt
        .auth
        .verify(token)
        .await
        .map_err(GatewayError::Unauthorized)?;
    let subject = || crate::listen::tls::client_cert(session).map(|c| c.subject.as_str());
    match ctx
        .rt
        .config
        .policy
        .roles_on_connection(&identity.roles, subject)
    {
        // A role bound to a client certificate this connection lacks: the caller goes on with
        // the others (the audit row shows those).
        Some(roles) => Ok(Arc::new(Identity {
            roles,
            ..(*identity).clone()
        })),
        None => Ok(identity),
    }
}

/// The token's own limits on where it may be used: its resource indicators must name `scope`'s
/// endpoint, and it must carry the OAuth scopes `scope` requires.
pub fn fits_scope(
    ctx: &RequestCtx,
    identity: &Identity,
    scope: &ScopeUpstreams,
) -> Result<(), GatewayError> {
    if let Some(resources) = &identity.resources {
        let base = ctx.rt.config.public_url.as_deref();
        if !resources
            .iter()
            .any(|r| names_endpoint(r, base, &scope.scope.name))
        {
            return Err(GatewayError::Unauthorized(AuthError::Audience));
        }
    }
    if !identity.has_scopes(&scope.scope.oauth_scopes) {
        return Err(GatewayError::InsufficientScope(
            scope.scope.oauth_scopes.join(" "),
        ));
    }
    Ok(())
}

/// Admits a verified caller on `scope` (see [`fits_scope`]) and sets `ctx.caller`.
pub fn admit_on(
    ctx: &mut RequestCtx,
    identity: Arc<Identity>,
    scope: Arc<ScopeUpstreams>,
) -> Result<(), GatewayError> {
    fits_scope(ctx, &identity, &scope)?;
    ctx.caller = Some(Admitted {
        scope,
        identity,
        session: None,
        session_id: None,
    });
    Ok(())
}

/// Whether a resource indicator (a token's `aud`) names this gateway's endpoint for `scope`:
/// `{public_url}/S`, `/S/mcp` or `/S/sse`. Without a configured public URL no resource indicator
/// is accepted, since the `Host` a client sends cannot decide which tokens are valid here.
fn names_endpoint(resource: &str, public_url: Option<&str>, scope: &str) -> bool {
    let Some(rest) = public_url.and_then(|base| resource.strip_prefix(base)) else {
        return false;
    };
    let rest = rest.trim_end_matches('/');
    rest.strip_prefix('/')
        .and_then(|r| r.strip_prefix(scope))
        .is_some_and(|tail| matches!(tail, "" | "/mcp" | "/sse"))
}

/// Opens the client's `Mcp-Session-Id`, if any. A session sealed for another scope or another
/// user, forged, or living on an upstream that is gone, is answered as an unknown session so the
/// client starts a new one.
pub fn open_session(session: &Session, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    let Some(raw) = session.req_header().headers.get(&names::SESSION_ID) else {
        return Ok(());
    };
    let Admitted {
        scope, identity, ..
    } = ctx.admitted()?;
    let binding = raw
        .to_str()
        .ok()
        .and_then(|id| ctx.rt.sessions.open(id))
        .ok_or(GatewayError::UnknownSession)?;
    if binding.scope != scope.scope.name {
        return Err(GatewayError::UnknownSession);
    }
    if binding.user_hash != user_hash(&identity.user, identity.tenant.as_deref()) {
        tracing::warn!(request_id = %ctx.request_id, user = %identity.user, "session id presented by another user");
        return Err(GatewayError::UnknownSession);
    }
    // A composed scope's session lives on its servers, named in the composer's id: any
    // replica's composer serves it.
    let picked = match scope.scope.composed {
        Some(_) => scope.select(identity.user.as_bytes(), &[]),
        None => scope.get_healthy(&binding.upstream),
    }
    .ok_or(GatewayError::UnknownSession)?;
    ctx.upstream.picked = Some(picked);
    let presented = raw.to_str().ok().map(str::to_string);
    if let Some(caller) = ctx.caller.as_mut() {
        caller.session = Some(binding);
        caller.session_id = presented;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::names_endpoint;

    #[test]
    fn resource_indicators_name_one_scope_of_this_gateway() {
        let base = Some("https://mcp.example.com");
        for ok in [
            "https://mcp.example.com/git/mcp",
            "https://mcp.example.com/git/sse",
            "https://mcp.example.com/git",
            "https://mcp.example.com/git/",
        ] {
            assert!(names_endpoint(ok, base, "git"), "{ok}");
        }
        for bad in [
            "https://mcp.example.com/calculator/mcp",
            "https://mcp.example.com/gitx/mcp",
            "https://mcp.example.com/git/mcp/extra",
            "https://mcp.example.com.evil.com/git/mcp",
            "https://other.example.com/git/mcp",
            "http://mcp.example.com/git/mcp",
        ] {
            assert!(!names_endpoint(bad, base, "git"), "{bad}");
        }
        assert!(!names_endpoint(
            "https://mcp.example.com/git/mcp",
            None,
            "git"
        ));
    }
}

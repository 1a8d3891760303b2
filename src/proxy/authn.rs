//! Step 2, authenticate: the bearer token becomes an `Identity`; then a presented session id is
//! opened and checked against that identity.

use super::ctx::{Admitted, RequestCtx};
use super::names;
use crate::auth::Authenticator;
use crate::error::GatewayError;
use crate::session::user_hash;
use pingora_proxy::Session;

/// Verifies the caller's token and sets `ctx.caller`.
pub async fn authenticate(session: &Session, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    let header = session
        .req_header()
        .headers
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let token = Authenticator::bearer(header).map_err(GatewayError::Unauthorized)?;
    let identity = ctx
        .rt
        .auth
        .verify(token)
        .await
        .map_err(GatewayError::Unauthorized)?;
    let scope = ctx.scope.clone().ok_or(GatewayError::Internal)?;
    ctx.caller = Some(Admitted {
        scope,
        identity,
        session: None,
        session_id: None,
    });
    Ok(())
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
    let picked = scope
        .get_healthy(&binding.upstream)
        .ok_or(GatewayError::UnknownSession)?;
    ctx.picked = Some(picked);
    let presented = raw.to_str().ok().map(str::to_string);
    if let Some(caller) = ctx.caller.as_mut() {
        caller.session = Some(binding);
        caller.session_id = presented;
    }
    Ok(())
}

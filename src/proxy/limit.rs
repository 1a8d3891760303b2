//! Step 5, limits: the user's in-flight slot (held until the request ends) and every rate limit
//! that matches each message. Without an admitted caller or a parsed body nothing passes.

use super::ctx::RequestCtx;
use crate::error::GatewayError;

/// Takes one of the caller's in-flight slots, when such a limit is set.
pub fn hold_user_slot(ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    if !ctx.rt.user_inflight.enabled() {
        return Ok(());
    }
    let user = &ctx.admitted()?.identity.user;
    let guard = ctx
        .rt
        .user_inflight
        .acquire(user)
        .ok_or(GatewayError::TooManyConcurrent)?;
    ctx.held.push(guard);
    Ok(())
}

/// Every rate limit that matches each message must pass.
pub async fn check(ctx: &RequestCtx) -> Result<(), GatewayError> {
    let limits = &ctx.rt.limits;
    if limits.is_empty() {
        return Ok(());
    }
    let caller = ctx.admitted()?;
    let rpc = ctx.rpc.as_ref().ok_or(GatewayError::Internal)?;
    for m in rpc.messages() {
        if let Some(method) = &m.method {
            limits
                .check(
                    &caller.identity,
                    &caller.scope.scope.name,
                    method,
                    m.tool.as_deref(),
                )
                .await?;
        }
    }
    Ok(())
}

//! Step 8½, the upstream's own credentials on a proxied request, taken when the upstream is picked
//! (held, or asked of the token endpoint without holding a thread) and written as `Authorization`
//! — the client's own token never passes: the gateway's machine token (`auth:
//! oauth_client_credentials`), or the caller's token exchanged for one bound to the upstream
//! (`auth: token_exchange`), or the user's own login at the upstream (`auth: per_user_oauth`; with
//! none, the call is answered with the link to sign in: [`GatewayError::SignInRequired`]). When the
//! upstream answers 401 to it, it is dropped (a user's login refreshed) and the request tried once
//! more with a new one, if its body can be sent again (a body held past the early buffer cannot:
//! the 401 goes to the client as the upstream's refusal).

use super::ctx::RequestCtx;
use crate::error::GatewayError;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};

/// The picked upstream's token, when it has one configured. Each way of getting one is boxed:
/// this runs for every request, most with no token to get.
pub async fn take(session: &Session, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    ctx.upstream.bearer = None;
    let Some(picked) = ctx.upstream.picked.clone() else {
        return Ok(());
    };
    let failed =
        |_| GatewayError::UpstreamFailed("the upstream's credentials could not be obtained".into());
    if let Some(token) = &picked.token {
        ctx.upstream.bearer = Some(Box::pin(token.bearer()).await.map_err(failed)?);
    } else if let Some(exchange) = &picked.exchange {
        // The token the caller was authenticated with (checked already).
        let subject = caller_token(session).ok_or(GatewayError::Internal)?;
        ctx.upstream.bearer = Some(Box::pin(exchange.bearer(subject)).await.map_err(failed)?);
    } else if picked.per_user().is_some() {
        let (who, upstream) = login_of(ctx).ok_or(GatewayError::Internal)?;
        match Box::pin(ctx.rt.vault.bearer(&who, &upstream)).await {
            Ok(Some(b)) => ctx.upstream.bearer = Some(b),
            Ok(None) => return Err(sign_in(ctx, &who, &upstream)),
            Err(e) => {
                tracing::warn!(request_id = %ctx.request_id, upstream, error = %e, "cannot read the user's upstream login");
                return Err(GatewayError::UpstreamFailed(
                    "the user's login at the upstream cannot be read right now".into(),
                ));
            }
        }
    }
    Ok(())
}

/// Whose login, at which upstream (the scope's name).
fn login_of(ctx: &RequestCtx) -> Option<(crate::connect::Who, String)> {
    let caller = ctx.caller.as_ref()?;
    let who = crate::connect::Who::of(&caller.identity);
    Some((who, caller.scope.scope.name.clone()))
}

/// The refusal that carries the link where `who` signs in to `upstream`.
fn sign_in(ctx: &RequestCtx, who: &crate::connect::Who, upstream: &str) -> GatewayError {
    // `public_url` is required with `per_user_oauth` (checked at load).
    let base = ctx.rt.config.public_url.as_deref().unwrap_or("");
    let Some(url) = crate::connect::link::sign_in_url(base, &ctx.rt.sessions, who, upstream) else {
        return GatewayError::Internal;
    };
    crate::connect::count(upstream, "asked");
    GatewayError::SignInRequired {
        upstream: upstream.to_string(),
        url,
        elicitation_id: uuid::Uuid::new_v4().to_string(),
    }
}

/// The client's bearer token, as it was verified.
fn caller_token(session: &Session) -> Option<&str> {
    let header = session
        .req_header()
        .headers
        .get(http::header::AUTHORIZATION)?;
    crate::auth::Authenticator::bearer(Some(header.as_bytes())).ok()
}

/// Which credential the upstream got with this request, for the audit row: none unless the
/// request went to it.
pub fn kind(ctx: &RequestCtx) -> Option<&'static str> {
    let picked = ctx.upstream.picked.as_ref()?;
    ctx.upstream.started?;
    if picked.token.is_some() {
        Some("machine_token")
    } else if picked.exchange.is_some() {
        Some("token_exchange")
    } else if picked.per_user().is_some() {
        Some("user_login")
    } else {
        (!picked.target.headers.is_empty()).then_some("headers")
    }
}

/// Writes the token on the upstream request.
pub fn write(h: &mut http::HeaderMap, ctx: &RequestCtx) {
    if let Some(b) = &ctx.upstream.bearer {
        h.insert(http::header::AUTHORIZATION, b.clone());
    }
}

/// A 401 from the upstream to the gateway's token, the first time: the token is dropped and the
/// request is to be tried again (`Err`, marked for a retry).
pub fn refused(
    session: &Session,
    resp: &ResponseHeader,
    ctx: &mut RequestCtx,
) -> pingora::Result<()> {
    if resp.status != http::StatusCode::UNAUTHORIZED || ctx.upstream.auth_retried {
        return Ok(());
    }
    let (Some(bearer), Some(picked)) = (&ctx.upstream.bearer, &ctx.upstream.picked) else {
        return Ok(());
    };
    if let Some(token) = &picked.token {
        token.refused(bearer);
    }
    if let (Some(exchange), Some(subject)) = (&picked.exchange, caller_token(session)) {
        exchange.refused(subject);
    }
    if picked.per_user().is_some() {
        if let Some((who, upstream)) = login_of(ctx) {
            ctx.rt.vault.refused(&who, &upstream);
        }
    }
    ctx.upstream.auth_retried = true;
    tracing::info!(request_id = %ctx.request_id, "the upstream refused the gateway's token; trying once more with a new one");
    let mut e = Error::explain(
        ErrorType::HTTPStatus(401),
        "the upstream refused the machine token",
    );
    e.set_retry(true);
    Err(e)
}

/// Whether Pingora tries the request again after `e`: a refused token once, when the body can
/// be sent again; anything else as Pingora decides for any proxy (idempotent methods only).
pub fn retry(session: &Session, mut e: Box<Error>, ctx: &RequestCtx, reused: bool) -> Box<Error> {
    let refused_token =
        matches!(e.etype(), ErrorType::HTTPStatus(401)) && ctx.upstream.auth_retried;
    if refused_token && !session.as_ref().retry_buffer_truncated() && !ctx.body.was_held {
        e.set_retry(true);
    } else if !session.req_header().method.is_idempotent()
        || session.as_ref().retry_buffer_truncated()
    {
        e.set_retry(false);
    } else {
        e.retry.decide_reuse(reused);
    }
    e
}

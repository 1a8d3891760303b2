//! RFC 8693 token exchange at the development authorization server: a token the gateway of the
//! same configuration accepts (the subject, verified exactly as the gateway verifies it) for one
//! with the same holder, roles and workspace whose audience is the one asked for. What a gateway
//! with `auth: { token_exchange: … }` asks, so an upstream sees on whose behalf it is called.
//! Development only: any client may exchange any valid token.

use super::{oauth_error, Grant, Issuer};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

pub const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

#[derive(Deserialize)]
struct Form {
    grant_type: String,
    #[serde(default)]
    subject_token: String,
    #[serde(default)]
    subject_token_type: String,
    #[serde(default)]
    audience: Option<String>,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

/// Whether `body` (a token request's form) asks for an exchange.
pub fn asks(body: &[u8]) -> bool {
    serde_urlencoded::from_bytes::<Form>(body).is_ok_and(|f| f.grant_type == GRANT)
}

/// The exchanged token, or the OAuth error that says why not.
pub async fn exchange(i: &Issuer, body: &[u8]) -> Response {
    let invalid = |why: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why);
    let Ok(form) = serde_urlencoded::from_bytes::<Form>(body) else {
        return invalid("not a token exchange form");
    };
    if form.subject_token_type != ACCESS_TOKEN {
        return invalid("subject_token_type must be urn:ietf:params:oauth:token-type:access_token");
    }
    let Some(audience) = form.audience.or(form.resource) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "name the audience the token is for",
        );
    };
    let Some(verifier) = &i.verifier else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "this issuer cannot verify subject tokens",
        );
    };
    let subject = match verifier.verify(&form.subject_token).await {
        Ok(id) => id,
        Err(e) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                &format!("the subject token is not valid: {e}"),
            )
        }
    };
    let grant = Grant {
        user: subject.user.clone(),
        roles: subject.roles.clone(),
        workspace: subject.tenant.clone(),
        api_version: subject.api_version.clone(),
        scope: form
            .scope
            .map(|s| s.split_whitespace().map(String::from).collect())
            .unwrap_or_default(),
        resource: Some(audience),
        client_id: None,
    };
    i.token_answer(&grant, i.ttl.as_secs(), None)
}

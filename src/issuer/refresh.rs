//! Refresh tokens of the development authorization server (RFC 6749 §6, rotated as OAuth 2.1
//! asks of public clients): the authorization-code grant gives one with the access token, and
//! `grant_type=refresh_token` from the same client gives a new access token and a new refresh
//! token, the old one spent. What lets a gateway with `auth: per_user_oauth` keep a user's
//! upstream login alive without the user. In memory and bounded, like the codes.

use super::{oauth_error, Grant, Issuer};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a refresh token can be used, and how many are kept (the oldest goes first).
const LIFETIME: Duration = Duration::from_secs(24 * 3600);
const MAX_HELD: usize = 10_000;

struct Held {
    grant: Grant,
    client_id: String,
    issued: Instant,
}

#[derive(Default)]
pub struct Refreshes(Mutex<HashMap<String, Held>>);

impl Refreshes {
    /// A new refresh token for `grant`, usable by `client_id` only.
    pub fn issue(&self, grant: &Grant, client_id: &str) -> String {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, h| h.issued.elapsed() < LIFETIME);
        if map.len() >= MAX_HELD {
            if let Some(k) = map
                .iter()
                .min_by_key(|(_, h)| h.issued)
                .map(|(k, _)| k.clone())
            {
                map.remove(&k);
            }
        }
        let token = super::authorize::random_code();
        map.insert(
            token.clone(),
            Held {
                grant: grant.clone(),
                client_id: client_id.to_string(),
                issued: Instant::now(),
            },
        );
        token
    }

    fn take(&self, token: &str) -> Option<Held> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(token).filter(|h| h.issued.elapsed() < LIFETIME)
    }
}

#[derive(Deserialize)]
struct Form {
    grant_type: String,
    #[serde(default)]
    refresh_token: String,
    #[serde(default)]
    client_id: String,
}

/// Whether `body` (a token request's form) asks for a refresh.
pub fn asks(body: &[u8]) -> bool {
    serde_urlencoded::from_bytes::<Form>(body).is_ok_and(|f| f.grant_type == "refresh_token")
}

/// A new access token (and refresh token) for a refresh token, or why not.
pub fn refresh(i: &Issuer, body: &[u8]) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<Form>(body) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "not a refresh form",
        );
    };
    let Some(held) = i.refreshes.take(&form.refresh_token) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown, used or expired refresh token",
        );
    };
    if held.client_id != form.client_id {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the refresh token belongs to another client",
        );
    }
    let next = i.refreshes.issue(&held.grant, &held.client_id);
    i.token_answer(&held.grant, i.ttl.as_secs(), Some(next))
}

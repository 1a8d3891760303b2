//! Signing operators in: the authorization code flow with PKCE at the first authorization
//! server (the development one in the quickstart), the token verified as the gateway verifies
//! any, and the operator's role checked. The browser then holds a sealed cookie (`HttpOnly`,
//! `SameSite=Strict`, 8 hours at most and never past the token); forms carry a CSRF token sealed
//! for that operator.

use super::Console;
use crate::connect::link::{sealed, Sealed};
use crate::connect::oauth;
use crate::session::SessionKeys;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const COOKIE: &str = "mcpgw_console";
const LOGIN_LIFETIME: u64 = 8 * 3600;
const STATE_LIFETIME: u64 = 10 * 60;

/// The authorization request's state: the PKCE verifier, sealed.
#[derive(Serialize, Deserialize)]
struct Pending {
    verifier: String,
    exp: u64,
}

/// The browser's sign-in (the cookie).
#[derive(Serialize, Deserialize)]
pub struct Login {
    pub user: String,
    exp: u64,
}

/// A form's token, made for one operator.
#[derive(Serialize, Deserialize)]
struct Csrf {
    user: String,
    exp: u64,
}

sealed!(Pending, b"mcp-gateway console state v1");
sealed!(Login, b"mcp-gateway console login v1");
sealed!(Csrf, b"mcp-gateway console csrf v1");

/// The console's own address, as the browser reached it.
fn base(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// The resource the operator's token is asked for: the first scope's endpoint (the token is one
/// this gateway accepts).
fn resource(c: &Console) -> String {
    let rt = c.runtime();
    let public = rt.config.public_url.clone().unwrap_or_else(|| {
        rt.config
            .listeners
            .first()
            .map_or_else(String::new, |l| format!("http://{}", l.address))
    });
    let scope = rt.config.scopes.keys().next().cloned().unwrap_or_default();
    format!("{public}/{scope}/mcp")
}

async fn client(c: &Console, redirect: &str) -> Result<Arc<oauth::Client>, oauth::OauthError> {
    let mut clients = c.clients.lock().await;
    if let Some(client) = clients.get(redirect) {
        return Ok(client.clone());
    }
    let issuer = c
        .runtime()
        .config
        .authorization_servers
        .first()
        .cloned()
        .unwrap_or_default();
    let server = oauth::server(&c.http, &issuer).await?;
    let client = Arc::new(oauth::register(&c.http, server, redirect, "mcp-gateway console").await?);
    clients.insert(redirect.to_string(), client.clone());
    Ok(client)
}

/// `GET /login`: on to the authorization server.
pub(super) async fn start(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let redirect = format!("{}/login/callback", base(&headers));
    let client = match client(&c, &redirect).await {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(error = %e, "console: cannot reach the authorization server");
            return c.problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Cannot sign in",
                "The authorization server cannot be reached; try again shortly.",
            );
        }
    };
    let (verifier, challenge) = oauth::pkce();
    let state = Pending {
        verifier,
        exp: crate::auth::now() + STATE_LIFETIME,
    };
    let Some(state) = state.seal(&c.runtime().sessions) else {
        return c.problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Cannot sign in",
            "The sign-in could not be sealed.",
        );
    };
    let to = client.authorize_url(&redirect, &state, &challenge, &resource(&c), None);
    Redirect::to(&to).into_response()
}

#[derive(Deserialize)]
pub(super) struct Callback {
    code: Option<String>,
    state: Option<String>,
}

/// `GET /login/callback`: the code redeemed, the token verified, the role checked.
pub(super) async fn callback(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let rt = c.runtime();
    let (Some(code), Some(state)) = (
        q.code,
        q.state.and_then(|s| Pending::open(&s, &rt.sessions)),
    ) else {
        return c.problem(
            StatusCode::BAD_REQUEST,
            "This sign-in does not work",
            "The sign-in is not valid or took too long: start again.",
        );
    };
    let redirect = format!("{}/login/callback", base(&headers));
    let tokens = match client(&c, &redirect).await {
        Ok(client) => {
            client
                .redeem(&c.http, &code, &state.verifier, &redirect, &resource(&c))
                .await
        }
        Err(e) => Err(e),
    };
    let tokens = match tokens {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "console: the authorization server did not give a token");
            return c.problem(
                StatusCode::BAD_GATEWAY,
                "Cannot sign in",
                "The authorization server did not give a token.",
            );
        }
    };
    let identity = match rt.auth.verify(&tokens.access_token).await {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(reason = %e, "console: the sign-in gave a token the gateway does not accept");
            return c.problem(
                StatusCode::FORBIDDEN,
                "Not signed in",
                "The authorization server's token is not one this gateway accepts.",
            );
        }
    };
    if !identity.roles.iter().any(|r| r == &c.settings.role) {
        super::pages::audited(
            &c,
            &identity.user,
            "console/login",
            None,
            crate::outcome::Class::Denied,
            Some(format!("the console needs the {} role", c.settings.role)),
        );
        return c.problem(
            StatusCode::FORBIDDEN,
            "Not an operator",
            &format!(
                "Signed in as {}, who does not hold the {} role this console needs.",
                identity.user, c.settings.role
            ),
        );
    }
    let now = crate::auth::now();
    let login = Login {
        user: identity.user.clone(),
        exp: (now + LOGIN_LIFETIME).min(identity.valid_until.max(now + 300)),
    };
    let Some(sealed) = login.seal(&rt.sessions) else {
        return c.problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Cannot sign in",
            "The sign-in could not be sealed.",
        );
    };
    super::pages::audited(
        &c,
        &identity.user,
        "console/login",
        None,
        crate::outcome::Class::Ok,
        None,
    );
    let cookie = format!(
        "{COOKIE}={sealed}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        login.exp.saturating_sub(now)
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

/// `POST /logout`: the cookie goes.
pub(super) async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

/// The console's cookie of a request.
pub(super) fn cookie(headers: &HeaderMap) -> Option<String> {
    crate::connect::link::cookie(headers, COOKIE)
}

pub(super) fn opened(cookie: &str, keys: &SessionKeys) -> Option<Login> {
    Login::open(cookie, keys)
}

/// A CSRF token for `user`'s forms (as long as a sign-in lasts).
pub(super) fn csrf_for(user: &str, keys: &SessionKeys) -> Option<String> {
    Csrf {
        user: user.to_string(),
        exp: crate::auth::now() + LOGIN_LIFETIME,
    }
    .seal(keys)
}

/// Whether `token` is a CSRF token made for `user`.
pub(super) fn csrf_ok(token: &str, user: &str, keys: &SessionKeys) -> bool {
    Csrf::open(token, keys).is_some_and(|c| c.user == user)
}

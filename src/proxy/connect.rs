//! The consent page (`/connect`), where a user signs in to an upstream with their own account
//! (`auth: per_user_oauth`). Bound to the user it was made for: the page first signs the browser
//! in at the gateway's own authorization server (the one clients log in at), and goes on only when
//! that identity is the one the link was issued to. A link opened by anyone else changes nothing
//! for anybody.
//!
//! - `GET /connect/start?t=LINK`: the link of a refused call; on to the upstream's authorization
//!   server (authorization code with PKCE, resource = the upstream) once the browser is signed in;
//! - `GET /connect/login`: the gateway's authorization server returns here (sets the cookie);
//! - `GET /connect/callback`: the upstream's returns here (the tokens are kept, sealed);
//! - `GET /connect`: the user's own logins, each with a revoke button (`POST /connect/revoke`,
//!   with a CSRF token made for this user).
//!
//! Pages are plain HTML without scripts or outside assets, never framed, never cached, and send
//! no `Referer` (the link, codes and states stay out of other sites' logs).

use super::ctx::RequestCtx;
use crate::connect::link::{self, Csrf, Link, Login, LoginState, Sealed, UpstreamState};
use crate::connect::{oauth, Registration, Who};
use bytes::Bytes;
use html_escape::encode_double_quoted_attribute as attr;
use html_escape::encode_text as text;
use pingora::http::ResponseHeader;
use pingora_proxy::Session;
use std::borrow::Cow;

const COOKIE: &str = "mcpgw_connect";
/// The most of a revoke form read.
const MAX_FORM: usize = 4096;
const STYLE: &str = ":root{color-scheme:light dark}body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;line-height:1.45}table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #8884}button{padding:.35rem .9rem}.note{opacity:.75;font-size:.9rem}";

/// Whether `path` is the consent page's.
pub fn is_connect(path: &str) -> bool {
    path == "/connect" || path.starts_with("/connect/")
}

/// An answer of the consent page.
enum Page {
    Html(u16, String),
    Redirect(String, Option<String>),
}

fn page(status: u16, title: &str, body: &str) -> Page {
    Page::Html(
        status,
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{t}</title><style>{STYLE}</style></head><body><h1>{t}</h1>{body}</body></html>",
            t = text(title)
        ),
    )
}

fn problem(status: u16, title: &str, what: &str) -> Page {
    page(status, title, &format!("<p>{}</p>", text(what)))
}

/// Serves a consent page request.
pub async fn serve(session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<()> {
    let answer = match ctx.rt.config.public_url.clone() {
        None => problem(
            404,
            "Not found",
            "This gateway has no consent page: no upstream signs users in.",
        ),
        Some(base) => route(session, ctx, &base).await,
    };
    write(session, ctx, answer).await
}

async fn route(session: &mut Session, ctx: &RequestCtx, base: &str) -> Page {
    let req = session.req_header();
    let path = req.uri.path().to_string();
    let query: Vec<(String, String)> = req
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let login = cookie(session).and_then(|c| Login::open(&c, &ctx.rt.sessions));
    let get = req.method == http::Method::GET;
    match (path.as_str(), get) {
        ("/connect/start", true) => start(ctx, base, param("t"), login).await,
        ("/connect/login", true) => match param("error") {
            Some(_) => problem(
                400,
                "Sign-in cancelled",
                "The sign-in was not completed; nothing was changed.",
            ),
            None => signed_in_here(ctx, base, param("code"), param("state")).await,
        },
        ("/connect/callback", true) => match param("error") {
            Some(_) => problem(
                400,
                "Sign-in cancelled",
                "The sign-in at the upstream was not completed; nothing was changed.",
            ),
            None => signed_in_there(ctx, base, param("code"), param("state"), login).await,
        },
        ("/connect", true) => logins(ctx, base, login).await,
        ("/connect/revoke", false) if req.method == http::Method::POST => {
            let form = read_form(session).await;
            revoke(ctx, login, form).await
        }
        _ => problem(404, "Not found", "There is no such page."),
    }
}

fn cookie(session: &Session) -> Option<String> {
    link::cookie(&session.req_header().headers, COOKIE)
}

async fn read_form(session: &mut Session) -> Vec<(String, String)> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = session.read_request_body().await {
        if body.len() + chunk.len() > MAX_FORM {
            return Vec::new();
        }
        body.extend_from_slice(&chunk);
    }
    url::form_urlencoded::parse(&body).into_owned().collect()
}

/// The scope named by a link or state, when it is an upstream of users' own logins.
fn per_user_scope<'a>(ctx: &'a RequestCtx, name: &str) -> Option<&'a crate::proxy::ScopeUpstreams> {
    let s = ctx.rt.upstreams.get(name)?;
    s.pool
        .endpoints()
        .iter()
        .any(|e| e.per_user().is_some())
        .then_some(s.as_ref())
}

/// Sends the browser to the gateway's own authorization server, to come back to `then`.
async fn sign_in_here(ctx: &RequestCtx, base: &str, then: String, scope: &str) -> Page {
    let Some(issuer) = ctx.rt.config.authorization_servers.first().cloned() else {
        return problem(
            503,
            "Cannot sign in",
            "The gateway names no authorization server.",
        );
    };
    let redirect = format!("{base}/connect/login");
    let r = redirect.clone();
    let registered = ctx
        .rt
        .vault
        .client("gateway", |http| async move {
            let server = oauth::server(&http, &issuer).await?;
            let client = oauth::register(&http, server, &r, "mcp-gateway consent page").await?;
            Ok(Registration {
                client,
                resource: String::new(),
                scope: None,
            })
        })
        .await;
    let reg = match registered {
        Ok(r) => r,
        Err(e) => return unavailable("the gateway's authorization server", &e),
    };
    let (verifier, challenge) = oauth::pkce();
    let state = LoginState {
        then,
        scope: scope.to_string(),
        verifier,
        exp: crate::auth::now() + link::STATE_LIFETIME,
    };
    let Some(state) = state.seal(&ctx.rt.sessions) else {
        return cannot_seal();
    };
    let oauth_scopes = ctx
        .rt
        .upstreams
        .get(scope)
        .map(|s| s.scope.oauth_scopes.join(" "))
        .unwrap_or_default();
    let resource = format!("{base}/{scope}/mcp");
    let to = reg.client.authorize_url(
        &redirect,
        &state,
        &challenge,
        &resource,
        Some(&oauth_scopes),
    );
    Page::Redirect(to, None)
}

fn stale_sign_in() -> Page {
    problem(
        400,
        "This sign-in does not work",
        "The sign-in is not valid or took too long: start again from the link.",
    )
}

fn cannot_seal() -> Page {
    problem(
        500,
        "Cannot sign in",
        "The gateway cannot seal the request.",
    )
}

fn unavailable(what: &str, e: &dyn std::fmt::Display) -> Page {
    tracing::warn!(error = %e, "consent page: {what} cannot be used");
    problem(
        502,
        "Cannot sign in right now",
        &format!("{what} cannot be reached or refused: try again shortly."),
    )
}

/// `GET /connect/start?t=LINK`.
async fn start(ctx: &RequestCtx, base: &str, t: Option<&str>, login: Option<Login>) -> Page {
    let Some(link) = t.and_then(|t| Link::open(t, &ctx.rt.sessions)) else {
        return problem(
            400,
            "This link does not work",
            "The sign-in link is not valid or has expired: call the tool again for a new one.",
        );
    };
    let Some(login) = login else {
        let then = format!("/connect/start?t={}", t.unwrap_or_default());
        return sign_in_here(ctx, base, then, &link.upstream).await;
    };
    if login.who != link.who {
        tracing::warn!(upstream = %link.upstream, "consent page: a sign-in link was opened by another user; nothing changed");
        return problem(403, "This link is not yours", "The sign-in link was made for another user. Nothing was changed, for them or for you: the person who got it must open it themselves.");
    }
    to_upstream(ctx, base, &login.who, &link.upstream).await
}

/// The upstream's registration: its protected-resource metadata, its authorization server, and
/// the gateway's client there (configured, or registered the first time).
async fn registration(
    ctx: &RequestCtx,
    base: &str,
    upstream: &str,
) -> Result<std::sync::Arc<Registration>, Page> {
    let Some(scope) = per_user_scope(ctx, upstream) else {
        return Err(problem(
            404,
            "Unknown upstream",
            "No upstream of that name signs users in.",
        ));
    };
    let Some(e) = scope.pool.endpoints().first() else {
        return Err(problem(
            404,
            "Unknown upstream",
            "No upstream of that name signs users in.",
        ));
    };
    let settings = e.per_user().cloned().unwrap_or_default();
    let url = e.target.url();
    let redirect = format!("{base}/connect/callback");
    let registered = ctx
        .rt
        .vault
        .client(&format!("upstream:{upstream}"), |http| async move {
            // Named in the configuration, or found through the upstream's metadata.
            let (issuer, resource, listed) = match settings.authorization_server {
                Some(a) => (a, settings.resource.unwrap_or(url), Vec::new()),
                None => {
                    let r = oauth::protected_resource(&http, &url).await?;
                    let resource = settings.resource.unwrap_or(r.resource);
                    (
                        r.authorization_servers[0].clone(),
                        resource,
                        r.scopes_supported,
                    )
                }
            };
            let server = oauth::server(&http, &issuer).await?;
            let client = match settings.client {
                Some((id, secret)) => oauth::Client {
                    server,
                    client_id: id,
                    client_secret: secret,
                },
                None => oauth::register(&http, server, &redirect, "mcp-gateway").await?,
            };
            let scope = (settings.scope).or_else(|| (!listed.is_empty()).then(|| listed.join(" ")));
            Ok(Registration {
                client,
                resource,
                scope,
            })
        })
        .await;
    registered.map_err(|e| unavailable("The upstream's authorization server", &e))
}

/// Sends the signed-in browser to the upstream's authorization server.
async fn to_upstream(ctx: &RequestCtx, base: &str, who: &Who, upstream: &str) -> Page {
    let reg = match registration(ctx, base, upstream).await {
        Ok(r) => r,
        Err(p) => return p,
    };
    let (verifier, challenge) = oauth::pkce();
    let state = UpstreamState {
        who: who.clone(),
        upstream: upstream.to_string(),
        verifier,
        exp: crate::auth::now() + link::STATE_LIFETIME,
    };
    let Some(state) = state.seal(&ctx.rt.sessions) else {
        return cannot_seal();
    };
    let redirect = format!("{base}/connect/callback");
    let to = reg.client.authorize_url(
        &redirect,
        &state,
        &challenge,
        &reg.resource,
        reg.scope.as_deref(),
    );
    Page::Redirect(to, None)
}

/// `GET /connect/login`: back from the gateway's authorization server; the token it gave says
/// who the browser's user is (verified as every caller's token is, for the scope it was asked for).
async fn signed_in_here(
    ctx: &RequestCtx,
    base: &str,
    code: Option<&str>,
    state: Option<&str>,
) -> Page {
    let (Some(code), Some(state)) = (
        code,
        state.and_then(|s| LoginState::open(s, &ctx.rt.sessions)),
    ) else {
        return stale_sign_in();
    };
    if !state.then.starts_with("/connect") {
        return problem(
            400,
            "This sign-in does not work",
            "Start again from the link.",
        );
    }
    let Some(reg) = ctx.rt.vault.registered("gateway") else {
        return problem(
            400,
            "This sign-in does not work",
            "Start again from the link.",
        );
    };
    let redirect = format!("{base}/connect/login");
    let resource = format!("{base}/{}/mcp", state.scope);
    let tokens = match reg
        .client
        .redeem(
            ctx.rt.vault.http(),
            code,
            &state.verifier,
            &redirect,
            &resource,
        )
        .await
    {
        Ok(t) => t,
        Err(e) => return unavailable("The gateway's authorization server", &e),
    };
    let identity = match ctx.rt.auth.verify(&tokens.access_token).await {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(reason = %e, "consent page: the sign-in gave a token the gateway does not accept");
            return problem(
                403,
                "Not signed in",
                "The authorization server's token is not one this gateway accepts.",
            );
        }
    };
    if let Some(scope) = ctx.rt.upstreams.get(&state.scope) {
        if super::authn::fits_scope(ctx, &identity, scope).is_err() {
            return problem(
                403,
                "Not signed in",
                "The token is not for this gateway's endpoint.",
            );
        }
    }
    let login = Login {
        who: Who::of(&identity),
        exp: (crate::auth::now() + link::LOGIN_LIFETIME)
            .min(identity.valid_until.max(crate::auth::now() + 300)),
    };
    let Some(sealed) = login.seal(&ctx.rt.sessions) else {
        return cannot_seal();
    };
    let secure = if base.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={sealed}; Path=/connect; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        link::LOGIN_LIFETIME
    );
    Page::Redirect(format!("{base}{}", state.then), Some(cookie))
}

/// `GET /connect/callback`: back from the upstream's authorization server, in the browser of the
/// user the sign-in was started for.
async fn signed_in_there(
    ctx: &RequestCtx,
    base: &str,
    code: Option<&str>,
    state: Option<&str>,
    login: Option<Login>,
) -> Page {
    let (Some(code), Some(state)) = (
        code,
        state.and_then(|s| UpstreamState::open(s, &ctx.rt.sessions)),
    ) else {
        return stale_sign_in();
    };
    if login.as_ref().map(|l| &l.who) != Some(&state.who) {
        return problem(
            403,
            "This sign-in is not yours",
            "The sign-in was started by another user. Nothing was changed.",
        );
    }
    let reg = match registration(ctx, base, &state.upstream).await {
        Ok(r) => r,
        Err(p) => return p,
    };
    let redirect = format!("{base}/connect/callback");
    let tokens = match reg
        .client
        .redeem(
            ctx.rt.vault.http(),
            code,
            &state.verifier,
            &redirect,
            &reg.resource,
        )
        .await
    {
        Ok(t) => t,
        Err(e) => return unavailable("The upstream's authorization server", &e),
    };
    if let Err(e) = ctx
        .rt
        .vault
        .signed_in(
            &state.who,
            &state.upstream,
            &reg.client,
            &reg.resource,
            tokens,
        )
        .await
    {
        tracing::error!(error = %e, "consent page: cannot keep an upstream login");
        return problem(
            503,
            "Cannot keep the sign-in",
            "The gateway cannot store the sign-in right now: try again shortly.",
        );
    }
    page(
        200,
        "Signed in",
        &format!(
            "<p>You are signed in to <b>{}</b> with your own account. Go back to your client and call the tool again.</p><p><a href=\"/connect\">Your sign-ins</a></p>",
            text(&state.upstream)
        ),
    )
}

/// `GET /connect`: the user's own logins.
async fn logins(ctx: &RequestCtx, base: &str, login: Option<Login>) -> Page {
    let Some(login) = login else {
        let first = ctx
            .rt
            .upstreams
            .iter()
            .find(|(_, s)| s.pool.endpoints().iter().any(|e| e.per_user().is_some()))
            .map(|(n, _)| n.clone());
        return match first {
            Some(scope) => sign_in_here(ctx, base, "/connect".into(), &scope).await,
            None => problem(404, "Not found", "No upstream signs users in."),
        };
    };
    let f = crate::connect::store::Filter {
        user: Some(&login.who.user),
        tenant: Some(&login.who.tenant),
        upstream: None,
    };
    let rows = match ctx.rt.vault.list(&f).await {
        Ok(r) => r,
        Err(e) => return unavailable("The store of sign-ins", &e),
    };
    let csrf = Csrf {
        who: login.who.clone(),
        exp: login.exp,
    }
    .seal(&ctx.rt.sessions)
    .unwrap_or_default();
    let mut body = format!(
        "<p>Signed in to the gateway as <b>{}</b>.</p>",
        text(&login.who.user)
    );
    if rows.is_empty() {
        body.push_str("<p>You have no sign-ins at upstreams.</p>");
    } else {
        body.push_str("<table><tr><th>Upstream</th><th>Since</th><th></th></tr>");
        for r in &rows {
            let since = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(r.created_at.max(0) as u64),
            );
            body.push_str(&format!(
                "<tr><td>{}</td><td>{since}</td><td><form method=\"post\" action=\"/connect/revoke\"><input type=\"hidden\" name=\"upstream\" value=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Revoke</button></form></td></tr>",
                text(&r.upstream),
                attr(&r.upstream),
                attr(&csrf)
            ));
        }
        body.push_str("</table>");
    }
    body.push_str("<p class=\"note\">Revoking deletes the gateway's copy of your tokens; the next call asks you to sign in again.</p>");
    page(200, "Your sign-ins", &body)
}

/// `POST /connect/revoke`.
async fn revoke(ctx: &RequestCtx, login: Option<Login>, form: Vec<(String, String)>) -> Page {
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let csrf = field("csrf").and_then(|c| Csrf::open(c, &ctx.rt.sessions));
    let (Some(login), Some(csrf), Some(upstream)) = (login, csrf, field("upstream")) else {
        return problem(
            403,
            "Not revoked",
            "The form is not valid: open your sign-ins page again.",
        );
    };
    if csrf.who != login.who {
        return problem(
            403,
            "Not revoked",
            "The form is not valid: open your sign-ins page again.",
        );
    }
    let f = crate::connect::store::Filter {
        user: Some(&login.who.user),
        tenant: Some(&login.who.tenant),
        upstream: Some(upstream),
    };
    match ctx.rt.vault.revoke(&f).await {
        Ok(_) => {
            tracing::info!(upstream, user = %login.who.user, "a user revoked their upstream login");
            Page::Redirect("/connect".into(), None)
        }
        Err(e) => unavailable("The store of sign-ins", &e),
    }
}

async fn write(session: &mut Session, ctx: &RequestCtx, answer: Page) -> pingora::Result<()> {
    let (status, body, location, cookie): (u16, Cow<str>, Option<String>, Option<String>) =
        match answer {
            Page::Html(s, b) => (s, b.into(), None, None),
            Page::Redirect(to, cookie) => (303, "".into(), Some(to), cookie),
        };
    let mut h = ResponseHeader::build(status, Some(10))?;
    h.insert_header("Content-Type", "text/html; charset=utf-8")?;
    h.insert_header("Content-Length", body.len().to_string())?;
    h.insert_header("Cache-Control", "no-store")?;
    h.insert_header("Referrer-Policy", "no-referrer")?;
    h.insert_header("X-Frame-Options", "DENY")?;
    h.insert_header("X-Content-Type-Options", "nosniff")?;
    h.insert_header(
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    )?;
    h.insert_header(super::names::written::REQUEST_ID, ctx.request_id.header())?;
    if let Some(l) = location {
        h.insert_header("Location", l)?;
    }
    if let Some(c) = cookie {
        h.insert_header("Set-Cookie", c)?;
    }
    session.write_response_header(Box::new(h), false).await?;
    session
        .write_response_body(Some(Bytes::from(body.into_owned())), true)
        .await
}

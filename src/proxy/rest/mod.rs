//! The REST API for callers that do not speak MCP: `POST /mcp/invoke` runs a tool (synchronously,
//! or as a job with `"async": true` / `Prefer: respond-async`), `/mcp/jobs` lists, reads and
//! cancels the caller's jobs, and `/mcp/openapi.json` describes all of it (OpenAPI 3.1, derived
//! from the types below, which the handlers use).
//!
//! The door is the MCP one: the token is verified, the tool's scope is found among the caller's
//! grants, the token must fit that scope (resource indicators, OAuth scopes), and the synthetic
//! `tools/call` goes through the same grant check, in-flight slot and rate limits before anything
//! runs; it is audited like a direct call. Errors are `{"error": {"code", "message"}}` with the
//! HTTP status of the matching MCP refusal (an unknown or ungranted tool is 404 here).

mod api;
mod invoke;
mod jobs;

use super::ctx::RequestCtx;
use super::{authn, respond};
use crate::error::GatewayError;
use api::{openapi, ErrorBody, ErrorDetail};
use pingora_proxy::Session;
use serde::Serialize;

/// What a path under `/mcp/` names.
pub enum Route {
    Invoke,
    Jobs,
    Job(String),
    JobResult(String),
    OpenApi,
}

/// `/mcp/invoke`, `/mcp/jobs`, `/mcp/jobs/{id}`, `/mcp/jobs/{id}/result`, `/mcp/openapi.json`.
pub fn route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/mcp/")?;
    match rest {
        "invoke" => return Some(Route::Invoke),
        "jobs" => return Some(Route::Jobs),
        "openapi.json" => return Some(Route::OpenApi),
        _ => {}
    }
    let id = rest.strip_prefix("jobs/")?;
    let (id, result) = match id.strip_suffix("/result") {
        Some(id) => (id, true),
        None => (id, false),
    };
    let valid = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric());
    if !valid {
        // Looked up like any id: a malformed one is simply not the caller's job.
        return Some(Route::Job(String::new()));
    }
    Some(if result {
        Route::JobResult(id.to_string())
    } else {
        Route::Job(id.to_string())
    })
}

/// Answers a REST request; every refusal is rendered here in the REST shape.
pub async fn serve(
    session: &mut Session,
    ctx: &mut RequestCtx,
    route: Route,
) -> pingora::Result<()> {
    let answer = match route {
        Route::OpenApi if session.req_header().method == "GET" => {
            Ok((200, openapi().to_vec(), Vec::new()))
        }
        Route::OpenApi => Err(GatewayError::MethodNotAllowed("use GET")),
        route => handle(session, ctx, route).await,
    };
    match answer {
        Ok((status, body, extra)) => respond::json(session, ctx, status, body, &extra).await,
        Err(e) => {
            let status = match &e {
                GatewayError::Denied(_) => 404,
                GatewayError::InvalidArguments { .. } => 400,
                e => e.status(),
            };
            let mut extra = respond::error_headers(session, ctx, &e);
            if let GatewayError::MethodNotAllowed(allow) = &e {
                extra.retain(|(k, _)| *k != "Allow");
                extra.push(("Allow", allow.trim_start_matches("use ").into()));
            }
            if status >= 400 && !matches!(status, 401 | 403 | 404 | 409 | 429) {
                session.set_keepalive(None);
            }
            let body = error_body(&e);
            let r = respond::json(session, ctx, status, body, &extra).await;
            ctx.error = Some(e);
            r
        }
    }
}

fn error_body(e: &GatewayError) -> Vec<u8> {
    serde_json::to_vec(&ErrorBody {
        error: ErrorDetail {
            code: e.code(),
            message: e.to_string(),
        },
    })
    .unwrap_or_default()
}

/// An answer: status, JSON body, extra headers.
type Answer = (u16, Vec<u8>, Vec<(&'static str, String)>);

async fn handle(
    session: &mut Session,
    ctx: &mut RequestCtx,
    route: Route,
) -> Result<Answer, GatewayError> {
    if ctx.rt.audit.saturated() {
        return Err(GatewayError::AuditUnavailable);
    }
    let method = session.req_header().method.clone();
    let allowed = matches!(
        (&route, method.as_str()),
        (Route::Invoke, "POST")
            | (Route::Jobs, "GET")
            | (Route::JobResult(_), "GET")
            | (Route::Job(_), "GET" | "DELETE")
    );
    if !allowed {
        session.set_keepalive(None);
        return Err(GatewayError::MethodNotAllowed(match route {
            Route::Invoke => "use POST",
            Route::Job(_) => "use GET, DELETE",
            _ => "use GET",
        }));
    }
    let identity = authn::identity(session, ctx).await?;
    ctx.verified = Some(identity.clone());
    match route {
        Route::Invoke => invoke::invoke(session, ctx, identity).await,
        Route::Jobs => jobs::list_jobs(session, ctx, identity).await,
        Route::Job(id) if method == "DELETE" => jobs::cancel_job(ctx, identity, &id).await,
        Route::Job(id) => jobs::get_job(ctx, identity, &id).await,
        Route::JobResult(id) => jobs::job_result(ctx, identity, &id).await,
        Route::OpenApi => Err(GatewayError::Internal),
    }
}

fn to_vec<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn paths_name_the_rest_routes_and_nothing_else() {
        assert!(matches!(route("/mcp/invoke"), Some(Route::Invoke)));
        assert!(matches!(route("/mcp/jobs"), Some(Route::Jobs)));
        assert!(matches!(route("/mcp/jobs/abc123"), Some(Route::Job(id)) if id == "abc123"));
        assert!(
            matches!(route("/mcp/jobs/abc123/result"), Some(Route::JobResult(id)) if id == "abc123")
        );
        assert!(matches!(route("/mcp/jobs/../x"), Some(Route::Job(id)) if id.is_empty()));
        assert!(matches!(route("/mcp/openapi.json"), Some(Route::OpenApi)));
        assert!(route("/mcp/mcp").is_none());
        assert!(route("/calculator/mcp").is_none());
    }

    #[test]
    fn the_openapi_document_is_3_1_and_names_every_path() {
        let doc: Value = serde_json::from_slice(openapi()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        for p in [
            "/mcp/invoke",
            "/mcp/jobs",
            "/mcp/jobs/{id}",
            "/mcp/jobs/{id}/result",
        ] {
            assert!(doc["paths"].get(p).is_some(), "{p}");
        }
        assert!(doc["components"]["schemas"]["InvokeRequest"].is_object());
    }
}

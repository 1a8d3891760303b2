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

use super::authz::{self, Decision};
use super::ctx::RequestCtx;
use super::{authn, limit, respond};
use crate::error::{Denied, GatewayError};
use crate::jobs::{call::Call, rfc3339, store::Filter, Job, Kind, Owner, Status};
use crate::protocol::method;
use crate::upstream::ScopeUpstreams;
use pingora_proxy::Session;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

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

/// `POST /mcp/invoke`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvokeRequest {
    /// The tool's name, as `tools/list` shows it.
    pub tool_name: String,
    /// The tool's arguments.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub arguments: Option<serde_json::Map<String, Value>>,
    /// The scope, needed only when two scopes granted to the caller offer this tool.
    #[serde(default)]
    pub scope: Option<String>,
    /// Run as a job: answer 202 at once with the job (same as `Prefer: respond-async`).
    #[serde(default, rename = "async")]
    pub run_async: bool,
    /// How long the job and its result are kept, from submission (capped by the gateway).
    #[serde(default)]
    pub ttl_ms: Option<u64>,
}

/// A job as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub status: Status,
    pub scope: String,
    pub tool: String,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
    /// When the job and its result are deleted.
    pub expires_at: String,
    pub ttl_ms: u64,
    /// Why it failed or was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The tool's result (an MCP `CallToolResult`), once completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// The tool's JSON-RPC error, when it answered with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
}

/// `GET /mcp/jobs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
}

/// Every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The JSON-RPC code the same refusal has on MCP endpoints.
    pub code: i32,
    pub message: String,
}

/// `GET /mcp/jobs` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    offset: Option<usize>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mcp-gateway REST API",
        description = "Run MCP tools without speaking MCP: synchronously or as jobs the caller polls. Every call passes the gateway's authentication, grants, rate limits and audit."
    ),
    paths(invoke, list_jobs, get_job, job_result, cancel_job),
    components(schemas(InvokeRequest, JobView, JobList, ErrorBody, ErrorDetail, Status)),
    modifiers(&Bearer),
    security(("bearer" = []))
)]
struct ApiDoc;

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        if let Some(c) = doc.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .build(),
                ),
            );
        }
    }
}

/// The OpenAPI document, built once.
fn openapi() -> &'static [u8] {
    static DOC: std::sync::LazyLock<Vec<u8>> =
        std::sync::LazyLock::new(|| ApiDoc::openapi().to_json().unwrap_or_default().into_bytes());
    &DOC
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
        Route::Invoke => invoke(session, ctx, identity).await,
        Route::Jobs => list_jobs(session, ctx, identity).await,
        Route::Job(id) if method == "DELETE" => cancel_job(ctx, identity, &id).await,
        Route::Job(id) => get_job(ctx, identity, &id).await,
        Route::JobResult(id) => job_result(ctx, identity, &id).await,
        Route::OpenApi => Err(GatewayError::Internal),
    }
}

/// Run a tool.
#[utoipa::path(
    post,
    path = "/mcp/invoke",
    request_body = InvokeRequest,
    params(("Prefer" = Option<String>, Header, description = "`respond-async` runs the call as a job")),
    responses(
        (status = 200, description = "The tool's result (an MCP CallToolResult; `isError` for failures inside the tool)", body = Object),
        (status = 202, description = "Accepted as a job; poll the `Location`", body = JobView, headers(("Location" = String, description = "/mcp/jobs/{id}"))),
        (status = 400, description = "Malformed body, or a JSON-RPC error from the tool", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "Unknown tool (or not granted)", body = ErrorBody),
        (status = 429, description = "Rate limited, too many in flight or too many jobs", body = ErrorBody),
        (status = 502, description = "The upstream failed", body = ErrorBody),
        (status = 503, description = "No healthy upstream, or jobs unavailable", body = ErrorBody),
        (status = 504, description = "The tool did not answer in time", body = ErrorBody),
    )
)]
async fn invoke(
    session: &mut Session,
    ctx: &mut RequestCtx,
    identity: Arc<crate::auth::Identity>,
) -> Result<Answer, GatewayError> {
    let raw = read_body(session, ctx, &identity.user).await?;
    let mut de = serde_json::Deserializer::from_slice(&raw);
    let req: InvokeRequest = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            GatewayError::ParseError(format!("the body is not valid JSON: {inner}"))
        } else {
            GatewayError::InvalidRequest(format!("{path}: {inner}").into())
        }
    })?;
    let run_async = req.run_async
        || session
            .req_header()
            .headers
            .get_all("prefer")
            .iter()
            .any(|v| {
                v.to_str().is_ok_and(|v| {
                    v.split([',', ';'])
                        .any(|t| t.trim().eq_ignore_ascii_case("respond-async"))
                })
            });
    let scope = resolve(ctx, &identity, &req)?;
    ctx.scope = Some(scope.clone());
    authn::admit_on(ctx, identity.clone(), scope.clone())?;
    limit::hold_user_slot(ctx)?;
    let arguments = Value::Object(req.arguments.unwrap_or_default());
    let body = serde_json::to_vec(
        &json!({"jsonrpc": "2.0", "id": 1, "method": method::TOOLS_CALL,
        "params": {"name": req.tool_name, "arguments": arguments}}),
    )
    .map_err(|_| GatewayError::Internal)?;
    ctx.body.bytes = raw.len() as u64;
    let keep = ctx.rt.audit.config.arguments.wants_arguments() || scope.scope.validate_arguments;
    let rpc = crate::jsonrpc::parse(&body, false, keep)?;
    let decision = authz::decide(ctx, &rpc);
    ctx.rpc = Some(rpc);
    match decision {
        Decision::Forward => {}
        Decision::Refuse(e) => return Err(e),
        Decision::Answer(_) => return Err(GatewayError::Internal),
    }
    limit::check(ctx).await?;
    let call = Call {
        scope,
        bridged: ctx.rt.bridged.clone(),
        identity: identity.clone(),
        tool: req.tool_name,
        arguments,
        request_id: ctx.request_id.clone(),
    };
    if run_async {
        let jobs = ctx.rt.jobs.clone();
        let ttl = jobs.ttl(req.ttl_ms);
        let job = jobs
            .submit(
                Owner::of(&identity),
                Kind::Rest,
                ttl,
                ctx.rt.config.limits.max_jobs_per_user,
                call,
            )
            .await?;
        ctx.job = Some(job.id.clone());
        let location = format!("/mcp/jobs/{}", job.id);
        return Ok((202, to_vec(&view(&job)), vec![("Location", location)]));
    }
    let started = std::time::Instant::now();
    let ended = call
        .run(
            &ctx.request_id.clone(),
            call.sync_timeout(),
            std::future::pending(),
        )
        .await;
    ctx.upstream.elapsed = Some(started.elapsed());
    ctx.upstream.picked = ended.upstream.clone();
    ctx.answer.scan.tool_error = ended.tool_error;
    ctx.answer.scan.rpc_error_code = ended.rpc_code;
    let text = match ended.result {
        Ok(text) => text,
        Err(crate::jobs::call::Failure::Gateway(e)) => return Err(e),
        Err(crate::jobs::call::Failure::Cancelled) => return Err(GatewayError::Internal),
    };
    let v: Value = serde_json::from_str(&text).map_err(|_| GatewayError::Internal)?;
    match (v.get("result"), v.get("error")) {
        (Some(r), _) => Ok((200, to_vec(r), Vec::new())),
        (None, Some(e)) => {
            let status = match e.get("code").and_then(Value::as_i64) {
                Some(-32602 | -32600) => 400,
                _ => 502,
            };
            Ok((status, to_vec(&json!({ "error": e })), Vec::new()))
        }
        _ => Err(GatewayError::Internal),
    }
}

/// The one scope granted to the caller that offers the tool (or the one it named).
fn resolve(
    ctx: &RequestCtx,
    identity: &crate::auth::Identity,
    req: &InvokeRequest,
) -> Result<Arc<ScopeUpstreams>, GatewayError> {
    let policy = &ctx.rt.config.policy;
    let tool = req.tool_name.as_str();
    let mut found: Vec<&Arc<ScopeUpstreams>> = ctx
        .rt
        .upstreams
        .values()
        .filter(|s| {
            let name = s.scope.name.as_str();
            req.scope.as_deref().is_none_or(|n| n == name)
                && s.scope.tools.iter().any(|t| t == tool)
                && policy.allows(&identity.roles, name, tool)
        })
        .collect();
    found.sort_by(|a, b| a.scope.name.cmp(&b.scope.name));
    match found.as_slice() {
        [] => Err(GatewayError::Denied(Denied::tool(
            tool,
            "no scope granted to the caller offers this tool",
        ))),
        [one] => Ok((*one).clone()),
        many => Err(GatewayError::InvalidRequest(
            format!(
                "the tool {} is offered by several scopes granted to you ({}): name one in \"scope\"",
                crate::logs::clip(tool),
                many.iter()
                    .map(|s| s.scope.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
            .into(),
        )),
    }
}

/// The request body, within `limits.max_body_bytes`, its deadline
/// (`ConnectionLimits::body_deadline`) and the user's places for bodies still arriving.
async fn read_body(
    session: &mut Session,
    ctx: &RequestCtx,
    user: &str,
) -> Result<Vec<u8>, GatewayError> {
    let limit = ctx.rt.config.limits.max_body_bytes;
    let req = session.req_header();
    if !super::admit::is_json(req) {
        session.set_keepalive(None);
        return Err(GatewayError::UnsupportedMediaType);
    }
    let declared = req
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        session.set_keepalive(None);
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    let Some(_arriving) = ctx.rt.user_bodies.acquire(user) else {
        session.set_keepalive(None);
        return Err(GatewayError::TooManyBodies);
    };
    let deadline = ctx
        .rt
        .config
        .connections
        .body_deadline(declared.unwrap_or(limit));
    match tokio::time::timeout(deadline, read_all(session, limit)).await {
        Ok(body) => body,
        Err(_) => {
            session.set_keepalive(None);
            Err(GatewayError::BodyTimeout)
        }
    }
}

async fn read_all(session: &mut Session, limit: u64) -> Result<Vec<u8>, GatewayError> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit as usize {
                    session.set_keepalive(None);
                    return Err(GatewayError::PayloadTooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(_) => {
                session.set_keepalive(None);
                return Err(GatewayError::InvalidRequest(
                    "the request body could not be read".into(),
                ));
            }
        }
    }
}

/// The caller's job: theirs, and in a scope their token may use; anything else is unknown.
async fn owned(
    ctx: &mut RequestCtx,
    identity: &crate::auth::Identity,
    id: &str,
) -> Result<Job, GatewayError> {
    let unknown = || GatewayError::JobNotFound(crate::logs::clip(id).into_owned());
    if id.is_empty() {
        return Err(unknown());
    }
    let job = ctx
        .rt
        .jobs
        .store()?
        .get(id, &Owner::of(identity))
        .await?
        .ok_or_else(unknown)?;
    if let Some(scope) = ctx.rt.upstreams.get(&job.scope) {
        if authn::fits_scope(ctx, identity, scope).is_err() {
            return Err(unknown());
        }
    }
    // The request's audit row names the job and its tool.
    ctx.job = Some(job.id.clone());
    if ctx.rpc.is_none() {
        ctx.rpc = Some(crate::jsonrpc::Rpc::Single(crate::jsonrpc::Message {
            tool: Some(job.tool.clone()),
            ..Default::default()
        }));
    }
    Ok(job)
}

/// List the caller's jobs, newest first.
#[utoipa::path(
    get,
    path = "/mcp/jobs",
    params(
        ("status" = Option<Status>, Query, description = "Only jobs in this status"),
        ("limit" = Option<usize>, Query, description = "At most this many (default 50, at most 500)"),
        ("offset" = Option<usize>, Query, description = "Skip this many"),
    ),
    responses(
        (status = 200, description = "The caller's jobs (without results)", body = JobList),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
async fn list_jobs(
    session: &Session,
    ctx: &mut RequestCtx,
    identity: Arc<crate::auth::Identity>,
) -> Result<Answer, GatewayError> {
    let query = session.req_header().uri.query().unwrap_or("");
    let q: ListQuery = serde_urlencoded::from_str(query)
        .map_err(|e| GatewayError::InvalidRequest(format!("query: {e}").into()))?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            GatewayError::InvalidRequest(
                "query: status must be one of queued, working, completed, failed, cancelled, expired".into(),
            )
        })?),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let jobs = ctx
        .rt
        .jobs
        .store()?
        .list(
            &Owner::of(&identity),
            Filter {
                status,
                scope: None,
            },
            q.offset.unwrap_or(0),
            limit,
        )
        .await?;
    let jobs = jobs
        .iter()
        .filter(|j| {
            ctx.rt
                .upstreams
                .get(&j.scope)
                .is_none_or(|s| authn::fits_scope(ctx, &identity, s).is_ok())
        })
        .map(view)
        .collect();
    Ok((200, to_vec(&JobList { jobs }), Vec::new()))
}

/// A job's status, and its result once it has one.
#[utoipa::path(
    get,
    path = "/mcp/jobs/{id}",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such job of the caller's", body = ErrorBody),
    )
)]
async fn get_job(
    ctx: &mut RequestCtx,
    identity: Arc<crate::auth::Identity>,
    id: &str,
) -> Result<Answer, GatewayError> {
    let job = owned(ctx, &identity, id).await?;
    Ok((200, to_vec(&view(&job)), Vec::new()))
}

/// Only the result: 200 once completed, 409 before (or when the job ended without one).
#[utoipa::path(
    get,
    path = "/mcp/jobs/{id}/result",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "The tool's result (an MCP CallToolResult)", body = Object),
        (status = 404, description = "No such job of the caller's", body = ErrorBody),
        (status = 409, description = "The job has not completed (still queued or working, or it failed, was cancelled or expired)", body = ErrorBody),
    )
)]
async fn job_result(
    ctx: &mut RequestCtx,
    identity: Arc<crate::auth::Identity>,
    id: &str,
) -> Result<Answer, GatewayError> {
    let job = owned(ctx, &identity, id).await?;
    match (job.status, super::tasks::outcome(&job)) {
        (Status::Completed, Some(Ok(result))) => Ok((200, to_vec(&result), Vec::new())),
        (s, _) if !s.is_final() => Err(GatewayError::JobConflict(format!(
            "the job is {}: ask again once it has completed",
            s.as_str()
        ))),
        (s, _) => Err(GatewayError::JobConflict(format!(
            "the job is {} and has no result{}",
            s.as_str(),
            job.message.map(|m| format!(": {m}")).unwrap_or_default()
        ))),
    }
}

/// Cancel a job that has not ended.
#[utoipa::path(
    delete,
    path = "/mcp/jobs/{id}",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "The job, now cancelled", body = JobView),
        (status = 404, description = "No such job of the caller's", body = ErrorBody),
        (status = 409, description = "The job has already ended", body = ErrorBody),
    )
)]
async fn cancel_job(
    ctx: &mut RequestCtx,
    identity: Arc<crate::auth::Identity>,
    id: &str,
) -> Result<Answer, GatewayError> {
    let job = owned(ctx, &identity, id).await?;
    if job.status.is_final() {
        return Err(GatewayError::JobConflict(format!(
            "the job has already ended ({})",
            job.status.as_str()
        )));
    }
    let job = ctx
        .rt
        .jobs
        .cancel(id, &Owner::of(&identity))
        .await?
        .ok_or_else(|| GatewayError::JobNotFound(id.to_string()))?;
    Ok((200, to_vec(&view(&job)), Vec::new()))
}

fn view(job: &Job) -> JobView {
    let (result, error) = match super::tasks::outcome(job) {
        Some(Ok(r)) => (Some(r), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    JobView {
        id: job.id.clone(),
        status: job.status,
        scope: job.scope.clone(),
        tool: job.tool.clone(),
        created_at: rfc3339(job.created),
        updated_at: rfc3339(job.updated),
        expires_at: rfc3339(job.expires),
        ttl_ms: job.ttl_ms,
        message: job.message.clone(),
        result,
        error,
    }
}

fn to_vec<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

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

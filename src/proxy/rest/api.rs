//! The REST API's documents: the request and answer types the handlers use, and the OpenAPI 3.1
//! description derived from them.

use crate::jobs::{rfc3339, Job, Status};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

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
pub(super) struct ListQuery {
    #[serde(default)]
    pub(super) status: Option<String>,
    #[serde(default)]
    pub(super) limit: Option<usize>,
    #[serde(default)]
    pub(super) offset: Option<usize>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mcp-gateway REST API",
        description = "Run MCP tools without speaking MCP: synchronously or as jobs the caller polls. Every call passes the gateway's authentication, grants, rate limits and audit."
    ),
    paths(
        super::invoke::invoke,
        super::jobs::list_jobs,
        super::jobs::get_job,
        super::jobs::job_result,
        super::jobs::cancel_job
    ),
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
pub(super) fn openapi() -> &'static [u8] {
    static DOC: std::sync::LazyLock<Vec<u8>> =
        std::sync::LazyLock::new(|| ApiDoc::openapi().to_json().unwrap_or_default().into_bytes());
    &DOC
}

/// A job as its owner sees it (its result or error once it has ended).
pub(super) fn view(job: &Job) -> JobView {
    let (result, error) = match crate::proxy::tasks::outcome(job) {
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

//! `/mcp/jobs`: the caller's jobs listed, read, their results fetched and cancelled. A job that
//! is not the caller's, or lies in a scope their token may not use, is unknown.

use super::api::{view, ErrorBody, JobList, JobView, ListQuery};
use super::{to_vec, Answer};
use crate::error::GatewayError;
use crate::jobs::{store::Filter, Job, Owner, Status};
use crate::proxy::authn;
use crate::proxy::ctx::RequestCtx;
use crate::proxy::tasks;
use pingora_proxy::Session;
use std::sync::Arc;

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
pub(super) async fn list_jobs(
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
            Some(&Owner::of(&identity)),
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
pub(super) async fn get_job(
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
pub(super) async fn job_result(
    ctx: &mut RequestCtx,
    identity: Arc<crate::auth::Identity>,
    id: &str,
) -> Result<Answer, GatewayError> {
    let job = owned(ctx, &identity, id).await?;
    match (job.status, tasks::outcome(&job)) {
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
pub(super) async fn cancel_job(
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

//! MCP tasks answered by the gateway (scopes with `tasks: gateway`, the default): a `tools/call`
//! with `params.task` becomes a job and is answered at once with the task; `tasks/get`,
//! `tasks/result`, `tasks/list` and `tasks/cancel` read and change the caller's own jobs. The
//! request has passed the same door as any `tools/call` by then (grant, rate limits).
//!
//! Shapes: 2025-11-25 (`CreateTaskResult {task}`, `tasks/result` blocks until the task ends and
//! returns exactly the call's result or error) and the 2026-07-28 tasks extension (a flat result
//! with `resultType: "task"`, `ttlMs`, `pollIntervalMs`; `tasks/get` carries the result or error
//! inline once the task ended).

use super::ctx::RequestCtx;
use crate::error::GatewayError;
use crate::jobs::{call::Call, rfc3339, store::Filter, Job, Kind, Owner, Status};
use crate::jsonrpc::{Rpc, Target};
use crate::protocol::method;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// Tasks a `tasks/list` page holds.
const PAGE: usize = 100;

/// The JSON-RPC answer for a task request the gateway serves itself; `None` for anything else
/// (or on a scope that leaves tasks to its upstreams).
/// (Each task operation is boxed: this runs for every call, and its future would otherwise be
/// as large as the largest operation's.)
pub async fn answer(ctx: &mut RequestCtx, body: &[u8]) -> Result<Option<Vec<u8>>, GatewayError> {
    let caller = ctx.admitted()?;
    if caller.scope.scope.tasks != crate::config::file::TaskMode::Gateway {
        return Ok(None);
    }
    let Some(Rpc::Single(m)) = &ctx.rpc else {
        return Ok(None);
    };
    let method = m.method.as_deref().unwrap_or("");
    let declares_tasks = m.envelope.as_ref().is_some_and(|e| e.tasks);
    let task_id = match &m.target {
        Some(Target::Task(id)) => Some(id.clone()),
        _ => None,
    };
    let answer = match method {
        // 2026-07-28 (the tasks extension): the server decides, the old `params.task` hint
        // neither asks nor refuses. For a client that declared the extension, every call runs as
        // a task and is answered at once when it ends within `SHORTCUT`, else with the task.
        // Without the extension, the call runs as any other.
        method::TOOLS_CALL if ctx.is_modern() && declares_tasks => {
            Box::pin(directed(ctx, body)).await?
        }
        method::TOOLS_CALL if m.task && !ctx.is_modern() => Box::pin(submit(ctx, body)).await?,
        // The extension's methods are for clients that declared it.
        method::TASKS_GET | method::TASKS_CANCEL if ctx.is_modern() && !declares_tasks => {
            return Err(GatewayError::MissingCapability(EXTENSION_CAPABILITY));
        }
        method::TASKS_GET | method::TASKS_RESULT | method::TASKS_CANCEL => {
            let id = task_id.ok_or(GatewayError::Internal)?;
            ctx.job = Some(id.clone());
            match method {
                method::TASKS_GET => Box::pin(get(ctx, &id)).await?,
                method::TASKS_RESULT => Box::pin(result(ctx, &id)).await?,
                _ => Box::pin(cancel(ctx, &id)).await?,
            }
        }
        method::TASKS_LIST => Box::pin(list(ctx, body)).await?,
        _ => return Ok(None),
    };
    if let Err(e) = &answer {
        ctx.answer.scan.rpc_error_code = e.get("code").and_then(Value::as_i64).map(|c| c as i32);
    }
    let id = ctx.rpc_id().unwrap_or("null");
    Ok(Some(match answer {
        Ok(result) => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#).into_bytes(),
        Err(error) => format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{error}}}"#).into_bytes(),
    }))
}

/// The tasks extension as a missing capability names it.
const EXTENSION_CAPABILITY: &str = "extensions/io.modelcontextprotocol/tasks";

/// A JSON-RPC result or error object.
type Answer = Result<Value, Value>;

fn unknown(id: &str) -> Answer {
    Err(json!({"code": -32602, "message": format!("Unknown task: {}", crate::logs::clip(id))}))
}

#[derive(Deserialize)]
struct TaskCall {
    params: TaskCallParams,
}

#[derive(Deserialize)]
struct TaskCallParams {
    name: String,
    #[serde(default)]
    arguments: Option<Value>,
    /// Required of 2025-11-25 calls (the match above sends only those with it); 2026-07-28 calls
    /// may carry the old hint or none.
    #[serde(default)]
    task: TaskParams,
}

#[derive(Deserialize, Default)]
struct TaskParams {
    #[serde(default)]
    ttl: Option<u64>,
}

async fn submit(ctx: &mut RequestCtx, body: &[u8]) -> Result<Answer, GatewayError> {
    // Read again on this path only, for what the single pass does not keep (the arguments and
    // the task's ttl).
    let call: TaskCall = serde_json::from_slice(body).map_err(|e| {
        GatewayError::InvalidParams(
            format!("a task-augmented tools/call needs params.task as an object: {e}").into(),
        )
    })?;
    let caller = ctx.admitted()?;
    if caller.scope.scope.upstreams.iter().any(|u| u.legacy_sse) {
        return Err(GatewayError::InvalidRequest(
            "tasks are not available on a scope whose upstreams speak only the legacy HTTP+SSE transport".into(),
        ));
    }
    let jobs = ctx.rt.jobs.clone();
    let ttl = jobs.ttl(call.params.task.ttl);
    let work = Call {
        scope: caller.scope.clone(),
        bridged: ctx.rt.bridged.clone(),
        identity: caller.identity.clone(),
        tool: call.params.name,
        arguments: call.params.arguments.unwrap_or_else(|| json!({})),
        request_id: ctx.request_id.to_string(),
        trace: ctx.call_trace(),
    };
    let owner = Owner::of(&caller.identity);
    let job = jobs
        .submit(
            owner,
            Kind::Task,
            ttl,
            ctx.rt.config.limits.max_jobs_per_user,
            work,
        )
        .await?;
    ctx.job = Some(job.id.clone());
    let shown = shown(ctx, &job, "task");
    Ok(Ok(if ctx.is_modern() {
        shown
    } else {
        json!({ "task": shown })
    }))
}

/// How long a 2026-07-28 call made a task waits for its end before the task is the answer.
const SHORTCUT: Duration = Duration::from_secs(1);

/// A 2026-07-28 call the gateway runs as a task (the tasks extension's server-directed
/// creation): its own result (`resultType: "complete"`) when it ends within [`SHORTCUT`] (the
/// extension's immediate-result shortcut), else the task (`resultType: "task"`).
async fn directed(ctx: &mut RequestCtx, body: &[u8]) -> Result<Answer, GatewayError> {
    let task = match submit(ctx, body).await? {
        Ok(task) => task,
        refused => return Ok(refused),
    };
    let Some(id) = ctx.job.clone() else {
        return Ok(Ok(task));
    };
    let until = std::time::Instant::now() + SHORTCUT;
    let mut wait = Duration::from_millis(2);
    while std::time::Instant::now() < until {
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(100));
        let Some(job) = find(ctx, &id).await? else {
            break;
        };
        if job.status.is_final() {
            if let Some(ended) = outcome(&job) {
                return Ok(ended.map(|mut r| {
                    if let Some(o) = r.as_object_mut() {
                        o.entry("resultType").or_insert_with(|| json!("complete"));
                    }
                    r
                }));
            }
            break;
        }
    }
    Ok(Ok(task))
}

/// The caller's task, when it is theirs, in this scope, and not expired.
async fn find(ctx: &RequestCtx, id: &str) -> Result<Option<Job>, GatewayError> {
    let caller = ctx.admitted()?;
    let job = ctx
        .rt
        .jobs
        .store()?
        .get(id, &Owner::of(&caller.identity))
        .await?;
    Ok(job.filter(|j| j.scope == caller.scope.scope.name && j.status != Status::Expired))
}

async fn get(ctx: &RequestCtx, id: &str) -> Result<Answer, GatewayError> {
    let Some(job) = find(ctx, id).await? else {
        return Ok(unknown(id));
    };
    let mut t = shown(ctx, &job, "complete");
    if ctx.is_modern() {
        match outcome(&job) {
            Some(Ok(r)) => t["result"] = r,
            Some(Err(e)) => t["error"] = e,
            None => {}
        }
    }
    Ok(Ok(t))
}

/// Waits (polling the store, 2 ms at first, doubling) until the task ends, within the scope's read timeout, then returns
/// the call's own result or error.
async fn result(ctx: &RequestCtx, id: &str) -> Result<Answer, GatewayError> {
    let deadline = std::time::Instant::now() + ctx.admitted()?.scope.scope.read_timeout;
    // Short calls end within milliseconds: look again soon, then back off to at most 250 ms.
    let most = ctx
        .rt
        .jobs
        .settings
        .poll_interval
        .min(Duration::from_millis(250));
    let mut wait = Duration::from_millis(2);
    loop {
        let Some(job) = find(ctx, id).await? else {
            return Ok(unknown(id));
        };
        if job.status.is_final() {
            let related = json!({"io.modelcontextprotocol/related-task": {"taskId": job.id}});
            return Ok(match outcome(&job) {
                Some(Ok(mut r)) => {
                    if let Some(o) = r.as_object_mut() {
                        o.insert("_meta".into(), related);
                    }
                    Ok(r)
                }
                Some(Err(e)) => Err(e),
                None => Err(
                    json!({"code": -32603, "message": job.message.unwrap_or_else(|| format!("task {}", job.status.as_str())), "data": related}),
                ),
            });
        }
        if std::time::Instant::now() >= deadline {
            return Ok(Err(json!({"code": -32603,
                "message": "the task is still working: poll tasks/get and ask for its result once it has ended"})));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(most);
    }
}

async fn cancel(ctx: &RequestCtx, id: &str) -> Result<Answer, GatewayError> {
    let Some(found) = find(ctx, id).await? else {
        return Ok(unknown(id));
    };
    if found.status.is_final() {
        return Ok(Err(json!({"code": -32602,
            "message": "Cannot cancel a task that has already ended"})));
    }
    let owner = Owner::of(&ctx.admitted()?.identity);
    let Some(job) = ctx.rt.jobs.cancel(id, &owner).await? else {
        return Ok(unknown(id));
    };
    Ok(Ok(shown(ctx, &job, "complete")))
}

#[derive(Deserialize, Default)]
struct ListRequest {
    #[serde(default)]
    params: Option<ListParams>,
}

#[derive(Deserialize, Default)]
struct ListParams {
    #[serde(default)]
    cursor: Option<String>,
}

async fn list(ctx: &RequestCtx, body: &[u8]) -> Result<Answer, GatewayError> {
    let req: ListRequest = serde_json::from_slice(body).unwrap_or_default();
    let offset = match req.params.and_then(|p| p.cursor) {
        Some(c) => match c.parse::<usize>() {
            Ok(n) => n,
            Err(_) => {
                return Ok(Err(
                    json!({"code": -32602, "message": "Invalid cursor for tasks/list"}),
                ))
            }
        },
        None => 0,
    };
    let caller = ctx.admitted()?;
    let filter = Filter {
        status: None,
        scope: Some(&caller.scope.scope.name),
    };
    let jobs = ctx
        .rt
        .jobs
        .store()?
        .list(Some(&Owner::of(&caller.identity)), filter, offset, PAGE + 1)
        .await?;
    // `tasks/list` exists only in 2025-11-25: always its shape.
    let poll = ctx.rt.jobs.settings.poll_interval;
    let tasks: Vec<Value> = jobs
        .iter()
        .filter(|j| j.status != Status::Expired)
        .take(PAGE)
        .map(|j| task(j, poll, None))
        .collect();
    let mut result = json!({ "tasks": tasks });
    if jobs.len() > PAGE {
        result["nextCursor"] = (offset + PAGE).to_string().into();
    }
    Ok(Ok(result))
}

/// The status a task shows: MCP has no `queued` (a queued call is working as far as the client
/// knows).
fn mcp_status(s: Status) -> &'static str {
    match s {
        Status::Queued | Status::Working => "working",
        Status::Completed => "completed",
        Status::Failed | Status::Expired => "failed",
        Status::Cancelled => "cancelled",
    }
}

/// A task as the request's revision shows it (see [`task`]); `result_type` is what a
/// 2026-07-28 answer says it is.
fn shown(ctx: &RequestCtx, job: &Job, result_type: &str) -> Value {
    let modern = ctx.is_modern().then_some(result_type);
    task(job, ctx.rt.jobs.settings.poll_interval, modern)
}

/// A 2025-11-25 `Task`, or with `modern` the 2026-07-28 extension's flat shape (`ttlMs`,
/// `pollIntervalMs`, and that `resultType`).
fn task(job: &Job, poll: Duration, modern: Option<&str>) -> Value {
    let (ttl, poll_key) = match modern {
        Some(_) => ("ttlMs", "pollIntervalMs"),
        None => ("ttl", "pollInterval"),
    };
    let mut t = json!({
        "taskId": job.id,
        "status": mcp_status(job.status),
        "createdAt": rfc3339(job.created),
        "lastUpdatedAt": rfc3339(job.updated),
    });
    t[ttl] = job.ttl_ms.into();
    t[poll_key] = (poll.as_millis() as u64).into();
    if let Some(m) = &job.message {
        t["statusMessage"] = m.as_str().into();
    }
    if let Some(r) = modern {
        t["resultType"] = r.into();
    }
    t
}

/// The stored call outcome: its result, or its JSON-RPC error.
pub fn outcome(job: &Job) -> Option<Result<Value, Value>> {
    let v: Value = serde_json::from_str(job.outcome.as_deref()?).ok()?;
    match (v.get("result"), v.get("error")) {
        (Some(r), _) => Some(Ok(r.clone())),
        (None, Some(e)) => Some(Err(e.clone())),
        _ => None,
    }
}

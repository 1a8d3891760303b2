//! The console's pages and the two changes it makes (approving a tool definition, cancelling a
//! job), each audited like a request.

use super::{Console, Operator};
use crate::audit::search::Query as AuditQuery;
use crate::outcome::Class;
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Rows per page of the audit and jobs pages.
const PAGE: usize = 50;

/// An audit row for something an operator did here (or was refused).
pub(super) fn audited(
    c: &Console,
    user: &str,
    method: &str,
    target: Option<String>,
    outcome: Class,
    reason: Option<String>,
) {
    let rt = c.runtime();
    let audit = &rt.audit;
    if !audit.enabled() {
        return;
    }
    let status = if outcome == Class::Ok { 200 } else { 403 };
    let mut row = crate::audit::AuditRecord::new(
        &audit.config,
        crate::audit::RequestId::new(),
        outcome,
        status,
    );
    row.user_id = Some(crate::logs::clip(user).into_owned());
    row.roles = vec![c.settings.role.clone()];
    row.method = Some(method.to_string());
    row.tool = target.map(|t| crate::logs::clip(&t).into_owned());
    row.reason = reason.map(|r| crate::logs::clip(&r).into_owned());
    audit.submit(row);
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `GET /`: the last hour, the jobs, the running configuration.
pub(super) async fn overview(State(c): State<Arc<Console>>, op: Operator) -> Response {
    let rt = c.runtime();
    let uptime = crate::reload::history::loads()
        .last()
        .and_then(|l| l.at.elapsed().ok())
        .unwrap_or_default();
    let summary = c.stats.summary(uptime);
    let jobs: Vec<(String, i64)> = crate::jobs::Status::ALL
        .iter()
        .map(|s| {
            (
                s.as_str().to_string(),
                crate::metrics::JOBS.with_label_values(&[s.as_str()]).get(),
            )
        })
        .collect();
    let unhealthy = rt
        .pools()
        .flat_map(|(name, s)| {
            s.pool.endpoints().iter().filter_map(move |e| {
                let up = crate::metrics::UPSTREAM_HEALTHY
                    .get_metric_with_label_values(&[name, &e.addr])
                    .map(|g| g.get())
                    .unwrap_or(1);
                (up == 0).then(|| format!("{name} {}", e.addr))
            })
        })
        .collect::<Vec<_>>();
    c.render(
        "overview.html",
        &op,
        context! {
            summary => summary,
            jobs => jobs,
            unhealthy => unhealthy,
            scopes => rt.upstreams.len(),
            hash => crate::reload::history::running_hash().unwrap_or_default(),
        },
    )
}

/// `GET /scopes`: each scope's upstreams (health, ejections, processes), the open legacy
/// streams, the running configuration and its reload history.
pub(super) async fn scopes(State(c): State<Arc<Console>>, op: Operator) -> Response {
    let rt = c.runtime();
    let mut scopes: Vec<Value> = rt
        .pools()
        .map(|(name, s)| {
            let upstreams: Vec<Value> = (s.pool.endpoints().iter())
                .map(|e| {
                    let labels = [name.as_str(), e.addr.as_str()];
                    let healthy = crate::metrics::UPSTREAM_HEALTHY
                        .get_metric_with_label_values(&labels)
                        .map(|g| g.get() == 1)
                        .unwrap_or(true);
                    let ejections = crate::metrics::UPSTREAM_EJECTIONS
                        .get_metric_with_label_values(&labels)
                        .map(|g| g.get())
                        .unwrap_or(0);
                    let kind = match (&e.target.spawn, e.target.legacy_sse) {
                        (Some(_), _) => "process the gateway runs",
                        (None, true) => "legacy HTTP+SSE",
                        (None, false) => "Streamable HTTP",
                    };
                    serde_json::json!({"addr": e.addr, "healthy": healthy, "ejections": ejections, "kind": kind,
                        "path": e.target.path})
                })
                .collect();
            let restarts = crate::metrics::PROCESS_RESTARTS
                .get_metric_with_label_values(&[name])
                .map(|g| g.get())
                .unwrap_or(0);
            serde_json::json!({"name": name, "upstreams": upstreams, "restarts": restarts,
                "tools": s.scope.tools.len(), "version": s.scope.upstream_version})
        })
        .collect();
    scopes.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let loads: Vec<Value> = crate::reload::history::loads()
        .into_iter()
        .map(|l| serde_json::json!({"at": time(l.at), "result": l.result, "hash": l.hash, "problems": l.problems}))
        .collect();
    c.render(
        "scopes.html",
        &op,
        context! {
            scopes => scopes,
            loads => loads,
            legacy_streams => rt.legacy.len(),
            source => rt.config.source.display().to_string(),
        },
    )
}

fn registry_store(c: &Console) -> Result<crate::registry::store::Store, Box<Response>> {
    match crate::registry::store::Store::for_audit(&c.runtime().config.audit) {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(Box::new(c.problem(
            StatusCode::NOT_FOUND,
            "No tool registry",
            "The registry keeps its definitions in the audit database or beside the audit file; auditing is off.",
        ))),
        Err(e) => Err(Box::new(c.problem(StatusCode::SERVICE_UNAVAILABLE, "The tool registry is unavailable", &e.to_string()))),
    }
}

/// The approved definition of a row: the pin in tools.yaml when there is one, else the
/// registry's approval.
fn approved(c: &Console, r: &crate::registry::store::Row) -> (Option<String>, bool) {
    let pin = c
        .runtime()
        .config
        .scopes
        .get(&r.scope)
        .and_then(|s| s.pins.get(&r.tool))
        .map(crate::registry::definition::hex);
    match pin {
        Some(p) => (Some(p), true),
        None => (r.approved_sha.clone(), false),
    }
}

fn status(r: &crate::registry::store::Row, approved: &Option<String>) -> &'static str {
    if !r.active {
        "inactive"
    } else if approved.is_some() && *approved != r.current_sha {
        "changed"
    } else {
        "approved"
    }
}

/// `GET /tools`: the registry, changed tools first.
pub(super) async fn tools(State(c): State<Arc<Console>>, op: Operator) -> Response {
    let store = match registry_store(&c) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let rows = match store.rows().await {
        Ok(r) => r,
        Err(e) => {
            return c.problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "The tool registry is unavailable",
                &e.to_string(),
            )
        }
    };
    let mut tools: Vec<Value> = rows
        .iter()
        .map(|r| {
            let (a, pinned) = approved(&c, r);
            serde_json::json!({"scope": r.scope, "tool": r.tool, "status": status(r, &a), "pinned": pinned,
                "current": r.current_sha.as_deref().map(|s| &s[..s.len().min(12)]),
                "last_seen": time(r.last_seen)})
        })
        .collect();
    tools.sort_by_key(|t| {
        (
            t["status"] != "changed",
            t["scope"].to_string(),
            t["tool"].to_string(),
        )
    });
    c.render("tools.html", &op, context! { tools => tools })
}

/// `GET /tools/S/T`: the definition, the approved one beside it as a line diff, the history,
/// and the approval form when it changed.
pub(super) async fn tool(
    State(c): State<Arc<Console>>,
    op: Operator,
    Path((scope, tool)): Path<(String, String)>,
) -> Response {
    let store = match registry_store(&c) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let unavailable = |e: &dyn std::fmt::Display| {
        c.problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "The tool registry is unavailable",
            &e.to_string(),
        )
    };
    let row = match store.rows().await {
        Ok(rows) => rows
            .into_iter()
            .find(|r| r.scope == scope && r.tool == tool),
        Err(e) => return unavailable(&e),
    };
    let Some(row) = row else {
        return c.problem(
            StatusCode::NOT_FOUND,
            "No such tool",
            "The registry has never seen this tool.",
        );
    };
    let (approved_sha, pinned) = approved(&c, &row);
    let definition = |sha: &Option<String>| {
        let store = &store;
        let sha = sha.clone();
        async move {
            match sha {
                Some(s) => store
                    .definition(&s)
                    .await
                    .map(|d| d.map(|d| serde_json::to_string_pretty(&d).unwrap_or_default())),
                None => Ok(None),
            }
        }
    };
    let (current, was) = match (
        definition(&row.current_sha).await,
        definition(&approved_sha).await,
    ) {
        (Ok(c), Ok(a)) => (c.unwrap_or_default(), a.unwrap_or_default()),
        (Err(e), _) | (_, Err(e)) => return unavailable(&e),
    };
    let state = status(&row, &approved_sha);
    let diff: Vec<Value> = if state == "changed" {
        similar::TextDiff::from_lines(&was, &current)
            .iter_all_changes()
            .map(|ch| {
                let sign = match ch.tag() {
                    similar::ChangeTag::Delete => "-",
                    similar::ChangeTag::Insert => "+",
                    similar::ChangeTag::Equal => " ",
                };
                serde_json::json!({"sign": sign, "line": ch.value().trim_end_matches('\n')})
            })
            .collect()
    } else {
        Vec::new()
    };
    let history: Vec<Value> = match store.history(&scope, &tool).await {
        Ok(events) => events
            .into_iter()
            .rev()
            .map(|e| serde_json::json!({"at": time(e.at), "event": e.event, "sha": e.sha256, "actor": e.actor}))
            .collect(),
        Err(e) => return unavailable(&e),
    };
    c.render(
        "tool.html",
        &op,
        context! {
            scope => scope, tool => tool, status => state, pinned => pinned,
            current_sha => row.current_sha, approved_sha => approved_sha,
            approved_by => row.approved_by, current => current, diff => diff, history => history,
        },
    )
}

#[derive(Deserialize)]
pub(super) struct Change {
    csrf: String,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
}

/// A form's origin and token: the operator's own, sent from this console.
fn checked(c: &Console, headers: &HeaderMap, op: &Operator, form: &Change) -> bool {
    let same_origin = match (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        (Some(o), Some(h)) => {
            o.to_str()
                .ok()
                .and_then(|o| o.split_once("://"))
                .map(|(_, rest)| rest)
                == h.to_str().ok()
        }
        (None, _) => true,
        _ => false,
    };
    same_origin && super::login::csrf_ok(&form.csrf, &op.user, &c.runtime().sessions)
}

/// `POST /tools/S/T/approve`: approves the definition the page showed (its SHA-256).
pub(super) async fn approve(
    State(c): State<Arc<Console>>,
    op: Operator,
    headers: HeaderMap,
    Path((scope, tool)): Path<(String, String)>,
    Form(form): Form<Change>,
) -> Response {
    let target = format!("{scope}/{tool}");
    if !checked(&c, &headers, &op, &form) {
        audited(
            &c,
            &op.user,
            "console/approve",
            Some(target),
            Class::Denied,
            Some("the form's origin or CSRF token is not this console's".into()),
        );
        return c.problem(
            StatusCode::FORBIDDEN,
            "Not done",
            "The form did not come from this console's page: open the page again.",
        );
    }
    if c.runtime()
        .config
        .scopes
        .get(&scope)
        .is_some_and(|s| s.pins.contains_key(&tool))
    {
        return c.problem(
            StatusCode::CONFLICT,
            "Pinned in tools.yaml",
            "This tool's version is pinned in tools.yaml: change the pin there.",
        );
    }
    let store = match registry_store(&c) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let actor = format!("console:{}", op.user);
    match store
        .approve(&scope, &tool, form.sha256.as_deref(), &actor)
        .await
    {
        Ok(sha) => {
            audited(
                &c,
                &op.user,
                "console/approve",
                Some(target),
                Class::Ok,
                Some(format!("approved {sha}")),
            );
            Redirect::to(&format!("/tools/{scope}/{tool}")).into_response()
        }
        Err(e) => c.problem(StatusCode::CONFLICT, "Not approved", &e.to_string()),
    }
}

#[derive(Deserialize)]
pub(super) struct AuditParams {
    #[serde(default)]
    user: String,
    #[serde(default)]
    tool: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    request_id: String,
    /// The last N minutes (empty: all).
    #[serde(default)]
    minutes: String,
    #[serde(default)]
    page: usize,
}

/// `GET /audit`: the audit trail, searched by user, tool, outcome, request id and time; newest
/// first, a page at a time.
pub(super) async fn audit(
    State(c): State<Arc<Console>>,
    op: Operator,
    Query(p): Query<AuditParams>,
) -> Response {
    let given = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    let since = p
        .minutes
        .trim()
        .parse::<u64>()
        .ok()
        .map(|m| SystemTime::now() - Duration::from_secs(m * 60));
    let q = AuditQuery {
        request_id: given(&p.request_id),
        user: given(&p.user),
        tool: given(&p.tool),
        outcome: given(&p.outcome),
        since,
        offset: p.page.min(10_000) * PAGE,
        limit: PAGE + 1,
    };
    let mut rows = match crate::audit::search::search(&c.runtime().config.audit.sink, &q).await {
        Ok(r) => r,
        Err(e) => {
            return c.problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "The audit trail cannot be read",
                &e.to_string(),
            )
        }
    };
    let more = rows.len() > PAGE;
    rows.truncate(PAGE);
    // The arguments (sealed or hashed) stay out of the page.
    for r in &mut rows {
        if let Some(o) = r.as_object_mut() {
            o.remove("arguments");
        }
    }
    let query = serde_urlencoded::to_string([
        ("user", p.user.as_str()),
        ("tool", p.tool.as_str()),
        ("outcome", p.outcome.as_str()),
        ("request_id", p.request_id.as_str()),
        ("minutes", p.minutes.as_str()),
    ])
    .unwrap_or_default();
    c.render(
        "audit.html",
        &op,
        context! {
            rows => rows, more => more, page_no => p.page, query => query,
            user => p.user, tool => p.tool, outcome => p.outcome, request_id => p.request_id, minutes => p.minutes,
            outcomes => ["ok", "tool_error", "rpc_error", "invalid", "denied", "invalid_arguments", "unauthenticated",
                "rate_limited", "unavailable", "upstream_error", "timeout", "sign_in_required", "internal"],
        },
    )
}

#[derive(Deserialize)]
pub(super) struct JobsParams {
    #[serde(default)]
    status: String,
    #[serde(default)]
    page: usize,
}

/// `GET /jobs`: every owner's jobs, newest first.
pub(super) async fn jobs(
    State(c): State<Arc<Console>>,
    op: Operator,
    Query(p): Query<JobsParams>,
) -> Response {
    let rt = c.runtime();
    let store = match rt.jobs.store() {
        Ok(s) => s,
        Err(e) => {
            return c.problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Jobs are off",
                &e.to_string(),
            )
        }
    };
    let filter = crate::jobs::store::Filter {
        status: crate::jobs::Status::parse(&p.status),
        scope: None,
    };
    let list = store
        .list(None, filter, p.page.min(10_000) * PAGE, PAGE + 1)
        .await;
    let mut jobs = match list {
        Ok(j) => j,
        Err(e) => {
            return c.problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "The jobs cannot be read",
                &e.to_string(),
            )
        }
    };
    let more = jobs.len() > PAGE;
    jobs.truncate(PAGE);
    let now = SystemTime::now();
    let rows: Vec<Value> = jobs
        .iter()
        .map(|j| {
            let end = if j.status.is_final() { j.updated } else { now };
            let secs = end.duration_since(j.created).unwrap_or_default().as_secs_f64();
            serde_json::json!({"id": j.id, "user": j.owner.user, "tenant": j.owner.tenant, "scope": j.scope, "tool": j.tool,
                "kind": j.kind.as_str(), "status": j.status.as_str(), "live": !j.status.is_final(),
                "created": time(j.created), "seconds": format!("{secs:.1}"), "message": j.message})
        })
        .collect();
    c.render(
        "jobs.html",
        &op,
        context! { jobs => rows, more => more, page_no => p.page, status => p.status,
        statuses => crate::jobs::Status::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>() },
    )
}

/// `POST /jobs/ID/cancel`: cancels a job of the owner the page named.
pub(super) async fn cancel(
    State(c): State<Arc<Console>>,
    op: Operator,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Change>,
) -> Response {
    if !checked(&c, &headers, &op, &form) {
        audited(
            &c,
            &op.user,
            "console/cancel",
            Some(id),
            Class::Denied,
            Some("the form's origin or CSRF token is not this console's".into()),
        );
        return c.problem(
            StatusCode::FORBIDDEN,
            "Not done",
            "The form did not come from this console's page: open the page again.",
        );
    }
    let owner = crate::jobs::Owner {
        user: form.user.unwrap_or_default(),
        tenant: form.tenant.unwrap_or_default(),
    };
    match c.runtime().jobs.cancel(&id, &owner).await {
        Ok(Some(job)) => {
            audited(
                &c,
                &op.user,
                "console/cancel",
                Some(format!("job {id}")),
                Class::Ok,
                Some(format!(
                    "job of {} is {}",
                    job.owner.user,
                    job.status.as_str()
                )),
            );
            Redirect::to("/jobs").into_response()
        }
        Ok(None) => c.problem(
            StatusCode::NOT_FOUND,
            "No such job",
            "The job is gone (expired or never there).",
        ),
        Err(e) => c.problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not cancelled",
            &e.to_string(),
        ),
    }
}

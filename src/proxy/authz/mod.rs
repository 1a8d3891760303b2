//! Step 4, authorize: default deny for every method that crosses the gateway.
//!
//! A caller with no grant in a scope gets 403 for every request on it (`admit_caller`). For a
//! caller with one, each message is judged by its method (`method_rule`):
//! - the lifecycle (`initialize`, `ping`, `server/discover`, `logging/setLevel`, notifications,
//!   and the client's answers to server requests: sampling, elicitation, roots) passes;
//! - `tools/call`, `prompts/get`, `resources/read|subscribe|unsubscribe` and `completion/complete`
//!   pass only for what one of the caller's roles is granted; anything else is answered exactly as
//!   a tool, prompt or resource that does not exist, so callers cannot learn what there is (the
//!   real reason goes to the log and the audit row);
//! - the list methods pass when the caller holds a grant of that kind, and their answers are
//!   filtered (see `filter`);
//! - `tasks/*`: on a scope whose tasks the gateway runs (`tasks: gateway`), they pass and are
//!   answered from the caller's own jobs (another user's task id is unknown to them); on a scope
//!   that leaves tasks to its upstreams, only inside a session the caller owns (a task id alone
//!   proves nothing);
//! - any other method is refused as not found, unless the scope names it in `allow_methods`.

use super::ctx::{Admitted, RequestCtx};
use super::filter::ResponseRewrite;
use crate::error::{Denied, GatewayError};
use crate::jsonrpc::{Message, Rpc, Target};
use crate::policy::condition::Facts;
use crate::policy::{Kind, Policy, Verdict};
use crate::protocol::method;

/// What to do with a parsed request.
pub enum Decision {
    Forward,
    /// Refuse the single request with this error.
    Refuse(GatewayError),
    /// Answer a batch here: the JSON array to send (a batch is never half forwarded).
    Answer(Vec<u8>),
}

/// Refuses a caller that holds no grant at all in the request's scope, whatever the request.
pub fn admit_caller(ctx: &RequestCtx) -> Result<(), GatewayError> {
    let Admitted {
        scope, identity, ..
    } = ctx.admitted()?;
    if ctx
        .rt
        .config
        .policy
        .any_in_scope(&identity.roles, &scope.scope.name)
    {
        return Ok(());
    }
    tracing::info!(
        request_id = %ctx.request_id,
        user = %crate::logs::clip(&identity.user),
        scope = %scope.scope.name,
        "no grant in this scope"
    );
    Err(GatewayError::Forbidden("no grant for this scope".into()))
}

pub fn decide(ctx: &mut RequestCtx, rpc: &Rpc) -> Decision {
    let caller = match ctx.admitted() {
        Ok(c) => c,
        Err(e) => return Decision::Refuse(e),
    };
    let policy = &ctx.rt.config.policy;
    let mut refusals: Vec<(usize, GatewayError)> = Vec::new();
    let mut filter_list = false;
    let mut decided_by = None;
    for (i, m) in rpc.messages().iter().enumerate() {
        let f = |method| facts(ctx, caller, m, method);
        match method_rule(policy, caller, m, f)
            .and_then(|r| governed(&ctx.rt.registry, caller, m, r))
        {
            Ok(Rule::Pass) => {}
            Ok(Rule::PassBy(rule)) => {
                decided_by.get_or_insert(rule);
            }
            Ok(Rule::FilterList) => filter_list = true,
            Err(e) => {
                if let GatewayError::NotPermitted {
                    rule, condition, ..
                } = &e
                {
                    decided_by.get_or_insert_with(|| by(rule, condition));
                }
                refusals.push((i, e));
            }
        }
    }
    // One line per HTTP request, however many messages of a batch were refused.
    let denied = refusals.iter().find_map(|(i, e)| match e {
        GatewayError::Denied(d) => Some((*i, d)),
        _ => None,
    });
    if let Some((i, d)) = denied {
        let method = rpc.messages()[i].method.as_deref().unwrap_or("");
        tracing::info!(
            request_id = %ctx.request_id,
            user = %crate::logs::clip(&caller.identity.user),
            method = %crate::logs::clip(method),
            name = %crate::logs::clip(d.name()),
            reason = d.reason(),
            refused = refusals.len(),
            messages = rpc.messages().len(),
            "request refused"
        );
    }
    ctx.decided_by = decided_by;
    if filter_list {
        ctx.answer.rewrite = ResponseRewrite::pending_list();
    }
    if refusals.is_empty() {
        return Decision::Forward;
    }
    match rpc {
        Rpc::Single(_) => Decision::Refuse(refusals.remove(0).1),
        Rpc::Batch(messages) => {
            let mut out = b"[".to_vec();
            let mut first = true;
            for (i, m) in messages.iter().enumerate() {
                let Some(id) = m.id.as_deref().filter(|_| m.is_request()) else {
                    continue;
                };
                let err = match refusals.iter().find(|(j, _)| *j == i) {
                    Some((_, e)) => e.clone(),
                    None => GatewayError::InvalidRequest(
                        "not executed: another call in this batch was refused".into(),
                    ),
                };
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(&err.body(Some(id)));
            }
            out.push(b']');
            // The batch is audited and counted by the first refusal it holds.
            ctx.answer.batch_refusal = refusals.into_iter().next().map(|(_, e)| e);
            Decision::Answer(out)
        }
    }
}

/// A permitted `tools/call` on its tool's definition: held back while the scope pins a version
/// the upstreams do not offer (`pin: strict`), and its arguments checked against the served
/// version's `inputSchema` (`validate_arguments`).
fn governed(
    registry: &crate::registry::Registry,
    caller: &Admitted,
    m: &Message,
    rule: Rule,
) -> Result<Rule, GatewayError> {
    if m.method.as_deref() != Some(method::TOOLS_CALL) {
        return Ok(rule);
    }
    let scope = &caller.scope.scope;
    let tool = m.tool.as_deref().unwrap_or("");
    let version = registry
        .call(scope, tool)
        .map_err(|reason| GatewayError::Denied(Denied::tool(tool, reason)))?;
    let Some(validator) = version
        .as_ref()
        .and_then(|v| v.validator.as_ref())
        .filter(|_| scope.validate_arguments)
    else {
        return Ok(rule);
    };
    let raw_len = m.arguments.as_deref().map_or(0, str::len);
    if raw_len as u64 > scope.validate_max_bytes {
        return Err(GatewayError::InvalidArguments {
            tool: tool.to_string(),
            detail: format!(
                "the arguments are {raw_len} bytes, more than this scope validates ({} bytes, validate_arguments_max_bytes)",
                scope.validate_max_bytes
            ),
        });
    }
    let arguments = match m.arguments.as_deref() {
        Some(raw) => serde_json::from_str(raw)
            .map_err(|_| GatewayError::InvalidParams("arguments must be JSON".into()))?,
        None => serde_json::Value::Object(Default::default()),
    };
    crate::registry::definition::check(validator, &arguments).map_err(|detail| {
        GatewayError::InvalidArguments {
            tool: tool.to_string(),
            detail,
        }
    })?;
    Ok(rule)
}

/// What a condition may read of one message of the request.
pub fn facts<'a>(
    ctx: &'a RequestCtx,
    caller: &'a Admitted,
    m: &'a Message,
    method: &'a str,
) -> Facts<'a> {
    let (resource, prompt) = match &m.target {
        Some(Target::Resource(uri)) => (Some(uri.as_str()), None),
        Some(Target::Prompt(name)) => (None, Some(name.as_str())),
        _ => (None, None),
    };
    Facts {
        identity: &caller.identity,
        scope: &caller.scope.scope.name,
        method,
        tool: m.tool.as_deref(),
        arguments: m.arguments.as_deref(),
        resource,
        prompt,
        client_cert: ctx.client_cert.as_deref(),
    }
}

/// The audit row's words for a conditional grant (bounded: a condition is at most 4 KiB).
fn by(rule: &str, condition: &str) -> String {
    format!("{rule} when {}", crate::logs::clip(condition))
}

/// The grant with a condition that allows the message, or the refusal that names the rule.
fn conditionally(
    grants: &[&crate::policy::Conditional],
    facts: &Facts,
) -> Result<Rule, GatewayError> {
    match crate::policy::first_holding(grants, facts) {
        Ok(g) => Ok(Rule::PassBy(by(&g.rule, &g.condition.source))),
        Err(r) => Err(GatewayError::NotPermitted {
            rule: r.grant.map_or_else(String::new, |g| g.rule.clone()),
            condition: r
                .grant
                .map_or_else(String::new, |g| g.condition.source.clone()),
            why: r.why,
        }),
    }
}

/// What a permitted message needs.
enum Rule {
    Pass,
    /// Allowed by a grant with a condition: its rule and condition, for the audit row.
    PassBy(String),
    /// A list (or the `initialize` result) whose answer is filtered to what the caller may see.
    FilterList,
}

fn method_rule<'a>(
    policy: &Policy,
    caller: &Admitted,
    m: &'a Message,
    facts: impl Fn(&'a str) -> Facts<'a>,
) -> Result<Rule, GatewayError> {
    let Admitted {
        scope,
        identity,
        session,
        ..
    } = caller;
    let (roles, scope_name) = (identity.roles.as_slice(), scope.scope.name.as_str());
    // A client's answer to a server request (sampling, elicitation, roots) carries no method.
    let Some(method) = m.method.as_deref() else {
        return Ok(Rule::Pass);
    };
    let denied = |d: Denied| Err(GatewayError::Denied(d));
    match method {
        // The initialize and discover results advertise only the capabilities the caller may use.
        method::INITIALIZE | method::SERVER_DISCOVER => Ok(Rule::FilterList),
        method::PING | method::LOGGING_SET_LEVEL => Ok(Rule::Pass),
        _ if method.starts_with("notifications/") => Ok(Rule::Pass),
        // Its stream's notifications are cut like a list: only changes to what the caller sees.
        method::TOOLS_LIST | method::SUBSCRIPTIONS_LISTEN => Ok(Rule::FilterList),
        method::TOOLS_CALL => {
            let tool = m.tool.as_deref().unwrap_or("");
            if !scope.scope.tools.contains(tool) {
                return denied(Denied::tool(tool, "tool not exposed by this scope"));
            }
            match policy.tool_verdict(roles, scope_name, tool) {
                Verdict::Granted => Ok(Rule::Pass),
                Verdict::Conditional(c) => conditionally(&c, &facts(method)),
                Verdict::NotGranted => denied(Denied::tool(
                    tool,
                    "tool not granted to any of the caller's roles",
                )),
            }
        }
        method::RESOURCES_LIST | method::RESOURCE_TEMPLATES_LIST | method::PROMPTS_LIST => {
            let kind = if method.starts_with("prompts/") {
                Kind::Prompt
            } else {
                Kind::Resource
            };
            if policy.grants_kind(roles, scope_name, kind) {
                Ok(Rule::FilterList)
            } else {
                denied(Denied::method(method, "no grant of this kind in the scope"))
            }
        }
        method::PROMPTS_GET
        | method::RESOURCES_READ
        | method::RESOURCES_SUBSCRIBE
        | method::RESOURCES_UNSUBSCRIBE
        | method::COMPLETION_COMPLETE => {
            let (kind, name) = match &m.target {
                Some(Target::Prompt(name)) => (Kind::Prompt, name.as_str()),
                Some(Target::Resource(uri)) => (Kind::Resource, uri.as_str()),
                None | Some(Target::Task(_)) => return Err(GatewayError::Internal),
            };
            match policy.kind_verdict(roles, scope_name, kind, name) {
                Verdict::Granted => Ok(Rule::Pass),
                Verdict::Conditional(c) => conditionally(&c, &facts(method)),
                Verdict::NotGranted if kind == Kind::Prompt => denied(Denied::prompt(
                    name,
                    "prompt not granted to any of the caller's roles",
                )),
                Verdict::NotGranted => denied(Denied::resource(
                    name,
                    "resource not granted to any of the caller's roles",
                )),
            }
        }
        method::TASKS_GET | method::TASKS_RESULT | method::TASKS_LIST | method::TASKS_CANCEL => {
            if session.is_some() || scope.scope.tasks == crate::config::file::TaskMode::Gateway {
                Ok(Rule::Pass)
            } else {
                denied(Denied::method(
                    method,
                    "tasks are reachable only inside the caller's own session",
                ))
            }
        }
        _ if scope.scope.allow_methods.iter().any(|a| a == method) => Ok(Rule::Pass),
        _ => denied(Denied::method(method, "method not known to the gateway")),
    }
}

#[cfg(test)]
mod tests;

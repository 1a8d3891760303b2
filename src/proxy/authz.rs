//! Step 4, authorize: a `tools/call` reaches an upstream only for a tool the scope exposes and one
//! of the caller's roles is granted. Anything else is answered exactly as a tool that does not
//! exist, so callers cannot learn which tools there are; the real reason goes to the log.

use super::ctx::RequestCtx;
use super::filter::ResponseRewrite;
use crate::error::GatewayError;
use crate::jsonrpc::Rpc;

/// What to do with a parsed request.
pub enum Decision {
    Forward,
    /// Refuse the single request with this error.
    Refuse(GatewayError),
    /// Answer a batch here: the JSON array to send (a batch is never half forwarded).
    Answer(Vec<u8>),
}

pub fn decide(ctx: &mut RequestCtx, rpc: &Rpc) -> Decision {
    let mut refusals: Vec<(usize, GatewayError)> = Vec::new();
    for (i, m) in rpc.messages().iter().enumerate() {
        if m.method.as_deref() == Some("tools/list") {
            ctx.rewrite = ResponseRewrite::pending_tools_list();
        }
        if let Some(tool) = &m.tool {
            if let Err(reason) = check_tool(ctx, tool) {
                tracing::info!(
                    request_id = %ctx.request_id,
                    user = ctx.identity.as_ref().map(|i| i.user.as_str()).unwrap_or(""),
                    tool = %tool,
                    reason,
                    "tools/call refused"
                );
                refusals.push((
                    i,
                    GatewayError::UnknownTool {
                        tool: tool.clone(),
                        reason,
                    },
                ));
            }
        }
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
            Decision::Answer(out)
        }
    }
}

fn check_tool(ctx: &RequestCtx, tool: &str) -> Result<(), &'static str> {
    let (Some(scope), Some(identity)) = (&ctx.scope, &ctx.identity) else {
        return Err("no identity");
    };
    if !scope.scope.tools.iter().any(|t| t == tool) {
        return Err("tool not exposed by this scope");
    }
    if !ctx
        .rt
        .config
        .policy
        .allows(&identity.roles, &scope.scope.name, tool)
    {
        return Err("tool not granted to any of the caller's roles");
    }
    Ok(())
}

/// The tools of this request's scope the caller may see.
pub fn visible_tools(ctx: &RequestCtx) -> Vec<String> {
    let (Some(scope), Some(identity)) = (&ctx.scope, &ctx.identity) else {
        return Vec::new();
    };
    let policy = &ctx.rt.config.policy;
    scope
        .scope
        .tools
        .iter()
        .filter(|t| policy.allows(&identity.roles, &scope.scope.name, t))
        .cloned()
        .collect()
}

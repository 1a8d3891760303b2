//! The 2026-07-28 revision at the door. Its requests are stateless: each carries its protocol
//! version and the client's capabilities in `params._meta`, and repeats its method (and the tool,
//! prompt or resource it names) in the `Mcp-Method` / `Mcp-Name` headers so intermediaries can
//! route without reading the body. The gateway reads the body anyway and decides on it; a header
//! that says something else is refused (400, -32020), so a header can never carry a request past
//! the policy the body is judged by. Older revisions have no such headers, but one a client sends
//! anyway is held to the same rule. Checked after authentication, before authorization.

use super::names;
use crate::error::GatewayError;
use crate::jsonrpc::{Rpc, Target, MODERN_VERSION};
use crate::protocol::method;
use pingora_proxy::Session;

/// Methods 2026-07-28 removed (sessions, liveness and subscriptions moved elsewhere; the tasks
/// extension answers results in `tasks/get` and lists no tasks).
const REMOVED: &[&str] = &[
    method::INITIALIZE,
    method::PING,
    method::RESOURCES_SUBSCRIBE,
    method::RESOURCES_UNSUBSCRIBE,
    method::LOGGING_SET_LEVEL,
    method::TASKS_RESULT,
    method::TASKS_LIST,
];

/// Checks a request's routing headers against its body: on 2026-07-28 (`modern`, the caller knows
/// from `RequestCtx::is_modern`) the envelope and `Mcp-Method` (and `Mcp-Name` where the method
/// names something) must be there and agree; on every other revision the headers are optional,
/// but one that is present must agree too, so an upstream that routes by header never acts on
/// something the policy did not judge.
pub fn check(session: &Session, rpc: &Rpc, modern: bool) -> Result<(), GatewayError> {
    let headers = &session.req_header().headers;
    let m = match rpc {
        Rpc::Single(m) => m,
        Rpc::Batch(_) if modern => {
            return Err(GatewayError::InvalidRequest(
                "2026-07-28 has no JSON-RPC batches".into(),
            ))
        }
        Rpc::Batch(_) => {
            if headers.contains_key(&names::MCP_METHOD) || headers.contains_key(&names::MCP_NAME) {
                return Err(GatewayError::HeaderMismatch(
                    "Mcp-Method and Mcp-Name cannot describe a JSON-RPC batch",
                ));
            }
            return Ok(());
        }
    };
    // A client's answer carries no method and no envelope.
    let Some(method) = m.method.as_deref() else {
        if !modern && headers.contains_key(&names::MCP_METHOD) {
            return Err(GatewayError::HeaderMismatch(
                "Mcp-Method does not match the body's method",
            ));
        }
        return Ok(());
    };
    // Methods the revision removed are unknown to a 2026-07-28 client's request (404 -32601),
    // whatever its upstream speaks.
    if let Some(unknown) = removed(method).filter(|_| modern) {
        return Err(unknown);
    }
    // A body in the 2026-07-28 envelope sent as another revision (no header, or an older one):
    // its upstream would be told one revision and read another.
    let envelope_version = m.envelope.as_ref().and_then(|e| e.version.as_deref());
    if !modern && envelope_version == Some(MODERN_VERSION) {
        return Err(GatewayError::HeaderMismatch(
            "a 2026-07-28 request (params._meta) needs MCP-Protocol-Version: 2026-07-28",
        ));
    }
    if modern && m.id.is_some() {
        let envelope = m
            .envelope
            .as_ref()
            .filter(|e| e.version.is_some() && e.capabilities)
            .ok_or(GatewayError::InvalidParams(
                "params._meta must carry io.modelcontextprotocol/protocolVersion and io.modelcontextprotocol/clientCapabilities".into(),
            ))?;
        if envelope.version.as_deref() != Some(MODERN_VERSION) {
            return Err(GatewayError::HeaderMismatch(
                "MCP-Protocol-Version does not match the protocol version in params._meta",
            ));
        }
    }
    match headers.get(&names::MCP_METHOD) {
        None if !modern => {}
        Some(v) if v.as_bytes() == method.as_bytes() => {}
        _ => {
            return Err(GatewayError::HeaderMismatch(
                "Mcp-Method does not match the body's method",
            ))
        }
    }
    // `Mcp-Name` is judged where it names the tool, prompt or resource the policy decides on.
    let Some(named) = routed_name(method, m) else {
        return Ok(());
    };
    let header = headers.get(&names::MCP_NAME);
    if !modern && header.is_none() {
        return Ok(());
    }
    let header = header.and_then(|v| v.to_str().ok()).and_then(header_value);
    // A resource is compared in its normal form, as its grant is.
    let header = match (method, header) {
        (method::RESOURCES_READ, Some(h)) => crate::uri::normalize(&h).ok(),
        (_, h) => h,
    };
    if header.as_deref() != Some(named) {
        return Err(GatewayError::HeaderMismatch(
            "Mcp-Name does not match the name in the body",
        ));
    }
    Ok(())
}

/// A method 2026-07-28 removed: unknown to a request of that revision (404 -32601), whatever its
/// params say.
pub fn removed(method: &str) -> Option<GatewayError> {
    REMOVED.contains(&method).then(|| {
        GatewayError::Denied(crate::error::Denied::method(
            method,
            "removed in the 2026-07-28 revision",
        ))
    })
}

/// What `Mcp-Name` carries for a method: the tool, prompt or resource the body names.
pub fn routed_name<'m>(method: &str, m: &'m crate::jsonrpc::Message) -> Option<&'m str> {
    match (method, &m.target) {
        (method::TOOLS_CALL, _) => m.tool.as_deref(),
        (method::PROMPTS_GET, Some(Target::Prompt(name))) => Some(name.as_str()),
        (method::RESOURCES_READ, Some(Target::Resource(uri))) => Some(uri.as_str()),
        _ => None,
    }
}

/// A header value as the revision encodes it: as it is, or `=?base64?…?=` for values that are not
/// plain printable ASCII.
fn header_value(raw: &str) -> Option<String> {
    use base64::Engine;
    match raw
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
        None => Some(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::header_value;

    #[test]
    fn header_values_plain_and_base64() {
        assert_eq!(
            header_value("exact_calculate").as_deref(),
            Some("exact_calculate")
        );
        assert_eq!(header_value("=?base64?w6lsw6ll?=").as_deref(), Some("élée"));
        assert_eq!(header_value("=?base64?!!?="), None);
        for v in ["exact_calculate", "élée", " padded", "file:///a b"] {
            assert_eq!(
                header_value(&crate::protocol::encode_header_value(v)).as_deref(),
                Some(v)
            );
        }
    }
}

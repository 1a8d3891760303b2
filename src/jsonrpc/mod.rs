//! JSON-RPC 2.0 as the gateway needs it: one pass over the body that borrows from it, yielding the
//! method, the raw id (echoed back verbatim in errors), the tool of a `tools/call` and the prompt or
//! resource a method names. The body itself is forwarded unchanged, but for a resource URI that
//! was not in its normal form (`crate::uri`): grants are matched against the normal form, and the
//! body goes on with it (`with_normal_uri`), so the upstream reads what was granted.
//!
//! Names are bounded here, before any authorization work: a method or tool or prompt name longer
//! than `MAX_NAME` bytes, or a resource URI longer than `MAX_URI`, is a bad request (no real one is
//! that long, and everything read here ends up in logs and audit rows).

pub mod shape;
mod wire;

use crate::error::GatewayError;
use crate::protocol::method;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use wire::{Body, Params, Reference, Wire};

pub use crate::protocol::{
    DEFAULT_VERSION, META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION, MODERN_VERSION,
    SUPPORTED_VERSIONS,
};

/// The longest method, tool or prompt name accepted (the MCP spec caps tool names at 128).
pub const MAX_NAME: usize = 128;
/// The longest resource URI accepted.
pub const MAX_URI: usize = 2048;

/// The prompt or resource a request names (`prompts/get`, `resources/read|subscribe|unsubscribe`,
/// and the `ref` of `completion/complete`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Prompt(String),
    Resource(String),
    /// The `taskId` of `tasks/get`, `tasks/result` and `tasks/cancel`.
    Task(String),
}

/// One JSON-RPC message as far as the gateway cares.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// `None` for a response sent by the client (to a server request).
    pub method: Option<String>,
    /// The id exactly as it appeared, e.g. `7` or `"a"`; `None` for notifications.
    pub id: Option<String>,
    /// The tool name of a `tools/call`.
    pub tool: Option<String>,
    /// The raw `arguments` of a `tools/call`, kept only when the audit trail records them.
    pub arguments: Option<String>,
    /// The prompt or resource the request names.
    pub target: Option<Target>,
    /// `params._meta`'s protocol envelope, when the request carries `_meta` (2026-07-28).
    pub envelope: Option<Envelope>,
    /// A `tools/call` that asks to run as a task (`params.task` is an object).
    pub task: bool,
    /// The resource URI the client sent was not in its normal form: `target` holds the normal
    /// form, and the body must be rewritten to it before it goes on.
    pub uri_normalized: bool,
}

/// What `params._meta` says of the protocol (2026-07-28): the version, if a string, whether the
/// client's capabilities are there, and whether they declare the tasks extension; and the
/// caller's trace context.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    pub version: Option<String>,
    pub capabilities: bool,
    pub tasks: bool,
    /// W3C trace context where MCP clients put it (`traceparent`, `tracestate`), when strings of
    /// a plausible size.
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl Message {
    pub fn is_request(&self) -> bool {
        self.method.is_some() && self.id.is_some()
    }
}

/// A parsed body: one message, or a batch (protocol 2025-03-26 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rpc {
    Single(Message),
    Batch(Vec<Message>),
}

impl Rpc {
    pub fn messages(&self) -> &[Message] {
        match self {
            Rpc::Single(m) => std::slice::from_ref(m),
            Rpc::Batch(v) => v,
        }
    }
    /// The first message, which names the request in logs (a batch is named by its first).
    pub fn first(&self) -> Option<&Message> {
        self.messages().first()
    }
}

/// A body the gateway refuses, with the id of its request when that could still be read (JSON-RPC
/// answers an error with the request's id whenever it can).
#[derive(Debug)]
pub struct Refusal {
    pub error: GatewayError,
    pub id: Option<String>,
    /// The method, when a single message named one (a revision may answer a method it removed as
    /// unknown, whatever its params).
    pub method: Option<String>,
}

impl From<Refusal> for GatewayError {
    fn from(r: Refusal) -> Self {
        r.error
    }
}

/// Parses a request body. `batches_allowed` follows the negotiated protocol version.
pub fn parse(body: &[u8], batches_allowed: bool, keep_arguments: bool) -> Result<Rpc, Refusal> {
    read(body, batches_allowed, keep_arguments).map_err(|error| {
        let (id, method) = readable_head(body);
        Refusal { error, id, method }
    })
}

/// The `id` and `method` of a single message whose other parts could not be read: a JSON object
/// with a valid `id` member, a string `method`. Each is read on its own, so a message that repeats
/// one still gives the other.
fn readable_head(body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(Deserialize)]
    struct OnlyId<'a> {
        #[serde(borrow)]
        id: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct OnlyMethod<'a> {
        #[serde(borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return (None, None);
    }
    let id = (serde_json::from_slice::<OnlyId<'_>>(body).ok())
        .and_then(|h| h.id)
        .map(|i| i.get())
        .filter(|t| valid_id(t))
        .map(str::to_string);
    let method = (serde_json::from_slice::<OnlyMethod<'_>>(body).ok())
        .and_then(|h| h.method)
        .map(|m| m.into_owned());
    (id, method)
}

/// JSON-RPC ids the gateway passes on: strings, and integers that fit 64 bits (MCP allows no
/// others; `1e400` or `1.5` would be read differently by every upstream).
fn valid_id(text: &str) -> bool {
    text.starts_with('"') || text.parse::<i64>().is_ok()
}

fn read(body: &[u8], batches_allowed: bool, keep_arguments: bool) -> Result<Rpc, GatewayError> {
    // JSON is UTF-8 (RFC 8259). serde_json skips the raw parts it borrows without checking them,
    // so without this a body an upstream's parser refuses could pass here.
    let Ok(text) = std::str::from_utf8(body) else {
        return Err(GatewayError::ParseError(
            "the body is not valid UTF-8".into(),
        ));
    };
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(GatewayError::InvalidRequest("empty body".into()));
    }
    // The one pass stops at its first problem, which may be a wrong type or a bad message ahead
    // of a broken bound: a refused body is walked again for its shape, and a bound it broke (or
    // a syntax error further on) is what the refusal names.
    messages(text, batches_allowed, keep_arguments)
        .map_err(|e| shape::check(body).err().unwrap_or(e))
}

/// The messages of a well-formed body, read and shape-checked in one pass.
fn messages(body: &str, batches_allowed: bool, keep_arguments: bool) -> Result<Rpc, GatewayError> {
    match wire::read(body).map_err(classify)? {
        Body::Batch(wires) => {
            if !batches_allowed {
                return Err(GatewayError::InvalidRequest(
                    "JSON-RPC batches are not allowed in this protocol version".into(),
                ));
            }
            if wires.is_empty() {
                return Err(GatewayError::InvalidRequest("empty batch".into()));
            }
            wires
                .into_iter()
                .map(|w| message(w, keep_arguments))
                .collect::<Result<Vec<_>, _>>()
                .map(Rpc::Batch)
        }
        Body::One(wire) => message(wire, keep_arguments).map(Rpc::Single),
    }
}

fn classify(e: serde_json::Error) -> GatewayError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => GatewayError::ParseError(e.to_string()),
        Category::Data => {
            GatewayError::InvalidRequest(format!("not a JSON-RPC 2.0 message: {e}").into())
        }
    }
}

fn message(w: Wire<'_>, keep_arguments: bool) -> Result<Message, GatewayError> {
    if w.jsonrpc.as_deref() != Some("2.0") {
        return Err(GatewayError::InvalidRequest(
            "jsonrpc must be \"2.0\"".into(),
        ));
    }
    let id = w.id.map(id_of).transpose()?;
    match w.method {
        Some(method) => request(method, id, w.params, keep_arguments),
        None if w.answer && id.is_some() => Ok(Message {
            id,
            ..Message::default()
        }),
        None => Err(GatewayError::InvalidRequest(
            "a JSON-RPC message needs a method, or a result/error and an id".into(),
        )),
    }
}

fn id_of(raw: &RawValue) -> Result<String, GatewayError> {
    let text = raw.get();
    if !valid_id(text) {
        return Err(GatewayError::InvalidRequest(
            "id must be a string or an integer of at most 64 bits".into(),
        ));
    }
    Ok(text.to_string())
}

/// A request or notification: its method bounded, and what the method names read from `params`.
fn request(
    method: Cow<'_, str>,
    id: Option<String>,
    mut params: Option<Params<'_>>,
    keep_arguments: bool,
) -> Result<Message, GatewayError> {
    if method.starts_with("notifications/") && id.is_some() {
        return Err(GatewayError::InvalidRequest(
            "a notification carries no id (notifications/* are never answered)".into(),
        ));
    }
    if method.len() > MAX_NAME {
        return Err(GatewayError::InvalidRequest(
            "method name longer than 128 bytes".into(),
        ));
    }
    let envelope = params.as_mut().and_then(|p| p.meta.take());
    let task = params.as_ref().is_some_and(|p| p.task);
    let mut uri_normalized = false;
    let named = named(&method, params, keep_arguments, &mut uri_normalized)?;
    Ok(Message {
        arguments: named.arguments,
        method: Some(method.into_owned()),
        id,
        tool: named.tool,
        target: named.target,
        envelope,
        task,
        uri_normalized,
    })
}

/// What a method names in its `params`.
#[derive(Default)]
struct Named {
    tool: Option<String>,
    arguments: Option<String>,
    target: Option<Target>,
}

/// Reads the tool (and its arguments, when kept), prompt, resource or task `method` names; a
/// method that names none of them yields nothing. `changed` is set when a resource URI was not
/// in its normal form.
fn named(
    method: &str,
    params: Option<Params<'_>>,
    keep_arguments: bool,
    changed: &mut bool,
) -> Result<Named, GatewayError> {
    let target = |target| {
        Ok(Named {
            target: Some(target),
            ..Named::default()
        })
    };
    match method {
        method::TOOLS_CALL => {
            let params = params.ok_or(GatewayError::InvalidRequest(
                "tools/call needs params.name".into(),
            ))?;
            let name = name_of(params.name, "tools/call needs params.name as a string")?;
            let arguments = keep_arguments
                .then(|| params.arguments.map(|a| a.get().to_string()))
                .flatten();
            Ok(Named {
                tool: Some(name),
                arguments,
                target: None,
            })
        }
        method::PROMPTS_GET => {
            let name = params.and_then(|p| p.name);
            let name = name_of(name, "prompts/get needs params.name as a string")?;
            target(Target::Prompt(name))
        }
        method::RESOURCES_READ | method::RESOURCES_SUBSCRIBE | method::RESOURCES_UNSUBSCRIBE => {
            let uri = params.and_then(|p| p.uri);
            target(Target::Resource(uri_of(uri, changed)?))
        }
        method::COMPLETION_COMPLETE => {
            let r = params.and_then(|p| p.reference).unwrap_or_default();
            target(referenced(r, changed)?)
        }
        method::TASKS_GET | method::TASKS_RESULT | method::TASKS_CANCEL => {
            let id = params.and_then(|p| p.task_id);
            let id = name_of(id, "tasks methods need params.taskId as a string")?;
            target(Target::Task(id))
        }
        _ => Ok(Named::default()),
    }
}

/// The prompt or resource of a `completion/complete` reference.
fn referenced(r: Reference<'_>, changed: &mut bool) -> Result<Target, GatewayError> {
    match r.kind.as_deref() {
        Some("ref/prompt") => Ok(Target::Prompt(name_of(
            r.name,
            "completion/complete needs params.ref.name as a string",
        )?)),
        Some("ref/resource") => Ok(Target::Resource(uri_of(r.uri, changed)?)),
        _ => Err(GatewayError::InvalidRequest(
            "completion/complete needs params.ref of type ref/prompt or ref/resource".into(),
        )),
    }
}

/// A string the method needs (`missing` when absent or not a string), of at most `max` bytes
/// (`too_long` otherwise).
fn within(
    value: Option<Cow<'_, str>>,
    max: usize,
    missing: &'static str,
    too_long: &'static str,
) -> Result<String, GatewayError> {
    let value = value.ok_or(GatewayError::InvalidRequest(missing.into()))?;
    if value.len() > max {
        return Err(GatewayError::InvalidRequest(too_long.into()));
    }
    Ok(value.into_owned())
}

/// A tool or prompt name.
fn name_of(name: Option<Cow<'_, str>>, missing: &'static str) -> Result<String, GatewayError> {
    within(name, MAX_NAME, missing, "name longer than 128 bytes")
}

/// A resource URI in its normal form; `changed` is set when the client's spelling differed.
fn uri_of(uri: Option<Cow<'_, str>>, changed: &mut bool) -> Result<String, GatewayError> {
    let raw = within(
        uri,
        MAX_URI,
        "params.uri must be a string",
        "resource URI longer than 2048 bytes",
    )?;
    let normal = crate::uri::normalize(&raw)
        .map_err(|e| GatewayError::InvalidParams(format!("{e}").into()))?;
    *changed |= normal != raw;
    Ok(normal)
}

/// The body of one request with its resource URI (`params.uri`, or `params.ref.uri` of
/// `completion/complete`) replaced by `uri`, everything else as the client sent it.
pub fn with_normal_uri(body: &[u8], uri: &str) -> Result<Vec<u8>, GatewayError> {
    let mut v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| GatewayError::ParseError(e.to_string()))?;
    let params = v.get_mut("params").ok_or(GatewayError::Internal)?;
    let slot = match params.get_mut("ref") {
        Some(r) if r.get("uri").is_some() => r.get_mut("uri"),
        _ => params.get_mut("uri"),
    };
    *slot.ok_or(GatewayError::Internal)? = serde_json::Value::String(uri.to_string());
    serde_json::to_vec(&v).map_err(|_| GatewayError::Internal)
}

/// The body of one request with the W3C trace context set in `params._meta` (`traceparent`,
/// and `tracestate` when given), where MCP servers read it; `None` when the body is not one
/// request with an object `params` (it goes on unchanged). Only `params` and `_meta` are read:
/// the arguments pass as raw text, never parsed.
pub fn with_trace_meta(
    body: &[u8],
    traceparent: &str,
    tracestate: Option<&str>,
) -> Option<Vec<u8>> {
    use serde_json::value::RawValue;
    use std::collections::BTreeMap;
    type Object<'a> = BTreeMap<&'a str, &'a RawValue>;
    let mut top: Object<'_> = serde_json::from_slice(body).ok()?;
    let mut params: Object<'_> = serde_json::from_str(top.get("params")?.get()).ok()?;
    let mut meta: serde_json::Map<String, serde_json::Value> = match params.get("_meta") {
        Some(m) => serde_json::from_str(m.get()).ok()?,
        None => serde_json::Map::new(),
    };
    meta.insert("traceparent".into(), traceparent.into());
    match tracestate {
        Some(s) => meta.insert("tracestate".into(), s.into()),
        None => meta.remove("tracestate"),
    };
    let meta = serde_json::value::to_raw_value(&meta).ok()?;
    params.insert("_meta", &meta);
    let params = serde_json::value::to_raw_value(&params).ok()?;
    top.insert("params", &params);
    serde_json::to_vec(&top).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_context_goes_into_meta_and_the_rest_passes_as_sent() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"add","arguments":{"a":1.50,"b":[2, 3]},"_meta":{"progressToken":"p","tracestate":"old=1"}}}"#;
        let out = with_trace_meta(body, tp, None).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["params"]["_meta"]["traceparent"], tp);
        assert_eq!(v["params"]["_meta"]["progressToken"], "p");
        assert!(v["params"]["_meta"].get("tracestate").is_none());
        assert_eq!(v["id"], 7);
        // The arguments are the client's text, byte for byte.
        assert!(std::str::from_utf8(&out)
            .unwrap()
            .contains(r#""arguments":{"a":1.50,"b":[2, 3]}"#));
        let plain = br#"{"jsonrpc":"2.0","id":"x","method":"tools/list","params":{}}"#;
        let out = with_trace_meta(plain, tp, Some("k=v")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["params"]["_meta"]["tracestate"], "k=v");
        for no in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#[..],
            br#"[{"id":1}]"#,
            br#"{"params":[1]}"#,
        ] {
            assert!(with_trace_meta(no, tp, None).is_none());
        }
    }

    #[test]
    fn the_envelope_says_whether_the_tasks_extension_is_declared() {
        let envelope = |caps: &str| {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{caps}}}}}}}"#
            );
            match parse(body.as_bytes(), false, false).unwrap() {
                Rpc::Single(m) => m.envelope.unwrap(),
                Rpc::Batch(_) => unreachable!(),
            }
        };
        let declared = envelope(
            r#"{"roots":{},"extensions":{"x/y":{},"io.modelcontextprotocol/tasks":{"a":[1]}}}"#,
        );
        assert!(declared.capabilities && declared.tasks);
        for other in [
            "{}",
            r#"{"extensions":{}}"#,
            r#"{"extensions":"io.modelcontextprotocol/tasks"}"#,
            r#"{"io.modelcontextprotocol/tasks":{}}"#,
            "5",
        ] {
            let e = envelope(other);
            assert!(e.capabilities && !e.tasks, "{other}");
        }
    }

    #[test]
    fn tools_call_single_pass() {
        let rpc = parse(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"statistics","arguments":{"values":["1"]}}}"#, false, false).unwrap();
        let m = rpc.first().unwrap();
        assert_eq!(
            (m.method.as_deref(), m.id.as_deref(), m.tool.as_deref()),
            (Some("tools/call"), Some("7"), Some("statistics"))
        );
        let escaped = parse(
            br#"{"jsonrpc":"2.0","id":"a","method":"tools\/call","params":{"name":"st\u0061ts"}}"#,
            false,
            true,
        )
        .unwrap();
        assert_eq!(escaped.first().unwrap().tool.as_deref(), Some("stats"));
        assert_eq!(escaped.first().unwrap().id.as_deref(), Some("\"a\""));
        assert_eq!(escaped.first().unwrap().arguments, None);
        let with_args = parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a": [1, 2]}}}"#, false, true).unwrap();
        assert_eq!(
            with_args.first().unwrap().arguments.as_deref(),
            Some(r#"{"a": [1, 2]}"#)
        );
    }

    #[test]
    fn errors_are_classified() {
        assert!(matches!(
            read(b"{not json", false, false),
            Err(GatewayError::ParseError(_))
        ));
        assert!(matches!(
            read(b"{\"jsonrpc\":\"2.0\"", false, false),
            Err(GatewayError::ParseError(_))
        ));
        assert!(matches!(
            read(b"{\"jsonrpc\":\"1.0\",\"method\":\"x\"}", false, false),
            Err(GatewayError::InvalidRequest(_))
        ));
        assert!(matches!(
            read(b"{\"jsonrpc\":\"2.0\"}", false, false),
            Err(GatewayError::InvalidRequest(_))
        ));
        assert!(matches!(
            read(b"42", false, false),
            Err(GatewayError::InvalidRequest(_))
        ));
        assert!(matches!(
            read(b"{\"jsonrpc\":\"2.0\",\"method\":7}", false, false),
            Err(GatewayError::InvalidRequest(_))
        ));
        assert!(matches!(
            read(
                b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}}",
                false,
                false
            ),
            Err(GatewayError::InvalidRequest(_))
        ));
    }

    #[test]
    fn refusals_keep_the_id_when_it_can_be_read() {
        let id = |b: &str| parse(b.as_bytes(), false, false).unwrap_err().id;
        assert_eq!(
            id(r#"{"jsonrpc":"1.0","id":7,"method":"x"}"#).as_deref(),
            Some("7")
        );
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{}}"#).as_deref(),
            Some(r#""a""#)
        );
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":8,"method":"m","method":"n"}"#).as_deref(),
            Some("8")
        );
        assert_eq!(id(r#"{"jsonrpc":"2.0","id":1e400,"method":"ping"}"#), None);
        assert_eq!(id(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#), None);
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":99999999999999999999,"method":"ping"}"#),
            None
        );
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#),
            None
        );
        assert_eq!(id("{not json"), None);
        assert!(parse(
            br#"{"jsonrpc":"2.0","id":-3,"method":"ping"}"#,
            false,
            false
        )
        .is_ok());
    }

    #[test]
    fn params_are_read_in_the_same_pass() {
        // `params` before `method`, other keys around the name, arguments kept verbatim.
        let rpc = parse(br#"{"params":{"_meta":{"name":"no"},"arguments":{"x":"y"},"name":"calc"},"jsonrpc":"2.0","id":3,"method":"tools/call"}"#, false, true).unwrap();
        let m = rpc.first().unwrap();
        assert_eq!(m.tool.as_deref(), Some("calc"));
        assert_eq!(m.arguments.as_deref(), Some(r#"{"x":"y"}"#));
        // Other methods may carry any params, including positional ones and a non-string name.
        for body in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"x/y","params":[1,"a",{"b":null}]}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"method":"x/y","params":{"name":{"first":"a"}}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"x/y","params":null}"#,
        ] {
            let rpc = parse(body, false, false).unwrap();
            assert_eq!(rpc.first().unwrap().tool, None);
        }
        // tools/call needs a string name in an object, given once.
        for body in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["calc"]}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
        ] {
            assert!(
                matches!(
                    read(body, false, false),
                    Err(GatewayError::InvalidRequest(_))
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn prompts_resources_and_completion_refs() {
        let target = |body: &str| {
            read(body.as_bytes(), false, false).map(|r| r.first().unwrap().target.clone())
        };
        assert_eq!(
            target(r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"summ\u0061rize"}}"#).unwrap(),
            Some(Target::Prompt("summarize".into()))
        );
        assert_eq!(
            target(r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"document://a"}}"#).unwrap(),
            Some(Target::Resource("document://a".into()))
        );
        assert_eq!(
            target(r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"argument":{"name":"x"},"ref":{"name":"p","type":"ref/prompt"}}}"#).unwrap(),
            Some(Target::Prompt("p".into()))
        );
        for bad in [
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"a","uri":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":7}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"a","name":"b"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/other","name":"a"}}}"#,
        ] {
            assert!(
                matches!(target(bad), Err(GatewayError::InvalidRequest(_))),
                "{bad}"
            );
        }
        let long = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{}"}}}}"#,
            "x".repeat(129)
        );
        assert!(matches!(
            target(&long),
            Err(GatewayError::InvalidRequest(_))
        ));
    }

    /// Random mutations of real messages: the reader never panics, and whatever it accepts, a
    /// plain serde_json reading (what an upstream's parser sees) agrees on the method and on the
    /// tool, prompt or resource it names.
    #[test]
    fn mutated_messages_never_panic_and_agree_with_serde() {
        let seeds: [&[u8]; 5] = [
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"statistics","arguments":{"a":"b"}}}"#,
            br#"{"jsonrpc":"2.0","id":"x","method":"prompts/get","params":{"name":"summarize"}}"#,
            br#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"document://public/a"}}"#,
            br#"{"jsonrpc":"2.0","id":3,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"u://{x}"}}}"#,
            br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#,
        ];
        for body in crate::mutate::mutations(&seeds, 20_000, 13) {
            let Ok(Rpc::Single(m)) = parse(&body, true, true) else {
                continue;
            };
            // The one pass accepts nothing the shape's own walk refuses.
            assert!(
                shape::check(&body).is_ok(),
                "accepted, but the shape is broken: {}",
                String::from_utf8_lossy(&body)
            );
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
                panic!(
                    "accepted, but serde refuses ({e}): {}",
                    String::from_utf8_lossy(&body)
                )
            });
            assert_eq!(
                m.method.as_deref(),
                v["method"].as_str(),
                "{}",
                String::from_utf8_lossy(&body)
            );
            let named = match (m.method.as_deref(), &m.target) {
                (Some("tools/call"), _) => m.tool.clone(),
                (_, Some(Target::Prompt(n))) if m.method.as_deref() == Some("prompts/get") => {
                    Some(n.clone())
                }
                (_, Some(Target::Resource(u))) if m.method.as_deref() == Some("resources/read") => {
                    Some(u.clone())
                }
                _ => None,
            };
            let theirs = match m.method.as_deref() {
                Some("tools/call" | "prompts/get") => v["params"]["name"].as_str(),
                Some("resources/read") => v["params"]["uri"].as_str(),
                _ => None,
            };
            let normal = theirs.map(|t| {
                if m.method.as_deref() == Some("resources/read") {
                    crate::uri::normalize(t).unwrap()
                } else {
                    t.to_string()
                }
            });
            let theirs = normal.as_deref();
            assert_eq!(
                named.as_deref(),
                theirs,
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    /// Every object of a message is checked for repeated keys and depth in the one pass, whether
    /// or not the gateway reads it, and a refusal names the bound that was broken even when a
    /// wrong type comes first.
    #[test]
    fn the_one_pass_checks_the_shape_everywhere() {
        let deep = format!("{}1{}", "[".repeat(70), "]".repeat(70));
        for (body, says) in [
            (r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":{"a":1,"a":2}}"#.to_string(), "duplicate key \"a\""),
            (r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":1,"x":2}"#.into(), "duplicate key \"x\""),
            (r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"k":[{"b":1,"b":1}]}}}"#.into(), "duplicate key \"b\""),
            (r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/clientCapabilities":{"extensions":{"e":1,"e":1}}}}}"#.into(), "duplicate key \"e\""),
            (r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p","x":{"c":1,"c":2}}}}"#.into(), "duplicate key \"c\""),
            (r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"content":[]}}"#.into(), "duplicate key \"content\""),
            (r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":{"n":1,"n":2}}}"#.into(), "duplicate key \"n\""),
            (r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"task":{"t":1,"t":2}}}"#.into(), "duplicate key \"t\""),
            (format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"other":{deep}}}}}"#), "nesting deeper"),
            (format!(r#"[{{"jsonrpc":"2.0","id":1,"method":"ping","params":{deep}}}]"#), "nesting deeper"),
            (r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":1e400}"#.into(), "number out of range"),
            // A wrong type first, a broken bound after: the bound is named.
            (r#"{"jsonrpc":"2.0","id":1,"method":7,"x":{"a":1,"a":2}}"#.into(), "duplicate key \"a\""),
            (r#"{"jsonrpc":"1.0","id":1,"method":"ping","x":1e400}"#.into(), "number out of range"),
        ] {
            let refused = read(body.as_bytes(), true, false).unwrap_err().to_string();
            assert!(refused.contains(says), "{body}: {refused}");
        }
        // A lone surrogate is not a string any JSON parser reads, in the id as anywhere.
        assert!(read(
            br#"{"jsonrpc":"2.0","id":"\ud800","method":"ping"}"#,
            false,
            false
        )
        .is_err());
        assert!(read(
            br#"{"jsonrpc":"2.0","id":"\u0061","method":"ping"}"#,
            false,
            false
        )
        .is_ok());
        let deepest = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{{"arguments":{}{}}}}}"#,
            "[".repeat(super::shape::MAX_DEPTH - 2),
            "]".repeat(super::shape::MAX_DEPTH - 2)
        );
        assert!(read(deepest.as_bytes(), false, false).is_ok());
        let deeper = deepest.replacen('[', "[[", 1).replacen(']', "]]", 1);
        assert!(read(deeper.as_bytes(), false, false).is_err());
    }

    #[test]
    fn batches_follow_the_version() {
        let body = br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#;
        assert!(parse(body, false, false).is_err());
        let Rpc::Batch(v) = parse(body, true, false).unwrap() else {
            panic!()
        };
        assert_eq!(v.len(), 2);
        assert!(v[0].is_request() && !v[1].is_request());
    }
}

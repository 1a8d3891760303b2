//! A tool's definition as the registry keeps it: the fields that say what the tool is and what it
//! accepts (name, title, description, input and output schema, annotations), its SHA-256 over the
//! canonical JSON of those fields (RFC 8785, so key order and spacing never make a new version),
//! and its `inputSchema` compiled once for argument validation.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The fields of a `tools/list` entry that make its definition; anything else (`_meta`, icons)
/// may change without making a new version.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Fields<'a> {
    name: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_schema: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_schema: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<&'a Value>,
}

impl<'a> Fields<'a> {
    fn of(tool: &'a Value) -> Option<Self> {
        Some(Fields {
            name: tool.get("name").filter(|n| n.is_string())?,
            title: tool.get("title"),
            description: tool.get("description"),
            input_schema: tool.get("inputSchema"),
            output_schema: tool.get("outputSchema"),
            annotations: tool.get("annotations"),
        })
    }
}

/// A SHA-256, as stored and shown: 64 lowercase hex digits.
pub type Sha = [u8; 32];

pub fn hex(sha: &Sha) -> String {
    hex::encode(sha)
}

/// The SHA-256 written as 64 hex digits (either case), or `None`.
pub fn parse_hex(s: &str) -> Option<Sha> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Feeds the canonical JSON straight into the hash, without building the text.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The digest of a `tools/list` entry's definition; `None` when it has no string `name`.
pub fn digest(tool: &Value) -> Option<Sha> {
    let fields = Fields::of(tool)?;
    let mut w = HashWriter(Sha256::new());
    serde_json_canonicalizer::to_writer(&fields, &mut w).ok()?;
    Some(w.0.finalize().into())
}

/// The definition as stored: only its defining fields.
pub fn stored(tool: &Value) -> Option<Value> {
    serde_json::to_value(Fields::of(tool)?).ok()
}

/// The longest definition kept whole (canonical JSON bytes); a longer one is stored as its
/// digest and size only, so no upstream can make the registry grow without bound.
pub const MAX_STORED_BYTES: usize = 256 * 1024;

/// `definition` as it may be stored: itself, or a stand-in naming its size when too large.
pub fn bounded(definition: Value) -> Value {
    let size = serde_json_canonicalizer::to_vec(&definition)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size <= MAX_STORED_BYTES {
        return definition;
    }
    serde_json::json!({
        "name": definition.get("name").cloned().unwrap_or(Value::Null),
        "truncated": true,
        "bytes": size,
    })
}

/// Why a tool's arguments cannot be validated.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("the tool has no inputSchema")]
    Missing,
    #[error("its inputSchema does not compile: {0}")]
    Invalid(String),
}

/// The compiled `inputSchema` of a definition. Remote `$ref`s are never fetched: a schema that
/// needs one does not compile.
pub fn compile(definition: &Value) -> Result<jsonschema::Validator, SchemaError> {
    let schema = definition.get("inputSchema").ok_or(SchemaError::Missing)?;
    jsonschema::validator_for(schema).map_err(|e| SchemaError::Invalid(e.to_string()))
}

/// At most this many violations are named in one answer.
const MAX_NAMED: usize = 5;

/// Checks `arguments` against the compiled schema. The error names each failing place by its
/// JSON pointer and the keyword it fails, with the schema's own limit where one helps, and never
/// the value sent (arguments may hold secrets).
pub fn check(validator: &jsonschema::Validator, arguments: &Value) -> Result<(), String> {
    if validator.is_valid(arguments) {
        return Ok(());
    }
    let mut parts = Vec::new();
    let mut total = 0;
    for e in validator.iter_errors(arguments) {
        total += 1;
        if parts.len() == MAX_NAMED {
            continue;
        }
        let path = match e.instance_path().as_str() {
            "" => "/".to_string(),
            p => shown(p),
        };
        let kind = e.kind();
        let detail = explain(kind);
        parts.push(match detail {
            Some(d) => format!("{path}: {} ({d})", kind.keyword()),
            None => format!("{path}: {}", kind.keyword()),
        });
    }
    if total > parts.len() {
        parts.push(format!("and {} more", total - parts.len()));
    }
    Err(parts.join("; "))
}

/// A name the client chose (a property, a pointer into its arguments), as it may appear in an
/// error: at most 64 characters, control and non-ASCII characters escaped (`\u{…}`), so an answer
/// or log line cannot be forged or bloated through a property name.
fn shown(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(64)
        .flat_map(|c| {
            let plain = c.is_ascii_graphic() || c == ' ';
            let escaped: Vec<char> = if plain {
                vec![c]
            } else {
                c.escape_unicode().collect()
            };
            escaped
        })
        .collect();
    if name.chars().nth(64).is_some() {
        out.push('…');
    }
    out
}

/// What the schema asked for, from the schema alone.
fn explain(kind: &ValidationErrorKind) -> Option<String> {
    use ValidationErrorKind as K;
    Some(match kind {
        K::Required { property } => format!("missing {property}"),
        K::Type {
            kind: TypeKind::Single(t),
        } => format!("expected {t}"),
        K::Type {
            kind: TypeKind::Multiple(ts),
        } => {
            let names: Vec<String> = ts.iter().map(|t| t.to_string()).collect();
            format!("expected one of {}", names.join(", "))
        }
        K::MaxLength { limit } | K::MaxItems { limit } | K::MaxProperties { limit } => {
            format!("at most {limit}")
        }
        K::MinLength { limit } | K::MinItems { limit } | K::MinProperties { limit } => {
            format!("at least {limit}")
        }
        K::Maximum { limit } | K::ExclusiveMaximum { limit } => format!("limit {limit}"),
        K::Minimum { limit } | K::ExclusiveMinimum { limit } => format!("limit {limit}"),
        K::AdditionalProperties { unexpected } => {
            let names: Vec<String> = unexpected.iter().take(3).map(|n| shown(n)).collect();
            format!("not allowed: {}", names.join(", "))
        }
        K::Format { format } => format!("format {format}"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_chosen_names_are_escaped_and_cut() {
        assert_eq!(shown("/path/0"), "/path/0");
        assert_eq!(shown("a\nb\u{1b}[31m"), "a\\u{a}b\\u{1b}[31m");
        assert_eq!(shown("é"), "\\u{e9}");
        let long = "x".repeat(100);
        assert_eq!(shown(&long), format!("{}…", "x".repeat(64)));
    }

    #[test]
    fn the_digest_ignores_key_order_spacing_and_other_fields() {
        let a = json!({"name": "t", "description": "d", "inputSchema": {"type": "object", "properties": {"a": {"type": "string"}}}});
        let b: Value = serde_json::from_str(
            r#"{ "inputSchema": {"properties": {"a": {"type":"string"}}, "type":"object"},
                 "_meta": {"x": 1}, "icons": [], "description": "d", "name": "t" }"#,
        )
        .unwrap();
        assert_eq!(digest(&a), digest(&b));
        let c = json!({"name": "t", "description": "d!", "inputSchema": a["inputSchema"]});
        assert_ne!(digest(&a), digest(&c));
        assert_eq!(digest(&json!({"description": "no name"})), None);
        let sha = digest(&a).unwrap();
        assert_eq!(parse_hex(&hex(&sha)), Some(sha));
        assert_eq!(parse_hex("zz"), None);
    }

    #[test]
    fn violations_name_the_path_and_keyword_never_the_value() {
        let def = json!({"name": "t", "inputSchema": {
            "type": "object",
            "properties": {"n": {"type": "number"}, "s": {"type": "string", "maxLength": 3}},
            "required": ["n"],
            "additionalProperties": false}});
        let v = compile(&def).unwrap();
        assert!(check(&v, &json!({"n": 1, "s": "abc"})).is_ok());
        let e = check(&v, &json!({"n": "secret-value"})).unwrap_err();
        assert!(e.contains("/n: type (expected number)"), "{e}");
        assert!(!e.contains("secret-value"), "{e}");
        let e = check(&v, &json!({})).unwrap_err();
        assert!(e.contains("/: required (missing \"n\")"), "{e}");
        let e = check(&v, &json!({"n": 1, "s": "topsecret"})).unwrap_err();
        assert!(e.contains("/s: maxLength (at most 3)"), "{e}");
        assert!(!e.contains("topsecret"), "{e}");
        let e = check(&v, &json!({"n": 1, "extra": "x"})).unwrap_err();
        assert!(
            e.contains("additionalProperties (not allowed: extra)"),
            "{e}"
        );
    }

    #[test]
    fn remote_references_are_not_fetched() {
        let def = json!({"name": "t", "inputSchema": {"$ref": "https://example.com/s.json"}});
        assert!(compile(&def).is_err());
        let draft7 = json!({"name": "t", "inputSchema": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object", "properties": {"a": {"type": "integer"}}}});
        let v = compile(&draft7).unwrap();
        assert!(check(&v, &json!({"a": 1.5})).is_err());
    }

    #[test]
    fn an_oversized_definition_is_stored_as_its_size() {
        let big = json!({"name": "t", "description": "x".repeat(MAX_STORED_BYTES)});
        let kept = bounded(big);
        assert_eq!(kept["truncated"], true);
        assert_eq!(kept["name"], "t");
    }
}

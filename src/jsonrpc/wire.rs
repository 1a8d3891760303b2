//! The wire shape of a JSON-RPC message, read in one borrowing pass that also checks the body's
//! shape (`super::shape`): the members the gateway needs of the message and of its `params` (tool
//! name, arguments, resource URI, completion reference, `_meta` envelope, task) are read, every
//! other value is walked by the shape's checker, and every object's keys are checked for repeats.
//! What the values mean is judged in `super::message`.

use super::shape::{self, child, walk_map, walk_seq, Key, Keys, Node};
use super::{Envelope, META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION};
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// A body as read: one message, or a batch of them.
#[allow(
    clippy::large_enum_variant,
    reason = "one value on the stack while a body is read; boxing the common case would cost an allocation per request"
)]
pub(super) enum Body<'a> {
    One(Wire<'a>),
    Batch(Vec<Wire<'a>>),
}

/// Reads a body (not blank) in one pass; `Err` at the first problem, which may be a wrong type
/// ahead of a broken bound (the caller names the bound: `shape::check`). Text, not bytes: its
/// UTF-8 is checked once, and serde_json then skips checking each string again.
pub(super) fn read(body: &str) -> Result<Body<'_>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(body);
    let read = de.deserialize_any(Top)?;
    de.end()?;
    Ok(read)
}

#[derive(Default)]
pub(super) struct Wire<'a> {
    pub(super) jsonrpc: Option<Cow<'a, str>>,
    pub(super) method: Option<Cow<'a, str>>,
    pub(super) id: Option<&'a RawValue>,
    pub(super) params: Option<Params<'a>>,
    /// A `result` or an `error` other than `null`: a response the client sends.
    pub(super) answer: bool,
}

/// What the gateway reads of `params`, taken in the same pass as the rest of the message (the
/// method may come after `params` in the object): the tool name if `name` is a string, and the
/// raw `arguments`. Any other shape is accepted here and judged by the method that needs it.
#[derive(Default)]
pub(super) struct Params<'a> {
    pub(super) name: Option<Cow<'a, str>>,
    pub(super) arguments: Option<&'a RawValue>,
    pub(super) uri: Option<Cow<'a, str>>,
    pub(super) reference: Option<Reference<'a>>,
    pub(super) meta: Option<Envelope>,
    pub(super) task: bool,
    pub(super) task_id: Option<Cow<'a, str>>,
}

/// The `ref` of `completion/complete`: `{"type": "ref/prompt", "name"}` or
/// `{"type": "ref/resource", "uri"}`.
#[derive(Default)]
pub(super) struct Reference<'a> {
    pub(super) kind: Option<Cow<'a, str>>,
    pub(super) name: Option<Cow<'a, str>>,
    pub(super) uri: Option<Cow<'a, str>>,
}

/// The visitor methods for the values a visitor does not read: arrays are walked (`self.depth`
/// deep), scalars skipped, and `$value` returned. Objects, strings and `null` are each visitor's
/// own.
macro_rules! walk_other_values {
    ($value:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            walk_seq(self.depth, seq)?;
            Ok($value)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

/// Each seed below reads whatever value comes (`deserialize_any`): its visitor decides what each
/// kind of value means.
macro_rules! seed_of_any_value {
    ($($seed:ident => $value:ty),* $(,)?) => {$(
        impl<'de> DeserializeSeed<'de> for $seed {
            type Value = $value;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<$value, D::Error> {
                d.deserialize_any(self)
            }
        }
    )*};
}

seed_of_any_value!(
    Message => Wire<'de>,
    Text => Option<Cow<'de, str>>,
    MaybeText => Option<Cow<'de, str>>,
    ParamsSeed => Option<Params<'de>>,
    RefSeed => Option<Reference<'de>>,
    Holds => bool,
    EnvelopeSeed => Option<Envelope>,
);

/// The whole body: an object is one message, an array a batch; anything else is not JSON-RPC.
struct Top;

impl<'de> Visitor<'de> for Top {
    type Value = Body<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON-RPC message or a batch of them")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Body<'de>, A::Error> {
        Message { depth: 0 }.visit_map(map).map(Body::One)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Body<'de>, A::Error> {
        let depth = child(0)?;
        let mut all = Vec::new();
        while let Some(wire) = seq.next_element_seed(Message { depth })? {
            all.push(wire);
        }
        Ok(Body::Batch(all))
    }
}

/// One message, `depth` levels deep (0, or 1 in a batch).
struct Message {
    depth: usize,
}

impl<'de> Visitor<'de> for Message {
    type Value = Wire<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON-RPC message")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Wire<'de>, A::Error> {
        let depth = child(self.depth)?;
        let (mut w, mut keys) = (Wire::default(), Keys::default());
        while let Some(Key(key)) = map.next_key()? {
            let member = match key.as_ref() {
                "jsonrpc" => Member::Jsonrpc,
                "method" => Member::Method,
                "id" => Member::Id,
                "params" => Member::Params,
                "result" | "error" => Member::Answer,
                _ => Member::Other,
            };
            keys.insert(key)?;
            match member {
                Member::Jsonrpc => w.jsonrpc = map.next_value_seed(Text)?,
                Member::Method => w.method = map.next_value_seed(Text)?,
                Member::Id => {
                    w.id = map.next_value()?;
                    // The raw id skips string escapes unchecked; one with escapes (or a container,
                    // refused later) is walked, so a lone surrogate is refused as before.
                    if let Some(id) = w.id.map(RawValue::get) {
                        if id.contains('\\') || id.starts_with(['{', '[']) {
                            shape::walk(id, depth).map_err(A::Error::custom)?;
                        }
                    }
                }
                Member::Params => w.params = map.next_value_seed(ParamsSeed { depth })?,
                Member::Answer => w.answer |= map.next_value_seed(Node { depth })?,
                Member::Other => {
                    map.next_value_seed(Node { depth })?;
                }
            }
        }
        Ok(w)
    }
}

enum Member {
    Jsonrpc,
    Method,
    Id,
    Params,
    Answer,
    Other,
}

/// A string (borrowed from the body when it has no escapes), or `None` for `null`; any other
/// value is a wrong type.
struct Text;

impl<'de> Visitor<'de> for Text {
    type Value = Option<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A string `depth` levels deep (borrowed when it has no escapes), or `None` for any other value,
/// which is walked.
struct MaybeText {
    depth: usize,
}

impl<'de> Visitor<'de> for MaybeText {
    type Value = Option<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        walk_map(self.depth, map)?;
        Ok(None)
    }
    walk_other_values!(None);
}

/// `params`, `depth` levels deep: `None` for `null`, and an empty reading for anything but an
/// object (positional params name nothing the gateway reads).
struct ParamsSeed {
    depth: usize,
}

impl<'de> Visitor<'de> for ParamsSeed {
    type Value = Option<Params<'de>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON-RPC params")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let depth = child(self.depth)?;
        let (mut p, mut keys) = (Params::default(), Keys::default());
        while let Some(Key(key)) = map.next_key()? {
            let member = match key.as_ref() {
                "name" => ParamsMember::Name,
                "arguments" => ParamsMember::Arguments,
                "uri" => ParamsMember::Uri,
                "ref" => ParamsMember::Ref,
                "_meta" => ParamsMember::Meta,
                "task" => ParamsMember::Task,
                "taskId" => ParamsMember::TaskId,
                _ => ParamsMember::Other,
            };
            // A repeated key would let the gateway and the tool read different names.
            keys.insert(key)?;
            match member {
                ParamsMember::Name => p.name = map.next_value_seed(MaybeText { depth })?,
                ParamsMember::Arguments => {
                    // Borrowed whole, then checked on its own: the arguments go on as sent.
                    p.arguments = map.next_value()?;
                    if let Some(raw) = p.arguments {
                        shape::walk(raw.get(), depth).map_err(A::Error::custom)?;
                    }
                }
                ParamsMember::Uri => p.uri = map.next_value_seed(MaybeText { depth })?,
                ParamsMember::Ref => {
                    p.reference = Some(map.next_value_seed(RefSeed { depth })?.unwrap_or_default())
                }
                ParamsMember::Meta => {
                    p.meta = Some(
                        map.next_value_seed(EnvelopeSeed { depth })?
                            .unwrap_or_default(),
                    )
                }
                // An object marks a task-augmented request (its content is read by the task
                // step); `null` counts as absent.
                ParamsMember::Task => p.task = map.next_value_seed(Node { depth })?,
                ParamsMember::TaskId => p.task_id = map.next_value_seed(MaybeText { depth })?,
                ParamsMember::Other => {
                    map.next_value_seed(Node { depth })?;
                }
            }
        }
        Ok(Some(p))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Some(Params::default()))
    }
    walk_other_values!(Some(Params::default()));
}

enum ParamsMember {
    Name,
    Arguments,
    Uri,
    Ref,
    Meta,
    Task,
    TaskId,
    Other,
}

/// A `ref` object `depth` levels deep, or `None` for any other value.
struct RefSeed {
    depth: usize,
}

impl<'de> Visitor<'de> for RefSeed {
    type Value = Option<Reference<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let depth = child(self.depth)?;
        let (mut r, mut keys) = (Reference::default(), Keys::default());
        while let Some(Key(key)) = m.next_key()? {
            let slot = match key.as_ref() {
                "type" => Some(&mut r.kind),
                "name" => Some(&mut r.name),
                "uri" => Some(&mut r.uri),
                _ => None,
            };
            keys.insert(key)?;
            match slot {
                Some(slot) => *slot = m.next_value_seed(MaybeText { depth })?,
                None => {
                    m.next_value_seed(Node { depth })?;
                }
            }
        }
        Ok(Some(r))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    walk_other_values!(None);
}

/// Whether a value `depth` levels deep is an object holding `path` (a member, within it the next,
/// …; the last one's value anything), read in passing: nothing is kept, everything is walked.
struct Holds {
    path: &'static [&'static str],
    depth: usize,
}

impl<'de> Visitor<'de> for Holds {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<bool, A::Error> {
        let depth = child(self.depth)?;
        let (mut found, mut keys) = (false, Keys::default());
        while let Some(Key(key)) = m.next_key()? {
            let next = match self.path {
                [first, rest @ ..] if key.as_ref() == *first => Some(rest),
                _ => None,
            };
            keys.insert(key)?;
            match next {
                Some([]) => {
                    m.next_value_seed(Node { depth })?;
                    found = true;
                }
                Some(rest) => found |= m.next_value_seed(Holds { path: rest, depth })?,
                None => {
                    m.next_value_seed(Node { depth })?;
                }
            }
        }
        Ok(found)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    walk_other_values!(false);
}

/// A `_meta` object's protocol envelope `depth` levels deep, or `None` for any other value.
struct EnvelopeSeed {
    depth: usize,
}

impl<'de> Visitor<'de> for EnvelopeSeed {
    type Value = Option<Envelope>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let depth = child(self.depth)?;
        let (mut e, mut keys) = (Envelope::default(), Keys::default());
        // A string member of at most `max` bytes, or `None`.
        let bounded = |v: Option<Cow<'de, str>>, max: usize| {
            v.filter(|v| v.len() <= max).map(Cow::into_owned)
        };
        while let Some(Key(key)) = m.next_key()? {
            let member = match key.as_ref() {
                META_PROTOCOL_VERSION => MetaMember::Version,
                META_CLIENT_CAPABILITIES => MetaMember::Capabilities,
                "traceparent" => MetaMember::Traceparent,
                "tracestate" => MetaMember::Tracestate,
                _ => MetaMember::Other,
            };
            // A repeated envelope key would let the gateway and the upstream read different
            // versions.
            keys.insert(key)?;
            let text = MaybeText { depth };
            match member {
                MetaMember::Version => e.version = bounded(m.next_value_seed(text)?, 40),
                MetaMember::Capabilities => {
                    e.capabilities = true;
                    e.tasks = m.next_value_seed(Holds {
                        path: &["extensions", crate::protocol::TASKS_EXTENSION],
                        depth,
                    })?;
                }
                MetaMember::Traceparent => e.traceparent = bounded(m.next_value_seed(text)?, 64),
                MetaMember::Tracestate => e.tracestate = bounded(m.next_value_seed(text)?, 512),
                MetaMember::Other => {
                    m.next_value_seed(Node { depth })?;
                }
            }
        }
        Ok(Some(e))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    walk_other_values!(None);
}

enum MetaMember {
    Version,
    Capabilities,
    Traceparent,
    Tracestate,
    Other,
}

//! The wire shape of a JSON-RPC message, read in one borrowing pass: the members the gateway
//! needs of the message and of its `params` (tool name, arguments, resource URI, completion
//! reference, `_meta` envelope, task), each visitor skipping whatever else is there. What the
//! values mean is judged in `super::message`.

use super::{Envelope, META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

#[derive(Deserialize)]
pub(super) struct Wire<'a> {
    #[serde(borrow, default)]
    pub(super) jsonrpc: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(super) params: Option<Params<'a>>,
    #[serde(borrow, default)]
    pub(super) result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(super) error: Option<&'a RawValue>,
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

impl<'de: 'a, 'a> Deserialize<'de> for Params<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParamsVisitor)
    }
}

/// The visitor methods for every value a visitor does not read: sequences are drained, scalars
/// skipped, and `$value` returned. Shared by the visitors below, which differ only in the map (and
/// string) they read.
macro_rules! any_other_value {
    ($value:expr) => {
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok($value)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
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

struct ParamsVisitor;

impl<'de> serde::de::Visitor<'de> for ParamsVisitor {
    type Value = Params<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON-RPC params")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Params<'de>, A::Error> {
        use serde::de::Error;
        let (mut params, mut seen_name, mut seen_uri) = (Params::default(), false, false);
        while let Some(key) = map.next_key::<ParamsKey>()? {
            match key {
                // A repeated key would let the gateway and the tool read different names.
                ParamsKey::Name if seen_name => return Err(A::Error::duplicate_field("name")),
                ParamsKey::Name => {
                    seen_name = true;
                    params.name = map.next_value::<MaybeStr<'de>>()?.0;
                }
                ParamsKey::Arguments if params.arguments.is_some() => {
                    return Err(A::Error::duplicate_field("arguments"))
                }
                ParamsKey::Arguments => params.arguments = map.next_value()?,
                ParamsKey::Uri if seen_uri => return Err(A::Error::duplicate_field("uri")),
                ParamsKey::Uri => {
                    seen_uri = true;
                    params.uri = map.next_value::<MaybeStr<'de>>()?.0;
                }
                ParamsKey::Ref if params.reference.is_some() => {
                    return Err(A::Error::duplicate_field("ref"))
                }
                ParamsKey::Ref => {
                    params.reference =
                        Some(map.next_value::<MaybeRef<'de>>()?.0.unwrap_or_default())
                }
                ParamsKey::Meta if params.meta.is_some() => {
                    return Err(A::Error::duplicate_field("_meta"))
                }
                ParamsKey::Meta => {
                    params.meta = Some(map.next_value::<MaybeEnvelope>()?.0.unwrap_or_default())
                }
                ParamsKey::Task if params.task => return Err(A::Error::duplicate_field("task")),
                ParamsKey::Task => {
                    params.task = map.next_value::<Option<TaskObject>>()?.is_some();
                }
                ParamsKey::TaskId if params.task_id.is_some() => {
                    return Err(A::Error::duplicate_field("taskId"))
                }
                ParamsKey::TaskId => params.task_id = map.next_value::<MaybeStr<'de>>()?.0,
                ParamsKey::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(params)
    }

    any_other_value!(Params::default());

    fn visit_str<E>(self, _: &str) -> Result<Params<'de>, E> {
        Ok(Params::default())
    }
}

enum ParamsKey {
    Name,
    Arguments,
    Uri,
    Ref,
    Meta,
    Task,
    TaskId,
    Other,
}

/// `params.task`: an object marks a task-augmented request; its content is read by the task
/// step. `null` counts as absent.
struct TaskObject;

impl<'de> Deserialize<'de> for TaskObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde::de::IgnoredAny::deserialize(d) {
            Ok(_) => Ok(TaskObject),
            Err(e) => Err(D::Error::custom(e)),
        }
    }
}

impl<'de> Deserialize<'de> for ParamsKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = ParamsKey;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, key: &str) -> Result<ParamsKey, E> {
                Ok(match key {
                    "name" => ParamsKey::Name,
                    "arguments" => ParamsKey::Arguments,
                    "uri" => ParamsKey::Uri,
                    "ref" => ParamsKey::Ref,
                    "_meta" => ParamsKey::Meta,
                    "task" => ParamsKey::Task,
                    "taskId" => ParamsKey::TaskId,
                    _ => ParamsKey::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// A string borrowed from the body when it has no escapes, or `None` for any other value.
struct MaybeStr<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for MaybeStr<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> serde::de::Visitor<'de> for StrVisitor {
            type Value = MaybeStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<MaybeStr<'de>, E> {
                Ok(MaybeStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<MaybeStr<'de>, E> {
                Ok(MaybeStr(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<MaybeStr<'de>, A::Error> {
                while m
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(MaybeStr(None))
            }
            any_other_value!(MaybeStr(None));
        }
        d.deserialize_any(StrVisitor)
    }
}

/// A `ref` object, or `None` for any other value; a repeated key inside it is an error.
struct MaybeRef<'a>(Option<Reference<'a>>);

impl<'de> Deserialize<'de> for MaybeRef<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RefVisitor;
        impl<'de> serde::de::Visitor<'de> for RefVisitor {
            type Value = MaybeRef<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<MaybeRef<'de>, A::Error> {
                use serde::de::Error;
                let mut r = Reference::default();
                let mut seen = [false; 3];
                while let Some(key) = m.next_key::<Cow<'de, str>>()? {
                    let (slot, i, field) = match key.as_ref() {
                        "type" => (&mut r.kind, 0, "type"),
                        "name" => (&mut r.name, 1, "name"),
                        "uri" => (&mut r.uri, 2, "uri"),
                        _ => {
                            m.next_value::<serde::de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    if seen[i] {
                        return Err(A::Error::duplicate_field(field));
                    }
                    seen[i] = true;
                    *slot = m.next_value::<MaybeStr<'de>>()?.0;
                }
                Ok(MaybeRef(Some(r)))
            }
            any_other_value!(MaybeRef(None));
            fn visit_str<E>(self, _: &str) -> Result<MaybeRef<'de>, E> {
                Ok(MaybeRef(None))
            }
        }
        d.deserialize_any(RefVisitor)
    }
}

/// Whether a value is an object holding `path` (a member, within it the next, …; the last one's
/// value anything), read in passing: nothing is kept, everything else is skipped.
struct Holds(&'static [&'static str]);

impl<'de> serde::de::DeserializeSeed<'de> for Holds {
    type Value = bool;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Holds {
    type Value = bool;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any value")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(key) = m.next_key::<Cow<'de, str>>()? {
            match self.0 {
                [first, rest @ ..] if key.as_ref() == *first => {
                    found |= match rest {
                        [] => m.next_value::<serde::de::IgnoredAny>().map(|_| true)?,
                        _ => m.next_value_seed(Holds(rest))?,
                    };
                }
                _ => {
                    m.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
    any_other_value!(false);
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
}

/// A `_meta` object's protocol envelope, or `None` for any other value; a repeated envelope key
/// is an error (the gateway and the upstream must read the same version).
struct MaybeEnvelope(Option<Envelope>);

impl<'de> Deserialize<'de> for MaybeEnvelope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EnvelopeVisitor;
        impl<'de> serde::de::Visitor<'de> for EnvelopeVisitor {
            type Value = MaybeEnvelope;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<MaybeEnvelope, A::Error> {
                use serde::de::Error;
                let mut e = Envelope::default();
                let (mut seen_version, mut seen_caps) = (false, false);
                while let Some(key) = m.next_key::<Cow<'de, str>>()? {
                    match key.as_ref() {
                        META_PROTOCOL_VERSION if seen_version => {
                            return Err(A::Error::duplicate_field(META_PROTOCOL_VERSION))
                        }
                        META_PROTOCOL_VERSION => {
                            seen_version = true;
                            e.version = m
                                .next_value::<MaybeStr<'de>>()?
                                .0
                                .filter(|v| v.len() <= 40)
                                .map(Cow::into_owned);
                        }
                        META_CLIENT_CAPABILITIES if seen_caps => {
                            return Err(A::Error::duplicate_field(META_CLIENT_CAPABILITIES))
                        }
                        META_CLIENT_CAPABILITIES => {
                            seen_caps = true;
                            e.capabilities = true;
                            e.tasks = m.next_value_seed(Holds(&[
                                "extensions",
                                crate::protocol::TASKS_EXTENSION,
                            ]))?;
                        }
                        "traceparent" if e.traceparent.is_none() => {
                            e.traceparent = m
                                .next_value::<MaybeStr<'de>>()?
                                .0
                                .filter(|v| v.len() <= 64)
                                .map(Cow::into_owned);
                        }
                        "tracestate" if e.tracestate.is_none() => {
                            e.tracestate = m
                                .next_value::<MaybeStr<'de>>()?
                                .0
                                .filter(|v| v.len() <= 512)
                                .map(Cow::into_owned);
                        }
                        _ => {
                            m.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(MaybeEnvelope(Some(e)))
            }
            any_other_value!(MaybeEnvelope(None));
            fn visit_str<E>(self, _: &str) -> Result<MaybeEnvelope, E> {
                Ok(MaybeEnvelope(None))
            }
        }
        d.deserialize_any(EnvelopeVisitor)
    }
}

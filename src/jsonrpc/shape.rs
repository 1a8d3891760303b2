//! The shape every request body must have: nesting at most `MAX_DEPTH` levels deep, no object
//! with the same key twice (anywhere: the gateway reads one of two `arguments.path` members and
//! an upstream may read the other), and numbers a 64-bit float can hold. The message reader
//! (`super::wire`) checks it in the same pass as it reads, with the walkers here for every value
//! it does not read and for the raw `arguments` it borrows; `check` walks a whole body on its own
//! (to name the first bound a refused body broke).

use crate::error::GatewayError;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

/// The deepest nesting of arrays and objects accepted in a request body.
pub const MAX_DEPTH: usize = 64;

/// Keys of one object are compared in a list up to this many, then in a hash set.
const LINEAR_KEYS: usize = 16;

/// Keys kept on the stack before the list moves to the heap (64 levels of 8 keys: 12 KiB).
const INLINE_KEYS: usize = 8;

/// Checks the body's shape; `Err` says which bound was exceeded, and where.
pub fn check(body: &[u8]) -> Result<(), GatewayError> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Err(GatewayError::ParseError(
            "the body is not valid UTF-8".into(),
        ));
    };
    walk(text, 0).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                GatewayError::ParseError(e.to_string())
            }
            Category::Data => GatewayError::InvalidRequest(e.to_string().into()),
        }
    })
}

/// Checks the shape of a value found `depth` levels deep in a body (the raw `arguments` the
/// message reader borrows without looking inside). Text, not bytes: it is valid UTF-8 already, and
/// serde_json then skips checking each string again.
pub(super) fn walk(text: &str, depth: usize) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    Node { depth }.deserialize(&mut de)?;
    de.end()
}

/// The depth of a container's members, or the error for a container already at `MAX_DEPTH`.
pub(super) fn child<E: serde::de::Error>(depth: usize) -> Result<usize, E> {
    if depth >= MAX_DEPTH {
        return Err(E::custom(format_args!(
            "nesting deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(depth + 1)
}

/// Walks an array found `depth` levels deep, checking every element.
pub(super) fn walk_seq<'de, A: SeqAccess<'de>>(depth: usize, mut seq: A) -> Result<(), A::Error> {
    let depth = child(depth)?;
    while seq.next_element_seed(Node { depth })?.is_some() {}
    Ok(())
}

/// Walks an object found `depth` levels deep, checking its keys and every value.
pub(super) fn walk_map<'de, A: MapAccess<'de>>(depth: usize, mut map: A) -> Result<(), A::Error> {
    let depth = child(depth)?;
    let mut keys = Keys::default();
    while let Some(Key(key)) = map.next_key()? {
        keys.insert(key)?;
        map.next_value_seed(Node { depth })?;
    }
    Ok(())
}

/// Any value `depth` levels deep, checked and skipped; yields whether it was other than `null`.
#[derive(Clone, Copy)]
pub(super) struct Node {
    pub(super) depth: usize,
}

impl<'de> DeserializeSeed<'de> for Node {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        walk_seq(self.depth, seq).map(|()| true)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        walk_map(self.depth, map).map(|()| true)
    }
}

/// The keys of one object seen so far. Most objects have a few keys: compared on the stack, no
/// allocation per object.
#[derive(Default)]
pub(super) struct Keys<'de> {
    few: SmallVec<[Cow<'de, str>; INLINE_KEYS]>,
    /// Made only for an object of more than `LINEAR_KEYS` keys.
    many: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> Keys<'de> {
    /// Adds a key; `Err` when the object already had it.
    pub(super) fn insert<E: serde::de::Error>(&mut self, key: Cow<'de, str>) -> Result<(), E> {
        let repeated = match &mut self.many {
            None if self.few.len() < LINEAR_KEYS => self.few.contains(&key),
            many => many
                .get_or_insert_with(|| self.few.drain(..).collect())
                .contains(&key),
        };
        if repeated {
            let shown: String = key.chars().take(64).collect();
            return Err(E::custom(format_args!(
                "duplicate key {shown:?} in an object"
            )));
        }
        match &mut self.many {
            None => self.few.push(key),
            Some(many) => {
                many.insert(key);
            }
        }
        Ok(())
    }
}

/// An object key, borrowed from the body unless it has escapes (`"\u0061"` and `"a"` are the
/// same key, as every JSON reader decodes them).
pub(super) struct Key<'de>(pub(super) Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str) -> String {
        match check(body.as_bytes()) {
            Err(e) => e.to_string(),
            Ok(()) => panic!("accepted: {body}"),
        }
    }

    #[test]
    fn bounds_are_named() {
        assert!(check(br#"{"a":[1,{"b":null}],"c":"\u0064"}"#).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(check(deep.as_bytes()).is_ok());
        let deeper = format!(
            r#"{{"a":{}{}}}"#,
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert!(refused(&deeper).contains("nesting deeper than 64 levels"));
        let abyss = "[".repeat(100_000);
        assert!(refused(&abyss).contains("nesting deeper"));
        assert!(refused(r#"{"params":{"arguments":{"p":"a","p":"b"}}}"#)
            .contains("duplicate key \"p\""));
        assert!(refused(r#"{"a":1,"\u0061":2}"#).contains("duplicate key \"a\""));
        let wide: Vec<String> = (0..40).map(|i| format!(r#""k{i}":1"#)).collect();
        assert!(check(format!("{{{}}}", wide.join(",")).as_bytes()).is_ok());
        assert!(refused(&format!(r#"{{{},"k39":2}}"#, wide.join(","))).contains("duplicate key"));
        assert!(refused(r#"{"n":1e400}"#).contains("number out of range"));
        let digits = "9".repeat(5000);
        assert!(check(format!(r#"{{"n":{digits}}}"#).as_bytes()).is_err());
        assert!(refused("{} x").contains("trailing"));
    }
}

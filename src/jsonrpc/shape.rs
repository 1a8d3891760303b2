//! The shape every request body must have before any part of it is read: nesting at most
//! `MAX_DEPTH` levels deep, no object with the same key twice (anywhere: the gateway reads one of
//! two `arguments.path` members and an upstream may read the other), and numbers a 64-bit float
//! can hold. The reader proper borrows `params._meta` and `arguments` as raw text without looking
//! inside, so this one pass is what bounds them.

use crate::error::GatewayError;
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
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
    let mut de = serde_json::Deserializer::from_slice(body);
    let checked = Node { depth: 0 }
        .deserialize(&mut de)
        .and_then(|()| de.end());
    checked.map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                GatewayError::ParseError(e.to_string())
            }
            Category::Data => GatewayError::InvalidRequest(e.to_string().into()),
        }
    })
}

struct Node {
    depth: usize,
}

impl Node {
    fn child<E: serde::de::Error>(&self) -> Result<usize, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format_args!(
                "nesting deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(self.depth + 1)
    }
}

impl<'de> DeserializeSeed<'de> for Node {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let depth = self.child()?;
        while seq.next_element_seed(Node { depth })?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let depth = self.child()?;
        // Most objects have a few keys: compared on the stack, no allocation per object.
        let mut few: SmallVec<[Cow<'de, str>; INLINE_KEYS]> = SmallVec::new();
        let mut many: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(Key(key)) = map.next_key()? {
            let repeated = if many.is_empty() && few.len() < LINEAR_KEYS {
                few.contains(&key)
            } else {
                many.extend(few.drain(..));
                many.contains(&key)
            };
            if repeated {
                let shown: String = key.chars().take(64).collect();
                return Err(A::Error::custom(format_args!(
                    "duplicate key {shown:?} in an object"
                )));
            }
            if many.is_empty() {
                few.push(key);
            } else {
                many.insert(key);
            }
            map.next_value_seed(Node { depth })?;
        }
        Ok(())
    }
}

/// An object key, borrowed from the body unless it has escapes (`"\u0061"` and `"a"` are the
/// same key, as every JSON reader decodes them).
struct Key<'de>(Cow<'de, str>);

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

//! A request's id: 32 lower-case hex digits of a random UUID, made once per request and shared,
//! without copying, by the upstream's `X-Request-ID`, the answer's, the audit row and the logs.

use bytes::Bytes;
use http::HeaderValue;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The id, kept as the header value it is sent as (cloning it shares the bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    pub fn new() -> Self {
        let mut hex = [0u8; 32];
        uuid::Uuid::new_v4().simple().encode_lower(&mut hex);
        Self::from_bytes(Bytes::copy_from_slice(&hex))
    }

    /// An id read back from a row (the spool, the audit file).
    fn from_text(s: &str) -> Self {
        Self::from_bytes(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn from_bytes(b: Bytes) -> Self {
        // Only visible ASCII is kept: an id that is not a header value becomes an empty one.
        Self(HeaderValue::from_maybe_shared(b).unwrap_or_else(|_| HeaderValue::from_static("")))
    }

    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value, sharing its bytes.
    pub fn header(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for RequestId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Self::from_text(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::RequestId;

    #[test]
    fn ids_are_32_hex_digits_shared_by_header_and_row() {
        let a = RequestId::new();
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(a, RequestId::new());
        assert_eq!(a.header().to_str().unwrap(), a.as_str());
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<RequestId>(&json).unwrap(), a);
    }
}

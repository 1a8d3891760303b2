//! The YAML file formats operators edit. Every struct rejects unknown fields so a typo is an error
//! that names the field, never a silently ignored setting. `config::validate` turns them into the
//! [`crate::config::Config`] model.

mod gateway;
mod jobs;
mod jwt;
mod policy;
mod tools;
mod traces;

pub use gateway::*;
pub use jobs::*;
pub use jwt::*;
pub use policy::*;
pub use tools::*;
pub use traces::*;

fn default_true() -> bool {
    true
}

/// Durations written as `5s`, `250ms`, `1m`.
mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "bad duration {s:?}: {e} (write e.g. 5s, 250ms, 1m)"
            ))
        })
    }
}

mod opt_duration {
    use serde::Deserializer;
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration::deserialize(d).map(Some)
    }
}

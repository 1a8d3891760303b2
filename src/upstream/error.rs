//! Why a scope's upstreams could not be set up: at start the gateway does not open, on a reload
//! the running pools stay. Each names the scope and upstream, and the cause in its own words.

/// A cause from a library whose error types differ per step (DNS, URI, header, rustls, reqwest).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("scope {scope}: upstream {upstream}: {cause}")]
    Upstream {
        scope: String,
        upstream: String,
        #[source]
        cause: Cause,
    },
    #[error("scope {scope}: tls: {cause}")]
    Tls {
        scope: String,
        #[source]
        cause: Cause,
    },
    #[error("no free loopback port for a tool process: {0}")]
    NoPort(#[source] std::io::Error),
    #[error("the upstream shared secret is not a valid header value")]
    Secret,
    #[error("scope {scope}: health check: {cause}")]
    HealthCheck {
        scope: String,
        #[source]
        cause: Cause,
    },
}

impl SetupError {
    pub fn upstream(
        scope: &str,
        upstream: impl std::fmt::Display,
        cause: impl Into<Cause>,
    ) -> Self {
        SetupError::Upstream {
            scope: scope.to_string(),
            upstream: upstream.to_string(),
            cause: cause.into(),
        }
    }
}

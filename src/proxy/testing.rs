//! A runtime and a request context for unit tests of the request steps: built from YAML held in
//! memory, with no binary, no ports, no disk and no process environment.

use super::ctx::{Admitted, RequestCtx};
use super::Runtime;
use crate::auth::Identity;
use crate::config::{source::Env, Sources};
use std::path::Path;
use std::sync::Arc;

const GATEWAY: &str = "listen: 127.0.0.1:8000
tools_file: tools.yaml
policy_file: policy.yaml
jwt: { algorithms: [HS256], secret: test-jwt-secret-test-jwt-secret-0123 }
upstream_shared_secret: test-upstream-secret
session_secrets: [test-session-secret-0123456789]
audit: { enabled: false }
";

/// The upstream is never contacted: nothing here starts health checks or connects.
const TOOLS: &str = "scopes:
  calculator:
    upstreams: [{ url: 'http://127.0.0.1:9/mcp' }]
    tools: [exact_calculate, statistics]
";

const POLICY: &str = "roles:
  developer: { allow: ['calculator/*'] }
  analyst: { allow: ['calculator/exact_calculate'] }
";

/// Builds a [`Runtime`] from in-memory files; each part can be replaced.
pub struct TestRuntime {
    gateway: String,
    tools: String,
    policy: String,
}

impl Default for TestRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl TestRuntime {
    pub fn new() -> Self {
        Self {
            gateway: GATEWAY.into(),
            tools: TOOLS.into(),
            policy: POLICY.into(),
        }
    }

    /// Appends to `gateway.yaml`.
    pub fn gateway(mut self, extra: &str) -> Self {
        self.gateway.push_str(extra);
        self
    }

    /// Replaces `tools.yaml`.
    pub fn tools(mut self, yaml: &str) -> Self {
        self.tools = yaml.into();
        self
    }

    /// Appends to `policy.yaml` (e.g. `rate_limits:`).
    pub fn policy(mut self, extra: &str) -> Self {
        self.policy.push_str(extra);
        self
    }

    pub fn build(self) -> Arc<Runtime> {
        let dir = Path::new("/in-memory");
        let file = |name: &str, text: String| (dir.join(name), text.into_bytes());
        let sources = Sources::in_memory(
            &dir.join("gateway.yaml"),
            [
                file("gateway.yaml", self.gateway),
                file("tools.yaml", self.tools),
                file("policy.yaml", self.policy),
            ],
            Env::new(),
        );
        let config = crate::config::validate(&sources).unwrap_or_else(|e| panic!("{e}"));
        crate::server::runtime(config).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A request on the `calculator` scope by `user` with `roles`, as it stands after authentication.
pub fn admitted(rt: &Arc<Runtime>, user: &str, roles: &[&str]) -> RequestCtx {
    let mut ctx = RequestCtx::new(rt.clone());
    let scope = rt.upstreams["calculator"].clone();
    ctx.scope = Some(scope.clone());
    ctx.caller = Some(Admitted {
        scope,
        identity: Arc::new(Identity {
            user: user.into(),
            tenant: None,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            api_version: None,
            valid_until: u64::MAX,
            oauth_scopes: None,
            resources: None,
            claims: Default::default(),
        }),
        session: None,
        session_id: None,
    });
    ctx
}

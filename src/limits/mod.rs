//! Step 5, limits: rate limits from the policy file (GCRA, exact: with `N/min` and no burst, N
//! calls pass and call N+1 is refused, and capacity returns one call every minute/N), held in
//! memory per gateway or, with `rate_limit_store`, in Redis so several instances share one budget;
//! and in-flight limits per user and per upstream.

pub mod inflight;
mod store;

use crate::auth::Identity;
use crate::config::file::{RateLimitKey, StoreFallback};
use crate::config::rate_limits::any;
pub use crate::config::rate_limits::Rule;
use crate::error::GatewayError;
use crate::metrics;
use crate::policy::condition::{self, Facts};
use governor::clock::{Clock, QuantaClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::RateLimiter;
use std::sync::Arc;
use std::time::Duration;
pub use store::{RedisStore, StoreError};

type LocalLimiter = RateLimiter<String, DefaultKeyedStateStore<String>, QuantaClock>;

impl Rule {
    fn applies(&self, f: &Facts) -> bool {
        let (identity, method) = (f.identity, f.method);
        self.methods.iter().any(|m| m == method || m == "*")
            && any(&self.scopes, Some(f.scope))
            && any(&self.tools, f.tool)
            && (self.roles.is_none() || identity.roles.iter().any(|r| any(&self.roles, Some(r))))
            // A condition that cannot be evaluated on this request does not apply the limit.
            && (self.when.as_ref()).is_none_or(|c| condition::holds(c, f) == Ok(true))
    }

    /// The budgets this request draws on (one per matching role for `key: role`), made one at a
    /// time as the check goes (no list of them per request).
    fn keys<'a>(&'a self, identity: &'a Identity, scope: &str, tool: Option<&str>) -> Keys<'a> {
        let tool = tool.unwrap_or("-");
        let one = match self.key {
            RateLimitKey::User => key(&["u:", &identity.user]),
            RateLimitKey::Tenant => key(&["t:", identity.tenant.as_deref().unwrap_or("-")]),
            RateLimitKey::Role => {
                return Keys::Roles {
                    rule: self,
                    roles: identity.roles.iter(),
                }
            }
            RateLimitKey::Tool => key(&["tool:", scope, "/", tool]),
            RateLimitKey::UserTool => key(&["ut:", &identity.user, ":", scope, "/", tool]),
            RateLimitKey::Scope => key(&["s:", scope]),
        };
        Keys::One(Some(one))
    }
}

/// A rule's budget keys for one request.
enum Keys<'a> {
    One(Option<String>),
    /// `key: role`: one per role of the caller the rule names.
    Roles {
        rule: &'a Rule,
        roles: std::slice::Iter<'a, String>,
    },
}

impl Iterator for Keys<'_> {
    type Item = String;
    fn next(&mut self) -> Option<String> {
        match self {
            Keys::One(k) => k.take(),
            Keys::Roles { rule, roles } => roles
                .find(|r| rule.roles.is_none() || any(&rule.roles, Some(r)))
                .map(|r| key(&["r:", r])),
        }
    }
}

fn check_local(local: &LocalLimiter, key: &String, clock: &QuantaClock) -> Result<(), Duration> {
    local
        .check_key(key)
        .map_err(|not_until| not_until.wait_time_from(clock.now()))
}

/// A budget key from its parts: one allocation of the right size (no formatting machinery on the
/// request path).
fn key(parts: &[&str]) -> String {
    let mut k = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        k.push_str(p);
    }
    k
}

/// All rate limits, and where their state lives: in memory (one limiter per rule, same order),
/// or in the shared store.
pub struct RateLimits {
    pub rules: Vec<Rule>,
    locals: Vec<Arc<LocalLimiter>>,
    clock: QuantaClock,
    store: Option<Arc<RedisStore>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("rules", &self.rules)
            .field("shared", &self.store.is_some())
            .finish()
    }
}

impl RateLimits {
    pub fn new(rules: Vec<Rule>, store: Option<RedisStore>) -> Self {
        let clock = QuantaClock::default();
        let locals = rules
            .iter()
            .map(|r| Arc::new(RateLimiter::dashmap_with_clock(r.quota, clock.clone())))
            .collect();
        Self {
            rules,
            locals,
            clock,
            store: store.map(Arc::new),
        }
    }

    /// The limits of a reloaded policy: a rule whose name and definition did not change keeps
    /// the budgets spent under `running`; the shared store (which a reload cannot change) stays.
    pub fn carried_over(rules: Vec<Rule>, running: &RateLimits) -> Self {
        let locals = rules
            .iter()
            .map(|r| {
                let kept = running
                    .rules
                    .iter()
                    .position(|o| o.name == r.name && o.definition == r.definition);
                match kept {
                    Some(i) => running.locals[i].clone(),
                    None => Arc::new(RateLimiter::dashmap_with_clock(
                        r.quota,
                        running.clock.clone(),
                    )),
                }
            })
            .collect();
        Self {
            rules,
            locals,
            clock: running.clock.clone(),
            store: running.store.clone(),
        }
    }

    /// Checks (and spends) every budget this request draws on.
    pub async fn check(&self, f: &Facts<'_>) -> Result<(), GatewayError> {
        let (identity, scope, tool) = (f.identity, f.scope, f.tool);
        for (rule, local) in self
            .rules
            .iter()
            .zip(&self.locals)
            .filter(|(r, _)| r.applies(f))
        {
            for key in rule.keys(identity, scope, tool) {
                let verdict = match &self.store {
                    Some(store) => {
                        match Box::pin(store.check(&rule.name, &key, rule.period, rule.capacity))
                            .await
                        {
                            Ok(v) => v,
                            Err(e) => {
                                metrics::RATE_LIMIT_STORE_ERRORS.inc();
                                tracing::warn!(error = %e, rule = %rule.name, "rate limit store unavailable");
                                match store.fallback {
                                    StoreFallback::Local => check_local(local, &key, &self.clock),
                                    StoreFallback::Refuse => {
                                        return Err(GatewayError::LimiterUnavailable)
                                    }
                                }
                            }
                        }
                    }
                    None => check_local(local, &key, &self.clock),
                };
                if let Err(wait) = verdict {
                    let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                    return Err(GatewayError::RateLimited {
                        limit: rule.name.clone(),
                        retry_after: retry_after.max(1),
                    });
                }
            }
        }
        Ok(())
    }

    /// Forgets keys whose budget is full again, so memory stays bounded as keys come and go.
    pub fn sweep(&self) {
        for local in &self.locals {
            local.retain_recent();
            local.shrink_to_fit();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

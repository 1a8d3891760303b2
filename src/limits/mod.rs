//! Step 5, limits: rate limits from the policy file (GCRA, exact: with `N/min` and no burst, N
//! calls pass and call N+1 is refused, and capacity returns one call every minute/N), held in
//! memory per gateway or, with `rate_limit_store`, in Redis so several instances share one budget;
//! and in-flight limits per user and per upstream.

pub mod inflight;
mod store;

use crate::auth::Identity;
use crate::config::file::{RateLimitFile, RateLimitKey, StoreFallback};
use crate::config::problem::Problem;
use crate::error::GatewayError;
use crate::metrics;
use crate::policy::ScopeTools;
use globset::{Glob, GlobMatcher};
use governor::clock::{Clock, QuantaClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::collections::HashSet;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
pub use store::RedisStore;

type LocalLimiter = RateLimiter<String, DefaultKeyedStateStore<String>, QuantaClock>;

/// One compiled rate limit: a description only (the configuration holds it); its state lives in
/// [`RateLimits`], built by the runtime.
pub struct Rule {
    pub name: String,
    /// The rule as written: a reload keeps the state of a rule whose name and definition stay.
    definition: String,
    key: RateLimitKey,
    /// One call is earned back every `period`.
    period: Duration,
    /// Calls allowed at once: N + burst.
    capacity: u32,
    methods: Vec<String>,
    scopes: Option<Vec<GlobMatcher>>,
    tools: Option<Vec<GlobMatcher>>,
    roles: Option<Vec<GlobMatcher>>,
    quota: Quota,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Rule({}: {} per {:?})",
            self.name, self.capacity, self.period
        )
    }
}

fn any(globs: &Option<Vec<GlobMatcher>>, value: Option<&str>) -> bool {
    match globs {
        None => true,
        Some(g) => value.is_some_and(|v| g.iter().any(|m| m.is_match(v))),
    }
}

impl Rule {
    fn applies(&self, identity: &Identity, scope: &str, method: &str, tool: Option<&str>) -> bool {
        self.methods.iter().any(|m| m == method || m == "*")
            && any(&self.scopes, Some(scope))
            && any(&self.tools, tool)
            && (self.roles.is_none() || identity.roles.iter().any(|r| any(&self.roles, Some(r))))
    }

    /// The budgets this request draws on (one per matching role for `key: role`).
    fn keys(&self, identity: &Identity, scope: &str, tool: Option<&str>) -> Vec<String> {
        let tool = tool.unwrap_or("-");
        match self.key {
            RateLimitKey::User => vec![key(&["u:", &identity.user])],
            RateLimitKey::Tenant => {
                vec![key(&["t:", identity.tenant.as_deref().unwrap_or("-")])]
            }
            RateLimitKey::Role => identity
                .roles
                .iter()
                .filter(|r| self.roles.is_none() || any(&self.roles, Some(r)))
                .map(|r| key(&["r:", r]))
                .collect(),
            RateLimitKey::Tool => vec![key(&["tool:", scope, "/", tool])],
            RateLimitKey::UserTool => vec![key(&["ut:", &identity.user, ":", scope, "/", tool])],
            RateLimitKey::Scope => vec![key(&["s:", scope])],
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

/// Parses `N/s`, `N/min`, `N/h`, `N/day`.
fn parse_rate(rate: &str) -> Result<(u32, Duration), String> {
    let (n, unit) = rate
        .split_once('/')
        .ok_or("write a rate as N/s, N/min, N/h or N/day")?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("{n:?} is not a whole number"))?;
    if n == 0 {
        return Err("the rate must be at least 1".into());
    }
    let unit = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        "d" | "day" => Duration::from_secs(86_400),
        other => return Err(format!("unknown unit {other:?} (s, min, h, day)")),
    };
    Ok((n, unit))
}

fn globs(list: &Option<Vec<String>>) -> Result<Option<Vec<GlobMatcher>>, String> {
    list.as_ref()
        .map(|l| {
            l.iter()
                .map(|p| {
                    Glob::new(p)
                        .map(|g| g.compile_matcher())
                        .map_err(|e| format!("{p:?}: {e}"))
                })
                .collect()
        })
        .transpose()
}

impl RateLimits {
    /// Compiles the policy's limits, reporting each problem with its field.
    pub fn compile(
        path: &Path,
        files: &[RateLimitFile],
        scopes: &ScopeTools,
        roles: &[String],
        problems: &mut Vec<Problem>,
    ) -> Vec<Rule> {
        let mut rules = Vec::new();
        let mut names = HashSet::new();
        for (i, f) in files.iter().enumerate() {
            let at = |field: &str| format!("rate_limits[{i}].{field}");
            if f.name.is_empty() || !names.insert(f.name.clone()) {
                problems.push(Problem::new(
                    path,
                    at("name"),
                    format!("{:?} must be a unique, non-empty name", f.name),
                ));
            }
            let (n, unit) = match parse_rate(&f.rate) {
                Ok(r) => r,
                Err(e) => {
                    problems.push(Problem::new(path, at("rate"), e));
                    continue;
                }
            };
            let (scope_g, tool_g, role_g) = match (
                globs(&f.matches.scopes),
                globs(&f.matches.tools),
                globs(&f.matches.roles),
            ) {
                (Ok(s), Ok(t), Ok(r)) => (s, t, r),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                    problems.push(Problem::new(path, at("match"), e));
                    continue;
                }
            };
            if let Some(g) = &scope_g {
                if !scopes.keys().any(|s| g.iter().any(|m| m.is_match(s))) {
                    problems.push(Problem::new(
                        path,
                        at("match.scopes"),
                        "names no scope of the tools file",
                    ));
                }
            }
            if let Some(g) = &tool_g {
                let known = scopes
                    .iter()
                    .filter(|(name, _)| any(&scope_g, Some(name.as_str())))
                    .flat_map(|(_, tools)| tools.iter());
                if !known.clone().any(|t| g.iter().any(|m| m.is_match(t))) {
                    problems.push(Problem::new(
                        path,
                        at("match.tools"),
                        "names no tool of the matching scope(s)",
                    ));
                }
            }
            if let (Some(g), Some(listed)) = (&role_g, &f.matches.roles) {
                for (j, (m, name)) in g.iter().zip(listed).enumerate() {
                    if !roles.iter().any(|r| m.is_match(r)) {
                        problems.push(Problem::new(
                            path,
                            at(&format!("match.roles[{j}]")),
                            format!("unknown role {name:?}"),
                        ));
                    }
                }
            }
            if f.methods.is_empty() {
                problems.push(Problem::new(
                    path,
                    at("methods"),
                    "name at least one JSON-RPC method (or *)",
                ));
            }
            let capacity = n.saturating_add(f.burst);
            let period = unit / n;
            let Some(quota) = Quota::with_period(period) else {
                problems.push(Problem::new(path, at("rate"), "too fast"));
                continue;
            };
            let quota = quota.allow_burst(NonZeroU32::new(capacity).unwrap_or(NonZeroU32::MIN));
            rules.push(Rule {
                name: f.name.clone(),
                definition: format!("{f:?}"),
                key: f.key,
                period,
                capacity,
                methods: f.methods.clone(),
                scopes: scope_g,
                tools: tool_g,
                roles: role_g,
                quota,
            });
        }
        rules
    }

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
    pub async fn check(
        &self,
        identity: &Identity,
        scope: &str,
        method: &str,
        tool: Option<&str>,
    ) -> Result<(), GatewayError> {
        for (rule, local) in self
            .rules
            .iter()
            .zip(&self.locals)
            .filter(|(r, _)| r.applies(identity, scope, method, tool))
        {
            for key in rule.keys(identity, scope, tool) {
                let verdict = match &self.store {
                    Some(store) => match store
                        .check(&rule.name, &key, rule.period, rule.capacity)
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
                    },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("60/min").unwrap(), (60, Duration::from_secs(60)));
        assert_eq!(parse_rate("5/s").unwrap(), (5, Duration::from_secs(1)));
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("5/fortnight").is_err());
        assert!(parse_rate("five/s").is_err());
    }
}

//! `rate_limits:` of the policy file, compiled: each rule's rate, burst and what it matches. The
//! limiters that hold their state are the limits domain's, built when the gateway starts.

use super::file::{RateLimitFile, RateLimitKey};
use super::policy::ScopeTools;
use super::problem::Problem;
use globset::{Glob, GlobMatcher};
use governor::Quota;
use std::collections::HashSet;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

/// One compiled rate limit: a description only (the configuration holds it); its state lives in
/// [`RateLimits`], built by the runtime.
pub struct Rule {
    pub name: String,
    /// The rule as written: a reload keeps the state of a rule whose name and definition stay.
    pub definition: String,
    pub key: RateLimitKey,
    /// One call is earned back every `period`.
    pub period: Duration,
    /// Calls allowed at once: N + burst.
    pub capacity: u32,
    pub methods: Vec<String>,
    pub scopes: Option<Vec<GlobMatcher>>,
    pub tools: Option<Vec<GlobMatcher>>,
    pub roles: Option<Vec<GlobMatcher>>,
    /// `match.when`: a condition on the request (as a grant's).
    pub when: Option<std::sync::Arc<super::condition::Condition>>,
    pub quota: Quota,
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

/// Whether a rule's globs (none: any value) match `value`.
pub fn any(globs: &Option<Vec<GlobMatcher>>, value: Option<&str>) -> bool {
    match globs {
        None => true,
        Some(g) => value.is_some_and(|v| g.iter().any(|m| m.is_match(v))),
    }
}

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
        let when = match f
            .matches
            .when
            .as_deref()
            .map(super::condition::Condition::compile)
        {
            None => None,
            Some(Ok(c)) => Some(std::sync::Arc::new(c)),
            Some(Err(why)) => {
                problems.push(Problem::new(path, at("match.when"), why));
                continue;
            }
        };
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
            when,
            quota,
        });
    }
    rules
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

//! Role-based access to tools. Grants are written as `scope/tool` globs in the policy file and
//! compiled once, against the tools each scope exposes, into a plain table: on the request path a
//! decision is a hash lookup, never a glob match. Default deny: a role, a scope or a tool that no
//! grant names gets nothing.

use crate::config::file::PolicyFile;
use crate::config::{Problem, ScopeConfig};
use foldhash::{HashMap, HashSet};
use globset::{Glob, GlobMatcher};
use std::collections::BTreeMap;
use std::path::Path;

/// The compiled policy: for each role and scope, the tools it may call. The tables use foldhash:
/// they are built from the operator's files and only looked up with what a client sends, so a
/// keyed SipHash buys nothing here and costs a few hundred instructions per decision.
#[derive(Debug, Default)]
pub struct Policy {
    grants: HashMap<String, HashMap<String, HashSet<String>>>,
}

impl Policy {
    /// Compiles the policy file against the scopes, reporting grants that name nothing.
    pub fn compile(
        path: &Path,
        file: &PolicyFile,
        scopes: &BTreeMap<String, ScopeConfig>,
        problems: &mut Vec<Problem>,
    ) -> Policy {
        let mut grants: HashMap<String, HashMap<String, HashSet<String>>> = HashMap::default();
        for (role, spec) in &file.roles {
            if role.is_empty() || role.chars().any(char::is_whitespace) {
                problems.push(Problem::new(
                    path,
                    format!("roles.{role}"),
                    "a role name has no spaces",
                ));
            }
            let table = grants.entry(role.clone()).or_default();
            for (i, pattern) in spec.allow.iter().enumerate() {
                let field = format!("roles.{role}.allow[{i}]");
                let Some((scope_pat, tool_pat)) = pattern.split_once('/') else {
                    problems.push(Problem::new(
                        path,
                        field,
                        format!("{pattern:?} is not scope/tool (e.g. calculator/*)"),
                    ));
                    continue;
                };
                let (scope_m, tool_m) = match (matcher(scope_pat), matcher(tool_pat)) {
                    (Ok(s), Ok(t)) => (s, t),
                    (Err(e), _) | (_, Err(e)) => {
                        problems.push(Problem::new(path, field, format!("{pattern:?}: {e}")));
                        continue;
                    }
                };
                let mut matched_scope = false;
                let mut matched_tool = false;
                for scope in scopes.values().filter(|s| scope_m.is_match(&s.name)) {
                    matched_scope = true;
                    for tool in scope.tools.iter().filter(|t| tool_m.is_match(t.as_str())) {
                        matched_tool = true;
                        table
                            .entry(scope.name.clone())
                            .or_default()
                            .insert(tool.clone());
                    }
                }
                if !matched_scope {
                    problems.push(Problem::new(
                        path,
                        field,
                        format!("{pattern:?} names no scope of the tools file"),
                    ));
                } else if !matched_tool {
                    problems.push(Problem::new(
                        path,
                        field,
                        format!("{pattern:?} names no tool of the matching scope(s)"),
                    ));
                }
            }
        }
        Policy { grants }
    }

    /// Whether any of `roles` may call `tool` in `scope`.
    pub fn allows(&self, roles: &[String], scope: &str, tool: &str) -> bool {
        roles.iter().any(|r| {
            self.grants
                .get(r)
                .and_then(|s| s.get(scope))
                .is_some_and(|tools| tools.contains(tool))
        })
    }

    /// Whether the role is defined in the policy file.
    pub fn has_role(&self, role: &str) -> bool {
        self.grants.contains_key(role)
    }
}

fn matcher(pattern: &str) -> Result<GlobMatcher, String> {
    if pattern.is_empty() {
        return Err("empty pattern".into());
    }
    Glob::new(pattern)
        .map(|g| g.compile_matcher())
        .map_err(|e| e.kind().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::{Balance, RoleFile};
    use std::time::Duration;

    fn scope(name: &str, tools: &[&str]) -> ScopeConfig {
        ScopeConfig {
            name: name.into(),
            upstreams: vec![],
            balance: Balance::RoundRobin,
            health: None,
            read_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            tools: tools.iter().map(|s| s.to_string()).collect(),
            outlier: None,
            total_timeout: None,
        }
    }

    fn compile(roles: &[(&str, &[&str])]) -> (Policy, Vec<Problem>) {
        let mut scopes = BTreeMap::new();
        scopes.insert(
            "calculator".into(),
            scope("calculator", &["exact_calculate", "statistics"]),
        );
        scopes.insert("git".into(), scope("git", &["git_log"]));
        let file = PolicyFile {
            rate_limits: vec![],
            roles: roles
                .iter()
                .map(|(r, a)| {
                    (
                        r.to_string(),
                        RoleFile {
                            allow: a.iter().map(|s| s.to_string()).collect(),
                        },
                    )
                })
                .collect(),
        };
        let mut problems = vec![];
        let p = Policy::compile(Path::new("policy.yaml"), &file, &scopes, &mut problems);
        (p, problems)
    }

    #[test]
    fn default_deny_and_globs() {
        let (p, problems) = compile(&[
            ("dev", &["calculator/*", "git/*"]),
            ("analyst", &["calculator/exact_calculate"]),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        let analyst = vec!["analyst".to_string()];
        assert!(p.allows(&analyst, "calculator", "exact_calculate"));
        assert!(!p.allows(&analyst, "calculator", "statistics"));
        assert!(!p.allows(&analyst, "git", "git_log"));
        assert!(p.allows(&["x".into(), "dev".into()], "git", "git_log"));
        assert!(!p.allows(&["nobody".into()], "calculator", "exact_calculate"));
        assert!(!p.allows(&[], "calculator", "exact_calculate"));
    }

    #[test]
    fn grants_naming_nothing_are_reported() {
        let (_, problems) = compile(&[("dev", &["calculater/*", "git/nope", "bad"])]);
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 3, "{text:?}");
        assert!(
            text[0].contains("roles.dev.allow[0]") && text[0].contains("no scope"),
            "{text:?}"
        );
        assert!(
            text[1].contains("roles.dev.allow[1]") && text[1].contains("no tool"),
            "{text:?}"
        );
        assert!(text[2].contains("not scope/tool"), "{text:?}");
    }
}

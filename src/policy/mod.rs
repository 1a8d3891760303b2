//! Role-based access to everything a scope offers: tools, resources, prompts and completions.
//!
//! Grants are written in the policy file as `scope/tool` globs (tools, compiled once against the
//! tools each scope exposes into a plain table: a decision is a hash lookup), `scope/resource:URI`
//! and `scope/prompt:NAME` globs (resources and prompts are not listed in the configuration, so
//! these stay globs, matched only for the few methods that name one), and `scope/*`, which grants
//! everything in the scope. Default deny: a role, a scope, a tool, a resource or a prompt that no
//! grant names gets nothing.
//!
//! The compiled table is part of the configuration model (`config::policy`); this module makes the
//! decisions on it.

pub mod condition;

use crate::config::policy::ScopeGrant;
pub use crate::config::policy::{Conditional, Kind, Policy, ScopeTools};
use condition::Facts;

/// How the caller's grants stand toward one tool, resource or prompt.
#[derive(Debug)]
pub enum Verdict<'p> {
    /// A grant without a condition names it.
    Granted,
    /// Only grants with a condition name it: these, in the policy's order.
    Conditional(Vec<&'p Conditional>),
    NotGranted,
}

impl<'p> Verdict<'p> {
    /// The verdict when no grant without a condition names it: these conditional grants, if any.
    fn of(grants: Vec<&'p Conditional>) -> Self {
        if grants.is_empty() {
            Verdict::NotGranted
        } else {
            Verdict::Conditional(grants)
        }
    }

    /// Whether the caller may use it at all (some grant names it).
    pub fn names_it(&self) -> bool {
        !matches!(self, Verdict::NotGranted)
    }
}

/// Why no conditional grant allowed a request: the last one tried (none when there were none).
#[derive(Debug, Clone, Copy)]
pub struct Refusal<'p> {
    pub grant: Option<&'p Conditional>,
    pub why: &'static str,
}

/// The first of `grants` whose condition holds for the request, or why none did.
pub fn first_holding<'p>(
    grants: &[&'p Conditional],
    facts: &Facts,
) -> Result<&'p Conditional, Refusal<'p>> {
    let mut refusal = Refusal {
        grant: None,
        why: "no grant",
    };
    for g in grants {
        let why = match condition::holds(&g.condition, facts) {
            Ok(true) => return Ok(g),
            Ok(false) => "its condition is false for this request",
            Err(why) => why,
        };
        refusal = Refusal {
            grant: Some(g),
            why,
        };
    }
    Err(refusal)
}

impl Policy {
    /// The caller's roles without those bound to a client certificate this connection did not
    /// present (`subject` gives the verified one, if any, and is asked only when a role is bound
    /// to one); `None` when every role stands, which is the answer without a lookup when the
    /// policy binds no role to a certificate.
    pub fn roles_on_connection<'s>(
        &self,
        roles: &[String],
        subject: impl FnOnce() -> Option<&'s str>,
    ) -> Option<Vec<String>> {
        if self.cert_bound.is_empty() {
            return None;
        }
        let subject = subject();
        let stands = |r: &String| {
            self.cert_bound
                .get(r)
                .is_none_or(|m| subject.is_some_and(|s| m.is_match(s)))
        };
        if roles.iter().all(stands) {
            return None;
        }
        Some(roles.iter().filter(|r| stands(r)).cloned().collect())
    }

    fn scope_grants<'a, 'b>(
        &'a self,
        roles: &'b [String],
        scope: &'b str,
    ) -> impl Iterator<Item = &'a ScopeGrant> + 'b
    where
        'a: 'b,
    {
        roles
            .iter()
            .filter_map(move |r| self.grants.get(r).and_then(|s| s.get(scope)))
    }

    /// The role names the policy grants anything to, sorted (the development issuer's login page
    /// offers them).
    pub fn roles(&self) -> Vec<&str> {
        let mut r: Vec<&str> = self.grants.keys().map(String::as_str).collect();
        r.sort_unstable();
        r
    }

    /// Whether any of `roles` has any grant in `scope`. A caller without one gets nothing there,
    /// not even `initialize`.
    pub fn any_in_scope(&self, roles: &[String], scope: &str) -> bool {
        self.scope_grants(roles, scope).next().is_some()
    }

    /// Whether any of `roles` may call `tool` in `scope` without a condition.
    pub fn allows(&self, roles: &[String], scope: &str, tool: &str) -> bool {
        self.scope_grants(roles, scope)
            .any(|g| g.tools.contains(tool))
    }

    /// How the grants of `roles` stand toward `tool` in `scope`.
    pub fn tool_verdict(&self, roles: &[String], scope: &str, tool: &str) -> Verdict<'_> {
        if self.allows(roles, scope, tool) {
            return Verdict::Granted;
        }
        let c: Vec<&Conditional> = (self.scope_grants(roles, scope))
            .flat_map(|g| g.conditional.iter())
            .filter(|c| c.tools.contains(tool))
            .collect();
        Verdict::of(c)
    }

    /// How the grants of `roles` stand toward the resource or prompt `name` in `scope`.
    pub fn kind_verdict(
        &self,
        roles: &[String],
        scope: &str,
        kind: Kind,
        name: &str,
    ) -> Verdict<'_> {
        if self.allows_kind(roles, scope, kind, name) {
            return Verdict::Granted;
        }
        let c: Vec<&Conditional> = (self.scope_grants(roles, scope))
            .flat_map(|g| g.conditional.iter())
            .filter(|c| match kind {
                Kind::Resource => c.resources.iter().any(|m| m.is_match(name)),
                Kind::Prompt => c.prompts.iter().any(|m| m.is_match(name)),
            })
            .collect();
        Verdict::of(c)
    }

    /// Whether some grant of `roles` in `scope` has a condition a list evaluates (one that does
    /// not read the arguments): lists are then cut per caller, never shared by role.
    pub fn decides_lists_by_condition(&self, roles: &[String], scope: &str) -> bool {
        (self.scope_grants(roles, scope))
            .flat_map(|g| g.conditional.iter())
            .any(|c| !c.condition.uses_args)
    }

    /// Whether a list shows the thing: a grant without a condition, or one whose condition reads
    /// the arguments (it may be callable) or holds for the caller as they are (`facts` without
    /// arguments).
    pub fn shows(&self, verdict: &Verdict, facts: &Facts) -> bool {
        match verdict {
            Verdict::Granted => true,
            Verdict::NotGranted => false,
            Verdict::Conditional(c) => c.iter().any(|g| {
                g.condition.uses_args || condition::holds(&g.condition, facts) == Ok(true)
            }),
        }
    }

    /// Whether any of `roles` has a grant of this kind in `scope` (the list methods need one).
    pub fn grants_kind(&self, roles: &[String], scope: &str, kind: Kind) -> bool {
        self.scope_grants(roles, scope).any(|g| {
            g.everything
                || match kind {
                    Kind::Resource => {
                        !g.resources.is_empty()
                            || g.conditional.iter().any(|c| !c.resources.is_empty())
                    }
                    Kind::Prompt => {
                        !g.prompts.is_empty() || g.conditional.iter().any(|c| !c.prompts.is_empty())
                    }
                }
        })
    }

    /// Whether any of `roles` may use the resource (by URI or URI template) or prompt `name`.
    pub fn allows_kind(&self, roles: &[String], scope: &str, kind: Kind, name: &str) -> bool {
        self.scope_grants(roles, scope).any(|g| {
            g.everything
                || match kind {
                    Kind::Resource => g.resources.iter().any(|m| m.is_match(name)),
                    Kind::Prompt => g.prompts.iter().any(|m| m.is_match(name)),
                }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::{AllowFile, PolicyFile, RoleFile};
    use crate::config::problem::Problem;
    use std::collections::BTreeMap;
    use std::path::Path;

    fn scope(tools: &[&str]) -> Vec<String> {
        tools.iter().map(|s| s.to_string()).collect()
    }

    fn compile(roles: &[(&str, &[&str])]) -> (Policy, Vec<Problem>) {
        let mut scopes = BTreeMap::new();
        scopes.insert(
            "calculator".into(),
            scope(&["exact_calculate", "statistics"]),
        );
        scopes.insert("git".into(), scope(&["git_log"]));
        let file = PolicyFile {
            rate_limits: vec![],
            roles: roles
                .iter()
                .map(|(r, a)| {
                    (
                        r.to_string(),
                        RoleFile {
                            allow: a.iter().map(|s| AllowFile::from(*s)).collect(),
                            client_cert: None,
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
    fn resources_prompts_and_everything() {
        let (p, problems) = compile(&[
            (
                "reader",
                &["git/resource:repo://docs/*", "git/prompt:summ*"],
            ),
            ("owner", &["git/*"]),
            ("calc", &["calculator/exact_calculate"]),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        let (reader, owner, calc) = (
            vec!["reader".to_string()],
            vec!["owner".to_string()],
            vec!["calc".to_string()],
        );
        assert!(p.any_in_scope(&reader, "git") && !p.any_in_scope(&reader, "calculator"));
        assert!(!p.allows(&reader, "git", "git_log"));
        assert!(p.allows_kind(&reader, "git", Kind::Resource, "repo://docs/a/b.md"));
        assert!(!p.allows_kind(&reader, "git", Kind::Resource, "repo://src/main.rs"));
        assert!(p.allows_kind(&reader, "git", Kind::Prompt, "summarize"));
        assert!(!p.allows_kind(&reader, "git", Kind::Prompt, "explain"));
        // scope/* is everything in the scope; a tool grant is tools only.
        assert!(p.allows(&owner, "git", "git_log"));
        assert!(p.allows_kind(&owner, "git", Kind::Resource, "anything://x"));
        assert!(p.grants_kind(&owner, "git", Kind::Prompt));
        assert!(!p.grants_kind(&calc, "calculator", Kind::Resource));
        assert!(!p.allows_kind(&calc, "calculator", Kind::Prompt, "x"));
        assert!(!p.any_in_scope(&[], "git"));
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

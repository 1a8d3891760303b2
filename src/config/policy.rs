//! The policy as the operator wrote it, compiled: for each role and scope, the tools (a plain
//! table), resource and prompt globs it is granted, and the roles bound to a client certificate.
//! The decisions on it are the policy domain's (`impl Policy` there).

use super::file::PolicyFile;
use super::problem::Problem;
use foldhash::{HashMap, HashSet};
use globset::{Glob, GlobMatcher};
use std::collections::BTreeMap;
use std::path::Path;

/// Each scope's name and the tools it exposes: what grants are compiled against.
pub type ScopeTools = BTreeMap<String, Vec<String>>;

/// What one role may use in one scope.
#[derive(Debug, Default)]
pub struct ScopeGrant {
    /// `scope/*`: every tool, resource and prompt of the scope.
    pub everything: bool,
    pub tools: HashSet<String>,
    pub resources: Vec<GlobMatcher>,
    pub prompts: Vec<GlobMatcher>,
}

/// The kinds of things a scope offers besides tools, each granted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Resource,
    Prompt,
}

/// The compiled policy: for each role and scope, what it may use. The tables use foldhash:
/// they are built from the operator's files and only looked up with what a client sends, so a
/// keyed SipHash buys nothing here and costs a few hundred instructions per decision.
#[derive(Debug, Default)]
pub struct Policy {
    pub grants: HashMap<String, HashMap<String, ScopeGrant>>,
    /// Roles that count only with a matching verified client certificate (`client_cert:`).
    pub cert_bound: HashMap<String, GlobMatcher>,
}

impl Policy {
    /// Compiles the policy file against the scopes (each scope's name and the tools it exposes),
    /// reporting grants that name nothing.
    pub fn compile(
        path: &Path,
        file: &PolicyFile,
        scopes: &ScopeTools,
        problems: &mut Vec<Problem>,
    ) -> Policy {
        let mut grants: HashMap<String, HashMap<String, ScopeGrant>> = HashMap::default();
        let mut cert_bound = HashMap::default();
        for (role, spec) in &file.roles {
            if role.is_empty() || role.chars().any(char::is_whitespace) {
                problems.push(Problem::new(
                    path,
                    format!("roles.{role}"),
                    "a role name has no spaces",
                ));
            }
            if let Some(subject) = &spec.client_cert {
                match Glob::new(subject) {
                    Ok(g) => {
                        cert_bound.insert(role.clone(), g.compile_matcher());
                    }
                    Err(e) => problems.push(Problem::new(
                        path,
                        format!("roles.{role}.client_cert"),
                        format!("{subject:?} is not a glob: {e}"),
                    )),
                }
            }
            let table = grants.entry(role.clone()).or_default();
            for (i, pattern) in spec.allow.iter().enumerate() {
                let field = format!("roles.{role}.allow[{i}]");
                if let Err(reason) = grant(table, pattern, scopes) {
                    problems.push(Problem::new(path, field, reason));
                }
            }
        }
        Policy { grants, cert_bound }
    }
}

/// Adds one `allow` entry to a role's table.
fn grant(
    table: &mut HashMap<String, ScopeGrant>,
    pattern: &str,
    scopes: &ScopeTools,
) -> Result<(), String> {
    let Some((scope_pat, item)) = pattern.split_once('/') else {
        return Err(format!(
            "{pattern:?} is not scope/tool, scope/resource:URI, scope/prompt:NAME or scope/* (e.g. calculator/*)"
        ));
    };
    let scope_m = matcher(scope_pat).map_err(|e| format!("{pattern:?}: {e}"))?;
    let matching: Vec<(&String, &Vec<String>)> = scopes
        .iter()
        .filter(|(name, _)| scope_m.is_match(name.as_str()))
        .collect();
    if matching.is_empty() {
        return Err(format!("{pattern:?} names no scope of the tools file"));
    }
    let kind = if let Some(p) = item.strip_prefix("resource:") {
        Some((Kind::Resource, p))
    } else {
        item.strip_prefix("prompt:").map(|p| (Kind::Prompt, p))
    };
    if let Some((kind, p)) = kind {
        let m = matcher(p).map_err(|e| format!("{pattern:?}: {e}"))?;
        for (scope, _) in matching {
            let g = table.entry(scope.clone()).or_default();
            match kind {
                Kind::Resource => g.resources.push(m.clone()),
                Kind::Prompt => g.prompts.push(m.clone()),
            }
        }
        return Ok(());
    }
    let tool_m = matcher(item).map_err(|e| format!("{pattern:?}: {e}"))?;
    let mut matched_tool = false;
    for (scope, tools) in matching {
        let g = table.entry(scope.clone()).or_default();
        g.everything |= item == "*";
        for tool in tools.iter().filter(|t| tool_m.is_match(t.as_str())) {
            matched_tool = true;
            g.tools.insert(tool.clone());
        }
    }
    if !matched_tool && item != "*" {
        return Err(format!(
            "{pattern:?} names no tool of the matching scope(s)"
        ));
    }
    Ok(())
}

fn matcher(pattern: &str) -> Result<GlobMatcher, String> {
    if pattern.is_empty() {
        return Err("empty pattern".into());
    }
    Glob::new(pattern)
        .map(|g| g.compile_matcher())
        .map_err(|e| e.kind().to_string())
}

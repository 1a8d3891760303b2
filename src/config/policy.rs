//! The policy as the operator wrote it, compiled: for each role and scope, the tools (a plain
//! table), resource and prompt globs it is granted, and the roles bound to a client certificate.
//! The decisions on it are the policy domain's (`impl Policy` there).

use super::condition::Condition;
use super::file::{AllowFile, PolicyFile};
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
    /// Grants that hold only when their condition does.
    pub conditional: Vec<Conditional>,
}

/// A grant with a condition (`{ tool: …, when: … }`): what it names, in one scope.
#[derive(Debug)]
pub struct Conditional {
    /// Where it is written (`roles.R.allow[i]`): refusals and audit rows name it.
    pub rule: String,
    pub tools: HashSet<String>,
    pub resources: Vec<GlobMatcher>,
    pub prompts: Vec<GlobMatcher>,
    pub condition: std::sync::Arc<Condition>,
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
    /// A condition (of a grant or a rate limit) reads `args`: requests keep their arguments.
    pub reads_arguments: bool,
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
            for (i, entry) in spec.allow.iter().enumerate() {
                let field = format!("roles.{role}.allow[{i}]");
                let added = match entry {
                    AllowFile::Pattern(pattern) => grant(table, pattern, scopes),
                    AllowFile::Conditional(c) => conditional(table, c, scopes, &field)
                        .map_err(|(at, why)| {
                            problems.push(Problem::new(path, format!("{field}.{at}"), why));
                        })
                        .or(Ok(())),
                };
                if let Err(reason) = added {
                    problems.push(Problem::new(path, field, reason));
                }
            }
        }
        let reads_arguments = (grants.values())
            .flat_map(|scopes| scopes.values())
            .flat_map(|g| g.conditional.iter())
            .any(|c| c.condition.uses_args);
        Policy {
            grants,
            cert_bound,
            reads_arguments,
        }
    }
}

/// What one pattern names in one scope.
enum Named {
    /// Tools, and whether the pattern was `scope/*` (everything in the scope).
    Tools(Vec<String>, bool),
    Resources(GlobMatcher),
    Prompts(GlobMatcher),
}

/// Adds one `allow` pattern to a role's table.
fn grant(
    table: &mut HashMap<String, ScopeGrant>,
    pattern: &str,
    scopes: &ScopeTools,
) -> Result<(), String> {
    for (scope, named) in names(pattern, scopes)? {
        let g = table.entry(scope).or_default();
        match named {
            Named::Tools(tools, everything) => {
                g.everything |= everything;
                g.tools.extend(tools);
            }
            Named::Resources(m) => g.resources.push(m),
            Named::Prompts(m) => g.prompts.push(m),
        }
    }
    Ok(())
}

/// Adds one grant with a condition; a problem is (the field under the entry, why).
fn conditional(
    table: &mut HashMap<String, ScopeGrant>,
    c: &super::file::ConditionalFile,
    scopes: &ScopeTools,
    rule: &str,
) -> Result<(), (&'static str, String)> {
    let (field, pattern) = match (&c.tool, &c.resource, &c.prompt) {
        (Some(t), None, None) => ("tool", t.clone()),
        (None, Some(r), None) => ("resource", resource_pattern(r)?),
        (None, None, Some(p)) => ("prompt", prompt_pattern(p)?),
        _ => {
            return Err((
                "tool",
                "name exactly one of tool, resource or prompt".into(),
            ))
        }
    };
    let condition = Condition::compile(&c.when).map_err(|why| ("when", why))?;
    let condition = std::sync::Arc::new(condition);
    for (scope, named) in names(&pattern, scopes).map_err(|why| (field, why))? {
        let mut g = Conditional {
            rule: rule.to_string(),
            tools: HashSet::default(),
            resources: Vec::new(),
            prompts: Vec::new(),
            condition: condition.clone(),
        };
        match named {
            Named::Tools(tools, _) => g.tools.extend(tools),
            Named::Resources(m) => g.resources.push(m),
            Named::Prompts(m) => g.prompts.push(m),
        }
        table.entry(scope).or_default().conditional.push(g);
    }
    Ok(())
}

/// `scope/URI` of a conditional resource grant, as the pattern grammar writes it.
fn resource_pattern(r: &str) -> Result<String, (&'static str, String)> {
    let (scope, uri) = r
        .split_once('/')
        .ok_or(("resource", format!("{r:?} is not scope/URI-glob")))?;
    Ok(format!("{scope}/resource:{uri}"))
}

fn prompt_pattern(p: &str) -> Result<String, (&'static str, String)> {
    let (scope, name) = p
        .split_once('/')
        .ok_or(("prompt", format!("{p:?} is not scope/prompt-glob")))?;
    Ok(format!("{scope}/prompt:{name}"))
}

/// What `pattern` names in each scope it matches.
fn names(pattern: &str, scopes: &ScopeTools) -> Result<Vec<(String, Named)>, String> {
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
        return Ok(matching
            .into_iter()
            .map(|(scope, _)| {
                let named = match kind {
                    Kind::Resource => Named::Resources(m.clone()),
                    Kind::Prompt => Named::Prompts(m.clone()),
                };
                (scope.clone(), named)
            })
            .collect());
    }
    let tool_m = matcher(item).map_err(|e| format!("{pattern:?}: {e}"))?;
    let mut out = Vec::new();
    let mut matched_tool = false;
    for (scope, tools) in matching {
        let named: Vec<String> = (tools.iter())
            .filter(|t| tool_m.is_match(t.as_str()))
            .cloned()
            .collect();
        matched_tool |= !named.is_empty();
        out.push((scope.clone(), Named::Tools(named, item == "*")));
    }
    if !matched_tool && item != "*" {
        return Err(format!(
            "{pattern:?} names no tool of the matching scope(s)"
        ));
    }
    Ok(out)
}

fn matcher(pattern: &str) -> Result<GlobMatcher, String> {
    if pattern.is_empty() {
        return Err("empty pattern".into());
    }
    Glob::new(pattern)
        .map(|g| g.compile_matcher())
        .map_err(|e| e.kind().to_string())
}

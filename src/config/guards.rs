//! `guards:`, compiled: the detectors a scope runs over call arguments and results (secrets,
//! personal data, the operator's own patterns), each with its action per direction, as one
//! `RegexSet` so a clean text costs a single pass. The scanning and redacting are the guard
//! domain's (the `guard` module).

use super::file::{CustomDetectorFile, GuardAction, GuardsFile, WebhookOnError};
use super::problem::Problem;
use regex::{Regex, RegexSet};
use std::path::Path;
use std::time::Duration;

/// What confirms a match beyond the pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    None,
    /// Payment card numbers: the Luhn checksum.
    Luhn,
    /// IBANs: the ISO 7064 mod-97 check.
    Iban,
    /// A secret behind a `key=`-like name: its value looks random (≥ 3.5 bits per character).
    Entropy,
}

/// One detector.
#[derive(Debug)]
pub struct Detector {
    /// `secrets.aws_access_key`, `pii.card`, `custom.ticket`: metrics and audit rows name it.
    pub name: String,
    pub regex: Regex,
    /// The capture group that is the sensitive part (0: the whole match).
    pub group: usize,
    pub check: Check,
    pub on_arguments: Option<GuardAction>,
    pub on_results: Option<GuardAction>,
}

/// The external check of arguments.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: String,
    pub timeout: Duration,
    pub on_error: WebhookOnError,
}

/// A scope's guards.
#[derive(Debug)]
pub struct Guards {
    pub detectors: Vec<Detector>,
    /// The detectors' patterns in one set (same order).
    pub set: RegexSet,
    pub webhook: Option<Webhook>,
    pub max_result_bytes: usize,
}

impl Guards {
    /// Whether any detector acts on arguments (or a webhook checks them).
    pub fn on_arguments(&self) -> bool {
        self.webhook.is_some() || self.detectors.iter().any(|d| d.on_arguments.is_some())
    }

    /// Whether any detector acts on results.
    pub fn on_results(&self) -> bool {
        self.detectors.iter().any(|d| d.on_results.is_some())
    }
}

const DEFAULT_MAX_RESULT: usize = 4 * 1024 * 1024;

/// The built-in detectors: (group, name, pattern, group index, check).
const BUILT_IN: &[(&str, &str, &str, usize, Check)] = &[
    (
        "secrets",
        "aws_access_key",
        r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
        0,
        Check::None,
    ),
    (
        "secrets",
        "github_token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
        0,
        Check::None,
    ),
    (
        "secrets",
        "gitlab_token",
        r"\bglpat-[A-Za-z0-9_\-]{20,}",
        0,
        Check::None,
    ),
    (
        "secrets",
        "slack_token",
        r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",
        0,
        Check::None,
    ),
    (
        "secrets",
        "private_key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|[\s\S]*)",
        0,
        Check::None,
    ),
    (
        "secrets",
        "jwt",
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        0,
        Check::None,
    ),
    (
        "secrets",
        "generic_secret",
        r#"(?i)(?:api[_-]?key|secret|token|password|passwd|pwd|access[_-]?key|client[_-]?secret)["']?\s*[:=]\s*["']?([A-Za-z0-9_\-+/=.]{16,})"#,
        1,
        Check::Entropy,
    ),
    (
        "pii",
        "email",
        r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b",
        0,
        Check::None,
    ),
    (
        "pii",
        "phone",
        r"(?:\+[1-9]\d{0,2}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{2,4}(?:[ .\-]?\d{2,4}){1,4}|\(\d{3}\) ?\d{3}-\d{4})\b",
        0,
        Check::None,
    ),
    ("pii", "card", r"\b(?:\d[ \-]?){12,18}\d\b", 0, Check::Luhn),
    (
        "pii",
        "iban",
        r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b",
        0,
        Check::Iban,
    ),
];

/// A pattern with ASCII word boundaries, digits and spaces: what the detectors look for is ASCII,
/// and Unicode classes would multiply the states of the set's DFA.
fn ascii(pattern: &str) -> String {
    pattern
        .replace("[\\s\\S]", "(?s:.)")
        .replace("\\b", "(?-u:\\b)")
        .replace("\\d", "[0-9]")
        .replace("\\s", "[ \\t\\r\\n]")
}

/// Every built-in detector's name, for messages.
fn known() -> String {
    let mut names: Vec<String> = vec!["secrets".into(), "pii".into()];
    names.extend(BUILT_IN.iter().map(|(_, n, ..)| n.to_string()));
    names.join(", ")
}

/// The action `map` gives detector `name` of `group` (its own entry wins over its group's).
fn action_of(
    map: &std::collections::BTreeMap<String, GuardAction>,
    group: &str,
    name: &str,
) -> Option<GuardAction> {
    map.get(name).or_else(|| map.get(group)).copied()
}

/// Compiles one `guards:` section (`at`: its field, e.g. `guards` or `scopes.git.guards`).
pub fn build(path: &Path, at: &str, f: &GuardsFile, problems: &mut Vec<Problem>) -> Option<Guards> {
    let before = problems.len();
    for (dir, map) in [("arguments", &f.arguments), ("results", &f.results)] {
        for key in map.keys() {
            let ok = key == "secrets" || key == "pii" || BUILT_IN.iter().any(|(_, n, ..)| n == key);
            if !ok {
                problems.push(Problem::new(
                    path,
                    format!("{at}.{dir}.{key}"),
                    format!("no such detector (there are {})", known()),
                ));
            }
        }
    }
    let mut detectors = Vec::new();
    for (group, name, pattern, idx, check) in BUILT_IN {
        let on_arguments = action_of(&f.arguments, group, name);
        let on_results = action_of(&f.results, group, name);
        if on_arguments.is_none() && on_results.is_none() {
            continue;
        }
        let Ok(regex) = Regex::new(&ascii(pattern)) else {
            problems.push(Problem::new(
                path,
                at,
                format!("built-in detector {name} does not compile"),
            ));
            continue;
        };
        detectors.push(Detector {
            name: format!("{group}.{name}"),
            regex,
            group: *idx,
            check: *check,
            on_arguments,
            on_results,
        });
    }
    for (i, c) in f.custom.iter().enumerate() {
        if let Some(d) = custom(path, &format!("{at}.custom[{i}]"), c, &detectors, problems) {
            detectors.push(d);
        }
    }
    let webhook = f.webhook.as_ref().and_then(|w| {
        if !super::credentials::is_http_url(&w.url) {
            problems.push(Problem::new(
                path,
                format!("{at}.webhook.url"),
                "not an http(s) URL",
            ));
            return None;
        }
        Some(Webhook {
            url: w.url.clone(),
            timeout: w.timeout,
            on_error: w.on_error,
        })
    });
    let max_result_bytes = f.max_result_bytes.unwrap_or(DEFAULT_MAX_RESULT);
    if max_result_bytes == 0 {
        problems.push(Problem::new(
            path,
            format!("{at}.max_result_bytes"),
            "must be at least 1",
        ));
    }
    let set = regex::RegexSetBuilder::new(detectors.iter().map(|d| d.regex.as_str()))
        .dfa_size_limit(16 << 20)
        .build();
    let set = match set {
        Ok(s) => s,
        Err(e) => {
            problems.push(Problem::new(
                path,
                at,
                format!("the detectors do not compile together: {e}"),
            ));
            return None;
        }
    };
    (problems.len() == before).then_some(Guards {
        detectors,
        set,
        webhook,
        max_result_bytes,
    })
}

fn custom(
    path: &Path,
    at: &str,
    c: &CustomDetectorFile,
    so_far: &[Detector],
    problems: &mut Vec<Problem>,
) -> Option<Detector> {
    let name_ok = !c.name.is_empty()
        && c.name.len() <= 64
        && c.name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !name_ok {
        problems.push(Problem::new(
            path,
            format!("{at}.name"),
            "1 to 64 of a-z, 0-9 and _",
        ));
        return None;
    }
    let name = format!("custom.{}", c.name);
    if so_far.iter().any(|d| d.name == name) {
        problems.push(Problem::new(
            path,
            format!("{at}.name"),
            format!("{:?} is named twice", c.name),
        ));
        return None;
    }
    if c.arguments.is_none() && c.results.is_none() {
        problems.push(Problem::new(
            path,
            at,
            "give an action on arguments, results or both",
        ));
        return None;
    }
    let regex = match regex::RegexBuilder::new(&c.pattern)
        .size_limit(1 << 20)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let why = e.to_string();
            let why = why.lines().last().unwrap_or("").trim().to_string();
            problems.push(Problem::new(
                path,
                format!("{at}.pattern"),
                format!("not a regular expression: {why}"),
            ));
            return None;
        }
    };
    Some(Detector {
        name,
        regex,
        group: 0,
        check: Check::None,
        on_arguments: c.arguments,
        on_results: c.results,
    })
}

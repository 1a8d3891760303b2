//! Guards: secrets and personal data in a call's arguments and in results, found by the scope's
//! detectors (`config::guards`) and blocked, redacted or only counted. A text is first matched
//! against all detectors at once (`RegexSet`, one pass): a clean answer is passed on byte for
//! byte. Only when a detector may match is the JSON read and each string value checked (the
//! match confirmed: Luhn for cards, mod-97 for IBANs, entropy for `key=` values) and redacted in
//! place (`[REDACTED:detector]`), so the JSON stays valid and `structuredContent` keeps its shape.
//! Hits are counted by detector; the matched text is never kept, logged or audited.

pub mod results;
pub mod webhook;

use crate::config::file::GuardAction;
use crate::config::guards::{Check, Detector, Guards};
use serde_json::Value;

/// Which way the data goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Arguments,
    Results,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Arguments => "arguments",
            Direction::Results => "results",
        }
    }
}

fn action(d: &Detector, dir: Direction) -> Option<GuardAction> {
    match dir {
        Direction::Arguments => d.on_arguments,
        Direction::Results => d.on_results,
    }
}

fn action_name(a: GuardAction) -> &'static str {
    match a {
        GuardAction::Block => "block",
        GuardAction::Redact => "redact",
        GuardAction::Audit => "audit",
    }
}

/// The hits of one request: (detector, direction, action, count).
#[derive(Debug, Default, Clone)]
pub struct Hits(Vec<(String, Direction, GuardAction, u32)>);

impl Hits {
    fn add(&mut self, d: &Detector, dir: Direction, a: GuardAction, n: u32) {
        self.merge((d.name.clone(), dir, a, n));
    }

    /// One detector's hits in one direction, added to its entry (or a new one).
    fn merge(&mut self, hit: (String, Direction, GuardAction, u32)) {
        match self.0.iter_mut().find(|x| x.0 == hit.0 && x.1 == hit.1) {
            Some(x) => x.3 += hit.3,
            None => self.0.push(hit),
        }
    }

    pub fn extend(&mut self, other: Hits) {
        for h in other.0 {
            self.merge(h);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// For the audit row: `detector:direction:action:count,…` (bounded: at most 32 entries).
    pub fn summary(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| {
            (self.0.iter().take(32))
                .map(|(n, d, a, c)| format!("{n}:{}:{}:{c}", d.as_str(), action_name(*a)))
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    /// Counts every hit in `mcp_guard_hits_total`.
    pub fn count(&self, scope: &str) {
        for (n, d, a, c) in &self.0 {
            crate::metrics::GUARD_HITS
                .with_label_values(&[scope, n, action_name(*a), d.as_str()])
                .inc_by(u64::from(*c));
        }
    }
}

/// What inspecting one JSON text found.
#[derive(Debug, Default)]
pub struct Inspection {
    pub hits: Hits,
    /// A detector whose action is `block` matched: its name.
    pub blocked: Option<String>,
    /// The text with what was found redacted, when a redaction applied.
    pub redacted: Option<Value>,
}

/// The detectors acting in `dir` that may match `text` (one pass over it). A text with `\u`
/// escapes is checked by every such detector after decoding (an escape could hide a match).
fn candidates<'g>(g: &'g Guards, text: &str, dir: Direction) -> Vec<&'g Detector> {
    let acting = |d: &&Detector| action(d, dir).is_some();
    if text.contains("\\u") {
        return g.detectors.iter().filter(acting).collect();
    }
    // Most texts match nothing: one leftmost search settles that before the overlapping one
    // that says which detectors matched.
    if !g.set.is_match(text) {
        return Vec::new();
    }
    let set = g.set.matches(text);
    (set.iter().map(|i| &g.detectors[i]))
        .filter(acting)
        .collect()
}

/// A text a detector may match that is not JSON: it cannot be inspected further.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the text is not JSON")]
pub struct NotJson;

/// Inspects a JSON text; `None` when nothing is there (the fast path: no parse).
pub fn inspect(g: &Guards, raw: &str, dir: Direction) -> Result<Option<Inspection>, NotJson> {
    let found = candidates(g, raw, dir);
    if found.is_empty() {
        return Ok(None);
    }
    let mut value: Value = serde_json::from_str(raw).map_err(|_| NotJson)?;
    let mut out = Inspection::default();
    let mut changed = false;
    walk(&mut value, &mut |s: &mut String| {
        changed |= scan_string(s, &found, dir, &mut out);
    });
    if changed {
        out.redacted = Some(value);
    }
    Ok((!out.hits.is_empty()).then_some(out))
}

/// Calls `f` on every string value (object keys are the structure and stay).
fn walk(v: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter_mut().for_each(|x| walk(x, f)),
        Value::Object(o) => o.values_mut().for_each(|x| walk(x, f)),
        _ => {}
    }
}

/// Checks one string with the candidate detectors; redacts in place. Whether it changed.
fn scan_string(s: &mut String, found: &[&Detector], dir: Direction, out: &mut Inspection) -> bool {
    let mut ranges: Vec<(usize, usize, &str)> = Vec::new();
    for d in found {
        let Some(a) = action(d, dir) else { continue };
        let mut n = 0;
        for caps in d.regex.captures_iter(s) {
            let Some(m) = caps.get(d.group) else { continue };
            if !confirmed(d.check, m.as_str()) {
                continue;
            }
            n += 1;
            match a {
                GuardAction::Block => {
                    out.blocked.get_or_insert_with(|| d.name.clone());
                }
                GuardAction::Redact => ranges.push((m.start(), m.end(), d.name.as_str())),
                GuardAction::Audit => {}
            }
        }
        if n > 0 {
            out.hits.add(d, dir, a, n);
        }
    }
    if ranges.is_empty() {
        return false;
    }
    ranges.sort_by_key(|r| (r.0, std::cmp::Reverse(r.1)));
    let mut redacted = String::with_capacity(s.len());
    let mut at = 0;
    for (start, end, name) in ranges {
        if end <= at {
            continue;
        }
        let start = start.max(at);
        redacted.push_str(&s[at..start]);
        redacted.push_str("[REDACTED:");
        redacted.push_str(name);
        redacted.push(']');
        at = end;
    }
    redacted.push_str(&s[at..]);
    *s = redacted;
    true
}

fn confirmed(check: Check, text: &str) -> bool {
    match check {
        Check::None => true,
        Check::Luhn => luhn(text),
        Check::Iban => iban(text),
        Check::Entropy => entropy(text) >= 3.5,
    }
}

/// A card number: 13 to 19 digits (spaces and dashes between them) with a valid Luhn checksum.
fn luhn(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = (digits.iter().rev().enumerate())
        .map(|(i, d)| match i % 2 {
            1 if d * 2 > 9 => d * 2 - 9,
            1 => d * 2,
            _ => *d,
        })
        .sum();
    sum.is_multiple_of(10)
}

/// An IBAN: 15 to 34 characters whose ISO 7064 mod-97 remainder is 1.
fn iban(text: &str) -> bool {
    let compact: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let rotated = compact[4..].iter().chain(&compact[..4]);
    let mut rem: u32 = 0;
    for c in rotated {
        let v = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        rem = if v > 9 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// Shannon entropy in bits per character.
fn entropy(text: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for c in text.chars() {
        *counts.entry(c).or_insert(0u32) += 1;
    }
    let n = text.chars().count() as f64;
    counts
        .values()
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests;

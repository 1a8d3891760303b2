//! Conditions on grants and rate limits (`when:`), in the Common Expression Language (CEL, the
//! `cel` crate): compiled once at load; a syntax error or a variable that does not exist is a
//! configuration problem. Evaluated by the policy domain (`policy::condition`) with the request's
//! facts; what an expression cannot evaluate (a missing field, a wrong type) denies.

/// The variables a condition may use.
pub const VARIABLES: &[&str] = &[
    "claims",
    "user",
    "roles",
    "tenant",
    "scope",
    "tool",
    "args",
    "method",
    "resource",
    "prompt",
    "client_cert",
    "now",
];

/// The longest condition accepted.
const MAX_SOURCE: usize = 4096;

/// One compiled condition.
pub struct Condition {
    /// As written (the audit row and the log name it).
    pub source: String,
    pub program: cel::Program,
    /// It reads the request's arguments (so a list shows the tool: it may be callable).
    pub uses_args: bool,
    /// It reads the token's claims.
    pub uses_claims: bool,
    /// Which of [`VARIABLES`] it reads (bit i for `VARIABLES[i]`).
    used: u16,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Condition({:?})", self.source)
    }
}

impl Condition {
    /// Compiles `source`, or says why it cannot be (for a `Problem`).
    pub fn compile(source: &str) -> Result<Condition, String> {
        if source.trim().is_empty() {
            return Err("an empty condition".into());
        }
        if source.len() > MAX_SOURCE {
            return Err(format!("a condition of at most {MAX_SOURCE} bytes"));
        }
        let program = cel::Program::compile(source)
            .map_err(|e| format!("not a CEL expression: {}", first_line(&e.to_string())))?;
        let refs = program.references();
        // A macro's own variable (`roles.exists(r, r == "admin")`) is listed as a variable too.
        let compact: String = source.split_whitespace().collect();
        let bound = |v: &str| compact.contains(&format!("({v},"));
        let unknown: Vec<&str> = refs
            .variables()
            .into_iter()
            .filter(|v| !VARIABLES.contains(v) && !bound(v))
            .collect();
        if let Some(v) = unknown.first() {
            return Err(format!(
                "unknown variable {v:?} (a condition may use {})",
                VARIABLES.join(", ")
            ));
        }
        let (uses_args, uses_claims) = (refs.has_variable("args"), refs.has_variable("claims"));
        let used = (VARIABLES.iter().enumerate())
            .filter(|(_, v)| refs.has_variable(v))
            .fold(0u16, |bits, (i, _)| bits | 1 << i);
        drop(refs);
        Ok(Condition {
            source: source.to_string(),
            program,
            uses_args,
            uses_claims,
            used,
        })
    }

    /// The variables it reads.
    pub fn uses(&self) -> impl Iterator<Item = &'static str> + '_ {
        (VARIABLES.iter().enumerate())
            .filter(|(i, _)| self.used & (1 << i) != 0)
            .map(|(_, v)| *v)
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_and_unknown_variables_are_refused() {
        let c = Condition::compile(r#"args.repository.startsWith(claims.org + "/")"#).unwrap();
        assert!(c.uses_args && c.uses_claims);
        assert!(!Condition::compile("user == 'a'").unwrap().uses_args);
        let e = Condition::compile("args.repository.startsWith(").unwrap_err();
        assert!(e.starts_with("not a CEL expression"), "{e}");
        let e = Condition::compile("arg.x == 1").unwrap_err();
        assert!(e.contains("unknown variable \"arg\""), "{e}");
        assert!(Condition::compile(" ").is_err());
        assert!(Condition::compile("roles.exists(r, r == 'admin')").is_ok());
    }
}

//! Evaluating a grant's or a rate limit's condition (`when:`, CEL) on one request. Only the
//! variables the expression uses are built (the arguments are parsed only for a condition that
//! reads them); anything that cannot be evaluated (a missing field, a wrong type, a result that is
//! not a boolean) counts as false. Reasons never carry a value of the request.

use crate::auth::Identity;
use crate::config::condition::Condition;
use cel::Value;
use std::sync::Arc;

/// What a condition may read of the request.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub identity: &'a Identity,
    pub scope: &'a str,
    pub method: &'a str,
    pub tool: Option<&'a str>,
    /// The raw JSON of `params.arguments`, when the request has them.
    pub arguments: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub prompt: Option<&'a str>,
    /// The verified client certificate's subject (RFC 4514).
    pub client_cert: Option<&'a str>,
}

thread_local! {
    /// The standard environment, built once per thread: every evaluation adds its variables in
    /// a scope of its own on top.
    static ROOT: cel::Context<'static, 'static> = cel::Context::default();
    /// The last caller's claims as a CEL map: a caller's requests share one verified identity
    /// (the token cache), so its claims are converted once per run of requests, not per request.
    static CLAIMS: std::cell::RefCell<Option<(ClaimsMap, Value)>> = const { std::cell::RefCell::new(None) };
}

type ClaimsMap = Arc<serde_json::Map<String, serde_json::Value>>;

fn claims(of: &ClaimsMap) -> Value {
    CLAIMS.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((map, value)) = last.as_ref() {
            if Arc::ptr_eq(map, of) {
                return value.clone();
            }
        }
        let value = cel::to_value(&**of).unwrap_or(Value::Null);
        *last = Some((of.clone(), value.clone()));
        value
    })
}

fn text(s: &str) -> Value {
    Value::String(Arc::new(s.to_string()))
}

fn optional(s: Option<&str>) -> Value {
    s.map_or(Value::Null, text)
}

fn json(v: &serde_json::Value) -> Value {
    cel::to_value(v).unwrap_or(Value::Null)
}

/// Whether `c` holds for the request, or why it could not be decided (then it does not hold).
pub fn holds(c: &Condition, f: &Facts) -> Result<bool, &'static str> {
    let arguments = match (c.uses_args, f.arguments) {
        (false, _) => Value::Null,
        (true, None) => json(&serde_json::Value::Object(Default::default())),
        (true, Some(raw)) => match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(v) => json(&v),
            Err(_) => return Err("the arguments are not JSON"),
        },
    };
    let result = ROOT.with(|root| {
        let mut ctx = root.new_inner_scope();
        let id = f.identity;
        for name in c.uses() {
            let value = match name {
                "claims" => claims(&id.claims),
                "user" => text(&id.user),
                "roles" => Value::List(Arc::new(id.roles.iter().map(|r| text(r)).collect())),
                "tenant" => optional(id.tenant.as_deref()),
                "scope" => text(f.scope),
                "tool" => optional(f.tool),
                "args" => arguments.clone(),
                "method" => text(f.method),
                "resource" => optional(f.resource),
                "prompt" => optional(f.prompt),
                "client_cert" => optional(f.client_cert),
                "now" => Value::Timestamp(chrono::Utc::now().fixed_offset()),
                _ => continue,
            };
            ctx.add_variable_from_value(name, value);
        }
        c.program.execute(&ctx)
    });
    match result {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(_) => Err("the condition does not give a boolean"),
        Err(_) => Err(
            "the condition cannot be evaluated on this request (a missing field or a wrong type)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        let claims = serde_json::json!({"sub": "ann", "org": "acme", "acr": "mfa"});
        Identity {
            user: "ann".into(),
            tenant: Some("acme".into()),
            roles: vec!["analyst".into()],
            api_version: None,
            valid_until: u64::MAX,
            oauth_scopes: None,
            resources: None,
            claims: Arc::new(claims.as_object().unwrap().clone()),
        }
    }

    fn check(source: &str, arguments: Option<&str>) -> Result<bool, &'static str> {
        let c = Condition::compile(source).unwrap();
        let id = identity();
        let f = Facts {
            identity: &id,
            scope: "git",
            method: "tools/call",
            tool: Some("git_log"),
            arguments,
            resource: None,
            prompt: None,
            client_cert: None,
        };
        holds(&c, &f)
    }

    #[test]
    fn conditions_read_claims_arguments_and_the_request() {
        let own = r#"args.repository.startsWith(claims.org + "/")"#;
        assert_eq!(check(own, Some(r#"{"repository": "acme/app"}"#)), Ok(true));
        assert_eq!(
            check(own, Some(r#"{"repository": "other/app"}"#)),
            Ok(false)
        );
        assert!(
            check(own, Some(r#"{"path": "x"}"#)).is_err(),
            "a missing field denies"
        );
        assert!(check(own, Some("{")).is_err());
        assert_eq!(
            check("claims.acr == 'mfa' && 'analyst' in roles", None),
            Ok(true)
        );
        assert_eq!(
            check(
                "tenant == 'acme' && tool == 'git_log' && scope == 'git'",
                None
            ),
            Ok(true)
        );
        assert_eq!(check("client_cert == null", None), Ok(true));
        assert!(check("user", None).is_err(), "not a boolean");
        assert_eq!(
            check("now > timestamp('2020-01-01T00:00:00Z')", None),
            Ok(true)
        );
    }
}

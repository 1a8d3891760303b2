//! The external guard (`guards.webhook`): each guarded `tools/call` is sent (method, scope, tool,
//! caller and arguments; never the token) to the operator's service, which answers
//! `{"decision": "allow" | "deny" | "redact", "arguments": {…}, "reason": "…"}`. An answer that
//! does not come within the timeout, or cannot be read, decides by `on_error` (deny by default).

use crate::config::file::WebhookOnError;
use crate::config::guards::Webhook;
use serde::Deserialize;
use serde_json::Value;

/// What the webhook decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allow,
    Deny(String),
    /// Go on with these arguments instead.
    Redact(Value),
}

#[derive(Deserialize)]
struct Answer {
    decision: String,
    #[serde(default)]
    arguments: Option<Value>,
    #[serde(default)]
    reason: Option<String>,
}

/// The call as the webhook sees it.
pub struct Call<'a> {
    pub scope: &'a str,
    pub tool: &'a str,
    pub user: &'a str,
    pub tenant: Option<&'a str>,
    pub roles: &'a [String],
    pub arguments: &'a Value,
}

fn client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(reqwest::Client::new)
}

/// Asks the webhook about one call.
pub async fn ask(w: &Webhook, call: &Call<'_>) -> Verdict {
    let body = serde_json::json!({
        "method": "tools/call",
        "scope": call.scope,
        "tool": call.tool,
        "user": call.user,
        "tenant": call.tenant,
        "roles": call.roles,
        "arguments": call.arguments,
    });
    let answer = async {
        let resp = client()
            .post(&w.url)
            .timeout(w.timeout)
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "timed out"
                } else {
                    "unreachable"
                }
            })?;
        if !resp.status().is_success() {
            return Err("answered an error status");
        }
        resp.json::<Answer>()
            .await
            .map_err(|_| "gave an answer that cannot be read")
    };
    let failed = |why: &str| {
        tracing::warn!(url = %w.url, why, "guard webhook failed");
        match w.on_error {
            WebhookOnError::Deny => Verdict::Deny(format!("the guard webhook {why}")),
            WebhookOnError::Allow => Verdict::Allow,
        }
    };
    match answer.await {
        Ok(a) => match (a.decision.as_str(), a.arguments) {
            ("allow", _) => Verdict::Allow,
            ("deny", _) => Verdict::Deny(
                a.reason
                    .map(|r| crate::logs::clip(&r).into_owned())
                    .unwrap_or_else(|| "denied by the guard webhook".into()),
            ),
            ("redact", Some(args)) if args.is_object() => Verdict::Redact(args),
            _ => failed("gave an answer that cannot be read"),
        },
        Err(why) => failed(why),
    }
}

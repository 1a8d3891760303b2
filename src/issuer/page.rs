//! The development issuer's two pages: the login form and an error. Plain HTML, no scripts; every
//! value from the request is escaped.

use super::authorize::AuthorizeParams;
use super::Issuer;
use html_escape::encode_double_quoted_attribute as attr;
use html_escape::encode_text as text;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}label{display:block;margin:.8rem 0 .2rem}input[type=text]{width:100%;padding:.4rem}button{margin-top:1.2rem;padding:.5rem 1.2rem}.note{color:#555;font-size:.9rem}";

/// The login form: who to log in as. The authorization request's parameters ride along as hidden
/// fields and are checked again when the form is posted.
pub fn login(i: &Issuer, p: &AuthorizeParams, client_name: &str) -> String {
    let hidden = [
        ("response_type", Some(p.response_type.as_str())),
        ("client_id", Some(p.client_id.as_str())),
        ("redirect_uri", Some(p.redirect_uri.as_str())),
        ("state", p.state.as_deref()),
        ("scope", p.scope.as_deref()),
        ("code_challenge", Some(p.code_challenge.as_str())),
        (
            "code_challenge_method",
            Some(p.code_challenge_method.as_str()),
        ),
        ("resource", p.resource.as_deref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| {
        v.map(|v| format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", attr(v)))
    })
    .collect::<String>();
    let roles = i.roles();
    let scope = i.granted_scopes(p.scope.as_deref()).join(" ");
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>mcp-gateway development login</title><style>{STYLE}</style></head><body>\
<h1>Log in (development)</h1>\
<p><b>{client}</b> asks for access{resource}.</p>\
<p class=\"note\">Development issuer: pick any user and roles. Roles in the policy: {roles}. OAuth scopes granted: {scope}.</p>\
<form method=\"post\" action=\"/authorize\">{hidden}\
<label for=\"user_id\">User id</label><input type=\"text\" id=\"user_id\" name=\"user_id\" value=\"dev\" required>\
<label for=\"roles\">Roles (comma-separated)</label><input type=\"text\" id=\"roles\" name=\"roles\" value=\"developer\">\
<label for=\"workspace\">Workspace (tenant, optional)</label><input type=\"text\" id=\"workspace\" name=\"workspace\" value=\"\">\
<button type=\"submit\">Log in</button></form></body></html>",
        client = text(client_name),
        resource = p
            .resource
            .as_deref()
            .map(|r| format!(" to <code>{}</code>", text(r)))
            .unwrap_or_default(),
        roles = text(&roles),
        scope = text(&scope),
    )
}

/// A request that cannot go on.
pub fn error(reason: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Login failed</title><style>{STYLE}</style></head><body><h1>This login cannot go on</h1><p>{}</p></body></html>",
        text(reason)
    )
}

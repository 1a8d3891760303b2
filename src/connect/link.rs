//! What the consent page carries between the client, the browser and the authorization servers,
//! each sealed with the gateway's session keys for one purpose (a value sealed for one never opens
//! as another) and each with an expiry: the sign-in link a refused call gets, the states of the
//! two authorization requests, the browser's login cookie and the revoke form's CSRF token.

use super::Who;
use crate::session::SessionKeys;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// How long a sign-in link works.
pub const LINK_LIFETIME: u64 = 15 * 60;
/// How long an authorization request may take the user.
pub const STATE_LIFETIME: u64 = 10 * 60;
/// How long the browser stays signed in to the consent page.
pub const LOGIN_LIFETIME: u64 = 8 * 3600;

/// The sign-in link of a refused call: who must sign in where.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Link {
    pub who: Who,
    pub upstream: String,
    pub exp: u64,
}

/// The state of the sign-in at the gateway's own authorization server: where to go on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginState {
    /// A path under `/connect` (the link, or the page of logins).
    pub then: String,
    /// The scope whose endpoint the token is asked for (its audience).
    pub scope: String,
    pub verifier: String,
    pub exp: u64,
}

/// The state of the sign-in at an upstream's authorization server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpstreamState {
    pub who: Who,
    pub upstream: String,
    pub verifier: String,
    pub exp: u64,
}

/// The browser's sign-in to the consent page (cookie).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Login {
    pub who: Who,
    pub exp: u64,
}

/// The revoke form's token: made for this user's page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Csrf {
    pub who: Who,
    pub exp: u64,
}

/// A sealed value of one purpose.
pub trait Sealed: Serialize + DeserializeOwned {
    const PURPOSE: &'static [u8];
    fn exp(&self) -> u64;

    fn seal(&self, keys: &SessionKeys) -> Option<String> {
        keys.seal_as(self, Self::PURPOSE)
    }

    /// Opens `text`; `None` when forged, altered, of another purpose or expired.
    fn open(text: &str, keys: &SessionKeys) -> Option<Self> {
        let v: Self = keys.open_as(text, Self::PURPOSE)?;
        (crate::auth::now() < v.exp()).then_some(v)
    }
}

/// `Sealed` for a type with an `exp` field, under its own purpose.
macro_rules! sealed {
    ($t:ty, $purpose:literal) => {
        impl $crate::connect::link::Sealed for $t {
            const PURPOSE: &'static [u8] = $purpose;
            fn exp(&self) -> u64 {
                self.exp
            }
        }
    };
}
sealed!(Link, b"mcp-gateway connect link v1");
sealed!(LoginState, b"mcp-gateway connect login state v1");
sealed!(UpstreamState, b"mcp-gateway connect upstream state v1");
sealed!(Login, b"mcp-gateway connect login v1");
sealed!(Csrf, b"mcp-gateway connect csrf v1");
pub(crate) use sealed;

/// The value of cookie `name` among a request's `Cookie` headers.
pub fn cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(name)?
                .strip_prefix('=')
                .map(String::from)
        })
}

/// The sign-in link for `who` at `upstream`: `{public_url}/connect/start?t=…`.
pub fn sign_in_url(
    public_url: &str,
    keys: &SessionKeys,
    who: &Who,
    upstream: &str,
) -> Option<String> {
    let link = Link {
        who: who.clone(),
        upstream: upstream.to_string(),
        exp: crate::auth::now() + LINK_LIFETIME,
    };
    Some(format!("{public_url}/connect/start?t={}", link.seal(keys)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_opens_as_nothing_else_and_not_after_it_expires() {
        let keys = SessionKeys::new(&[b"0123456789abcdef0123456789abcdef".to_vec()]);
        let who = Who {
            user: "alice".into(),
            tenant: String::new(),
        };
        let link = Link {
            who: who.clone(),
            upstream: "vendor".into(),
            exp: crate::auth::now() + 60,
        };
        let t = link.seal(&keys).unwrap();
        assert_eq!(Link::open(&t, &keys).unwrap().who, who);
        assert!(Login::open(&t, &keys).is_none(), "a link is not a login");
        let old = Link {
            exp: crate::auth::now() - 1,
            ..link
        };
        assert!(Link::open(&old.seal(&keys).unwrap(), &keys).is_none());
    }
}

//! Why a token was refused: one variant per failed check, so the metrics label, the audit reason
//! and the client's message all come from the same value (never from matching text).

use jsonwebtoken::Algorithm;

/// A refused token. The text names the failed check and never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed Authorization header")]
    MalformedHeader,
    #[error("more than one Authorization header")]
    RepeatedHeader,
    #[error("Authorization must be 'Bearer <token>'")]
    NotBearer,
    #[error("malformed token")]
    MalformedToken,
    #[error("token claims are not a JSON object")]
    ClaimsNotObject,
    /// RFC 7515 4.1.11: a critical extension the verifier does not understand fails the token.
    #[error("token has critical header parameters (crit) this gateway does not support")]
    Crit,
    #[error("algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(Algorithm),
    #[error("algorithm {0:?} does not match the key")]
    AlgorithmMismatch(Algorithm),
    #[error("invalid signature")]
    Signature,
    #[error("token has no kid (key id)")]
    NoKid,
    #[error("unknown signing key (kid)")]
    UnknownKey,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid (nbf)")]
    NotYetValid,
    #[error("token issued in the future (iat)")]
    IssuedInFuture,
    #[error("token too old (iat beyond the maximum token age)")]
    TooOld,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("API version not allowed")]
    ApiVersion,
    /// A required claim is absent (its configured name, and why it is required when not obvious).
    #[error("missing {claim} claim{why}")]
    MissingClaim { claim: String, why: &'static str },
    /// A claim of the wrong type or range.
    #[error("{claim} claim {problem}")]
    BadClaim {
        claim: String,
        problem: &'static str,
    },
}

impl AuthError {
    /// The bounded `reason` label of `mcp_auth_failures_total`.
    pub fn label(&self) -> &'static str {
        use AuthError::*;
        match self {
            Missing => "missing",
            MalformedHeader | RepeatedHeader | NotBearer | MalformedToken | ClaimsNotObject => {
                "malformed"
            }
            Crit => "crit",
            AlgorithmNotAllowed(_) | AlgorithmMismatch(_) => "algorithm",
            Signature => "signature",
            NoKid | UnknownKey => "unknown_key",
            Expired => "expired",
            NotYetValid => "not_yet_valid",
            IssuedInFuture => "iat_future",
            TooOld => "too_old",
            Issuer => "issuer",
            Audience => "audience",
            ApiVersion => "api_version",
            MissingClaim { .. } => "missing_claim",
            BadClaim { .. } => "bad_claim",
        }
    }

    pub(crate) fn bad_claim(claim: &str, problem: &'static str) -> Self {
        AuthError::BadClaim {
            claim: claim.to_string(),
            problem,
        }
    }

    pub(crate) fn missing_claim(claim: &str, why: &'static str) -> Self {
        AuthError::MissingClaim {
            claim: claim.to_string(),
            why,
        }
    }
}

//! CORS for the development authorization server, so a browser-based OAuth client (an MCP client
//! in a web page) can read its metadata, register and redeem codes: the gateway's
//! `allowed_origins` may, with a preflight answered here; any other origin gets no CORS header
//! (the browser then keeps the answer from the page). The login page is a navigation and needs
//! none.

use super::Issuer;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
const ALLOW_HEADERS: &str =
    "Authorization, Content-Type, Accept, MCP-Protocol-Version, X-Issuer-Token";

/// Answers preflights and names an allowed origin on every answer.
pub async fn layer(State(i): State<Arc<Issuer>>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| i.allowed_origins.iter().any(|a| a == o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = match (preflight, &origin) {
        (true, Some(_)) => StatusCode::NO_CONTENT.into_response(),
        (true, None) => StatusCode::FORBIDDEN.into_response(),
        (false, _) => next.run(req).await,
    };
    if let Some(o) = origin {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        if preflight {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOW_METHODS),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOW_HEADERS),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
    }
    resp
}

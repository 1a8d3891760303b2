//! Header names the gateway reads and writes, parsed once: a `&str` name is parsed again on every
//! lookup and insert.

use http::HeaderName;

pub const GATEWAY_AUTH: HeaderName = HeaderName::from_static("x-gateway-auth");
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const USER_ID: HeaderName = HeaderName::from_static("x-user-id");
pub const TENANT_ID: HeaderName = HeaderName::from_static("x-tenant-id");
pub const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");

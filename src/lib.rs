//! mcp-gateway: an edge gateway for the Model Context Protocol on Pingora.
//!
//! The proxy ([`proxy::Gateway`], a Pingora `ProxyHttp`) reads each JSON-RPC request, checks the
//! caller's JWT, applies role-based grants per tool, and forwards to a healthy upstream MCP server
//! of the request's scope. Embed it in your own Pingora server with [`server::runtime`],
//! [`proxy::Gateway::new`] and [`reload::Reloader`], or run the `mcp-gateway` binary.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod bridge;
pub mod compose;
pub mod config;
pub mod connect;
pub mod console;
pub mod error;
pub mod guard;
pub mod issuer;
pub mod jobs;
pub mod jsonrpc;
pub mod limits;
pub mod lines;
pub mod listen;
pub mod logs;
pub mod metrics;
#[cfg(test)]
pub(crate) mod mutate;
pub mod outcome;
pub mod policy;
pub mod protocol;
pub mod proxy;
pub mod registry;
pub mod reload;
pub mod seal;
pub mod server;
pub mod session;
pub mod sse;
pub mod stdio;
pub mod tools;
pub mod trace;
pub mod upstream;
pub mod uri;

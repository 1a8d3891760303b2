//! Integration tests: the real gateway binary in front of real MCP servers, spoken to over HTTP.

mod audit;
mod auth;
mod body;
mod bridge;
mod bridging;
mod browsers;
mod common;
mod config;
mod connections;
mod door;
mod endpoints;
mod git;
mod legacy;
mod limits;
mod login;
mod modern;
mod outcomes;
mod rbac;
mod reload;
mod routing;
mod ship;
mod tls;
mod tools;
mod typescript;
mod upgrade;
mod upstream_tls;

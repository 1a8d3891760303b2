//! Configuration validation on arbitrary files: it never panics; a problem always names a file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_gateway::config::{source::Env, validate, Sources};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    // The input is three files separated by NUL bytes: gateway.yaml, tools.yaml, policy.yaml.
    let mut parts = data.splitn(3, |b| *b == 0);
    let dir = Path::new("/fuzz");
    let files = ["gateway.yaml", "tools.yaml", "policy.yaml"]
        .map(|name| (dir.join(name), parts.next().unwrap_or_default().to_vec()));
    let sources = Sources::in_memory(&dir.join("gateway.yaml"), files, Env::new());
    if let Err(e) = validate(&sources) {
        assert!(e.0.iter().all(|p| !p.file.is_empty()));
    }
});

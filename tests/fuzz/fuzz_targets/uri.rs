//! The resource URI normalizer on arbitrary strings: it never panics, and what it accepts is its
//! own fixed point, free of dot segments and control characters (see `mcp_gateway::uri`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(normal) = mcp_gateway::uri::normalize(raw) {
        assert_eq!(mcp_gateway::uri::normalize(&normal).as_deref(), Ok(normal.as_str()));
        assert!(!normal.chars().any(char::is_control));
    }
});

//! Session ids as clients present them: opening never panics, and nothing but a sealed id opens.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_gateway::session::SessionKeys;

fuzz_target!(|data: &[u8]| {
    let keys = SessionKeys::new(&[b"fuzz-fuzz-fuzz-fuzz".to_vec()]);
    if let Ok(id) = std::str::from_utf8(data) {
        assert!(keys.open(id).is_none(), "an unsealed id opened: {id}");
    }
});

//! The JSON-RPC reader on arbitrary bytes: it never panics, and whatever single message it
//! accepts, serde_json (what an upstream's parser sees) reads with the same method.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_gateway::jsonrpc::{parse, Rpc};

fuzz_target!(|data: &[u8]| {
    for batches in [false, true] {
        if let Ok(Rpc::Single(m)) = parse(data, batches, true) {
            let v: serde_json::Value =
                serde_json::from_slice(data).expect("accepted bodies are JSON");
            assert_eq!(m.method.as_deref(), v["method"].as_str());
        }
    }
});

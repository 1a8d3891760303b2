//! The official conformance runner, directly against one server and through the gateway in front
//! of it (`tests/conformance/compare.py`): for the revisions 2025-11-25 and 2026-07-28, on a scope
//! that forwards each revision and on both bridges, no check fares worse through the gateway than
//! against the server itself, except the gaps the README names ("Conformance").

use crate::common::*;

#[tokio::test]
async fn no_conformance_check_fares_worse_through_the_gateway() {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/compare.py");
    let out = tokio::process::Command::new(sdk_python())
        .arg(&script)
        .args(["--bin", bin()])
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for revision in ["2026-07-28", "2025-11-25"] {
        for scope in ["plain", "bridge25", "bridge26"] {
            let line = (stdout.lines())
                .find(|l| l.starts_with(&format!("{revision} {scope}: ")))
                .unwrap_or_else(|| panic!("no {revision} {scope} line:\n{stdout}"));
            // The server answered the runner directly: the comparison compared something.
            let direct: usize = line
                .split(": ")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            assert!(direct >= 20, "{line}");
        }
    }
}

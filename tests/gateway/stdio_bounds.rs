//! What bounds a stdio server: a process that stops answering pings is replaced; `limits:` cap
//! its memory and open files; `sandbox:` (bubblewrap) keeps it to its writable paths, away from
//! hidden ones and the gateway's configuration, and off the network.

use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A gateway whose `pytools` scope runs `tests/servers/stdio_tools.py` with `settings` on its
/// command upstream.
fn pytools(log: &std::path::Path, settings: &str) -> GatewaySpec {
    crate::stdio::pytools_with(
        log,
        settings,
        "remember, freeze, hog, write_to, read_from, connect, open_files_limit",
    )
}

async fn client(gw: &Gateway) -> Client {
    let mut c = Client::new(
        gw.url("/pytools/mcp"),
        Some(token("dev", &["developer"], json!({}))),
    );
    c.initialize().await;
    c
}

async fn call_text(c: &Client, tool: &str, args: Value) -> String {
    let r = rpc_body(c.call(1, tool, args).await).await;
    r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{tool}: {r}"))
        .to_string()
}

#[tokio::test]
async fn a_program_that_stops_answering_is_replaced_and_its_call_fails_at_once() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let gw = pytools(log.path(), "        ping_interval: 300ms\n")
        .start()
        .await;
    let c = client(&gw).await;
    assert_eq!(
        call_text(&c, "remember", json!({"value": "a"})).await,
        "kept"
    );
    // The process blocks for 60 s: three unanswered pings replace it, and the call in flight is
    // answered -32008 then, not after a minute.
    let started = Instant::now();
    let frozen = c.call(2, "freeze", json!({"ms": 60_000})).await;
    let body = rpc_body(frozen).await;
    assert_eq!(body["error"]["code"], -32008, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    gw.log_with("stdio server stopped answering; replacing it")
        .await;
    // The new process serves.
    let mut back = String::new();
    for _ in 0..60 {
        let mut again = Client::new(
            gw.url("/pytools/mcp"),
            Some(token("dev", &["developer"], json!({}))),
        );
        let r = again
            .post(&json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}))
            .await;
        if r.status() == 200 {
            again.session = r
                .headers()
                .get("mcp-session-id")
                .map(|v| v.to_str().unwrap().to_string());
            again.version = Some("2025-06-18");
            back = call_text(&again, "remember", json!({"value": "b"})).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(back, "kept");
}

/// `bwrap` must be installed (`.ci/run` installs the `bubblewrap` package).
fn bubblewrap() {
    let found = std::process::Command::new("bwrap")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "this test needs bubblewrap: apt-get install bubblewrap"
    );
}

#[tokio::test]
async fn limits_and_the_sandbox_bound_what_a_program_may_do() {
    bubblewrap();
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (writable, other, hidden) = (
        root.path().join("writable"),
        root.path().join("other"),
        root.path().join("hidden"),
    );
    for d in [&writable, &other, &hidden] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(hidden.join("secret.txt"), "the secret").unwrap();
    std::fs::write(other.join("public.txt"), "public").unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let settings = format!(
        "        limits: {{ memory_mb: 256, open_files: 64 }}\n        sandbox: {{ writable: [\"{}\", \"{}\"], hidden: [\"{}\"] }}\n",
        writable.display(),
        log.path().display(),
        hidden.display()
    );
    let spec = pytools(log.path(), &settings);
    let gw = spec.start().await;
    let c = client(&gw).await;
    let text = |tool: &'static str, args: Value| call_text(&c, tool, args);

    assert_eq!(text("open_files_limit", json!({})).await, "64");
    assert_eq!(text("hog", json!({"mb": 512})).await, "MemoryError");
    assert_eq!(text("hog", json!({"mb": 8})).await, "allocated 8 MiB");

    let at = |d: &std::path::Path, f: &str| d.join(f).display().to_string();
    assert_eq!(
        text("write_to", json!({"path": at(&writable, "x")})).await,
        "written"
    );
    assert!(writable.join("x").exists());
    assert_eq!(
        text("write_to", json!({"path": at(&other, "x")})).await,
        "error: Read-only file system"
    );
    assert_eq!(
        text("read_from", json!({"path": at(&other, "public.txt")})).await,
        "public"
    );
    // Its temporary directory is its own: written inside, nothing on the host.
    let private = format!("/var/tmp/mcp-gateway-sandbox-test-{}", std::process::id());
    assert_eq!(text("write_to", json!({"path": private})).await, "written");
    assert!(!std::path::Path::new(&private).exists());
    assert_eq!(
        text("read_from", json!({"path": at(&hidden, "secret.txt")})).await,
        "error: No such file or directory"
    );
    // The gateway's configuration (its secrets) is out of sight, and so is the network.
    let config = spec.dir.path().join("gateway.yaml").display().to_string();
    assert!(text("read_from", json!({"path": config}))
        .await
        .starts_with("error:"));
    let port = gw.base.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    assert!(text("connect", json!({"port": port}))
        .await
        .starts_with("error:"));
}

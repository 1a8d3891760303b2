//! The README's examples, run as written (only ports adapted), so that the README cannot drift
//! from what the gateway does.

use crate::common::*;
use serde_json::Value;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The text under `heading` up to the next heading of its level.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("the README has no section {heading:?}"));
    let body = &text[start + heading.len() + 2..];
    &body[..body.find("\n## ").unwrap_or(body.len())]
}

/// The fenced code blocks of `lang` in `text`, their common indentation removed (a block inside
/// a list item is indented with it).
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let fence = line.trim_start();
        if fence != format!("```{lang}") {
            continue;
        }
        let indent = line.len() - fence.len();
        let mut block = String::new();
        for l in lines.by_ref() {
            if l.trim_start() == "```" {
                break;
            }
            block.push_str(l.get(indent..).unwrap_or(""));
            block.push('\n');
        }
        out.push(block);
    }
    out
}

/// The curl call of a README shell block: its `-d '…'` body, and the answer shown under it
/// (`# {…}`).
fn documented_call(sh: &str) -> (&str, &str) {
    let body = sh
        .split("-d '")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("a curl call with -d '…'");
    let shown = sh
        .lines()
        .find(|l| l.starts_with("# {"))
        .expect("the answer it shows");
    (body, shown)
}

/// Posts `body` to `url` as the README's curl does (a developer's token, the MCP headers).
async fn post_as_documented(url: String, body: &str) -> Value {
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(token("alice", &["developer"], serde_json::json!({})))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    rpc_body(r).await
}

/// "Put your own MCP server behind the gateway": the server of the README, its scope and grant
/// added to a running gateway's files, applied live, then called with the README's request; the
/// answer is the one the README shows.
#[tokio::test]
async fn your_own_server_in_five_steps() {
    let text = readme();
    let s = section(&text, "## Put your own MCP server behind the gateway");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let server = blocks(s, "python")[0].replace("8091", &port.to_string());
    std::fs::write(dir.path().join("notes.py"), server).unwrap();
    let _notes = Proc {
        child: std::process::Command::new(sdk_python())
            .arg(dir.path().join("notes.py"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
        port,
    };
    for _ in 0..600 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let up = calculator(true).await;
    let spec = GatewaySpec::new(&[up.port]);
    let gw = spec.start().await;

    // Step 2: the scope, under `scopes:`.
    let scope = blocks(s, "yaml")[0].replace("8091", &port.to_string());
    gw.write_file("tools.yaml", &format!("{}{scope}", spec.tools_yaml));
    // Step 3: the grant, added to the developer role.
    assert!(
        s.contains("add `\"notes/*\"` to the `allow:`"),
        "step 3 changed: update this test"
    );
    let policy = edit(
        &spec.policy_yaml,
        "[\"calculator/*\"]",
        "[\"calculator/*\", \"notes/*\"]",
    );
    gw.write_file("policy.yaml", &policy);
    // Step 4: applied live.
    assert_eq!(gw.sighup().await, "ok", "{}", gw.log_text());

    // Step 5: the README's request, and the answer it shows.
    let sh = &blocks(s, "sh")[0];
    let (body, shown) = documented_call(sh);
    let want_text = shown
        .split("\"text\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap();
    let v = post_as_documented(gw.url("/notes/mcp"), body).await;
    assert_eq!(v["id"], 1, "{v}");
    assert_eq!(v["result"]["content"][0]["text"], want_text, "{v}");
}

/// "Try it": the README's call to the bundled calculator, and the answer it shows.
#[tokio::test]
async fn try_it_answers_as_shown() {
    let text = readme();
    let s = section(&text, "## Try it");
    let sh = &blocks(s, "sh")[0];
    assert!(sh.contains("token --user alice --roles developer"), "{sh}");
    let (body, shown) = documented_call(sh);
    let result = shown
        .split("\"structuredContent\":")
        .nth(1)
        .and_then(|r| r.split('}').next())
        .map(|r| format!("{r}}}"))
        .unwrap();
    let want: Value = serde_json::from_str(&result).unwrap();
    let up = calculator(true).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let v = post_as_documented(gw.url("/calculator/mcp"), body).await;
    assert_eq!(v["result"]["structuredContent"], want, "{v}");
    assert_eq!(v["result"]["isError"], false, "{v}");
}

//! The read-only git tool through the gateway, on a repository the test builds: commits by two
//! authors, a branch, a tag, a rename, and a symlink pointing out of the repository.

use crate::common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str], date: &str, author: (&str, &str)) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", author.0)
        .env("GIT_AUTHOR_EMAIL", author.1)
        .env("GIT_COMMITTER_NAME", author.0)
        .env("GIT_COMMITTER_EMAIL", author.1)
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fixture() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let ada = ("Ada", "ada@example.com");
    let bob = ("Bob", "bob@example.com");
    git(p, &["init", "-q", "-b", "main"], "1700000000 +0000", ada);
    std::fs::write(p.join("README.md"), "# Fixture\nline two\n").unwrap();
    git(p, &["add", "."], "1700000000 +0000", ada);
    git(
        p,
        &["commit", "-q", "-m", "Add readme"],
        "1700000000 +0000",
        ada,
    );
    std::fs::create_dir(p.join("src")).unwrap();
    std::fs::write(p.join("src/calc.txt"), "alpha\nneedle here\n").unwrap();
    git(p, &["add", "."], "1700000100 +0000", bob);
    git(
        p,
        &["commit", "-q", "-m", "Add calc notes"],
        "1700000100 +0000",
        bob,
    );
    git(p, &["tag", "v1"], "1700000100 +0000", bob);
    git(
        p,
        &["mv", "src/calc.txt", "src/notes.txt"],
        "1700000200 +0000",
        ada,
    );
    std::os::unix::fs::symlink("/etc/passwd", p.join("leak")).unwrap();
    git(p, &["add", "."], "1700000200 +0000", ada);
    git(
        p,
        &["commit", "-q", "-m", "Rename notes, add a link"],
        "1700000200 +0000",
        ada,
    );
    git(p, &["branch", "feature"], "1700000200 +0000", ada);
    d
}

async fn call(c: &Client, tool: &str, args: Value) -> Value {
    let r = c.call(1, tool, args).await;
    assert_eq!(r.status(), 200);
    rpc_body(r).await["result"].clone()
}

async fn ok(c: &Client, tool: &str, args: Value) -> Value {
    let r = call(c, tool, args.clone()).await;
    assert_eq!(r["isError"], false, "{tool} {args}: {r}");
    r["structuredContent"].clone()
}

async fn refused(c: &Client, tool: &str, args: Value) -> String {
    let r = call(c, tool, args.clone()).await;
    assert_eq!(r["isError"], true, "{tool} {args}: {r}");
    r["content"][0]["text"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn git_tool_through_the_gateway() {
    let repo = fixture();
    let up = tool_server_with(
        "git",
        true,
        &[
            "--repo".into(),
            format!("fixture={}", repo.path().display()),
        ],
    )
    .await;
    let mut spec = GatewaySpec::new(&[]);
    spec.tools_yaml = format!(
        "scopes:\n  git:\n    upstreams:\n      - url: http://127.0.0.1:{}/mcp\n    tools: [git_list_repositories, git_log, git_show_commit, git_diff, git_read_file, git_list_tree, git_blame, git_search, git_list_refs]\n",
        up.port
    );
    spec.policy_yaml = "roles:\n  reader:\n    allow: [\"git/*\"]\n".into();
    let gw = spec.start().await;
    let c = Client::new(
        gw.url("/git/mcp"),
        Some(token("alice", &["reader"], json!({}))),
    );

    let repos = ok(&c, "git_list_repositories", json!({})).await;
    assert_eq!(
        repos["repositories"],
        json!([{"name": "fixture", "head": "main"}])
    );

    let log = ok(&c, "git_log", json!({"repo": "fixture"})).await;
    let summaries: Vec<&str> = log["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["summary"].as_str().unwrap())
        .collect();
    assert_eq!(
        summaries,
        vec!["Rename notes, add a link", "Add calc notes", "Add readme"]
    );
    let by_bob = ok(&c, "git_log", json!({"repo": "fixture", "author": "bob"})).await;
    assert_eq!(by_bob["commits"].as_array().unwrap().len(), 1);
    let since = ok(
        &c,
        "git_log",
        json!({"repo": "fixture", "since": 1700000100}),
    )
    .await;
    assert_eq!(since["commits"].as_array().unwrap().len(), 2);
    let paged = ok(
        &c,
        "git_log",
        json!({"repo": "fixture", "limit": 1, "offset": 1}),
    )
    .await;
    assert_eq!(paged["commits"][0]["summary"], "Add calc notes");
    assert_eq!(paged["next_offset"], 2);
    let touching = ok(
        &c,
        "git_log",
        json!({"repo": "fixture", "path": "README.md"}),
    )
    .await;
    assert_eq!(touching["commits"].as_array().unwrap().len(), 1);

    let show = ok(
        &c,
        "git_show_commit",
        json!({"repo": "fixture", "revision": "main"}),
    )
    .await;
    let changes = show["changes"].as_array().unwrap();
    assert!(
        changes.iter().any(|c| c["status"] == "renamed"
            && c["old_path"] == "src/calc.txt"
            && c["path"] == "src/notes.txt"),
        "{changes:?}"
    );
    assert!(changes
        .iter()
        .any(|c| c["status"] == "added" && c["path"] == "leak"));

    let diff = ok(
        &c,
        "git_diff",
        json!({"repo": "fixture", "from": "v1", "to": "main", "path": "leak"}),
    )
    .await;
    assert_eq!(diff["changes"].as_array().unwrap().len(), 1);
    assert!(diff["diff"].as_str().unwrap().contains("+/etc/passwd"));

    let file = ok(
        &c,
        "git_read_file",
        json!({"repo": "fixture", "path": "src/calc.txt", "revision": "v1"}),
    )
    .await;
    assert_eq!(file["content"], "alpha\nneedle here\n");
    assert!(refused(
        &c,
        "git_read_file",
        json!({"repo": "fixture", "path": "src/calc.txt"})
    )
    .await
    .contains("no file"));

    let tree = ok(&c, "git_list_tree", json!({"repo": "fixture"})).await;
    let kinds: Vec<(String, String)> = tree["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("README.md".into(), "file".into()),
            ("leak".into(), "symlink".into()),
            ("src".into(), "dir".into())
        ]
    );

    let blame = ok(
        &c,
        "git_blame",
        json!({"repo": "fixture", "path": "src/notes.txt", "start_line": 2, "end_line": 2}),
    )
    .await;
    assert_eq!(blame["lines"][0]["text"], "needle here");
    assert_eq!(blame["lines"][0]["author"], "Bob");

    let found = ok(
        &c,
        "git_search",
        json!({"repo": "fixture", "pattern": "needle", "paths": ["src/**"]}),
    )
    .await;
    assert_eq!(
        found["matches"],
        json!([{"location": "src/notes.txt", "line": 2, "text": "needle here"}])
    );
    let msgs = ok(
        &c,
        "git_search",
        json!({"repo": "fixture", "pattern": "^Add", "target": "commits"}),
    )
    .await;
    assert_eq!(msgs["matches"].as_array().unwrap().len(), 2);

    let refs = ok(&c, "git_list_refs", json!({"repo": "fixture"})).await;
    let branches: Vec<&str> = refs["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(branches, vec!["feature", "main"]);
    assert_eq!(refs["tags"][0]["name"], "v1");

    // Nothing outside the repository is reachable.
    for path in ["../outside.txt", "/etc/passwd", "src/../../x"] {
        let e = refused(
            &c,
            "git_read_file",
            json!({"repo": "fixture", "path": path}),
        )
        .await;
        assert!(
            e.contains("relative to the repository") || e.contains("may not leave"),
            "{path}: {e}"
        );
    }
    let e = refused(
        &c,
        "git_read_file",
        json!({"repo": "fixture", "path": "leak"}),
    )
    .await;
    assert!(e.contains("symlink") && e.contains("not followed"), "{e}");
    assert!(refused(&c, "git_log", json!({"repo": "etc"}))
        .await
        .contains("unknown repository"));
    assert!(refused(
        &c,
        "git_log",
        json!({"repo": "fixture", "revision": "--output=/tmp/x"})
    )
    .await
    .contains("not a single revision"));
}

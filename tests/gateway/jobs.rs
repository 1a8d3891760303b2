//! Long-running tool calls: MCP tasks answered by the gateway and the REST job API, against a real
//! tool server that knows nothing about tasks (`tests/servers/slow_server.py`, which logs every
//! call's start and end), with a real PostgreSQL where durability matters.

use crate::common::postgres::Postgres;
use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The slow tool server and the file it logs each call's start and end to.
struct Slow {
    proc: Proc,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Slow {
    async fn start() -> Slow {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls.log");
        let proc = python_server("slow_server.py", &[log.as_os_str()]).await;
        Slow {
            proc,
            log,
            _dir: dir,
        }
    }

    /// How many calls with this tag started and ended.
    fn runs(&self, tag: &str) -> (usize, usize) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let count = |what: &str| {
            text.lines()
                .filter(|l| l.split(' ').take(2).eq([what, tag]))
                .count()
        };
        (count("start"), count("end"))
    }

    async fn wait_started(&self, tag: &str) {
        for _ in 0..100 {
            if self.runs(tag).0 > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the call {tag} never reached the tool");
    }
}

/// A gateway with one scope, `slow` (tools `slow` and `quick`); the analyst may call `slow`, the
/// `outsider` only `quick`. `extra` is appended to gateway.yaml.
fn spec(slow: &Slow, extra: &str) -> GatewaySpec {
    let mut spec = GatewaySpec::new(&[9]);
    spec.tools_yaml = format!(
        "scopes:\n  slow:\n    upstreams:\n      - url: http://127.0.0.1:{}/mcp\n    timeout: 30s\n    tools: [slow, quick]\n",
        slow.proc.port
    );
    spec.policy_yaml = "roles:\n  analyst:\n    allow: [\"slow/slow\"]\n  outsider:\n    allow: [\"slow/quick\"]\n".into();
    spec.gateway_yaml.push_str(extra);
    spec
}

fn with_db(spec: &mut GatewaySpec, pg: &Postgres) {
    spec.env.push(("DATABASE_URL".into(), pg.url.clone()));
    spec.env
        .push(("MCP_GATEWAY_AUDIT_KEY".into(), "42".repeat(32)));
}

/// A REST client of the gateway.
struct Rest {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Rest {
    fn new(gw: &Gateway, user: &str, roles: &[&str]) -> Rest {
        Rest {
            http: reqwest::Client::new(),
            base: gw.url(""),
            token: token(user, roles, json!({"tenant": "acme"})),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(30));
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: {text}"));
        (status, v, headers)
    }

    /// `POST /mcp/invoke` with a body as given, and optionally a `Prefer` header.
    async fn raw_invoke(&self, body: String, prefer: Option<&str>) -> reqwest::Response {
        let mut r = self
            .http
            .post(format!("{}/mcp/invoke", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json");
        if let Some(p) = prefer {
            r = r.header("prefer", p);
        }
        r.body(body).send().await.unwrap()
    }

    async fn invoke(&self, body: Value) -> (u16, Value, reqwest::header::HeaderMap) {
        self.send(reqwest::Method::POST, "/mcp/invoke", Some(body))
            .await
    }

    async fn job(&self, id: &str) -> (u16, Value) {
        let (s, v, _) = self
            .send(reqwest::Method::GET, &format!("/mcp/jobs/{id}"), None)
            .await;
        (s, v)
    }

    async fn result(&self, id: &str) -> (u16, Value) {
        let (s, v, _) = self
            .send(
                reqwest::Method::GET,
                &format!("/mcp/jobs/{id}/result"),
                None,
            )
            .await;
        (s, v)
    }

    /// Polls the job until it is in `status` (or the time is up).
    async fn wait_for(&self, id: &str, status: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (code, v) = self.job(id).await;
            assert_eq!(code, 200, "{v}");
            if v["status"] == status || Instant::now() > deadline {
                assert_eq!(v["status"], status, "{v}");
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn text_of(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

/// REST: a synchronous call; an async job polled to its result; its result before it is ready
/// (409); another user's view of it (404, never listed); cancelling mid-run (the tool is told and
/// stops); the per-user job limit; a result over 1 MiB stored encrypted and fetched intact; TTL
/// expiry removing the result; bad input answered precisely; one audit row at submission and one
/// at completion, linked by the job id.
#[tokio::test]
async fn rest_jobs_run_in_the_background_and_belong_to_their_caller() {
    let pg = Postgres::start();
    let slow = Slow::start().await;
    let mut spec = spec(&slow, "jobs:\n  lease: 3s\n");
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        "limits:\n",
        "limits:\n  max_jobs_per_user: 3\n",
    );
    with_db(&mut spec, &pg);
    let mut gw = spec.start().await;
    let bob = Rest::new(&gw, "bob", &["analyst"]);
    let eve = Rest::new(&gw, "eve", &["analyst"]);

    // Synchronous by default: the tool's own result.
    let (s, v, _) = bob
        .invoke(json!({"tool_name": "slow", "arguments": {"ms": 10, "tag": "sync"}}))
        .await;
    assert_eq!((s, text_of(&v)), (200, "done sync"), "{v}");

    // Async: 202, Location, polled to completion; the result endpoint says 409 until then.
    let (s, v, h) = bob
        .invoke(json!({"tool_name": "slow", "arguments": {"ms": 1500, "tag": "a1"}, "async": true}))
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(h["location"], format!("/mcp/jobs/{id}").as_str());
    assert!(
        matches!(v["status"].as_str(), Some("queued" | "working")),
        "{v}"
    );
    let (s, v) = bob.result(&id).await;
    assert_eq!(s, 409, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ask again"),
        "{v}"
    );
    let done = bob
        .wait_for(&id, "completed", Duration::from_secs(10))
        .await;
    assert_eq!(text_of(&done["result"]), "done a1", "{done}");
    let (s, v) = bob.result(&id).await;
    assert_eq!((s, text_of(&v)), (200, "done a1"));
    assert_eq!(slow.runs("a1"), (1, 1));

    // Another user: 404 with a JSON error, in no list of theirs, cannot cancel it.
    let (s, v) = eve.job(&id).await;
    assert_eq!(s, 404, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Unknown job"),
        "{v}"
    );
    let (s, v, _) = eve
        .send(reqwest::Method::DELETE, &format!("/mcp/jobs/{id}"), None)
        .await;
    assert_eq!(s, 404, "{v}");
    let (_, list, _) = eve.send(reqwest::Method::GET, "/mcp/jobs", None).await;
    assert_eq!(list["jobs"], json!([]));
    let (_, list, _) = bob
        .send(reqwest::Method::GET, "/mcp/jobs?status=completed", None)
        .await;
    assert!(
        list["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == id.as_str()),
        "{list}"
    );

    // Cancel mid-run: the job ends cancelled and the tool is told (its handler never finishes).
    let submitted = bob
        .raw_invoke(
            json!({"tool_name": "slow", "arguments": {"ms": 4000, "tag": "c2"}}).to_string(),
            Some("respond-async"),
        )
        .await;
    assert_eq!(submitted.status(), 202);
    let c2: Value = submitted.json().await.unwrap();
    let c2 = c2["id"].as_str().unwrap().to_string();
    slow.wait_started("c2").await;
    let (s, v, _) = bob
        .send(reqwest::Method::DELETE, &format!("/mcp/jobs/{c2}"), None)
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("cancelled")), "{v}");
    let (s, v, _) = bob
        .send(reqwest::Method::DELETE, &format!("/mcp/jobs/{c2}"), None)
        .await;
    assert_eq!(s, 409, "cancelling an ended job: {v}");

    // The per-user limit (3 queued or running): the fourth is refused.
    let mut held = Vec::new();
    for i in 0..3 {
        let (s, v, _) = bob
            .invoke(json!({"tool_name": "slow", "arguments": {"ms": 2500, "tag": format!("h{i}")}, "async": true}))
            .await;
        assert_eq!(s, 202, "{v}");
        held.push(v["id"].as_str().unwrap().to_string());
    }
    let (s, v, h) = bob
        .invoke(json!({"tool_name": "slow", "arguments": {"ms": 10, "tag": "over"}, "async": true}))
        .await;
    assert_eq!((s, v["error"]["code"].as_i64()), (429, Some(-32004)), "{v}");
    assert!(h.get("retry-after").is_some());
    assert_eq!(slow.runs("over"), (0, 0));

    for h in &held {
        bob.wait_for(h, "completed", Duration::from_secs(15)).await;
    }

    // More than 1 MiB, stored sealed with the audit key, fetched intact; a short TTL then
    // removes it. The TTL counts from submission and leaves a loaded machine time to run,
    // seal and store the result before the row is read.
    let size = 1_200_000;
    let (s, v, _) = bob
        .invoke(json!({"tool_name": "slow", "arguments": {"ms": 0, "size": size, "tag": "big"}, "async": true, "ttl_ms": 12000}))
        .await;
    assert_eq!(s, 202, "{v}");
    let big = v["id"].as_str().unwrap().to_string();
    let done = bob
        .wait_for(&big, "completed", Duration::from_secs(15))
        .await;
    let text = text_of(&done["result"]);
    assert_eq!(text.len(), size);
    assert!(text.starts_with("0123456789abcdef0123"));
    let db = pg.client().await;
    let sealed: Option<String> = db
        .query_one("SELECT outcome FROM jobs WHERE id = $1", &[&big])
        .await
        .unwrap()
        .get(0);
    let sealed = sealed.unwrap();
    assert!(sealed.starts_with("v1:"), "sealed: {}", &sealed[..20]);
    assert!(!sealed.contains("0123456789abcdef"));
    let expired = bob.wait_for(&big, "expired", Duration::from_secs(25)).await;
    assert!(expired.get("result").is_none(), "{expired}");
    let gone: Option<String> = db
        .query_one("SELECT outcome FROM jobs WHERE id = $1", &[&big])
        .await
        .unwrap()
        .get(0);
    assert_eq!(gone, None);
    // By now the cancelled call would have ended had the tool not been told.
    assert_eq!(
        slow.runs("c2"),
        (1, 0),
        "the cancelled call was stopped at the tool"
    );

    // Bad input.
    let (s, v, _) = bob.invoke(json!({"tool_name": "nope"})).await;
    assert_eq!(
        (s, v["error"]["message"].as_str()),
        (404, Some("Unknown tool: nope")),
        "{v}"
    );
    let outsider = Rest::new(&gw, "olga", &["outsider"]);
    let (s, v, _) = outsider
        .invoke(json!({"tool_name": "slow", "arguments": {"ms": 1, "tag": "x"}}))
        .await;
    assert_eq!(
        (s, v["error"]["message"].as_str()),
        (404, Some("Unknown tool: slow")),
        "{v}"
    );
    let (s, v, _) = bob.invoke(json!({"tool": "slow"})).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `tool`"),
        "{v}"
    );
    let raw = bob.raw_invoke("{\"tool_name\": ".into(), None).await;
    assert_eq!(raw.status(), 400);
    let v: Value = raw.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32700, "{v}");
    let (s, v) = bob.job("0123456789abcdef0123456789abcdef").await;
    assert_eq!(s, 404, "{v}");
    let anon = reqwest::get(gw.url("/mcp/jobs")).await.unwrap();
    assert_eq!(anon.status(), 401);
    assert!(anon.headers().get("www-authenticate").is_some());

    let completed = "mcp_jobs{status=\"completed\"}";
    let metrics = gw.metrics_when(completed, 4.0).await;
    assert!(metric(&metrics, completed) >= 4.0, "{metrics}");
    assert!(metrics.contains("mcp_job_duration_seconds_count{scope=\"slow\",tool=\"slow\"}"));
    gw.stop();

    // One row at submission and one at completion, linked by the job id; the early request for
    // its result (409) is a refusal, audited with the same link.
    let rows = db
        .query(
            "SELECT method, tool, user_id, outcome FROM audit_log WHERE job_id = $1 ORDER BY method DESC",
            &[&id],
        )
        .await
        .unwrap();
    let described: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r.get::<_, String>(0),
                r.get::<_, Option<String>>(1).unwrap_or_default(),
                r.get::<_, Option<String>>(2).unwrap_or_default(),
                r.get::<_, String>(3)
            )
        })
        .collect();
    assert_eq!(
        described,
        [
            "tools/call slow bob ok",
            "tools/call slow bob ok",
            "GET slow bob invalid"
        ],
        "audit rows of job {id}"
    );
}

/// Durability: a job submitted through instance A is answered by instance B; when A is killed
/// mid-job, the job ends `failed` once its lease is over (not `working` forever), and the tool
/// ran exactly once.
#[tokio::test]
async fn jobs_outlive_the_instance_that_accepted_them() {
    let pg = Postgres::start();
    let slow = Slow::start().await;
    let mut a = spec(&slow, "jobs:\n  lease: 2s\n");
    with_db(&mut a, &pg);
    let mut b = spec(&slow, "jobs:\n  lease: 2s\n");
    with_db(&mut b, &pg);
    let mut gw_a = a.start().await;
    let gw_b = b.start().await;
    let via_a = Rest::new(&gw_a, "bob", &["analyst"]);
    let via_b = Rest::new(&gw_b, "bob", &["analyst"]);

    let (s, v, _) = via_a
        .invoke(json!({"tool_name": "slow", "arguments": {"ms": 500, "tag": "ab"}, "async": true}))
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let done = via_b
        .wait_for(&id, "completed", Duration::from_secs(10))
        .await;
    assert_eq!(text_of(&done["result"]), "done ab");

    let (s, v, _) = via_a
        .invoke(
            json!({"tool_name": "slow", "arguments": {"ms": 8000, "tag": "lost"}, "async": true}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let lost = v["id"].as_str().unwrap().to_string();
    slow.wait_started("lost").await;
    let _ = gw_a.proc.child.kill(); // SIGKILL: no chance to tidy up
    let _ = gw_a.proc.child.wait();
    let (_, v) = via_b.job(&lost).await;
    assert_eq!(v["status"], "working", "{v}");
    let failed = via_b
        .wait_for(&lost, "failed", Duration::from_secs(10))
        .await;
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("stopped before it finished"),
        "{failed}"
    );
    // Give a second run every chance to happen: it must not.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(slow.runs("lost").0, 1, "the call ran exactly once");
    drop(gw_b);
}

/// MCP tasks: the 1.x Python SDK's task API (2025-11-25 sessions) polls a task to its result,
/// lists it and cancels another; raw JSON-RPC shows the task shapes of both revisions, another
/// user's task id is unknown, and the REST API's OpenAPI document validates. No database: the
/// jobs live in memory.
#[tokio::test]
async fn mcp_tasks_are_run_by_the_gateway_for_a_tool_server_that_knows_none() {
    let slow = Slow::start().await;
    let spec = spec(&slow, "");
    let gw = spec.start().await;
    let bob = token("bob", &["analyst"], json!({}));

    let seen = mcp1_python("task_client.py", &[&gw.url("/slow/mcp"), &bob]).await;
    assert_eq!(seen["created_status"], "working", "{seen}");
    assert_eq!(
        seen["statuses"].as_array().unwrap().last().unwrap(),
        "completed",
        "{seen}"
    );
    assert_eq!(seen["result_text"], "done sdk1", "{seen}");
    assert!(
        seen["listed"]
            .as_array()
            .unwrap()
            .contains(&seen["task_id"]),
        "{seen}"
    );
    assert_eq!(seen["cancelled_status"], "cancelled", "{seen}");
    assert_eq!(seen["after_cancel"], "cancelled", "{seen}");
    assert!(
        seen["tasks_capability"]["requests"]["tools"]["call"].is_object(),
        "{seen}"
    );
    assert_eq!(slow.runs("sdk1"), (1, 1));

    // Raw JSON-RPC, 2025-11-25 in a session.
    let mut c = Client::new(gw.url("/slow/mcp"), Some(bob.clone()));
    c.initialize().await;
    let r = c
        .post(&json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "slow", "arguments": {"ms": 300, "tag": "raw"}, "task": {"ttl": 60000}}}))
        .await;
    let v = rpc_body(r).await;
    let task = &v["result"]["task"];
    assert_eq!(task["status"], "working", "{v}");
    assert_eq!(task["ttl"], 60000);
    assert!(task["pollInterval"].as_u64().is_some());
    let id = task["taskId"].as_str().unwrap().to_string();
    let r = c
        .post(
            &json!({"jsonrpc": "2.0", "id": 6, "method": "tasks/result", "params": {"taskId": id}}),
        )
        .await;
    let v = rpc_body(r).await;
    assert_eq!(text_of(&v["result"]), "done raw", "{v}");
    assert_eq!(
        v["result"]["_meta"]["io.modelcontextprotocol/related-task"]["taskId"],
        id.as_str()
    );
    let r = c
        .post(&json!({"jsonrpc": "2.0", "id": 7, "method": "tasks/get", "params": {"taskId": id}}))
        .await;
    assert_eq!(rpc_body(r).await["result"]["status"], "completed");

    // Another user: the id is unknown to them.
    let mut eve = Client::new(
        gw.url("/slow/mcp"),
        Some(token("eve", &["analyst"], json!({}))),
    );
    eve.initialize().await;
    for method in ["tasks/get", "tasks/cancel", "tasks/result"] {
        let r = eve
            .post(&json!({"jsonrpc": "2.0", "id": 8, "method": method, "params": {"taskId": id}}))
            .await;
        let v = rpc_body(r).await;
        assert_eq!(v["error"]["code"], -32602, "{method}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Unknown task"),
            "{v}"
        );
    }
    let r = eve
        .post(&json!({"jsonrpc": "2.0", "id": 9, "method": "tasks/list"}))
        .await;
    assert_eq!(rpc_body(r).await["result"]["tasks"], json!([]));
    // A tool the caller may not use is refused as a task exactly as a direct call.
    let mut olga = Client::new(
        gw.url("/slow/mcp"),
        Some(token("olga", &["outsider"], json!({}))),
    );
    olga.initialize().await;
    let r = olga
        .post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "slow", "arguments": {"ms": 1, "tag": "olga"}, "task": {}}}))
        .await;
    let v = rpc_body(r).await;
    assert_eq!(v["error"]["message"], "Unknown tool: slow", "{v}");
    assert_eq!(slow.runs("olga"), (0, 0));

    // 2026-07-28: stateless; the flat task shape, the result inline once done (for a client that
    // declares the tasks extension; the old hint alone makes no task).
    let modern = |id: u64, method: &str, params: Value| {
        let mut params = params;
        params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}},
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}});
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
    };
    let post_modern = |body: Value, method: &'static str, name: Option<String>| {
        let mut r = reqwest::Client::new()
            .post(gw.url("/slow/mcp"))
            .bearer_auth(&bob)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", method);
        if let Some(n) = name {
            r = r.header("mcp-name", n);
        }
        r.body(body.to_string()).send()
    };
    let r = post_modern(
        modern(1, "tools/call", json!({"name": "slow", "arguments": {"ms": 2500, "tag": "modern"}, "task": {"ttl": 30000}})),
        "tools/call",
        Some("slow".into()),
    )
    .await
    .unwrap();
    let v = rpc_body(r).await;
    assert_eq!(v["result"]["resultType"], "task", "{v}");
    assert_eq!(v["result"]["ttlMs"], 30000, "{v}");
    let mid = v["result"]["taskId"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        let r = post_modern(
            modern(2, "tasks/get", json!({"taskId": mid})),
            "tasks/get",
            Some(mid.clone()),
        )
        .await
        .unwrap();
        let v = rpc_body(r).await;
        if v["result"]["status"] == "completed" || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(text_of(&got["result"]["result"]), "done modern", "{got}");
    // A quick call is answered with its own result (the extension's immediate-result shortcut),
    // hint or none.
    let v = rpc_body(
        post_modern(
            modern(
                4,
                "tools/call",
                json!({"name": "slow", "arguments": {"ms": 1, "tag": "quick"}}),
            ),
            "tools/call",
            Some("slow".into()),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(v["result"]["resultType"], "complete", "{v}");
    assert_eq!(text_of(&v["result"]), "done quick", "{v}");
    // Without the extension declared, the old hint is ignored: the call runs and answers.
    let mut hinted = modern(
        3,
        "tools/call",
        json!({"name": "slow", "arguments": {"ms": 1, "tag": "hinted"}, "task": {}}),
    );
    hinted["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = json!({});
    let v = rpc_body(
        post_modern(hinted, "tools/call", Some("slow".into()))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["result"]["resultType"], "complete", "{v}");
    assert_eq!(text_of(&v["result"]), "done hinted", "{v}");
    // The extension's methods are for clients that declared it: -32021 names what is missing.
    let mut get = modern(5, "tasks/get", json!({"taskId": mid}));
    get["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = json!({});
    let r = post_modern(get, "tasks/get", Some(mid.clone()))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v = rpc_body(r).await;
    assert_eq!(v["error"]["code"], -32021, "{v}");
    assert_eq!(
        v["error"]["data"]["requiredCapabilities"],
        json!({"extensions": {"io.modelcontextprotocol/tasks": {}}}),
        "{v}"
    );

    // The REST API's description is a valid OpenAPI 3.1 document.
    let doc = reqwest::get(gw.url("/mcp/openapi.json")).await.unwrap();
    assert_eq!(doc.status(), 200);
    let doc: Value = doc.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    let file = spec.dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let checked = mcp1_python_code(
        "import json,sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))\nprint('{\"valid\": true}')",
        &[file.to_str().unwrap()],
    )
    .await;
    assert_eq!(checked["valid"], true);
}

/// Jobs switched off: task calls and job submissions get 503 with the reason, a synchronous
/// `POST /mcp/invoke` still runs; and `check` names a malformed audit key and a bad `jobs` field.
#[tokio::test]
async fn jobs_off_and_bad_jobs_settings_are_named() {
    let slow = Slow::start().await;
    let gw = spec(&slow, "jobs:\n  enabled: false\n").start().await;
    let bob = Rest::new(&gw, "bob", &["analyst"]);
    let (s, v, _) = bob
        .invoke(json!({"tool_name": "slow", "arguments": {"ms": 1, "tag": "off"}, "async": true}))
        .await;
    assert_eq!((s, v["error"]["code"].as_i64()), (503, Some(-32013)), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("jobs.enabled: false"),
        "{v}"
    );
    let (s, v, _) = bob
        .invoke(json!({"tool_name": "slow", "arguments": {"ms": 1, "tag": "on"}}))
        .await;
    assert_eq!((s, text_of(&v)), (200, "done on"), "{v}");
    let mut c = Client::new(gw.url("/slow/mcp"), Some(bob.token.clone()));
    let init = c.initialize().await;
    assert!(
        init["result"]["capabilities"].get("tasks").is_none(),
        "{init}"
    );
    let r = c
        .post(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "slow", "arguments": {"ms": 1, "tag": "t"}, "task": {}}}))
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(slow.runs("off").0 + slow.runs("t").0, 0);

    let mut bad = spec(&slow, "jobs:\n  workers: 0\n");
    bad.env
        .push(("MCP_GATEWAY_AUDIT_KEY".into(), "not-a-key".into()));
    let (ok, out) = bad.check();
    assert!(!ok, "{out}");
    assert!(out.contains("jobs.workers"), "{out}");
    assert!(out.contains("MCP_GATEWAY_AUDIT_KEY"), "{out}");
}

/// One user's backlog does not hold every worker: with 4 workers (2 per user by default), bob's 12
/// jobs of 3 s leave room, and eve's job, submitted after them, runs at once; bob's still all run.
#[tokio::test]
async fn one_users_backlog_does_not_delay_another_users_first_job() {
    let slow = Slow::start().await;
    let mut spec = spec(&slow, "jobs:\n  workers: 4\n");
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        "limits:\n",
        "limits:\n  max_jobs_per_user: 20\n",
    );
    let gw = spec.start().await;
    let bob = Rest::new(&gw, "bob", &["analyst"]);
    let eve = Rest::new(&gw, "eve", &["analyst"]);
    let mut bobs = Vec::new();
    for i in 0..12 {
        let (s, v, _) = bob
            .invoke(json!({"tool_name": "slow", "arguments": {"ms": 3000, "tag": format!("b{i}")}, "async": true}))
            .await;
        assert_eq!(s, 202, "{v}");
        bobs.push(v["id"].as_str().unwrap().to_string());
    }
    slow.wait_started("b0").await;
    let submitted = Instant::now();
    let (s, v, _) = eve
        .invoke(json!({"tool_name": "slow", "arguments": {"ms": 10, "tag": "e0"}, "async": true}))
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let done = eve
        .wait_for(&id, "completed", Duration::from_secs(20))
        .await;
    let waited = submitted.elapsed();
    assert_eq!(text_of(&done["result"]), "done e0", "{done}");
    // A first-come queue would have made eve wait for bob's first 12 / 4 × 3 s = 9 s; with every
    // worker open to bob (workers_per_user: 4) she waits about 3 s, one job's run time.
    assert!(
        waited < Duration::from_millis(2500),
        "eve's job waited {waited:?} behind bob's backlog"
    );
    // Bob's jobs still all run, two at a time.
    for id in &bobs {
        bob.wait_for(id, "completed", Duration::from_secs(40)).await;
    }
    assert_eq!(slow.runs("b11"), (1, 1));
}

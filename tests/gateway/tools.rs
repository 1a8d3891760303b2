//! The bundled calculator, called through the gateway with a real token: exact values for every
//! tool, and failures reported inside the tool result.

use crate::common::*;
use serde_json::{json, Value};

async fn call(client: &Client, tool: &str, args: Value) -> Value {
    let r = client.call(1, tool, args).await;
    assert_eq!(r.status(), 200);
    rpc_body(r).await["result"].clone()
}

async fn ok(client: &Client, tool: &str, args: Value) -> String {
    let r = call(client, tool, args.clone()).await;
    assert_eq!(r["isError"], false, "{tool} {args}: {r}");
    r["structuredContent"]["result"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn tool_error(client: &Client, tool: &str, args: Value) -> String {
    let r = call(client, tool, args.clone()).await;
    assert_eq!(r["isError"], true, "{tool} {args}: {r}");
    r["content"][0]["text"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn calculator_through_the_gateway() {
    let up = calculator(true).await;
    let mut spec = GatewaySpec::new(&[up.port]);
    spec.tools_yaml = edit(
        &spec.tools_yaml,
        "tools: [exact_calculate, statistics]",
        "tools: [exact_calculate, evaluate_expression, statistics, convert_units]",
    );
    let gw = spec.start().await;
    let c = gw.developer("alice");

    // The schemas the client sees are precise.
    let r = c
        .post(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
        .await;
    let list = rpc_body(r).await;
    assert_eq!(
        tool_names(&list),
        vec![
            "convert_units",
            "evaluate_expression",
            "exact_calculate",
            "statistics"
        ]
    );
    let exact = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "exact_calculate")
        .unwrap();
    assert_eq!(
        exact["inputSchema"]["required"],
        json!(["operator", "operands"])
    );
    assert_eq!(
        exact["outputSchema"]["properties"]["result"]["type"],
        "string"
    );

    let calc = |op: &str, operands: Value, precision: Option<u64>| {
        let mut a = json!({"operator": op, "operands": operands});
        if let Some(p) = precision {
            a["precision"] = json!(p);
        }
        a
    };
    assert_eq!(
        ok(
            &c,
            "exact_calculate",
            calc("add", json!(["0.1", "0.2"]), None)
        )
        .await,
        "0.3"
    );
    assert_eq!(
        ok(
            &c,
            "exact_calculate",
            calc("divide", json!(["1", "3"]), Some(50))
        )
        .await,
        format!("0.{}", "3".repeat(50))
    );
    assert_eq!(
        ok(
            &c,
            "exact_calculate",
            calc("multiply", json!(["1.5", "-2", "3"]), None)
        )
        .await,
        "-9"
    );
    assert_eq!(
        ok(
            &c,
            "exact_calculate",
            calc("power", json!(["2", "100"]), Some(40))
        )
        .await,
        "1267650600228229401496703205376"
    );
    assert_eq!(
        ok(&c, "exact_calculate", calc("sqrt", json!(["2"]), Some(20))).await,
        "1.4142135623730950488"
    );
    assert_eq!(
        tool_error(
            &c,
            "exact_calculate",
            calc("divide", json!(["1", "0"]), None)
        )
        .await,
        "division by zero"
    );
    assert!(
        tool_error(&c, "exact_calculate", calc("sqrt", json!(["-4"]), None))
            .await
            .contains("negative")
    );
    assert!(tool_error(
        &c,
        "exact_calculate",
        calc("add", json!(["one", "2"]), None)
    )
    .await
    .contains("not a decimal number"));
    assert!(tool_error(
        &c,
        "exact_calculate",
        calc("power", json!(["9", "99999999"]), None)
    )
    .await
    .contains("overflow"));

    assert_eq!(
        ok(
            &c,
            "evaluate_expression",
            json!({"expression": "(0.1 + 0.2) * 10 - 2^3"})
        )
        .await,
        "-5"
    );
    assert_eq!(
        ok(
            &c,
            "evaluate_expression",
            json!({"expression": "max(1, sqrt(16), -2) % 3"})
        )
        .await,
        "1"
    );
    assert!(tool_error(
        &c,
        "evaluate_expression",
        json!({"expression": "(".repeat(1000)})
    )
    .await
    .contains("nested deeper"));
    assert!(tool_error(
        &c,
        "evaluate_expression",
        json!({"expression": "10 ^ 10 ^ 10"})
    )
    .await
    .contains("overflow"));

    let data = json!(["2", "4", "4", "4", "5", "5", "7", "9"]);
    for (op, want) in [
        ("mean", "5"),
        ("median", "4.5"),
        ("mode", "4"),
        ("stdev_population", "2"),
        ("variance_sample", "4.571428571428571428571428571"),
        ("range", "7"),
    ] {
        assert_eq!(
            ok(&c, "statistics", json!({"operation": op, "values": data})).await,
            want,
            "{op}"
        );
    }
    assert_eq!(
        ok(
            &c,
            "statistics",
            json!({"operation": "percentile", "values": ["1", "2", "3", "4"], "percentile": "90"})
        )
        .await,
        "3.7"
    );
    assert!(
        tool_error(&c, "statistics", json!({"operation": "mean", "values": []}))
            .await
            .contains("must not be empty")
    );

    for (v, f, t, want) in [
        ("1", "in", "cm", "2.54"),
        ("1", "lb", "kg", "0.45359237"),
        ("100", "C", "F", "212"),
        ("90", "min", "h", "1.5"),
        ("1", "acre", "m2", "4046.8564224"),
        ("1", "gal", "l", "3.785411784"),
        ("36", "km/h", "m/s", "10"),
        ("1", "bar", "kPa", "100"),
        ("1", "kcal", "J", "4184"),
        ("1", "GiB", "MiB", "1024"),
    ] {
        assert_eq!(
            ok(&c, "convert_units", json!({"value": v, "from": f, "to": t})).await,
            want,
            "{v} {f} → {t}"
        );
    }
    let e = tool_error(
        &c,
        "convert_units",
        json!({"value": "1", "from": "m", "to": "kg"}),
    )
    .await;
    assert!(e.contains("one category"), "{e}");
    let e = tool_error(
        &c,
        "convert_units",
        json!({"value": "1", "from": "parsec", "to": "m"}),
    )
    .await;
    assert!(e.contains("unknown unit") && e.contains("accepted"), "{e}");
}

/// A stateless tool that answers as SSE (`tool --sse`): the answer reaches the client as one SSE
/// event, unbuffered, and tools/list arrives filtered in the same form.
#[tokio::test]
async fn stateless_tool_answering_as_sse() {
    let up = tool_server_with("calculator", true, &["--sse".to_string()]).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let c = gw.developer("alice");
    let r = c
        .call(
            7,
            "exact_calculate",
            json!({"operator": "multiply", "operands": ["1.5", "4"]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "{:?}",
        r.headers()
    );
    assert!(r.headers().get("mcp-session-id").is_none());
    let events = sse_events(&r.text().await.unwrap());
    assert_eq!(events.len(), 1, "{events:?}");
    let data: Value =
        serde_json::from_str(&events[0].iter().find(|(k, _)| k == "data").unwrap().1).unwrap();
    assert_eq!(data["id"], 7);
    assert_eq!(data["result"]["structuredContent"]["result"], "6");

    let r = c
        .post(&json!({"jsonrpc":"2.0","id":8,"method":"tools/list"}))
        .await;
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(
        tool_names(&rpc_body(r).await),
        vec!["exact_calculate", "statistics"]
    );
}

const REPORT: &str = "# Quarterly report\n\nRevenue grew **12%** in *Q3*; see [the ledger](https://example.com/ledger).\n\n- North\n  - Oslo\n1. first\n2. second\n\n| Region | Units |\n|---|---|\n| North | 42 |\n\n```\nlet x = 1;\n```\n\n> Keep going.\n\n<script>alert('x')</script>\n";

/// Calls generate_document; returns (summary, MIME type, decoded bytes).
async fn document(c: &Client, format: &str) -> (String, String, Vec<u8>) {
    use base64::Engine;
    let r = call(
        c,
        "generate_document",
        json!({"format": format, "title": "Q3 <draft>", "markdown": REPORT}),
    )
    .await;
    assert_eq!(r["isError"], false, "{r}");
    let summary = r["content"][0]["text"].as_str().unwrap().to_string();
    let res = &r["content"][1]["resource"];
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(res["blob"].as_str().unwrap())
        .unwrap();
    (
        summary,
        res["mimeType"].as_str().unwrap().to_string(),
        bytes,
    )
}

#[tokio::test]
async fn documents_through_the_gateway() {
    let up = tool_server("docs", true).await;
    let mut spec = GatewaySpec::new(&[]);
    spec.tools_yaml = format!(
        "scopes:\n  docs:\n    upstreams:\n      - url: http://127.0.0.1:{}/mcp\n    tools: [generate_document]\n    validate_arguments_max_bytes: 1048576\n",
        up.port
    );
    spec.policy_yaml = "roles:\n  writer:\n    allow: [\"docs/*\"]\n".into();
    // Let the tool's own 256 KiB input cap speak, not the gateway's body cap or its bound on the
    // arguments it validates (both raised above the tool's).
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        "max_body_bytes: 262144",
        "max_body_bytes: 1048576",
    );
    let gw = spec.start().await;
    let c = Client::new(
        gw.url("/docs/mcp"),
        Some(token("alice", &["writer"], json!({}))),
    );

    // HTML: everything from the input is escaped.
    let (summary, mime, html) = document(&c, "html").await;
    assert_eq!(mime, "text/html");
    assert!(summary.starts_with("HTML document, "), "{summary}");
    let html = String::from_utf8(html).unwrap();
    assert!(
        html.contains("&lt;script&gt;alert('x')&lt;/script&gt;") && !html.contains("<script>"),
        "{html}"
    );
    assert!(html.contains("<title>Q3 &lt;draft&gt;</title>"));
    assert!(
        html.contains("<strong>12%</strong>")
            && html.contains("<table>")
            && html.contains("<blockquote>")
    );

    // PDF: opens in a standard reader's text extractor, with the text in it.
    let (summary, mime, pdf) = document(&c, "pdf").await;
    assert_eq!(mime, "application/pdf");
    assert!(summary.ends_with("1 page(s)"), "{summary}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q3.pdf");
    std::fs::write(&path, &pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (apt-get install poppler-utils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "Q3 <draft>",
        "Quarterly report",
        "Revenue grew 12%",
        "Oslo",
        "Region",
        "let x = 1;",
        "Keep going.",
        "<script>",
    ] {
        assert!(
            text.contains(want),
            "{want:?} missing from the PDF text:\n{text}"
        );
    }

    // DOCX: a ZIP whose word/document.xml holds the text.
    let (_, mime, docx) = document(&c, "docx").await;
    assert_eq!(
        mime,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    );
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(docx)).unwrap();
    let mut xml = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("word/document.xml").unwrap(), &mut xml)
        .unwrap();
    for want in [
        "Quarterly report",
        "North",
        "Oslo",
        "42",
        "let x = 1;",
        "Keep going.",
        "https://example.com/ledger",
    ] {
        assert!(
            xml.contains(want),
            "{want:?} missing from word/document.xml"
        );
    }

    // Determinism: the same call twice gives the same bytes, for every format.
    for f in ["pdf", "docx", "html"] {
        assert_eq!(document(&c, f).await.2, document(&c, f).await.2, "{f}");
    }
    // Oversized input is a clear tool error.
    let r = call(
        &c,
        "generate_document",
        json!({"format": "html", "title": "x", "markdown": "a".repeat(300 * 1024)}),
    )
    .await;
    assert_eq!(r["isError"], true);
    assert!(r["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("larger than 256 KiB"));
}

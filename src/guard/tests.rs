use super::*;
use crate::config::file::{CustomDetectorFile, GuardsFile};
use crate::config::guards::build;

fn guards(arguments: &[(&str, GuardAction)], results: &[(&str, GuardAction)]) -> Guards {
    let f = GuardsFile {
        arguments: arguments.iter().map(|(k, a)| (k.to_string(), *a)).collect(),
        results: results.iter().map(|(k, a)| (k.to_string(), *a)).collect(),
        custom: vec![CustomDetectorFile {
            name: "ticket".into(),
            pattern: "TCK-[0-9]{6}".into(),
            arguments: Some(GuardAction::Block),
            results: Some(GuardAction::Redact),
        }],
        webhook: None,
        max_result_bytes: None,
    };
    let mut problems = vec![];
    let g = build(
        std::path::Path::new("tools.yaml"),
        "guards",
        &f,
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:?}");
    g.unwrap()
}

#[test]
fn checks_confirm_cards_ibans_and_random_secrets() {
    assert!(luhn("4111 1111 1111 1111"));
    assert!(!luhn("4111 1111 1111 1112"));
    assert!(iban("DE89 3704 0044 0532 0130 00"));
    assert!(!iban("DE89 3704 0044 0532 0130 01"));
    assert!(entropy("9fQ2xL7pA1zR8vK3") > 3.5);
    assert!(entropy("aaaaaaaaaaaaaaaa") < 1.0);
}

#[test]
fn a_clean_text_is_left_alone_and_hits_are_redacted_in_place() {
    let g = guards(
        &[],
        &[
            ("secrets", GuardAction::Redact),
            ("pii", GuardAction::Redact),
        ],
    );
    let clean = r#"{"result":{"content":[{"type":"text","text":"sum is 3.75"}]}}"#;
    assert!(inspect(&g, clean, Direction::Results).unwrap().is_none());
    let dirty = r#"{"result":{"content":[{"type":"text","text":"card 4111 1111 1111 1111, mail ann@example.com"}],"structuredContent":{"key":"AKIAIOSFODNN7EXAMPLE","n":1}}}"#;
    let found = inspect(&g, dirty, Direction::Results).unwrap().unwrap();
    let v = found.redacted.unwrap();
    assert_eq!(
        v["result"]["content"][0]["text"],
        "card [REDACTED:pii.card], mail [REDACTED:pii.email]"
    );
    assert_eq!(
        v["result"]["structuredContent"]["key"],
        "[REDACTED:secrets.aws_access_key]"
    );
    assert_eq!(v["result"]["structuredContent"]["n"], 1);
    let summary = found.hits.summary().unwrap();
    assert!(summary.contains("pii.card:results:redact:1"), "{summary}");
    assert!(!summary.contains("4111"));
    // A number that fails the Luhn check is not a card.
    let not_card = r#"{"result":{"text":"order 4111 1111 1111 1112"}}"#;
    assert!(inspect(&g, not_card, Direction::Results).unwrap().is_none());
}

#[test]
fn an_escaped_secret_is_found_after_decoding() {
    let g = guards(&[("secrets", GuardAction::Block)], &[]);
    let escaped = r#"{"key":"\u0041KIAIOSFODNN7EXAMPLE"}"#;
    let found = inspect(&g, escaped, Direction::Arguments).unwrap().unwrap();
    assert_eq!(found.blocked.as_deref(), Some("secrets.aws_access_key"));
}

#[test]
fn custom_detectors_and_block_on_results() {
    let g = guards(&[], &[("pii", GuardAction::Block)]);
    let mut rg = results::ResultGuard::new(std::sync::Arc::new(g), Some("7"));
    let out = rg
        .message(br#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"TCK-123456 for ann@example.com"}]}}"#)
        .unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["id"], 7);
    assert_eq!(v["result"]["isError"], true);
    assert_eq!(
        v["result"]["content"][0]["text"],
        "Blocked by guard: pii.email"
    );
}

/// Random results with secrets planted at random places, cut into chunks at random points and
/// fed through the SSE path: no planted secret ever comes out.
#[test]
fn planted_secrets_never_leak_whatever_the_chunk_boundaries() {
    use rand::{Rng, SeedableRng};
    let g = std::sync::Arc::new(guards(
        &[],
        &[
            ("secrets", GuardAction::Redact),
            ("pii", GuardAction::Redact),
        ],
    ));
    let secrets = [
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_0123456789abcdefghijABCDEFGHIJ012345",
        "4111 1111 1111 1111",
        "ann.smith@example.com",
        "DE89 3704 0044 0532 0130 00",
        "xoxb-1234567890-abcdefghij",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for round in 0..300 {
        let mut text = String::new();
        let mut planted = Vec::new();
        for _ in 0..rng.random_range(1..6) {
            for _ in 0..rng.random_range(0..40) {
                text.push(char::from(b'a' + rng.random_range(0..26u8)));
            }
            text.push(' ');
            let s = secrets[rng.random_range(0..secrets.len())];
            text.push_str(s);
            planted.push(s);
            text.push(' ');
        }
        let msg = serde_json::json!({"jsonrpc": "2.0", "id": round, "result": {"content": [{"type": "text", "text": text}]}});
        let stream = format!("event: message\ndata: {msg}\n\n");
        let mut rewrite = crate::proxy::filter::ResponseRewrite::guard(results::ResultGuard::new(
            g.clone(),
            None,
        ));
        assert!(rewrite.start("text/event-stream", || unreachable!("no list here")));
        let bytes = stream.as_bytes();
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let n = rng.random_range(1..=bytes.len() - at);
            let mut chunk = Some(bytes::Bytes::copy_from_slice(&bytes[at..at + n]));
            at += n;
            rewrite.body(&mut chunk, at == bytes.len());
            if let Some(c) = chunk {
                out.extend_from_slice(&c);
            }
        }
        let out = String::from_utf8(out).unwrap();
        for s in &planted {
            assert!(!out.contains(s), "round {round}: {s} leaked in {out}");
        }
        let data = out.trim().strip_prefix("event: message\ndata: ").unwrap();
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["id"], round);
    }
}

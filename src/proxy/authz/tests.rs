//! The authorisation step on an in-memory runtime: grants, refusals, batches, failing closed.

use super::*;
use crate::proxy::testing::{admitted, TestRuntime};

fn rpc(body: &str) -> Rpc {
    crate::jsonrpc::parse(body.as_bytes(), true, false).unwrap()
}

fn call(tool: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
    )
}

#[test]
fn a_caller_without_a_grant_in_the_scope_is_forbidden() {
    let rt = TestRuntime::new().build();
    assert!(admit_caller(&admitted(&rt, "a", &["analyst"])).is_ok());
    for roles in [&["auditor"][..], &[]] {
        let err = admit_caller(&admitted(&rt, "a", roles)).unwrap_err();
        assert_eq!((err.status(), err.code()), (403, -32003));
    }
}

#[test]
fn tools_pass_only_when_granted_and_refusals_look_like_missing_tools() {
    let rt = TestRuntime::new().build();
    let mut ctx = admitted(&rt, "bob", &["analyst"]);
    assert!(matches!(
        decide(&mut ctx, &rpc(&call("exact_calculate"))),
        Decision::Forward
    ));
    for (tool, reason) in [
        (
            "statistics",
            "tool not granted to any of the caller's roles",
        ),
        ("convert_units", "tool not exposed by this scope"),
    ] {
        match decide(&mut ctx, &rpc(&call(tool))) {
            Decision::Refuse(GatewayError::Denied(d)) => {
                assert_eq!(d.reason(), reason);
                assert_eq!(d.to_string(), format!("Unknown tool: {tool}"));
            }
            _ => panic!("{tool} must be refused"),
        }
    }
}

#[test]
fn lists_are_filtered_and_unknown_methods_refused() {
    let rt = TestRuntime::new().build();
    let mut ctx = admitted(&rt, "bob", &["analyst"]);
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    assert!(matches!(decide(&mut ctx, &rpc(list)), Decision::Forward));
    assert!(matches!(ctx.answer.rewrite, ResponseRewrite::ListPending));
    // The analyst holds a tool grant only: no resources, no prompts, no unknown methods.
    for method in ["resources/list", "prompts/list", "sampling/anything"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{}}}}"#);
        let mut ctx = admitted(&rt, "bob", &["analyst"]);
        match decide(&mut ctx, &rpc(&body)) {
            Decision::Refuse(e) => assert_eq!(e.code(), -32601, "{method}"),
            _ => panic!("{method} must be refused"),
        }
    }
}

/// On a scope whose tasks the gateway runs (the default), the task methods pass to the task
/// step, which answers from the caller's own jobs only; a task method without a task id is
/// malformed.
#[test]
fn task_methods_pass_to_the_gateways_own_tasks() {
    let rt = TestRuntime::new().build();
    for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"taskId":"abc"}}}}"#
        );
        let mut ctx = admitted(&rt, "bob", &["analyst"]);
        assert!(
            matches!(decide(&mut ctx, &rpc(&body)), Decision::Forward),
            "{method}"
        );
        let bare = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{}}}}"#);
        assert!(
            crate::jsonrpc::parse(bare.as_bytes(), false, false).is_err(),
            "{method}"
        );
    }
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tasks/list"}"#;
    let mut ctx = admitted(&rt, "bob", &["analyst"]);
    assert!(matches!(decide(&mut ctx, &rpc(list)), Decision::Forward));
}

#[test]
fn a_batch_with_a_refusal_is_answered_here_and_remembers_it() {
    let rt = TestRuntime::new().build();
    let mut ctx = admitted(&rt, "bob", &["analyst"]);
    let batch = format!("[{},{}]", call("exact_calculate"), call("statistics"));
    let Decision::Answer(body) = decide(&mut ctx, &rpc(&batch)) else {
        panic!("a batch with a refused call is answered by the gateway");
    };
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    match ctx.answer.batch_refusal {
        Some(GatewayError::Denied(d)) => assert_eq!(d.refused_tool(), Some("statistics")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_caller_fails_closed() {
    let rt = TestRuntime::new().build();
    let mut ctx = crate::proxy::ctx::RequestCtx::new(rt);
    assert!(matches!(admit_caller(&ctx), Err(GatewayError::Internal)));
    assert!(matches!(
        decide(&mut ctx, &rpc(&call("exact_calculate"))),
        Decision::Refuse(GatewayError::Internal)
    ));
}

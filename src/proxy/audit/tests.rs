//! How a finished request's outcome is read from where it ended.

use super::*;
use crate::error::GatewayError;
use crate::outcome::Class;
use crate::proxy::testing::{admitted, TestRuntime};
use pingora::ErrorType;

#[test]
fn the_outcome_comes_from_where_the_request_ended() {
    let rt = TestRuntime::new().build();
    let mut ctx = admitted(&rt, "alice", &["analyst"]);
    assert_eq!(outcome(&ctx, 200, None).class(), Class::Ok);
    let gone = Error::explain(ErrorType::ConnectionClosed, "client closed").into_down();
    assert!(matches!(
        outcome(&ctx, 200, Some(&gone)),
        Outcome::ClientGone
    ));
    let broke = Error::explain(ErrorType::ReadError, "reset").into_up();
    assert_eq!(
        outcome(&ctx, 200, Some(&broke)).class(),
        Class::UpstreamError
    );
    ctx.answer
        .scan
        .feed(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#);
    assert!(matches!(
        outcome(&ctx, 200, None),
        Outcome::RpcError { code: -32601 }
    ));
    // The gateway's own refusal wins over anything seen later.
    ctx.error = Some(GatewayError::TooManyConcurrent);
    assert_eq!(outcome(&ctx, 429, Some(&gone)).class(), Class::RateLimited);
}

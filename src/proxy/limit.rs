//! Step 5, limits: the user's in-flight slot (held until the request ends) and every rate limit
//! that matches each message. Without an admitted caller or a parsed body nothing passes.

use super::ctx::RequestCtx;
use crate::error::GatewayError;

/// Takes one of the caller's in-flight slots, when such a limit is set.
pub fn hold_user_slot(ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    if !ctx.rt.user_inflight.enabled() {
        return Ok(());
    }
    let user = &ctx.admitted()?.identity.user;
    let guard = ctx
        .rt
        .user_inflight
        .acquire(user)
        .ok_or(GatewayError::TooManyConcurrent)?;
    ctx.held.push(guard);
    Ok(())
}

/// Takes one of the user's places for a body still arriving (`connections.bodies_per_user`);
/// `body::read_early` and `body::hold` give it back once the body is complete.
pub fn hold_body_slot(ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    let user = &ctx.admitted()?.identity.user;
    let guard = ctx
        .rt
        .user_bodies
        .acquire(user)
        .ok_or(GatewayError::TooManyBodies)?;
    ctx.body.slot = Some(guard);
    Ok(())
}

/// Every rate limit that matches each message must pass.
pub async fn check(ctx: &RequestCtx) -> Result<(), GatewayError> {
    let limits = &ctx.rt.limits;
    if limits.is_empty() {
        return Ok(());
    }
    let caller = ctx.admitted()?;
    let rpc = ctx.rpc.as_ref().ok_or(GatewayError::Internal)?;
    for m in rpc.messages() {
        if let Some(method) = &m.method {
            limits
                .check(&super::authz::facts(ctx, caller, m, method))
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::testing::{admitted, TestRuntime};

    fn with_call(mut ctx: RequestCtx) -> RequestCtx {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"exact_calculate","arguments":{}}}"#;
        ctx.rpc = Some(crate::jsonrpc::parse(body, false, false).unwrap());
        ctx
    }

    /// Builds the runtime first (it sets up load balancers with a runtime of its own), then
    /// runs the checks.
    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn the_limit_names_itself_and_each_user_has_a_budget() {
        let rt = TestRuntime::new()
            .policy("rate_limits:\n  - { name: per-minute, key: user, rate: 1/min }\n")
            .build();
        run(async {
            let alice = with_call(admitted(&rt, "alice", &["analyst"]));
            assert!(check(&alice).await.is_ok());
            match check(&alice).await {
                Err(GatewayError::RateLimited { limit, retry_after }) => {
                    assert_eq!(limit, "per-minute");
                    assert!((1..=60).contains(&retry_after));
                }
                other => panic!("{other:?}"),
            }
            assert!(check(&with_call(admitted(&rt, "bob", &["analyst"])))
                .await
                .is_ok());
        });
    }

    #[test]
    fn without_a_caller_or_a_body_nothing_passes() {
        let rt = TestRuntime::new()
            .policy("rate_limits:\n  - { name: per-minute, key: user, rate: 100/min }\n")
            .gateway("limits: { max_concurrent_per_user: 1 }\n")
            .build();
        let no_body = admitted(&rt, "alice", &["analyst"]);
        assert!(matches!(run(check(&no_body)), Err(GatewayError::Internal)));
        let mut nobody = RequestCtx::new(rt.clone());
        assert!(matches!(
            hold_user_slot(&mut nobody),
            Err(GatewayError::Internal)
        ));
        // One slot per user: the second request waits for the first to end.
        let mut first = admitted(&rt, "alice", &["analyst"]);
        hold_user_slot(&mut first).unwrap();
        let mut second = admitted(&rt, "alice", &["analyst"]);
        assert!(matches!(
            hold_user_slot(&mut second),
            Err(GatewayError::TooManyConcurrent)
        ));
        drop(first);
        assert!(hold_user_slot(&mut second).is_ok());
    }
}

//! The shared rate-limit state in Redis: one GCRA step per call, atomic in a Lua script that reads
//! the time from Redis itself, so every gateway instance draws on the same budget by the same
//! clock. Each call is bounded by a short timeout; failures go to the configured fallback.

use crate::config::file::StoreFallback;
use redis::aio::ConnectionManager;
use redis::AsyncCommands as _;
use std::time::Duration;
use tokio::sync::OnceCell;

const GCRA: &str = r#"
local period = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local tolerance = period * (capacity - 1)
if now < tat - tolerance then
  return {0, tat - tolerance - now}
end
local new_tat = tat + period
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {1, 0}
"#;

/// Why the shared store could not answer a rate-limit check (the rule's fallback applies).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("bad Redis URL: {0}")]
    Url(#[source] redis::RedisError),
}

pub struct RedisStore {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    script: redis::Script,
    timeout: Duration,
    pub fallback: StoreFallback,
}

impl RedisStore {
    pub fn new(url: &str, timeout: Duration, fallback: StoreFallback) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(StoreError::Url)?;
        Ok(Self {
            client,
            conn: OnceCell::new(),
            script: redis::Script::new(GCRA),
            timeout,
            fallback,
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1);
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await?;
        Ok(conn.clone())
    }

    /// One GCRA step: `Ok(Ok(()))` allowed, `Ok(Err(wait))` refused for `wait`, `Err` store failure.
    pub async fn check(
        &self,
        rule: &str,
        key: &str,
        period: Duration,
        capacity: u32,
    ) -> Result<Result<(), Duration>, StoreError> {
        let mut conn = self.connection().await?;
        let redis_key = format!("mcpgw:rl:{rule}:{key}");
        let mut invocation = self.script.key(redis_key);
        invocation.arg(period.as_micros() as u64).arg(capacity);
        let call = invocation.invoke_async::<(i64, i64)>(&mut conn);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok((1, _))) => Ok(Ok(())),
            Ok(Ok((_, wait_us))) => Ok(Err(Duration::from_micros(wait_us.max(0) as u64))),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        }
    }

    /// Whether Redis answers (for tests and readiness).
    pub async fn ping(&self) -> bool {
        match self.connection().await {
            Ok(mut c) => matches!(
                tokio::time::timeout(self.timeout, c.get::<_, Option<String>>("mcpgw:ping")).await,
                Ok(Ok(_))
            ),
            Err(_) => false,
        }
    }
}

//! The connection to the cluster's Redis: one multiplexed connection that reconnects by itself,
//! and a timeout on every call so that a slow or vanished Redis costs a bounded wait.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, RedisError, Script, ScriptInvocation};

use super::CALL_TIMEOUT;

/// Why a Redis call did not answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Redis(#[from] RedisError),
    /// A script answered in a shape its caller does not know (a node of another version?).
    #[error("unexpected answer: {0}")]
    Answer(String),
}

/// The cluster's Redis.
#[derive(Clone)]
pub struct Redis {
    connection: ConnectionManager,
}

impl Redis {
    /// Checks the URL; the connection is made by the first call (and again after a failure).
    pub fn new(url: &str) -> Result<Redis, RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            // One try per call: the caller falls back at once, the heartbeat tries again.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Redis { connection })
    }

    /// Runs a script (EVALSHA, loading it when Redis does not know it yet).
    pub async fn script<T: FromRedisValue>(&self, invocation: &ScriptInvocation<'_>) -> Result<T, CallError> {
        let mut connection = self.connection.clone();
        bounded(invocation.invoke_async(&mut connection)).await
    }

    /// Runs one command.
    pub async fn command<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, CallError> {
        let mut connection = self.connection.clone();
        bounded(cmd.query_async(&mut connection)).await
    }

    /// Prepares a script for `script`.
    pub fn prepare(script: &Script) -> ScriptInvocation<'_> {
        script.prepare_invoke()
    }
}

async fn bounded<T>(call: impl Future<Output = Result<T, RedisError>>) -> Result<T, CallError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(answer) => Ok(answer?),
        Err(_) => Err(CallError::Timeout(CALL_TIMEOUT)),
    }
}

/// Keys are kept apart from anything else in the database by this prefix.
pub fn key(kind: &str, rest: &str) -> String {
    format!("ember:{kind}:{rest}")
}

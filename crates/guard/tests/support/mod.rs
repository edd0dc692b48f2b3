//! What the tests that use the real Redis server at 127.0.0.1:6379 share.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests: each test binary uses part of this; a failed step must fail the test"
)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The machine's Redis server.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Whether the Redis server answers; under `CI=true` a test needing it must not pass silently.
pub async fn redis_is_up(test: &str) -> bool {
    let ping = async {
        let client = redis::Client::open(REDIS_URL).ok()?;
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .ok()
    };
    let up = tokio::time::timeout(Duration::from_secs(3), ping)
        .await
        .ok()
        .flatten()
        .is_some();
    if !up {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{test}: Redis at {REDIS_URL} does not answer, and CI=true needs it");
        }
        eprintln!("notice: {test} skipped: Redis at {REDIS_URL} does not answer");
    }
    up
}

/// A prefix of its own for `test` when the Redis server answers ([`redis_is_up`]).
pub async fn redis_prefix(test: &str) -> Option<String> {
    if redis_is_up(test).await {
        Some(unique_prefix(test))
    } else {
        None
    }
}

/// A prefix no other test or run shares.
pub fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("portcullis:test:{test}:{}:{nanos}:", std::process::id())
}

/// The keys under `prefix` on the server.
pub async fn keys_under(prefix: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut redis_connection().await)
        .await
        .unwrap()
}

/// A connection to the server, to look at the keys a test left.
pub async fn redis_connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

//! The webhook told of every step of temporary access (`[temporary_access.webhook]`): who asked
//! for what, who approved, rejected or revoked, what expired — so approvers hear of a request
//! without watching a list.
//!
//! Each event is a JSON body POSTed to the configured URL, signed with HMAC-SHA256 over
//! `<timestamp>.<body>` with the configured secret, in
//! `X-Portcullis-Signature: t=<unix seconds>,v1=<hex>` (a receiver recomputes it and refuses
//! an old timestamp, so a captured delivery cannot be replayed later), with its event in
//! `X-Portcullis-Event` and a delivery id in `X-Portcullis-Delivery` (the same for every
//! attempt of one event, so a receiver can drop repeats).
//!
//! Notifying never blocks the request that caused it: an event is queued (a full queue drops
//! it with a warning and a count) and delivered by a task of its own, at most
//! [`CONCURRENT`] at once, retried on a failed connection or a non-2xx answer with exponential
//! backoff (from `first_retry`, doubling, at most a minute apart) until `attempts` have been
//! made. The audit trail, not the webhook, is the record of what happened.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hmac::Mac as _;
use serde_json::{Map, Value};
use tokio::sync::{Semaphore, mpsc};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Events waiting for delivery at most; more are dropped (with a warning).
const QUEUE: usize = 1024;
/// Deliveries in flight at most.
pub const CONCURRENT: usize = 16;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Where events go and how they are signed and retried.
#[derive(Clone)]
pub struct WebhookSettings {
    /// The receiver.
    pub url: reqwest::Url,
    /// The signing secret.
    pub secret: Vec<u8>,
    /// Attempts per event, the first included.
    pub attempts: u32,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// The wait before the first retry; each next one waits twice as long.
    pub first_retry: Duration,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &self.url.as_str())
            .field("attempts", &self.attempts)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// One event on its way.
struct Delivery {
    id: String,
    event: String,
    body: Vec<u8>,
}

/// The running webhook: a queue and the task that empties it.
#[derive(Debug)]
pub struct Webhook {
    queue: mpsc::Sender<Delivery>,
    dropped: AtomicU64,
}

impl Webhook {
    /// Starts delivering to `settings.url` on the current runtime.
    pub fn start(settings: WebhookSettings) -> Result<Webhook, String> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| {
                format!("temporary_access.webhook: cannot build the client: {error}")
            })?;
        let (queue, mut receiver) = mpsc::channel::<Delivery>(QUEUE);
        let settings = Arc::new(settings);
        let slots = Arc::new(Semaphore::new(CONCURRENT));
        tokio::spawn(async move {
            while let Some(delivery) = receiver.recv().await {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let client = client.clone();
                let settings = Arc::clone(&settings);
                tokio::spawn(async move {
                    deliver(&client, &settings, &delivery).await;
                    drop(slot);
                });
            }
        });
        Ok(Webhook {
            queue,
            dropped: AtomicU64::new(0),
        })
    }

    /// Queues `event` (such as `access.approve`) with `payload`'s fields; never waits.
    pub fn notify(&self, event: &str, payload: Map<String, Value>) {
        let id = delivery_id();
        let mut body = Map::new();
        body.insert("id".into(), Value::String(id.clone()));
        body.insert("event".into(), Value::String(event.to_owned()));
        body.insert(
            "at".into(),
            Value::String(jiff::Timestamp::now().to_string()),
        );
        body.extend(payload);
        let body = match serde_json::to_vec(&Value::Object(body)) {
            Ok(body) => body,
            Err(error) => {
                tracing::error!(%error, event, "a webhook event could not be encoded");
                return;
            }
        };
        let delivery = Delivery {
            id,
            event: event.to_owned(),
            body,
        };
        if self.queue.try_send(delivery).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                event,
                dropped,
                "the webhook's queue is full (or its task stopped); the event is not sent"
            );
        }
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn delivery_id() -> String {
    let mut bytes = [0u8; 12];
    if getrandom::fill(&mut bytes).is_err() {
        // Still unique enough to tell repeats apart within a process.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        return format!("d-{nanos:x}");
    }
    format!("d-{}", hex::encode(bytes))
}

/// The signature header's value for `body` sent at `timestamp` (Unix seconds).
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = match <HmacSha256 as hmac::KeyInit>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes keys of any length.
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

async fn deliver(client: &reqwest::Client, settings: &WebhookSettings, delivery: &Delivery) {
    let mut wait = settings.first_retry;
    for attempt in 1..=settings.attempts {
        let timestamp = jiff::Timestamp::now().as_second();
        let outcome = client
            .post(settings.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("x-portcullis-event", &delivery.event)
            .header("x-portcullis-delivery", &delivery.id)
            .header(
                "x-portcullis-signature",
                signature(&settings.secret, timestamp, &delivery.body),
            )
            .body(delivery.body.clone())
            .send()
            .await;
        match outcome {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => tracing::warn!(
                event = %delivery.event,
                delivery = %delivery.id,
                attempt,
                status = response.status().as_u16(),
                "the webhook refused an event"
            ),
            Err(error) => tracing::warn!(
                event = %delivery.event,
                delivery = %delivery.id,
                attempt,
                %error,
                "the webhook could not be reached"
            ),
        }
        if attempt < settings.attempts {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_BACKOFF);
        }
    }
    tracing::error!(
        event = %delivery.event,
        delivery = %delivery.id,
        attempts = settings.attempts,
        "the webhook did not take an event; giving up on it"
    );
}

#[cfg(test)]
mod tests {
    use super::signature;

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let secret = b"0123456789abcdef";
        let one = signature(secret, 1_800_000_000, b"{\"a\":1}");
        assert!(one.starts_with("t=1800000000,v1="), "{one}");
        assert_eq!(one.len(), "t=1800000000,v1=".len() + 64);
        assert_eq!(one, signature(secret, 1_800_000_000, b"{\"a\":1}"));
        assert_ne!(one, signature(secret, 1_800_000_001, b"{\"a\":1}"));
        assert_ne!(one, signature(secret, 1_800_000_000, b"{\"a\":2}"));
        assert_ne!(
            one,
            signature(b"another secret!!", 1_800_000_000, b"{\"a\":1}")
        );
    }
}

//! `X-Request-ID` on every HTTP answer of every listener.
//!
//! The connection service ([`crate::connection`]) names each request before it reaches a
//! router: the caller's `X-Request-ID` when it is usable (printable ASCII, 1 to [`MAX_LEN`]
//! bytes), otherwise a new one ([`generate`]). It keeps the name for the time the request is
//! served, so that the decision module can write it into the decision's audit record
//! ([`current`]) without every edge handing it down, and answers it in the response header —
//! error answers, the 404/405 fallbacks and refusals of oversized heads included ([`Named`]).
//!
//! This module must not know about tenants, decisions or bodies: it only names requests.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use tokio::task::futures::TaskLocalFuture;

/// The header's name.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a caller, in bytes.
pub const MAX_LEN: usize = 200;

/// The id of a request: a header value (cloning it shares its bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    /// The id as text (an id is printable ASCII by construction).
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The id of the request the current task serves, when it came through a listener.
pub fn current() -> Option<RequestId> {
    CURRENT.try_with(RequestId::clone).ok()
}

/// Whether a caller's value can be used as is: printable ASCII (space to `~`), not empty, at
/// most [`MAX_LEN`] bytes.
pub fn is_acceptable(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LEN
        && value.iter().all(|byte| (0x20..=0x7e).contains(byte))
}

/// A fresh id, in the shape of a UUID (version 4): a random 64-bit prefix chosen once per
/// process followed by a per-process counter. Ids are unique per process and across
/// processes with overwhelming probability, and cost no system call per request; they are
/// correlation keys, not secrets.
pub fn generate() -> RequestId {
    static PREFIX: std::sync::OnceLock<[u8; 8]> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 8];
        // Without randomness the clock distinguishes this process from the others.
        if getrandom::fill(&mut bytes).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_nanos())
                .unwrap_or_default();
            bytes.copy_from_slice(&nanos.to_be_bytes()[8..]);
        }
        bytes
    });
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(prefix);
    bytes[8..].copy_from_slice(&count.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    // 8-4-4-4-12 hexadecimal digits.
    let mut text = [b'-'; 36];
    let mut at = 0;
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            at += 1;
        }
        text[at] = DIGITS[usize::from(byte >> 4)];
        text[at + 1] = DIGITS[usize::from(byte & 0x0f)];
        at += 2;
    }
    // Hexadecimal digits and dashes are always a valid header value.
    RequestId(HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static("-")))
}

/// The id of a request with these headers: the caller's when acceptable, otherwise a new one.
pub fn of_request(headers: &HeaderMap) -> RequestId {
    match headers.get(&HEADER) {
        Some(value) if is_acceptable(value.as_bytes()) => RequestId(value.clone()),
        _ => generate(),
    }
}

/// Puts the id on an answer.
pub fn answer(response: &mut Response, id: &RequestId) {
    response.headers_mut().insert(HEADER, id.0.clone());
}

pin_project_lite::pin_project! {
    /// Serves a request under its id (see [`current`]) and answers the id.
    pub struct Named<F: Future> {
        #[pin]
        inner: TaskLocalFuture<RequestId, F>,
        id: RequestId,
    }
}

impl<F> Named<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    /// Serves `serving` as the request named `id`.
    pub fn new(id: RequestId, serving: F) -> Self {
        Named {
            inner: CURRENT.scope(id.clone(), serving),
            id,
        }
    }
}

impl<F> Future for Named<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut response) = ready!(this.inner.poll(cx));
        answer(&mut response, this.id);
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_up_to_the_limit_is_taken() {
        assert!(is_acceptable(b"abc-123 ~!"));
        assert!(is_acceptable("x".repeat(MAX_LEN).as_bytes()));
        assert!(!is_acceptable("x".repeat(MAX_LEN + 1).as_bytes()));
        assert!(!is_acceptable(b""));
        assert!(!is_acceptable(b"tab\there"));
        assert!(!is_acceptable("caf\u{e9}".as_bytes()));
        assert!(!is_acceptable(b"del\x7f"));
    }

    #[test]
    fn generated_ids_are_uuid_v4() {
        let id = generate().as_str().to_owned();
        assert_eq!(id.len(), 36);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|part| part.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
        assert_ne!(generate().as_str(), id);
        assert!(
            id.bytes()
                .all(|byte| byte == b'-' || byte.is_ascii_hexdigit())
        );
    }

    #[tokio::test]
    async fn current_is_set_only_inside_the_scope() {
        assert_eq!(current(), None);
        let inside = CURRENT
            .scope(RequestId(HeaderValue::from_static("r-1")), async {
                current()
            })
            .await;
        assert_eq!(inside.as_ref().map(RequestId::as_str), Some("r-1"));
    }
}

//! `X-Request-ID` on every HTTP answer of both listeners.
//!
//! The [`layer`] middleware takes the caller's `X-Request-ID` when it is usable (printable
//! ASCII, 1 to [`MAX_LEN`] bytes) and otherwise makes one (a random UUID v4), puts it on the
//! request as a [`RequestId`] extension, answers it in the response header — error answers and
//! the 404/405 fallbacks included — and keeps it for the time the request is served, so that
//! the decision module can write it into the decision's audit record ([`current`]) without
//! every edge handing it down.
//!
//! This module must not know about tenants, decisions or bodies: it only names requests.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The header's name.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a caller, in bytes.
pub const MAX_LEN: usize = 200;

/// The id of the request being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The id of the request the current task serves, when it came through [`layer`].
pub fn current() -> Option<String> {
    CURRENT.try_with(|id| id.0.clone()).ok()
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
pub fn generate() -> String {
    static PREFIX: std::sync::OnceLock<[u8; 8]> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
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
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The id of a request: the caller's when acceptable, otherwise a new one.
pub fn of_request(request: &Request) -> String {
    request
        .headers()
        .get(&HEADER)
        .map(HeaderValue::as_bytes)
        .filter(|value| is_acceptable(value))
        .and_then(|value| std::str::from_utf8(value).ok())
        .map_or_else(generate, str::to_owned)
}

/// The middleware: names the request, serves it, and answers the name.
pub async fn layer(mut request: Request, next: Next) -> Response {
    let id = of_request(&request);
    if let Ok(value) = HeaderValue::from_str(&id) {
        request.headers_mut().insert(HEADER, value);
    }
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = CURRENT
        .scope(RequestId(id.clone()), next.run(request))
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
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
        let id = generate();
        assert_eq!(id.len(), 36);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|part| part.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
        assert_ne!(generate(), id);
    }

    #[tokio::test]
    async fn current_is_set_only_inside_the_scope() {
        assert_eq!(current(), None);
        let inside = CURRENT
            .scope(RequestId("r-1".into()), async { current() })
            .await;
        assert_eq!(inside.as_deref(), Some("r-1"));
    }
}

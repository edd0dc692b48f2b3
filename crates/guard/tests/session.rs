//! The session stage in front of an axum application: logouts end a session cookie or bearer
//! token, later requests carrying it are refused or sent to the login page; on a clock moved by
//! hand, and shared by two nodes through the machine's Redis.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests: a failed step must fail the test"
)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::routing::{get, post};
use http_body_util::BodyExt as _;
use portcullis_guard::ratelimit::ManualClock;
use portcullis_guard::{RawSession, Refusal, SessionGuard, SessionLayer, Stage, StageTimes, Trail};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// What the stage sets to clear the default session cookie.
const CLEARED: &str = "session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax";

fn raw(extra: &Value) -> RawSession {
    let mut raw = json!({"logout": ["POST /logout", "GET /signout"], "login_page": "/login"});
    raw.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(raw).unwrap()
}

fn guard(extra: &Value, clock: &Arc<ManualClock>) -> Arc<SessionGuard> {
    let clock: Arc<ManualClock> = Arc::clone(clock);
    Arc::new(SessionGuard::with_clock(raw(extra), clock).unwrap())
}

/// The application: `/account` says which stages the request passed, `POST /logout` ends
/// nothing itself, `GET /signout` clears the session cookie on its own.
fn app(guard: &Arc<SessionGuard>) -> Router {
    Router::new()
        .route(
            "/account",
            get(|request: Request| async move {
                let passed = request
                    .extensions()
                    .get::<Trail>()
                    .is_some_and(|trail| trail.has_passed(Stage::Session));
                if passed { "account" } else { "no trail" }
            })
            .post(|| async { "saved" }),
        )
        .route("/logout", post(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/signout",
            get(|| async {
                (
                    [(header::SET_COOKIE, "session=; Path=/; Max-Age=0")],
                    "signed out",
                )
            }),
        )
        .layer(SessionLayer::new(Arc::clone(guard)))
}

/// A request with the session cookie `cookie` and/or the bearer token `bearer`.
fn request(method: &str, path: &str, cookie: Option<&str>, bearer: Option<&str>) -> Request {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, format!("theme=dark; session={cookie}"));
    }
    if let Some(bearer) = bearer {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {bearer}"));
    }
    builder.body(Body::empty()).unwrap()
}

/// A browser's page load with the session cookie `cookie`.
fn page_load(path: &str, cookie: &str) -> Request {
    let mut request = request("GET", path, Some(cookie), None);
    request.headers_mut().insert(
        header::ACCEPT,
        "text/html,application/xhtml+xml,*/*;q=0.8".parse().unwrap(),
    );
    request
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    set_cookies: Vec<String>,
    location: Option<String>,
    retry_after: Option<String>,
    refusal: Option<Refusal>,
    body: String,
}

impl Answer {
    fn code(&self) -> Option<&'static str> {
        self.refusal.as_ref().map(|refusal| refusal.code)
    }
}

async fn send(guard: &Arc<SessionGuard>, request: Request) -> Answer {
    let response = app(guard).oneshot(request).await.unwrap();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let location = header(header::LOCATION);
    let retry_after = header(header::RETRY_AFTER);
    let set_cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect();
    let status = response.status();
    let refusal = response.extensions().get::<Refusal>().cloned();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        set_cookies,
        location,
        retry_after,
        refusal,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

#[test]
fn configuration_errors_name_their_key() {
    for (value, at) in [
        (json!({"logout": []}), "logout"),
        (json!({"logout": ["/logout"]}), "logout[0]"),
        (
            json!({"logout": ["POST /logout", "post /signout"]}),
            "logout[1]",
        ),
        (json!({"cookie": "my session"}), "cookie"),
        (json!({"login_page": "login"}), "login_page"),
        (
            json!({"login_page": "//elsewhere.example/login"}),
            "login_page",
        ),
        (
            json!({"login_page": "ftp://sso.example/login"}),
            "login_page",
        ),
        (json!({"login_page": "https:///login"}), "login_page"),
        (json!({"remember_seconds": 0}), "remember_seconds"),
        (json!({"remember_seconds": u64::MAX}), "remember_seconds"),
        (json!({"max_keys": 0}), "max_keys"),
        (json!({"store": "memcached"}), "store"),
        (json!({"redis_url": "redis://127.0.0.1"}), "redis_url"),
        (json!({"redis_prefix": "p:"}), "redis_prefix"),
        (json!({"store": "redis"}), "redis_url"),
        (
            json!({"store": "redis", "redis_url": "http://x"}),
            "redis_url",
        ),
        (
            json!({"store": "redis", "redis_url": "redis://127.0.0.1", "max_keys": 5}),
            "max_keys",
        ),
        (
            json!({"store": "redis", "redis_url": "redis://127.0.0.1", "redis_timeout_ms": 0}),
            "redis_timeout_ms",
        ),
        (json!({"on_store_error": "maybe"}), "on_store_error"),
    ] {
        let error = SessionGuard::new(raw(&value)).unwrap_err();
        assert_eq!(error.at, at, "{value}: {error}");
    }
    // Without the logout routes the stage would end nothing.
    let error = SessionGuard::new(serde_json::from_value(json!({})).unwrap()).unwrap_err();
    assert_eq!(error.at, "logout", "{error}");
    assert!(serde_json::from_value::<RawSession>(json!({"logouts": ["POST /x"]})).is_err());
    // What is accepted: an absolute login page, and a full local table failing open.
    for value in [
        json!({"login_page": "https://sso.example/login?service=app"}),
        json!({"on_store_error": "open", "max_keys": 10, "remember_seconds": 60}),
    ] {
        assert!(SessionGuard::new(raw(&value)).is_ok(), "{value}");
    }
}

#[tokio::test]
async fn a_logout_ends_its_cookie_and_the_cookie_is_then_refused_and_cleared() {
    let clock = Arc::new(ManualClock::new());
    let guard = guard(&json!({}), &clock);
    let before = send(&guard, request("GET", "/account", Some("s1"), None)).await;
    assert_eq!(
        (before.status, before.body.as_str()),
        (StatusCode::OK, "account")
    );

    let logout = send(&guard, request("POST", "/logout", Some("s1"), None)).await;
    assert_eq!(
        logout.status,
        StatusCode::NO_CONTENT,
        "the logout reaches the application"
    );
    assert_eq!(logout.set_cookies, [CLEARED]);

    let after = send(&guard, request("GET", "/account", Some("s1"), None)).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.set_cookies, [CLEARED]);
    assert_eq!(after.location, None);
    let body: Value = serde_json::from_str(&after.body).unwrap();
    assert_eq!(body["error"]["stage"], "session");
    assert_eq!(body["error"]["code"], "session_ended");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("logout")
    );
    assert_eq!(after.refusal.unwrap().stage, Stage::Session);

    // Another session passes; the ended one is refused on any route and method, and when it
    // is sent next to a live one.
    let other = send(&guard, request("GET", "/account", Some("s2"), None)).await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(
        send(&guard, request("POST", "/account", Some("s1"), None))
            .await
            .code(),
        Some("session_ended")
    );
    let mut both = request("GET", "/account", None, None);
    both.headers_mut().insert(
        header::COOKIE,
        "session=s2; session = \"s1\"".parse().unwrap(),
    );
    assert_eq!(send(&guard, both).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(guard.tracked(), 1);
}

#[tokio::test]
async fn a_browser_with_an_ended_session_is_sent_to_the_login_page() {
    let clock = Arc::new(ManualClock::new());
    let guard = guard(&json!({"login_page": "https://sso.example/login"}), &clock);
    send(&guard, request("POST", "/logout", Some("s1"), None)).await;
    let page = send(&guard, page_load("/account", "s1")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location.as_deref(), Some("https://sso.example/login"));
    assert_eq!(page.set_cookies, [CLEARED]);
    // Still the session stage's refusal for the gateway's counts and records.
    let refusal = page.refusal.unwrap();
    assert_eq!(
        (refusal.stage, refusal.status, refusal.code),
        (Stage::Session, StatusCode::UNAUTHORIZED, "session_ended")
    );
    // A form post or a script's call is answered, not redirected; a live session's page loads.
    let mut post = page_load("/account", "s1");
    *post.method_mut() = axum::http::Method::POST;
    assert_eq!(send(&guard, post).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&guard, page_load("/account", "s2")).await.status,
        StatusCode::OK
    );
    // Without a login page, a browser gets the 401 too.
    let plain = self::guard(&json!({"login_page": null}), &clock);
    send(&plain, request("POST", "/logout", Some("s1"), None)).await;
    let page = send(&plain, page_load("/account", "s1")).await;
    assert_eq!(
        (page.status, page.location),
        (StatusCode::UNAUTHORIZED, None)
    );
}

#[tokio::test]
async fn an_ended_bearer_token_is_refused_and_an_administrator_can_end_one() {
    let clock = Arc::new(ManualClock::new());
    let guard = guard(&json!({}), &clock);
    let logout = send(&guard, request("POST", "/logout", None, Some("jwt-1"))).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let refused = send(&guard, request("GET", "/account", None, Some("jwt-1"))).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::UNAUTHORIZED, Some("session_ended"))
    );
    let mut lower_case = request("GET", "/account", None, None);
    lower_case
        .headers_mut()
        .insert(header::AUTHORIZATION, "bearer  jwt-1 ".parse().unwrap());
    assert_eq!(
        send(&guard, lower_case).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&guard, request("GET", "/account", None, Some("jwt-2")))
            .await
            .status,
        StatusCode::OK
    );
    // A token ended with a cookie that is still live: the request is refused.
    assert_eq!(
        send(
            &guard,
            request("GET", "/account", Some("s1"), Some("jwt-1"))
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    // An administrator ends a session by its value, cookie or token alike.
    guard.end("s1").await.unwrap();
    assert_eq!(
        send(&guard, request("GET", "/account", Some("s1"), None))
            .await
            .code(),
        Some("session_ended")
    );
}

#[tokio::test]
async fn requests_without_credentials_pass_and_never_ask_the_store() {
    // Nothing listens on port 1: asking the store would fail, and fail closed.
    let guard = Arc::new(
        SessionGuard::new(raw(&json!({
            "store": "redis", "redis_url": "redis://127.0.0.1:1", "redis_timeout_ms": 500,
        })))
        .unwrap(),
    );
    let plain = send(&guard, request("GET", "/account", None, None)).await;
    assert_eq!(
        (plain.status, plain.body.as_str()),
        (StatusCode::OK, "account")
    );
    let logout = send(&guard, request("POST", "/logout", None, None)).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert!(logout.set_cookies.is_empty(), "{:?}", logout.set_cookies);
    // Other cookies and other authorization schemes are not session credentials.
    let mut other = request("GET", "/account", None, None);
    other
        .headers_mut()
        .insert(header::COOKIE, "sessionid=x; theme=dark".parse().unwrap());
    other
        .headers_mut()
        .insert(header::AUTHORIZATION, "Basic YTpi".parse().unwrap());
    assert_eq!(send(&guard, other).await.status, StatusCode::OK);
    assert_eq!(guard.store_errors().0, 0);
    // The same store is asked for a request with a session.
    let with = send(&guard, request("GET", "/account", Some("s1"), None)).await;
    assert_eq!(with.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(guard.store_errors().0, 1);
}

#[tokio::test]
async fn an_ended_session_passes_again_after_remember_seconds() {
    let clock = Arc::new(ManualClock::new());
    let guard = guard(&json!({"remember_seconds": 60}), &clock);
    send(
        &guard,
        request("POST", "/logout", Some("s1"), Some("jwt-1")),
    )
    .await;
    clock.advance(Duration::from_secs(59));
    for (cookie, bearer) in [(Some("s1"), None), (None, Some("jwt-1"))] {
        let answer = send(&guard, request("GET", "/account", cookie, bearer)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    clock.advance(Duration::from_secs(1));
    for (cookie, bearer) in [(Some("s1"), None), (None, Some("jwt-1"))] {
        let answer = send(&guard, request("GET", "/account", cookie, bearer)).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn a_logout_answer_clears_the_cookie_once() {
    let clock = Arc::new(ManualClock::new());
    let guard = guard(&json!({}), &clock);
    // The application clears the cookie itself: its own Set-Cookie stays, alone.
    let signout = send(&guard, request("GET", "/signout", Some("s1"), None)).await;
    assert_eq!(signout.status, StatusCode::OK);
    assert_eq!(signout.set_cookies, ["session=; Path=/; Max-Age=0"]);
    assert_eq!(
        send(&guard, request("GET", "/account", Some("s1"), None))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // A second logout of an ended session ends it again and goes on.
    let again = send(&guard, request("POST", "/logout", Some("s1"), None)).await;
    assert_eq!(
        (again.status, again.set_cookies),
        (StatusCode::NO_CONTENT, vec![CLEARED.to_owned()])
    );
}

#[tokio::test]
async fn a_full_table_refuses_logouts_when_closed_and_lets_them_go_on_when_open() {
    let clock = Arc::new(ManualClock::new());
    let closed = guard(&json!({"max_keys": 2, "remember_seconds": 60}), &clock);
    for session in ["a", "b"] {
        let logout = send(&closed, request("POST", "/logout", Some(session), None)).await;
        assert_eq!(logout.status, StatusCode::NO_CONTENT);
    }
    clock.advance(Duration::from_secs(30));
    // No room for `c`: the logout is refused rather than going on with `c` alive.
    let full = send(&closed, request("POST", "/logout", Some("c"), None)).await;
    assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(full.code(), Some("session_unavailable"));
    assert_eq!(full.retry_after.as_deref(), Some("1"));
    let (errors, last) = closed.store_errors();
    assert_eq!(errors, 1);
    assert!(last.unwrap().0.contains("full"));
    assert!(closed.end("c").await.is_err());
    // Ending an already ended session needs no room.
    let again = send(&closed, request("POST", "/logout", Some("a"), None)).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    // Once `b` expires its room is taken back (`a` was ended again later).
    clock.advance(Duration::from_secs(31));
    let room = send(&closed, request("POST", "/logout", Some("c"), None)).await;
    assert_eq!(room.status, StatusCode::NO_CONTENT);
    assert_eq!(closed.tracked(), 2);
    for (session, status) in [
        ("a", StatusCode::UNAUTHORIZED),
        ("b", StatusCode::OK),
        ("c", StatusCode::UNAUTHORIZED),
    ] {
        let answer = send(&closed, request("GET", "/account", Some(session), None)).await;
        assert_eq!(answer.status, status, "{session}");
    }

    let open = guard(
        &json!({"max_keys": 1, "remember_seconds": 60, "on_store_error": "open"}),
        &clock,
    );
    send(&open, request("POST", "/logout", Some("a"), None)).await;
    let full = send(&open, request("POST", "/logout", Some("b"), None)).await;
    assert_eq!(full.status, StatusCode::NO_CONTENT, "goes on, logged");
    assert_eq!(open.store_errors().0, 1);
    assert_eq!(
        send(&open, request("GET", "/account", Some("b"), None))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_stage_records_its_time_and_its_trail() {
    let clock = Arc::new(ManualClock::new());
    let guard = guard(&json!({}), &clock);
    let times = StageTimes::default();
    let mut timed = request("GET", "/account", Some("s1"), None);
    timed.extensions_mut().insert(times.clone());
    let answer = send(&guard, timed).await;
    assert_eq!(
        answer.body, "account",
        "the request carries the stage in its trail"
    );
    assert!(times.of(Stage::Session) > Duration::ZERO);
    assert_eq!(times.spent().count(), 1);
}

proptest! {
    /// After some sessions log out, exactly the requests carrying one of them are refused.
    #[test]
    fn exactly_the_ended_sessions_are_refused(
        sessions in proptest::collection::hash_set("[A-Za-z0-9._~+/=-]{1,24}", 1..8),
        ended in proptest::collection::vec(any::<bool>(), 8),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let clock = Arc::new(ManualClock::new());
            let guard = guard(&json!({}), &clock);
            let sessions: Vec<_> = sessions.into_iter().zip(ended).collect();
            for (session, ended) in &sessions {
                if *ended {
                    send(&guard, request("POST", "/logout", Some(session), None)).await;
                }
            }
            for (session, ended) in &sessions {
                let expected = if *ended { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
                let answer = send(&guard, request("GET", "/account", Some(session), None)).await;
                assert_eq!(answer.status, expected, "{session}");
                let answer = send(&guard, request("GET", "/account", None, Some(session))).await;
                assert_eq!(answer.status, expected, "{session} as a bearer token");
            }
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The shared store: the real Redis server at 127.0.0.1:6379
// ---------------------------------------------------------------------------------------------

mod support;

use support::{REDIS_URL, keys_under, redis_connection, redis_prefix};

/// A gateway node's session stage sharing `prefix` on the machine's Redis.
fn redis_guard(prefix: &str, extra: &Value) -> Arc<SessionGuard> {
    let mut shared = json!({
        "store": "redis", "redis_url": REDIS_URL, "redis_prefix": prefix,
        "redis_timeout_ms": 5000, "remember_seconds": 600,
    });
    shared
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    Arc::new(SessionGuard::new(raw(&shared)).unwrap())
}

#[tokio::test]
async fn two_nodes_sharing_redis_refuse_a_session_ended_on_either() {
    let Some(prefix) =
        redis_prefix("two_nodes_sharing_redis_refuse_a_session_ended_on_either").await
    else {
        return;
    };
    let nodes = [
        redis_guard(&prefix, &json!({})),
        redis_guard(&prefix, &json!({})),
    ];
    assert!(nodes.iter().all(|node| node.is_shared()));
    let logout = send(
        &nodes[0],
        request(
            "POST",
            "/logout",
            Some("cookie-secret"),
            Some("token-secret"),
        ),
    )
    .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert_eq!(logout.set_cookies, [CLEARED]);
    for (cookie, bearer) in [(Some("cookie-secret"), None), (None, Some("token-secret"))] {
        let answer = send(&nodes[1], request("GET", "/account", cookie, bearer)).await;
        assert_eq!(
            answer.code(),
            Some("session_ended"),
            "{cookie:?} {bearer:?}"
        );
    }
    assert_eq!(
        send(&nodes[1], request("GET", "/account", Some("live"), None))
            .await
            .status,
        StatusCode::OK
    );
    // An end on the second node holds on the first.
    nodes[1].end("ended-by-admin").await.unwrap();
    let page = send(&nodes[0], page_load("/account", "ended-by-admin")).await;
    assert_eq!(
        (page.status, page.location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/login"))
    );
    // Nothing in the nodes' memory; on the server, digests only, each expiring.
    assert!(nodes.iter().all(|node| node.tracked() == 0));
    let keys = keys_under(&prefix).await;
    let mut connection = redis_connection().await;
    assert_eq!(keys.len(), 3, "{keys:?}");
    for key in &keys {
        let digest = key.strip_prefix(&prefix).unwrap();
        assert!(
            digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "{key}"
        );
        let left: i64 = redis::cmd("TTL")
            .arg(key)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!((1..=600).contains(&left), "{key} expires in {left} s");
    }
    assert_eq!(nodes[0].store_errors().0, 0);
}

#[tokio::test]
async fn an_unreachable_redis_refuses_when_closed_and_lets_through_when_open() {
    // Nothing listens on port 1; the connection is refused at once.
    let unreachable = json!({"redis_url": "redis://127.0.0.1:1", "redis_timeout_ms": 500});
    let closed = redis_guard("portcullis:test:unreachable:", &unreachable);
    for (method, path) in [("GET", "/account"), ("POST", "/logout")] {
        let answer = send(&closed, request(method, path, Some("s1"), None)).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(answer.code(), Some("session_unavailable"));
        assert_eq!(answer.retry_after.as_deref(), Some("1"));
        assert!(
            answer.set_cookies.is_empty(),
            "the logout did not reach the application"
        );
    }
    let (errors, last) = closed.store_errors();
    assert_eq!(errors, 2);
    assert!(last.unwrap().0.contains("Redis"));

    let mut open = unreachable;
    open["on_store_error"] = json!("open");
    let open = redis_guard("portcullis:test:unreachable:", &open);
    let answer = send(&open, request("GET", "/account", Some("s1"), None)).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "account")
    );
    let logout = send(&open, request("POST", "/logout", Some("s1"), None)).await;
    assert_eq!(
        (logout.status, logout.set_cookies),
        (StatusCode::NO_CONTENT, vec![CLEARED.to_owned()])
    );
    assert_eq!(open.store_errors().0, 2);
    // An administrator's end cannot reach the store either, and says so.
    assert!(open.end("s1").await.is_err());
}

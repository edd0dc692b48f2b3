//! One request stage as a tower layer in front of an axum router.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test"
)]

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::routing::post;
use http_body_util::BodyExt as _;
use portcullis_guard::{Check, Refusal, Stage, StageLayer, Trail, buffer_body};
use tower::ServiceExt as _;

/// Refuses a body holding `bad`; reads the body through [`buffer_body`].
#[derive(Clone)]
struct NoBad;

impl Check for NoBad {
    const STAGE: Stage = Stage::Validation;

    async fn check(&self, request: Request) -> Result<Request, Refusal> {
        let (request, body) = buffer_body(request, 16, Self::STAGE).await?;
        if body.windows(3).any(|window| window == b"bad") {
            return Err(Refusal::new(
                Self::STAGE,
                StatusCode::BAD_REQUEST,
                "bad_body",
                "the body says bad",
            )
            .with_field("body"));
        }
        Ok(request)
    }
}

/// Lets everything through, reading the body again (from the extensions).
#[derive(Clone)]
struct Reader;

impl Check for Reader {
    const STAGE: Stage = Stage::Injection;

    async fn check(&self, request: Request) -> Result<Request, Refusal> {
        Ok(buffer_body(request, 4, Self::STAGE).await?.0)
    }
}

fn app() -> Router {
    Router::new()
        .route(
            "/echo",
            post(|request: Request| async move {
                let trail = request
                    .extensions()
                    .get::<Trail>()
                    .cloned()
                    .unwrap_or_default();
                let names: Vec<&str> = trail.passed().iter().map(|stage| stage.name()).collect();
                let body = request.into_body().collect().await.unwrap().to_bytes();
                format!("{} {}", names.join(","), String::from_utf8_lossy(&body))
            }),
        )
        // Layers wrap outside in: the last added runs first.
        .layer(StageLayer::new(Reader))
        .layer(StageLayer::new(NoBad))
}

async fn send(body: &'static str) -> (StatusCode, String, Option<Refusal>) {
    let request = Request::post("/echo").body(Body::from(body)).unwrap();
    let response = app().oneshot(request).await.unwrap();
    let status = response.status();
    let refusal = response.extensions().get::<Refusal>().cloned();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        String::from_utf8_lossy(&bytes).into_owned(),
        refusal,
    )
}

#[tokio::test]
async fn passing_stages_travel_with_the_request_and_the_body_is_read_once() {
    // The second stage's limit (4 bytes) would refuse this body had it read it again.
    let (status, body, refusal) = send("hello world").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "validation,injection hello world");
    assert!(refusal.is_none());
}

#[tokio::test]
async fn a_refusal_names_the_stage_and_stops_the_request() {
    let (status, body, refusal) = send("so bad").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["stage"], "validation");
    assert_eq!(json["error"]["field"], "body");
    assert_eq!(refusal.unwrap().code, "bad_body");

    let (status, body, _) = send("far more than sixteen bytes").await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body.contains("body_too_large"), "{body}");
    let request = Request::post("/echo")
        .header(header::CONTENT_LENGTH, "100000")
        .body(Body::from("x"))
        .unwrap();
    let response = app().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// Waits `WAIT` before letting the request through: a stage whose own time is known to be at
/// least that.
#[derive(Clone)]
struct Slow;

const WAIT: std::time::Duration = std::time::Duration::from_millis(150);

impl Check for Slow {
    const STAGE: Stage = Stage::Permission;

    async fn check(&self, request: Request) -> Result<Request, Refusal> {
        tokio::time::sleep(WAIT).await;
        Ok(request)
    }
}

/// Works around the rest of the pipeline doing nothing of its own.
struct Around0;

impl portcullis_guard::stage::Around for Around0 {
    const STAGE: Stage = Stage::Csrf;

    async fn around<S>(
        self: std::sync::Arc<Self>,
        request: Request,
        mut next: S,
    ) -> Result<axum::response::Response, S::Error>
    where
        S: tower::Service<Request, Response = axum::response::Response> + Send + 'static,
        S::Future: Send,
        S::Error: Send,
    {
        next.call(request).await
    }
}

#[tokio::test]
async fn each_stage_counts_its_own_time_not_the_time_of_the_stages_inside_it() {
    use portcullis_guard::StageTimes;
    use portcullis_guard::stage::AroundLayer;

    let app = Router::new()
        .route("/echo", post(|| async { "ok" }))
        // Outside in: validation (refuses "bad"), the do-nothing around stage, the slow one.
        .layer(StageLayer::new(Slow))
        .layer(AroundLayer::new(std::sync::Arc::new(Around0)))
        .layer(StageLayer::new(NoBad));

    let times = StageTimes::default();
    let mut request = Request::post("/echo").body(Body::from("fine")).unwrap();
    request.extensions_mut().insert(times.clone());
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The slow stage has its wait; the stages around it do not have it in theirs.
    assert!(times.of(Stage::Permission) >= WAIT, "{times:?}");
    assert!(times.of(Stage::Csrf) < WAIT, "{times:?}");
    assert!(times.of(Stage::Validation) < WAIT, "{times:?}");
    let spent: Vec<Stage> = times.spent().map(|(stage, _)| stage).collect();
    assert!(spent.contains(&Stage::Permission), "{spent:?}");
    assert!(!spent.contains(&Stage::Injection), "{spent:?}");

    // A refused request: the refusing stage counts its time; the stages it never reached
    // count nothing.
    let times = StageTimes::default();
    let mut request = Request::post("/echo").body(Body::from("bad")).unwrap();
    request.extensions_mut().insert(times.clone());
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(!times.of(Stage::Validation).is_zero(), "{times:?}");
    assert!(times.of(Stage::Csrf).is_zero(), "{times:?}");
    assert!(times.of(Stage::Permission).is_zero(), "{times:?}");

    // Without a timer in the request nothing is timed, and the answer is the same.
    let request = Request::post("/echo").body(Body::from("fine")).unwrap();
    assert_eq!(app.oneshot(request).await.unwrap().status(), StatusCode::OK);
}

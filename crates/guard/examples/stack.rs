//! An axum application protected by the guard's stages, stacked in the pipeline's order.
//!
//! ```text
//! cargo run -p portcullis-guard --example stack
//! curl -i 'http://127.0.0.1:3000/orders?quantity=0'              # 400, stage validation
//! curl -i -X POST -H 'Origin: https://evil.example' 127.0.0.1:3000/orders   # 403, stage origin
//! curl -i 'http://127.0.0.1:3000/orders?quantity=2'              # 200, with security headers
//! ```
//!
//! Layers wrap from the outside in, so the last `.layer` call is the first stage a request
//! meets: the calls below are written from the last stage to the first.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use portcullis_guard::csrf::RawCsrf;
use portcullis_guard::origin::RawOrigins;
use portcullis_guard::response::{RawSecurityHeaders, SecurityHeaders, SecurityHeadersLayer};
use portcullis_guard::validate::RawValidation;
use portcullis_guard::{
    Csrf, CsrfLayer, OriginCheck, Origins, StageLayer, Validation, ValidationCheck,
};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Each stage's configuration is parsed once into a type that cannot hold an invalid one.
    let origins: RawOrigins = serde_json::from_value(json!({
        "trusted": ["http://127.0.0.1:3000", "http://localhost:3000"]
    }))?;
    let validation: RawValidation = serde_json::from_value(json!({
        "routes": [{
            "route": "* /orders",
            "params": {"quantity": {"type": "integer", "required": true, "min": 1, "max": 100}}
        }]
    }))?;
    let csrf: RawCsrf = serde_json::from_value(json!({"mode": "double_submit"}))?;
    let headers: RawSecurityHeaders = serde_json::from_value(json!({}))?;
    // The CSRF key comes from the operator's secret store; a fixed one will do for a demo.
    let key = [42u8; 32];

    let app = Router::new()
        .route(
            "/orders",
            get(|| async { "order list" }).post(|| async { "order placed" }),
        )
        .layer(CsrfLayer::new(Arc::new(Csrf::new(csrf, key)?)))
        .layer(StageLayer::new(ValidationCheck::new(Arc::new(
            Validation::try_from(validation)?,
        ))))
        .layer(StageLayer::new(OriginCheck::new(Arc::new(
            Origins::try_from(origins)?,
        ))))
        .layer(SecurityHeadersLayer::new(Arc::new(
            SecurityHeaders::try_from(headers)?,
        )));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
        println!("protected application on http://127.0.0.1:3000");
        axum::serve(listener, app).await
    })?;
    Ok(())
}

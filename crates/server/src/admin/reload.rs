//! Reload: the whole node's tenants read again (bundle folders, bundles in the store, run-time
//! data), as on SIGHUP.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::Value;

use super::access::{NodeAccess, Reload};
use crate::error::ApiError;
use crate::snapshots::reload::reload_all;
use crate::state::AppState;

pub(super) async fn reload(
    State(state): State<Arc<AppState>>,
    _: NodeAccess<Reload>,
) -> Result<Json<Value>, ApiError> {
    let report = reload_all(&state, "admin").await;
    Ok(Json(serde_json::to_value(report).unwrap_or(Value::Null)))
}

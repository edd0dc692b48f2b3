//! The gateway's login protection from the admin API: lifting a lockout before its time
//! (`POST /admin/v1/gateway/unlock`), recorded in the audit trail like every admin change.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::access::{GatewayUnlock, NodeAccess};
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::AppState;

/// The body of an unlock: the application (its configured host) and the account and/or the
/// client address to unlock.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Unlock {
    app: String,
    account: Option<String>,
    address: Option<IpAddr>,
}

pub(super) async fn unlock(
    State(state): State<Arc<AppState>>,
    _: NodeAccess<GatewayUnlock>,
    JsonBody(body): JsonBody<Unlock>,
) -> Result<Json<Value>, ApiError> {
    if body.account.is_none() && body.address.is_none() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "name an `account`, an `address` or both",
        ));
    }
    let wanted = body.app.trim().to_ascii_lowercase();
    let apps = state.gateway_apps.load();
    let guard = apps
        .iter()
        .find(|app| app.host == wanted)
        .and_then(|app| app.login.as_ref())
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_application",
                format!("no gateway application `{wanted}` with login protection"),
            )
        })?;
    let unlocked = guard
        .unlock(body.account.as_deref(), body.address)
        .await
        .map_err(|error| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("the login protection's shared store did not answer: {error}"),
            )
        })?;
    Ok(Json(json!({ "app": wanted, "unlocked": unlocked })))
}

//! Key rotation: a tenant's sensitive attributes re-encrypted under the node's current key.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::access::{KeysRotate, TenantAccess};
use super::principals::sensitive_attributes;
use crate::error::{ApiError, store_error};
use crate::snapshots::reload::refresh_tenant;
use crate::state::AppState;

pub(super) async fn rotate_key(
    State(state): State<Arc<AppState>>,
    access: TenantAccess<KeysRotate>,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant;
    // Without the bundle, which attributes are encrypted is unknown: refuse rather than
    // report nothing rotated.
    let sensitive = sensitive_attributes(&state, &tenant)?;
    let scope = state.store.tenant(&tenant);
    let mut after: Option<String> = None;
    let (mut principals, mut values) = (0u64, 0u64);
    loop {
        let page = scope
            .principals(after.as_deref(), 500)
            .await
            .map_err(store_error)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for principal in &page {
            let mut changed = false;
            let mut attributes = principal.attributes.clone();
            for (key, value) in attributes.iter_mut() {
                let Some(ciphertext) = value.as_str().filter(|_| sensitive.contains(key)) else {
                    continue;
                };
                let stale = state.keyring.needs_rotation(ciphertext).map_err(|e| {
                    ApiError::new(
                        StatusCode::CONFLICT,
                        "undecryptable",
                        format!("principal `{}` attribute `{key}`: {e}", principal.id),
                    )
                })?;
                if stale {
                    let fresh = state
                        .keyring
                        .reencrypt(&tenant, key, ciphertext)
                        .map_err(|e| {
                            ApiError::new(
                                StatusCode::CONFLICT,
                                "undecryptable",
                                format!("principal `{}` attribute `{key}`: {e}", principal.id),
                            )
                        })?;
                    *value = Value::String(fresh);
                    changed = true;
                    values += 1;
                }
            }
            if changed {
                scope
                    .upsert_principal(&principal.id, &principal.kind, &attributes)
                    .await
                    .map_err(store_error)?;
                principals += 1;
            }
        }
    }
    refresh_tenant(&state, &tenant).await;
    Ok(Json(json!({
        "tenant": tenant,
        "key": state.keyring.current_key_id().as_str(),
        "principals": principals,
        "values": values,
    })))
}

//! The condition variables that both the compiler and the engine build: `action` and `tenant`.
//!
//! The compiler settles, per action, the conditions that read only these two (see
//! `compile::settle_static_conditions`); the engine gives the same variables to every decision.
//! Building them in one place is what makes a condition settled at compile time mean what it
//! would have meant per request. This module owns the shape of these two values and nothing
//! else: it reads no request and no snapshot, and imports nothing above the bundle model.

use portcullis_core::TenantId;
use serde_json::{Map, Value, json};

use crate::model::TenantSettings;

/// The `action` variable of conditions: its qualified name, whether it writes, and the
/// properties the request gives it. The compiler builds it with no properties and settles
/// only conditions that do not read them (see [`SETTLED_ACTION_FIELDS`]).
pub(crate) fn action_variable(name: &str, write: bool, properties: &Map<String, Value>) -> Value {
    json!({ "name": name, "write": write, "properties": properties })
}

/// The fields of `action` fixed per action, which the compiler may settle conditions on.
pub(crate) const SETTLED_ACTION_FIELDS: &[&str] = &["name", "write"];

/// The `tenant` variable of conditions.
pub(crate) fn tenant_variable(tenant: &TenantId, settings: &TenantSettings) -> Value {
    json!({
        "id": tenant.as_str(),
        "timezone": settings.timezone,
        "domain": settings.domain,
    })
}

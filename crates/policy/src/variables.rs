//! The condition variables that both the compiler and the engine build: `action` and `tenant`.
//!
//! The compiler settles, per action, the conditions that read only these two (see
//! `compile::settle_static_conditions`); the engine gives the same variables to every decision.
//! Building them in one place is what makes a condition settled at compile time mean what it
//! would have meant per request. This module owns the shape of these two values and nothing
//! else: it reads no request and no snapshot, and imports nothing above the bundle model.

use portcullis_cel::{Field, Input, InputError};
use portcullis_core::TenantId;
use serde_json::{Map, Value};

use crate::model::TenantSettings;

/// The `action` variable of conditions: its qualified name, whether it writes, and the
/// properties the request gives it. The compiler builds it with no properties and settles
/// only conditions that do not read them (see [`SETTLED_ACTION_FIELDS`]).
pub(crate) fn action_variable<'v>(
    name: &'v str,
    write: bool,
    properties: &'v Map<String, Value>,
) -> Result<Input<'v>, InputError> {
    Input::object(
        "action",
        [
            ("name", Field::Str(name)),
            ("write", Field::Bool(write)),
            ("properties", Field::Map(properties)),
        ],
    )
}

/// The fields of `action` fixed per action, which the compiler may settle conditions on.
pub(crate) const SETTLED_ACTION_FIELDS: &[&str] = &["name", "write"];

/// The `tenant` variable of conditions.
pub(crate) fn tenant_variable<'v>(
    tenant: &'v TenantId,
    settings: &'v TenantSettings,
) -> Result<Input<'v>, InputError> {
    Input::object(
        "tenant",
        [
            ("id", Field::Str(tenant.as_str())),
            ("timezone", Field::Str(&settings.timezone)),
            (
                "domain",
                settings.domain.as_deref().map_or(Field::Null, Field::Str),
            ),
        ],
    )
}

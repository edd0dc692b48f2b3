//! Translation between the `portcullis.v1` messages and the engine's request and decision, and
//! between `google.protobuf.Struct` and JSON objects.
//!
//! The rules are those of the JSON API: the same fields, the same defaults (`user` for a
//! principal without a type), the same validation (tenant id format, addresses, RFC 3339 times),
//! so a request means the same thing whichever edge it arrives at. Protobuf cannot tell an
//! absent string from an empty one, so the fields JSON requires must be non-empty here. Every
//! error names the field it is about.

use std::net::IpAddr;

use portcullis_core::{
    ClientCert, Context, Decision, Effect, Principal, Request, Resource, TenantId,
};
use prost_types::value::Kind;
use serde_json::{Map, Number, Value};

use super::pb;

/// What is wrong with a field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field, as a path (`requests[1].context.ip`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

impl From<FieldError> for tonic::Status {
    fn from(error: FieldError) -> Self {
        tonic::Status::invalid_argument(error.to_string())
    }
}

/// The largest integer a double holds exactly; integral numbers up to it become JSON integers,
/// so conditions comparing them with integers behave as with the JSON API.
const EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// A `google.protobuf.Struct` as a JSON object. `field` names the struct in errors.
pub fn struct_to_json(
    value: &prost_types::Struct,
    field: &str,
) -> Result<Map<String, Value>, FieldError> {
    value
        .fields
        .iter()
        .map(|(key, item)| Ok((key.clone(), value_to_json(item, &format!("{field}.{key}"))?)))
        .collect()
}

fn value_to_json(value: &prost_types::Value, field: &str) -> Result<Value, FieldError> {
    Ok(match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(flag)) => Value::Bool(*flag),
        Some(Kind::StringValue(text)) => Value::String(text.clone()),
        Some(Kind::NumberValue(number)) => {
            if !number.is_finite() {
                return Err(FieldError::new(
                    field,
                    "NaN and infinite numbers are not allowed (they have no JSON form)",
                ));
            }
            if number.fract() == 0.0 && number.abs() <= EXACT_INTEGER {
                // Exact: the magnitude is below 2^53.
                #[allow(
                    clippy::cast_possible_truncation,
                    reason = "checked to be an exact integer"
                )]
                Value::from(*number as i64)
            } else {
                Number::from_f64(*number).map_or(Value::Null, Value::Number)
            }
        }
        Some(Kind::StructValue(inner)) => Value::Object(struct_to_json(inner, field)?),
        Some(Kind::ListValue(list)) => Value::Array(
            list.values
                .iter()
                .enumerate()
                .map(|(index, item)| value_to_json(item, &format!("{field}[{index}]")))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// A JSON object as a `google.protobuf.Struct` (numbers become doubles, as protobuf has it).
pub fn json_to_struct(object: &Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: object
            .iter()
            .map(|(key, value)| (key.clone(), json_to_value(value)))
            .collect(),
    }
}

fn json_to_value(value: &Value) -> prost_types::Value {
    let kind = match value {
        Value::Null => Kind::NullValue(prost_types::NullValue::NullValue as i32),
        Value::Bool(flag) => Kind::BoolValue(*flag),
        Value::Number(number) => Kind::NumberValue(number.as_f64().unwrap_or(f64::NAN)),
        Value::String(text) => Kind::StringValue(text.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        Value::Object(object) => Kind::StructValue(json_to_struct(object)),
    };
    prost_types::Value { kind: Some(kind) }
}

fn attributes(
    value: Option<&prost_types::Struct>,
    field: &str,
) -> Result<Map<String, Value>, FieldError> {
    value.map_or_else(|| Ok(Map::new()), |value| struct_to_json(value, field))
}

fn required<'a>(value: &'a str, field: &str) -> Result<&'a str, FieldError> {
    if value.is_empty() {
        Err(FieldError::new(field, "is required"))
    } else {
        Ok(value)
    }
}

fn optional(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

/// Context keys that have their own fields; in `attributes` they would be shadowed in JSON.
const CONTEXT_FIELDS: [&str; 4] = ["ip", "time", "cert", "source"];

/// A `portcullis.v1.CheckRequest` as an engine request. `prefix` is prepended to field names in
/// errors (`requests[3].` for batch items).
pub fn to_request(message: pb::CheckRequest, prefix: &str) -> Result<Request, FieldError> {
    let field = |name: &str| format!("{prefix}{name}");
    let tenant = TenantId::new(&message.tenant)
        .map_err(|error| FieldError::new(field("tenant"), error.to_string()))?;
    let principal = message
        .principal
        .ok_or_else(|| FieldError::new(field("principal"), "is required"))?;
    let principal = Principal {
        id: required(&principal.id, &field("principal.id"))?.to_owned(),
        kind: optional(&principal.r#type).unwrap_or_else(|| "user".to_owned()),
        roles: principal.roles,
        attributes: attributes(
            principal.attributes.as_ref(),
            &field("principal.attributes"),
        )?,
    };
    let action = required(&message.action, &field("action"))?.to_owned();
    let resource = message
        .resource
        .ok_or_else(|| FieldError::new(field("resource"), "is required"))?;
    let resource = Resource {
        kind: required(&resource.r#type, &field("resource.type"))?.to_owned(),
        id: required(&resource.id, &field("resource.id"))?.to_owned(),
        attributes: attributes(resource.attributes.as_ref(), &field("resource.attributes"))?,
    };
    let context = match message.context {
        Some(context) => to_context(context, &field("context"))?,
        None => Context::default(),
    };
    Ok(Request {
        tenant,
        principal,
        action,
        resource,
        context,
        env: Default::default(),
        explain: message.explain,
        action_properties: Default::default(),
        trace_id: optional(&message.trace_id),
    })
}

fn to_context(message: pb::Context, field: &str) -> Result<Context, FieldError> {
    let ip = match message.ip.trim() {
        "" => None,
        text => Some(text.parse::<IpAddr>().map_err(|_| {
            FieldError::new(
                format!("{field}.ip"),
                format!("`{text}` is not an IPv4 or IPv6 address"),
            )
        })?),
    };
    let time = match message.time.trim() {
        "" => None,
        text => Some(text.parse::<jiff::Timestamp>().map_err(|error| {
            FieldError::new(
                format!("{field}.time"),
                format!(
                    "`{text}` is not an RFC 3339 time with an offset (for example 2026-03-02T16:00:00+08:00): {error}"
                ),
            )
        })?),
    };
    let cert = message.cert.and_then(|cert| {
        let cert = ClientCert {
            id: optional(&cert.id),
            fingerprint: optional(&cert.fingerprint),
            serial: optional(&cert.serial),
            subject_cn: optional(&cert.subject_cn),
            subject: optional(&cert.subject),
            issuer: optional(&cert.issuer),
        };
        (cert != ClientCert::default()).then_some(cert)
    });
    let attributes = attributes(message.attributes.as_ref(), &format!("{field}.attributes"))?;
    if let Some(name) = CONTEXT_FIELDS
        .iter()
        .find(|name| attributes.contains_key(**name))
    {
        return Err(FieldError::new(
            format!("{field}.attributes.{name}"),
            format!("`{name}` has its own field; set {field}.{name} instead"),
        ));
    }
    Ok(Context {
        ip,
        time,
        cert,
        source: optional(&message.source),
        attributes,
    })
}

fn strings<T: AsRef<str>>(items: &[T]) -> Vec<String> {
    items.iter().map(|item| item.as_ref().to_owned()).collect()
}

/// The JSON name of a serializable value that is a plain string (cause, reason kind, ...).
fn name_of<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        _ => String::new(),
    }
}

/// An engine decision as a `portcullis.v1.Decision`.
pub fn to_message(decision: &Decision) -> pb::Decision {
    pb::Decision {
        decision: match decision.decision {
            Effect::Allow => pb::Effect::Allow,
            Effect::Deny => pb::Effect::Deny,
        } as i32,
        cause: name_of(&decision.cause),
        reasons: decision
            .reasons
            .iter()
            .map(|reason| pb::Reason {
                kind: name_of(&reason.kind),
                id: reason.id.to_string(),
                path: strings(&reason.path),
                approvers: strings(&reason.approvers),
                expires: reason.expires.as_deref().unwrap_or_default().to_owned(),
            })
            .collect(),
        strategy: decision.strategy.as_ref().map(|strategy| pb::Strategy {
            id: strategy.id.to_string(),
            held: strategy.held,
            branch: strategy.branch.as_deref().map(strings).unwrap_or_default(),
            failing: strings(&strategy.failing),
            unknown: strings(&strategy.unknown),
        }),
        forbids: strings(&decision.forbids),
        errors: decision
            .errors
            .iter()
            .map(|error| pb::DecisionError {
                kind: name_of(&error.kind),
                statement: error.statement.to_string(),
                message: error.message.clone(),
            })
            .collect(),
        revision: Some(pb::Revision {
            bundle: decision.revision.bundle.to_string(),
            tuples: decision.revision.tuples,
        }),
        trace_id: decision.trace_id.clone(),
        explanation: decision.explanation.as_ref().and_then(
            |explanation| match serde_json::to_value(explanation) {
                Ok(Value::Object(object)) => Some(json_to_struct(&object)),
                _ => None,
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn structs_round_trip_through_json() {
        let original = json!({
            "count": 3, "ratio": 0.5, "name": "x", "flag": true, "none": null,
            "list": [1, "two", {"three": [3.25]}], "big": -4_000_000_000_i64,
        });
        let Value::Object(object) = original.clone() else {
            unreachable!()
        };
        let back = struct_to_json(&json_to_struct(&object), "attributes").unwrap();
        assert_eq!(Value::Object(back), original);
    }

    #[test]
    fn non_finite_numbers_are_refused_by_path() {
        let mut fields = std::collections::BTreeMap::new();
        fields.insert(
            "list".to_owned(),
            prost_types::Value {
                kind: Some(Kind::ListValue(prost_types::ListValue {
                    values: vec![prost_types::Value {
                        kind: Some(Kind::NumberValue(f64::NAN)),
                    }],
                })),
            },
        );
        let error =
            struct_to_json(&prost_types::Struct { fields }, "context.attributes").unwrap_err();
        assert_eq!(error.field, "context.attributes.list[0]");
    }

    fn request() -> pb::CheckRequest {
        pb::CheckRequest {
            tenant: "acme".into(),
            principal: Some(pb::Principal {
                id: "alice".into(),
                ..Default::default()
            }),
            action: "app:release".into(),
            resource: Some(pb::Resource {
                r#type: "app".into(),
                id: "payments".into(),
                attributes: None,
            }),
            context: Some(pb::Context {
                ip: "172.16.3.4".into(),
                time: "2026-03-02T16:00:00+08:00".into(),
                cert: Some(pb::ClientCert {
                    id: "cert1".into(),
                    ..Default::default()
                }),
                source: "authenticated-user".into(),
                attributes: None,
            }),
            explain: true,
            trace_id: String::new(),
        }
    }

    #[test]
    fn a_check_request_means_what_its_json_twin_means() {
        let converted = to_request(request(), "").unwrap();
        let json: Request = serde_json::from_value(json!({
            "tenant": "acme",
            "principal": { "id": "alice" },
            "action": "app:release",
            "resource": { "type": "app", "id": "payments" },
            "context": { "ip": "172.16.3.4", "time": "2026-03-02T16:00:00+08:00",
                         "cert": { "id": "cert1" }, "source": "authenticated-user" },
            "explain": true
        }))
        .unwrap();
        assert_eq!(converted, json);
    }

    #[test]
    fn invalid_fields_are_named() {
        let mut bad = request();
        bad.tenant = "a b".into();
        assert_eq!(to_request(bad, "").unwrap_err().field, "tenant");
        let mut bad = request();
        bad.context.as_mut().unwrap().ip = "300.1.1.1".into();
        assert_eq!(
            to_request(bad, "requests[2].").unwrap_err().field,
            "requests[2].context.ip"
        );
        let mut bad = request();
        bad.context.as_mut().unwrap().time = "yesterday".into();
        assert_eq!(to_request(bad, "").unwrap_err().field, "context.time");
        let mut bad = request();
        bad.principal = None;
        assert_eq!(to_request(bad, "").unwrap_err().field, "principal");
        let mut bad = request();
        bad.resource.as_mut().unwrap().id.clear();
        assert_eq!(to_request(bad, "").unwrap_err().field, "resource.id");
        let mut bad = request();
        let Value::Object(shadow) = json!({ "ip": "10.0.0.1" }) else {
            unreachable!()
        };
        bad.context.as_mut().unwrap().attributes = Some(json_to_struct(&shadow));
        assert_eq!(
            to_request(bad, "").unwrap_err().field,
            "context.attributes.ip"
        );
    }
}

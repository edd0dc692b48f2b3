//! A request's parameters, read once for every stage that looks at them (validation,
//! injection detection): the query string, and the body when it is a URL-encoded form, JSON
//! or multipart form data.
//!
//! Each parameter is a [`Field`]: where it came from, its name and its value. JSON bodies are
//! flattened into their leaves, named by path (`customer.email`, `items[0].sku`); a query or
//! form name that repeats gives one field per value. Multipart parts are text fields, or files
//! (with their declared name and type, and their bytes) when the part has a file name.
//!
//! A body that declares one of these types but does not parse is refused (400
//! `malformed_body`) by the stage that asked; an XML body is read (for the injection stage's
//! own parser) but not flattened; a body of any other type is not read at all: it streams on
//! to the application, and only [`Params::body_kind`] says what it was. The parsed parameters are kept in the
//! request's extensions, so the second stage to ask reads no body and parses nothing.
//!
//! This module decides nothing about the values.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use serde_json::Value;

use crate::stage::{Refusal, Stage, buffer_body};

/// Where a parameter came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The query string.
    Query,
    /// A URL-encoded form body.
    Form,
    /// A JSON body.
    Json,
    /// A multipart form body.
    Multipart,
}

/// One parameter's value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// Text: every query, form and multipart text value.
    Text(String),
    /// A JSON leaf (string, number, boolean or null; never an object or array).
    Json(Value),
    /// A multipart file.
    File(Upload),
}

impl FieldValue {
    /// The value as text, when it is text or a JSON string.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            FieldValue::Text(text) => Some(text),
            FieldValue::Json(Value::String(text)) => Some(text),
            FieldValue::Json(_) | FieldValue::File(_) => None,
        }
    }
}

/// A file part of a multipart body.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    /// The file name the client gave.
    pub file_name: String,
    /// The content type the client declared, if any.
    pub content_type: Option<String>,
    /// The content.
    pub bytes: Bytes,
}

/// One parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Where it came from.
    pub source: Source,
    /// Its name (a path for JSON leaves).
    pub name: String,
    /// Its value.
    pub value: FieldValue,
}

/// What kind of body the request had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body, or an empty one.
    Empty,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `application/json` or `…+json`.
    Json,
    /// `multipart/form-data`.
    Multipart,
    /// `application/xml`, `text/xml` or `…+xml`: read, not parsed here.
    Xml,
    /// Anything else: not read (it stays streaming to the application).
    Other,
}

/// The parameters of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Every parameter, query first, in the order they appear.
    pub fields: Vec<Field>,
    /// What the body was.
    pub body_kind: BodyKind,
    /// The raw body (empty for [`BodyKind::Other`] and [`BodyKind::Empty`]: not read).
    pub body: Bytes,
}

impl Params {
    /// The fields named `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Field> + 'a {
        self.fields.iter().filter(move |field| field.name == name)
    }
}

/// Largest JSON nesting flattened; deeper documents are refused rather than walked.
const MAX_JSON_DEPTH: usize = 64;

/// The request's parameters, parsed now or by an earlier stage. The body is read at most
/// `limit` bytes (413 beyond); a body that declares a parsed type and does not parse is 400
/// `malformed_body`, both from `stage`.
pub async fn params_of(
    request: Request<Body>,
    limit: usize,
    stage: Stage,
) -> Result<(Request<Body>, Arc<Params>), Refusal> {
    if let Some(params) = request.extensions().get::<Arc<Params>>() {
        let params = Arc::clone(params);
        return Ok((request, params));
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let declared = declared_kind(&content_type, request.headers());
    // A body of a type no stage parses stays streaming, with no limit of ours on its size.
    let (mut request, body) = if matches!(declared, BodyKind::Other | BodyKind::Empty) {
        (request, Bytes::new())
    } else {
        buffer_body(request, limit, stage).await?
    };
    let body_kind = if body.is_empty() && declared != BodyKind::Other {
        BodyKind::Empty
    } else {
        declared
    };
    let malformed =
        |message: String| Refusal::new(stage, StatusCode::BAD_REQUEST, "malformed_body", message);
    let mut fields = Vec::new();
    if let Some(query) = request.uri().query() {
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            fields.push(Field {
                source: Source::Query,
                name: name.into_owned(),
                value: FieldValue::Text(value.into_owned()),
            });
        }
    }
    match body_kind {
        BodyKind::Form => {
            for (name, value) in form_urlencoded::parse(&body) {
                fields.push(Field {
                    source: Source::Form,
                    name: name.into_owned(),
                    value: FieldValue::Text(value.into_owned()),
                });
            }
        }
        BodyKind::Json => {
            let document: Value = serde_json::from_slice(&body)
                .map_err(|error| malformed(format!("the JSON body does not parse: {error}")))?;
            flatten(&document, String::new(), 0, &mut fields).map_err(|()| {
                malformed(format!(
                    "the JSON body nests deeper than {MAX_JSON_DEPTH} levels"
                ))
            })?;
        }
        BodyKind::Multipart => {
            let boundary = multer::parse_boundary(&content_type).map_err(|error| {
                malformed(format!(
                    "the multipart body has no usable boundary: {error}"
                ))
            })?;
            multipart(body.clone(), boundary, &mut fields)
                .await
                .map_err(|error| {
                    malformed(format!("the multipart body does not parse: {error}"))
                })?;
        }
        BodyKind::Empty | BodyKind::Xml | BodyKind::Other => {}
    }
    let params = Arc::new(Params {
        fields,
        body_kind,
        body,
    });
    request.extensions_mut().insert(Arc::clone(&params));
    Ok((request, params))
}

/// The body's kind from its declared media type (parameters and case ignored); a request
/// declaring no type and no length, or a zero length, has none.
fn declared_kind(content_type: &str, headers: &axum::http::HeaderMap) -> BodyKind {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    if length == Some(0) || (content_type.is_empty() && length.is_none() && !chunked) {
        return BodyKind::Empty;
    }
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-www-form-urlencoded" => BodyKind::Form,
        "application/json" => BodyKind::Json,
        "multipart/form-data" => BodyKind::Multipart,
        "application/xml" | "text/xml" => BodyKind::Xml,
        other if other.ends_with("+json") => BodyKind::Json,
        other if other.ends_with("+xml") => BodyKind::Xml,
        _ => BodyKind::Other,
    }
}

/// Appends the leaves of `value` under `path`.
fn flatten(value: &Value, path: String, depth: usize, fields: &mut Vec<Field>) -> Result<(), ()> {
    if depth > MAX_JSON_DEPTH {
        return Err(());
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let name = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                flatten(child, name, depth + 1, fields)?;
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                flatten(child, format!("{path}[{index}]"), depth + 1, fields)?;
            }
        }
        leaf => fields.push(Field {
            source: Source::Json,
            name: path,
            value: FieldValue::Json(leaf.clone()),
        }),
    }
    Ok(())
}

/// Appends the parts of a multipart body.
async fn multipart(body: Bytes, boundary: String, fields: &mut Vec<Field>) -> multer::Result<()> {
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut parts = multer::Multipart::new(stream, boundary);
    while let Some(part) = parts.next_field().await? {
        let name = part.name().unwrap_or_default().to_owned();
        let file_name = part.file_name().map(str::to_owned);
        let content_type = part.content_type().map(ToString::to_string);
        let value = match file_name {
            Some(file_name) => FieldValue::File(Upload {
                file_name,
                content_type,
                bytes: part.bytes().await?,
            }),
            None => FieldValue::Text(part.text().await?),
        };
        fields.push(Field {
            source: Source::Multipart,
            name,
            value,
        });
    }
    Ok(())
}

//! Strict reading of JSON requests: every endpoint that takes a JSON body reads it through
//! [`JsonBody`], and values rebuilt from JSON inside the server (an AuthZEN context) through
//! [`from_value`].
//!
//! serde's derived `Deserialize` reads a struct from a JSON array as well as from an object
//! (field by field, in declaration order), and an `Option` field takes `null`. The OpenAPI
//! document promises neither, and the first let `["acme", ["bob"], …]` pass for a check
//! request. [`Strict`] wraps a serde deserializer so that, at every depth:
//!
//! * a struct is read only from a JSON object (an array is refused, naming where it was);
//! * an `Option` refuses `null`, except for fields marked with [`nullable`], which the OpenAPI
//!   document declares nullable;
//! * an integer is also read from a JSON number written with a zero fraction or an exponent
//!   (`1850.0`, `1.85e3`): JSON Schema counts those as integers, and so does the document;
//!   a fraction (`1850.5`) or a value out of the type's range is still refused;
//! * everything else — free-form values (`serde_json::Value`, attribute and context maps),
//!   strings, numbers, lists — is read exactly as before.
//!
//! The body is parsed once, straight into its type, with no intermediate `serde_json::Value`:
//! the wrapper only adds a layer of calls the compiler inlines. Errors carry the path of the
//! offending value (`principal.roles[0]`, by serde_path_to_error) and become [`ApiError`]s with
//! the documented codes. This module must not grow endpoint-specific rules: shape rules live in
//! the request types, where the OpenAPI document describes them.

use std::fmt;
use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    Unexpected, VariantAccess, Visitor,
};
use serde_json::Value;

use crate::error::ApiError;

/// A JSON body read strictly (see the module documentation), whose rejections are
/// [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_body(request, state, || {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON with Content-Type: application/json",
            )
        })
        .await
        .map(JsonBody)
    }
}

/// A request's headers and its JSON body read strictly (as [`JsonBody`]). The headers are moved
/// out of the request, where axum's `HeaderMap` extractor would copy them.
#[derive(Debug, Clone, Default)]
pub struct JsonRequest<T> {
    /// The request's headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: T,
}

impl<S, T> FromRequest<S> for JsonRequest<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (headers, body) = read_request(request, state, || {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON with Content-Type: application/json",
            )
        })
        .await?;
        Ok(JsonRequest { headers, body })
    }
}

/// Reads a request's body strictly as JSON and hands back its headers with it; a body not sent
/// as JSON is refused with `not_json()` (each API answers that its own way).
pub async fn read_request<S, T>(
    request: Request,
    state: &S,
    not_json: impl FnOnce() -> ApiError,
) -> Result<(HeaderMap, T), ApiError>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    let (mut parts, body) = request.into_parts();
    if !is_json(&parts.headers) {
        return Err(not_json());
    }
    let headers = std::mem::take(&mut parts.headers);
    let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
        .await
        .map_err(unreadable)?;
    Ok((headers, from_slice(&bytes)?))
}

/// Reads a request's body strictly as JSON; a body not sent as JSON is refused with
/// `not_json()` (each API answers that its own way).
pub async fn read_body<S, T>(
    request: Request,
    state: &S,
    not_json: impl FnOnce() -> ApiError,
) -> Result<T, ApiError>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    read_request(request, state, not_json)
        .await
        .map(|(_, body)| body)
}

/// Whether the content type is `application/json` or `application/<anything>+json`.
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    kind.eq_ignore_ascii_case("application") && (subtype == "json" || subtype.ends_with("+json"))
}

pub(crate) fn unreadable(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            status,
            "body_too_large",
            "the body is larger than the configured limit",
        )
    } else {
        ApiError::new(status, "unreadable_body", "the body could not be read")
    }
}

/// Reads a request body strictly.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    // Read without keeping track of the path; a body that does not read is read again with
    // the path kept, for the error to name where it went wrong (reading is deterministic, so
    // the second reading fails the same way).
    let value = match T::deserialize(Strict(&mut deserializer)) {
        Ok(value) => value,
        Err(_) => {
            let mut again = serde_json::Deserializer::from_slice(bytes);
            return Err(
                match serde_path_to_error::deserialize::<_, T>(Strict(&mut again)) {
                    Err(error) => api_error(error),
                    Ok(_) => ApiError::bad_request(
                        "malformed_json",
                        "the body is not valid JSON".to_owned(),
                    ),
                },
            );
        }
    };
    deserializer.end().map_err(|error| {
        ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {error}"),
        )
    })?;
    Ok(value)
}

/// Reads a value rebuilt from JSON strictly; the error names the path inside `value`.
pub fn from_value<T: DeserializeOwned>(
    value: Value,
) -> Result<T, serde_path_to_error::Error<serde_json::Error>> {
    // As `from_slice`: read without keeping track of the path, and only a value that does not
    // read is read again with the path kept.
    match T::deserialize(Strict(&value)) {
        Ok(read) => Ok(read),
        Err(_) => serde_path_to_error::deserialize(Strict(value)),
    }
}

/// The documented error of a body that did not read: `malformed_json` for syntax, otherwise
/// the code that says what was wrong with the shape.
fn api_error(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    use serde_json::error::Category;
    match error.inner().classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {error}"),
        ),
        Category::Data => {
            let detail = error.to_string();
            let code = if detail.contains("unknown field") {
                "unknown_field"
            } else if detail.contains("invalid tenant id") {
                "invalid_tenant"
            } else if detail.contains("missing field") {
                "missing_field"
            } else {
                "invalid_request"
            };
            ApiError::bad_request(code, detail)
        }
    }
}

/// The newtype name by which [`nullable`] asks a [`Strict`] deserializer to let `null` through.
const NULLABLE: &str = "$portcullis::json::nullable";

/// `#[serde(default, deserialize_with = "crate::json::nullable")]` on an `Option` field the
/// OpenAPI document declares nullable: `null` reads as `None` even under [`Strict`].
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_newtype_struct(NULLABLE, NullableVisitor(PhantomData))
}

struct NullableVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for NullableVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a value or null")
    }

    // Deserializers other than `Strict` see an ordinary newtype.
    fn visit_newtype_struct<D: Deserializer<'de>>(self, inner: D) -> Result<Self::Value, D::Error> {
        Option::<T>::deserialize(inner)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<Self::Value, D::Error> {
        T::deserialize(inner).map(Some)
    }
}

/// A deserializer whose structs are JSON objects only and whose options refuse `null` (see the
/// module documentation); every value inside is read through `Strict` again.
#[derive(Debug)]
pub struct Strict<D>(pub D);

/// Every `deserialize_*` that has no rule of its own: the same call on the inner deserializer,
/// with a visitor that keeps what it reads strict.
macro_rules! forward {
    ($($method:ident($($argument:ident: $kind:ty),*)),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($argument: $kind,)* visitor: V)
                -> Result<V::Value, D::Error>
            {
                self.0.$method($($argument,)* Forward(visitor))
            }
        )*
    };
}

/// Every integer `deserialize_*`: the same call, with a visitor that also takes a whole
/// number written as a float.
macro_rules! integers {
    ($($method:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                self.0.$method(Integral(visitor))
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(Object(visitor))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(Object(visitor))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_option(NotNull(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        if name == NULLABLE {
            // `Forward` passes `None` on: this field takes null.
            self.0.deserialize_option(Forward(visitor))
        } else {
            self.0.deserialize_newtype_struct(name, Forward(visitor))
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, Forward(visitor))
    }

    integers! {
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
    }

    forward! {
        deserialize_any(),
        deserialize_bool(),
        deserialize_f32(),
        deserialize_f64(),
        deserialize_char(),
        deserialize_str(),
        deserialize_string(),
        deserialize_bytes(),
        deserialize_byte_buf(),
        deserialize_unit(),
        deserialize_unit_struct(name: &'static str),
        deserialize_seq(),
        deserialize_tuple(len: usize),
        deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_identifier(),
        deserialize_ignored_any(),
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// Reads what its visitor reads, with everything nested read through [`Strict`].
struct Forward<V>(V);

/// Scalars: the same call on the inner visitor.
macro_rules! scalars {
    ($($method:ident($kind:ty)),* $(,)?) => {
        $(
            fn $method<E: de::Error>(self, value: $kind) -> Result<Self::Value, E> {
                self.0.$method(value)
            }
        )*
    };
}

/// The visits of nothing and of nested values: the same call on the inner visitor, with what is
/// nested read through [`Strict`].
macro_rules! nested {
    () => {
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            self.0.visit_none()
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            self.0.visit_unit()
        }

        fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<Self::Value, D::Error> {
            self.0.visit_some(Strict(inner))
        }

        fn visit_newtype_struct<D: Deserializer<'de>>(
            self,
            inner: D,
        ) -> Result<Self::Value, D::Error> {
            self.0.visit_newtype_struct(Strict(inner))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, items: A) -> Result<Self::Value, A::Error> {
            self.0.visit_seq(StrictSeq(items))
        }

        fn visit_map<A: MapAccess<'de>>(self, entries: A) -> Result<Self::Value, A::Error> {
            self.0.visit_map(StrictMap(entries))
        }

        fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
            self.0.visit_enum(StrictEnum(data))
        }
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Forward<V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(formatter)
    }

    scalars! {
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    }

    nested!();
}

/// Where an integer is expected: a float with no fraction inside the range of `i64` or `u64`
/// is read as that integer (the inner visitor then checks its own range); anything else is
/// passed on unchanged, so a fraction is refused as before.
struct Integral<V>(V);

/// 2^63 and 2^64 as floats: the first floats outside `i64` and `u64`.
const I64_END: f64 = 9_223_372_036_854_775_808.0;
const U64_END: f64 = 18_446_744_073_709_551_616.0;

impl<'de, V: Visitor<'de>> Visitor<'de> for Integral<V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(formatter)
    }

    scalars! {
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    }

    fn visit_f32<E: de::Error>(self, value: f32) -> Result<Self::Value, E> {
        self.visit_f64(f64::from(value))
    }

    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "the value is whole and inside the target type's range, checked just before"
    )]
    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        if value.fract() == 0.0 {
            if (-I64_END..0.0).contains(&value) {
                return self.0.visit_i64(value as i64);
            }
            if (0.0..U64_END).contains(&value) {
                return self.0.visit_u64(value as u64);
            }
        }
        self.0.visit_f64(value)
    }

    nested!();
}

/// Where a struct (or a map) is expected: only a JSON object is read.
struct Object<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for Object<V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, entries: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(StrictMap(entries))
    }

    // The other `visit_*` refuse with "invalid type: …, expected an object"; serde would say
    // "sequence" for an array, which is not a word of JSON.
    fn visit_seq<A: SeqAccess<'de>>(self, _items: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::invalid_type(Unexpected::Other("array"), &self))
    }
}

/// Where an optional value is expected: `null` is refused, anything else is read strictly.
struct NotNull<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for NotNull<V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(formatter)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(E::custom(
            "null is not accepted here; leave the field out instead",
        ))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<Self::Value, D::Error> {
        self.0.visit_some(Strict(inner))
    }
}

/// Reads a seed's value through [`Strict`].
struct StrictSeed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for StrictSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, inner: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(Strict(inner))
    }
}

struct StrictSeq<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for StrictSeq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

struct StrictMap<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for StrictMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(StrictSeed(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

struct StrictEnum<A>(A);

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for StrictEnum<A> {
    type Error = A::Error;
    type Variant = StrictVariant<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        let (value, variant) = self.0.variant_seed(StrictSeed(seed))?;
        Ok((value, StrictVariant(variant)))
    }
}

struct StrictVariant<A>(A);

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for StrictVariant<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(StrictSeed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Forward(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, Object(visitor))
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "test code: a failed step must fail the test"
    )]

    use super::*;
    use portcullis_core::Request;
    use proptest::prelude::*;
    use serde::Serialize;
    use serde_json::{Map, json};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        id: u32,
        inner: Inner,
        #[serde(default)]
        list: Vec<Inner>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        maybe: Option<Inner>,
        #[serde(default, deserialize_with = "nullable")]
        cursor: Option<String>,
        #[serde(default)]
        free: Value,
        #[serde(default)]
        attributes: Map<String, Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shape: Option<Shape>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Shape {
        Dot,
        Circle { radius: u32 },
        Label(String),
    }

    fn read(text: &str) -> Result<Outer, ApiError> {
        from_slice(text.as_bytes())
    }

    fn refused(text: &str) -> ApiError {
        let error = read(text).expect_err(text);
        assert_eq!(error.status, StatusCode::BAD_REQUEST, "{text}: {error:?}");
        error
    }

    #[test]
    fn structs_are_read_only_from_objects() {
        let valid = r#"{"id":1,"inner":{"name":"a"},"list":[{"name":"b"}],"maybe":{"name":"c"}}"#;
        let outer = read(valid).unwrap();
        assert_eq!(outer.list[0].name, "b");
        assert_eq!(outer, serde_json::from_str::<Outer>(valid).unwrap());

        // Plain serde takes each of these, field by field.
        for (text, path) in [
            (r#"[1,["a"]]"#, None),
            (r#"{"id":1,"inner":["a"]}"#, Some("inner")),
            (
                r#"{"id":1,"inner":{"name":"a"},"list":[["b"]]}"#,
                Some("list[0]"),
            ),
            (
                r#"{"id":1,"inner":{"name":"a"},"maybe":["c"]}"#,
                Some("maybe"),
            ),
            (
                r#"{"id":1,"inner":{"name":"a"},"shape":{"circle":[3]}}"#,
                Some("shape.circle"),
            ),
        ] {
            assert!(serde_json::from_str::<Outer>(text).is_ok(), "{text}");
            let error = refused(text);
            assert_eq!(error.code, "invalid_request", "{text}");
            assert!(
                error
                    .message
                    .contains("invalid type: array, expected an object"),
                "{text}: {}",
                error.message
            );
            if let Some(path) = path {
                assert!(
                    error.message.starts_with(&format!("{path}: ")),
                    "{text}: {}",
                    error.message
                );
            }
        }
        // Maps, too.
        let error = refused(r#"{"id":1,"inner":{"name":"a"},"attributes":[]}"#);
        assert!(
            error.message.starts_with("attributes: "),
            "{}",
            error.message
        );
        // Every other enum form still reads.
        for (text, shape) in [
            (r#""dot""#, Shape::Dot),
            (r#"{"circle":{"radius":3}}"#, Shape::Circle { radius: 3 }),
            (r#"{"label":"x"}"#, Shape::Label("x".into())),
        ] {
            let outer = read(&format!(
                r#"{{"id":1,"inner":{{"name":"a"}},"shape":{text}}}"#
            ))
            .unwrap();
            assert_eq!(outer.shape, Some(shape));
        }
    }

    #[test]
    fn null_is_refused_except_where_nullable() {
        for (text, path) in [
            (r#"{"id":1,"inner":{"name":"a","note":null}}"#, "inner.note"),
            (r#"{"id":1,"inner":{"name":"a"},"maybe":null}"#, "maybe"),
            (r#"{"id":1,"inner":{"name":"a"},"shape":null}"#, "shape"),
            (r#"{"id":1,"inner":null}"#, "inner"),
            (
                r#"{"id":1,"inner":{"name":"a"},"attributes":null}"#,
                "attributes",
            ),
        ] {
            let error = refused(text);
            assert_eq!(error.code, "invalid_request", "{text}");
            assert!(
                error.message.starts_with(&format!("{path}: ")),
                "{text}: {}",
                error.message
            );
            assert!(error.message.contains("null"), "{text}: {}", error.message);
        }
        let outer = read(r#"{"id":1,"inner":{"name":"a"},"cursor":null}"#).unwrap();
        assert_eq!(outer.cursor, None);
        let outer = read(r#"{"id":1,"inner":{"name":"a"},"cursor":"c"}"#).unwrap();
        assert_eq!(outer.cursor.as_deref(), Some("c"));
        // A nullable field read without `Strict` behaves as a plain option.
        let outer: Outer =
            serde_json::from_str(r#"{"id":1,"inner":{"name":"a"},"cursor":null}"#).unwrap();
        assert_eq!(outer.cursor, None);
        let outer: Outer =
            serde_json::from_str(r#"{"id":1,"inner":{"name":"a"},"cursor":"c"}"#).unwrap();
        assert_eq!(outer.cursor.as_deref(), Some("c"));
        let error = refused(r#"{"id":1,"inner":{"name":"a"},"cursor":5}"#);
        assert!(error.message.starts_with("cursor: "), "{}", error.message);
    }

    #[test]
    fn whole_numbers_written_as_floats_are_integers() {
        let whole = read(r#"{"id": 1850.0, "inner": {"name": "a"}}"#).unwrap();
        assert_eq!(whole.id, 1850);
        let exponent = read(r#"{"id": 1.85e3, "inner": {"name": "a"}}"#).unwrap();
        assert_eq!(exponent.id, 1850);
        let zero = read(r#"{"id": -0.0, "inner": {"name": "a"}}"#).unwrap();
        assert_eq!(zero.id, 0);
        for text in [
            r#"{"id": 1850.5, "inner": {"name": "a"}}"#,
            r#"{"id": -1.0, "inner": {"name": "a"}}"#,
            r#"{"id": 4294967296.0, "inner": {"name": "a"}}"#,
            r#"{"id": 1e300, "inner": {"name": "a"}}"#,
        ] {
            let error = refused(text);
            assert!(
                error.message.starts_with("id: "),
                "{text}: {}",
                error.message
            );
        }
        // Free-form values keep the number as written.
        let free = read(r#"{"id": 1, "inner": {"name": "a"}, "free": 2.0}"#).unwrap();
        assert_eq!(free.free, json!(2.0));
    }

    #[test]
    fn free_form_values_are_untouched() {
        let text = r#"{"id":1,"inner":{"name":"a"},"free":[null,{"a":[1,null]}],"attributes":{"x":null,"y":[{"z":[]}]}}"#;
        let outer = read(text).unwrap();
        assert_eq!(outer.free, json!([null, {"a": [1, null]}]));
        assert_eq!(outer.attributes["y"], json!([{"z": []}]));
    }

    #[test]
    fn syntax_and_shape_errors_keep_their_codes() {
        for (text, code) in [
            ("{", "malformed_json"),
            (r#"{"id":1,"inner":{"name":"a"}} x"#, "malformed_json"),
            (r#"{"id":1}"#, "missing_field"),
            (
                r#"{"id":1,"inner":{"name":"a"},"other":1}"#,
                "unknown_field",
            ),
            (r#"{"id":"one","inner":{"name":"a"}}"#, "invalid_request"),
        ] {
            assert_eq!(refused(text).code, code, "{text}");
        }
    }

    #[test]
    fn a_check_request_is_strict_where_the_document_says_object() {
        let valid = r#"{"tenant":"acme","principal":{"id":"bob","attributes":{"a":null}},"action":"app:logs.download","resource":{"type":"app","id":"payments"},"context":{"ip":"172.16.3.4","extra":[1,null],"cert":{"id":"cert1"}}}"#;
        let request: Request = from_slice(valid.as_bytes()).unwrap();
        assert_eq!(request, serde_json::from_str::<Request>(valid).unwrap());
        assert_eq!(request.context.attributes["extra"], json!([1, null]));
        let array =
            r#"["acme",["bob"],"app:logs.download",{},["app","payments"],{"ip":"172.16.3.4"}]"#;
        assert!(serde_json::from_str::<Request>(array).is_ok());
        for (text, path) in [
            (array, None),
            (
                r#"{"tenant":"acme","principal":["bob"],"action":"a:b","resource":{"type":"app","id":"p"}}"#,
                Some("principal"),
            ),
            (
                r#"{"tenant":"acme","principal":{"id":"bob"},"action":"a:b","resource":{"type":"app","id":"p"},"context":{"cert":["cert1"]}}"#,
                Some("context.cert"),
            ),
            (
                r#"{"tenant":"acme","principal":{"id":"bob"},"action":"a:b","resource":{"type":"app","id":"p"},"context":{"ip":null}}"#,
                Some("context.ip"),
            ),
            (
                r#"{"tenant":"acme","principal":{"id":"bob"},"action":"a:b","resource":{"type":"app","id":"p"},"trace_id":null}"#,
                Some("trace_id"),
            ),
        ] {
            let error = from_slice::<Request>(text.as_bytes()).unwrap_err();
            assert_eq!(error.code, "invalid_request", "{text}");
            if let Some(path) = path {
                assert!(
                    error.message.starts_with(&format!("{path}: ")),
                    "{text}: {}",
                    error.message
                );
            }
        }
        // The same rules for a value rebuilt inside the server.
        let error = from_value::<portcullis_core::Context>(json!({"cert": ["cert1"]})).unwrap_err();
        assert_eq!(error.path().to_string(), "cert");
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z\"\\\\ ]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    fn inner() -> impl Strategy<Value = Inner> {
        ("[a-z]{0,5}", prop::option::of("[a-z ]{0,5}"))
            .prop_map(|(name, note)| Inner { name, note })
    }

    fn outer() -> impl Strategy<Value = Outer> {
        (
            any::<u32>(),
            inner(),
            prop::collection::vec(inner(), 0..3),
            prop::option::of(inner()),
            prop::option::of("[a-z]{0,4}"),
            json_value(),
            prop::collection::btree_map("[a-z]{1,4}", json_value(), 0..3),
            prop::option::of(prop_oneof![
                Just(Shape::Dot),
                any::<u32>().prop_map(|radius| Shape::Circle { radius }),
                "[a-z]{0,4}".prop_map(Shape::Label),
            ]),
        )
            .prop_map(
                |(id, inner, list, maybe, cursor, free, attributes, shape)| Outer {
                    id,
                    inner,
                    list,
                    maybe,
                    cursor,
                    free,
                    attributes: attributes.into_iter().collect(),
                    shape,
                },
            )
    }

    proptest! {
        /// What serde_json writes (objects for structs, fields left out rather than null), the
        /// strict reader reads back unchanged, and exactly as serde_json itself does.
        #[test]
        fn what_serde_writes_reads_back_the_same(value in outer()) {
            let text = serde_json::to_string(&value).unwrap();
            let strict: Outer = from_slice(text.as_bytes()).unwrap();
            prop_assert_eq!(&strict, &value);
            let plain: Outer = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(strict, plain);
        }

        /// Free-form JSON reads the same strictly as plainly.
        #[test]
        fn free_form_json_is_read_unchanged(value in json_value()) {
            let text = value.to_string();
            let strict: Value = from_slice(text.as_bytes()).unwrap();
            prop_assert_eq!(strict, value);
        }

        /// Wherever a struct sits, an array in its place is refused.
        #[test]
        fn an_array_for_any_struct_is_refused(value in outer(), which in 0usize..4) {
            let mut tree = serde_json::to_value(&value).unwrap();
            let (pointer, path) = match which {
                0 => ("", "."),
                1 => ("/inner", "inner"),
                2 => ("/list/0", "list[0]"),
                _ => ("/maybe", "maybe"),
            };
            let Some(target) = tree.pointer_mut(pointer) else {
                // No such part in this value (an empty list, no `maybe`).
                return Ok(());
            };
            let fields = target.as_object().unwrap().values().cloned().collect();
            *target = Value::Array(fields);
            let text = tree.to_string();
            let error = from_slice::<Outer>(text.as_bytes()).unwrap_err();
            prop_assert_eq!(error.code, "invalid_request");
            prop_assert!(error.message.contains("expected an object"), "{}", error.message);
            if path != "." {
                prop_assert!(error.message.starts_with(&format!("{path}: ")), "{}", error.message);
            }
        }
    }
}

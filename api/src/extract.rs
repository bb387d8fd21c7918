//! Extractors: strict JSON bodies (unknown fields rejected, the offending field named), and
//! the `If-Match` / `Idempotency-Key` headers.

use crate::error::{ApiError, FieldError};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// A JSON body deserialised strictly. DTOs use `#[serde(deny_unknown_fields)]`, so a body that
/// tries to set `tenant_id`, `status` or `reporter_id` is a 422 naming that field, not a
/// silently ignored mass assignment. Carries the sha256 of the raw body (for idempotency).
#[derive(Debug, Clone)]
pub struct StrictJson<T> {
    /// The value.
    pub value: T,
    /// sha256 of the body bytes.
    pub body_hash: [u8; 32],
}

impl<S, T> FromRequest<S> for StrictJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                let ct = ct
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                ct == "application/json" || ct.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest("could not read the request body".into())
            }
        })?;
        let value = parse_strict(&bytes)?;
        Ok(Self {
            value,
            body_hash: Sha256::digest(&bytes).into(),
        })
    }
}

/// Deserialises `bytes`, mapping errors to 400 (not JSON) or 422 (naming the field).
pub fn parse_strict<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(de) {
        Ok(v) => Ok(v),
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            use serde_json::error::Category;
            match inner.classify() {
                Category::Syntax | Category::Eof | Category::Io => Err(ApiError::BadRequest(
                    format!("the body is not valid JSON: {inner}"),
                )),
                Category::Data => {
                    let msg = inner.to_string();
                    // The path already ends at an unknown key; a missing field is reported at
                    // its parent object, with the name only in the message.
                    let field = match backticked(&msg).filter(|_| msg.starts_with("missing field"))
                    {
                        Some(name) if path == "." || path.is_empty() => name.to_owned(),
                        Some(name) => format!("{path}.{name}"),
                        None if path == "." || path.is_empty() => "body".to_owned(),
                        None => path,
                    };
                    let message = strip_position(&msg);
                    Err(ApiError::Validation(vec![FieldError::new(field, message)]))
                }
            }
        }
    }
}

fn backticked(msg: &str) -> Option<&str> {
    let start = msg.find('`')? + 1;
    let end = start + msg[start..].find('`')?;
    Some(&msg[start..end])
}

fn strip_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// The `If-Match` header as a stream version (ETags are `"<version>"`).
#[derive(Debug, Clone, Copy, Default)]
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(v) = parts.headers.get(header::IF_MATCH) else {
            return Ok(Self(None));
        };
        let s = v
            .to_str()
            .map_err(|_| ApiError::BadRequest("malformed If-Match".into()))?
            .trim();
        if s == "*" {
            return Ok(Self(None));
        }
        let s = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
        s.parse()
            .map(|v| Self(Some(v)))
            .map_err(|_| ApiError::PreconditionFailed)
    }
}

/// The `ETag` value for a version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// The `Idempotency-Key` header (1..=255 visible ASCII characters).
#[derive(Debug, Clone, Default)]
pub struct IdempotencyKeyHeader(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(v) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        let s = v
            .to_str()
            .map_err(|_| ApiError::field("Idempotency-Key", "must be visible ASCII characters"))?;
        if s.is_empty() || s.len() > 255 {
            return Err(ApiError::field(
                "Idempotency-Key",
                "must be 1 to 255 characters",
            ));
        }
        Ok(Self(Some(s.to_owned())))
    }
}

impl IdempotencyKeyHeader {
    /// The store's key for this request: the client's key scoped by route, and the hash of
    /// route + body, so the same key with another body (or on another route) is refused.
    pub fn for_request(
        &self,
        route: &str,
        body_hash: &[u8; 32],
    ) -> Option<eventdesk_store::IdempotencyKey> {
        let key = self.0.as_ref()?;
        let mut h = Sha256::new();
        h.update(route.as_bytes());
        h.update([0]);
        h.update(body_hash);
        Some(eventdesk_store::IdempotencyKey {
            key: key.clone(),
            request_hash: h.finalize().into(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Dto {
        title: String,
        nested: Option<Nested>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Nested {
        n: u32,
    }

    fn field_of(e: ApiError) -> String {
        match e {
            ApiError::Validation(d) => d[0].field.clone(),
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn unknown_fields_are_named() {
        let e = parse_strict::<Dto>(br#"{"title":"x","tenant_id":"t"}"#).unwrap_err();
        assert_eq!(field_of(e), "tenant_id");
        let e = parse_strict::<Dto>(br#"{"title":"x","nested":{"n":1,"evil":2}}"#).unwrap_err();
        assert_eq!(field_of(e), "nested.evil");
    }

    #[test]
    fn missing_and_mistyped_fields_are_named() {
        assert_eq!(
            field_of(parse_strict::<Dto>(br#"{}"#).unwrap_err()),
            "title"
        );
        assert_eq!(
            field_of(parse_strict::<Dto>(br#"{"title":"x","nested":{"n":"a"}}"#).unwrap_err()),
            "nested.n"
        );
    }

    #[test]
    fn syntax_errors_are_400() {
        assert!(matches!(
            parse_strict::<Dto>(b"{nope").unwrap_err(),
            ApiError::BadRequest(_)
        ));
    }
}

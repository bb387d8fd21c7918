//! The one place where errors become HTTP statuses.
//!
//! Body: `{"error":{"code","message","details":[{"field","message"}]}}`. A 5xx is logged with
//! its whole cause chain; the client only ever gets a generic message (never SQL text).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventdesk_commands::CommandError;
use serde::Serialize;

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field (dotted path for nested fields).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Every error an endpoint can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON at all, or a header is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or invalid credentials.
    #[error("authentication required")]
    Unauthorized,
    /// 401: a failed login (the same answer whether or not the user exists).
    #[error("invalid username or password")]
    InvalidCredentials,
    /// 403: authenticated, but the permission is missing.
    #[error("permission denied")]
    Forbidden,
    /// 404: no such object in the caller's tenant (also for another tenant's object).
    #[error("not found")]
    NotFound,
    /// 409: a concurrent modification or a state conflict.
    #[error("{0}")]
    Conflict(String),
    /// 412: `If-Match` does not match the current ETag.
    #[error("the resource has changed (If-Match does not match)")]
    PreconditionFailed,
    /// 413: the body is larger than allowed.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 415: not `application/json`.
    #[error("expected application/json")]
    UnsupportedMediaType,
    /// 422: validation failed; each field is named.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 422: a domain rule rejected the request (e.g. an invalid transition).
    #[error("{message}")]
    Rule {
        /// Stable code, e.g. `invalid_transition`.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// 422: the `Idempotency-Key` was used before with a different request.
    #[error("Idempotency-Key reused with a different request body")]
    IdempotencyMismatch,
    /// 429: over the rate limit.
    #[error("rate limit exceeded")]
    TooManyRequests {
        /// Seconds until a retry may succeed.
        retry_after: u64,
    },
    /// 503: the database is unavailable.
    #[error("service unavailable")]
    Unavailable,
    /// 500: anything else. Logged, never shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A `Result` whose error defaults to [`ApiError`].
pub type ApiResult<T, E = ApiError> = Result<T, E>;

impl ApiError {
    /// A 422 naming one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    /// Wraps any error as a 500.
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(e))
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) | ApiError::Rule { .. } | ApiError::IdempotencyMismatch => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::Forbidden => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PreconditionFailed => "precondition_failed",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Validation(_) => "validation_error",
            ApiError::Rule { code, .. } => code,
            ApiError::IdempotencyMismatch => "idempotency_key_reused",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: String,
    details: &'a [FieldError],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(e) = &self {
            let mut chain = e.to_string();
            let mut src = e.source();
            while let Some(s) = src {
                chain.push_str(": ");
                chain.push_str(&s.to_string());
                src = s.source();
            }
            tracing::error!(error = %chain, "internal error");
        }
        let details: &[FieldError] = match &self {
            ApiError::Validation(d) => d,
            _ => &[],
        };
        let body = Body {
            error: Inner {
                code: self.code(),
                message: self.to_string(),
                details,
            },
        };
        let mut resp = (status, Json(body)).into_response();
        if let ApiError::TooManyRequests { retry_after } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => ApiError::Unavailable,
            other => ApiError::internal(other),
        }
    }
}

impl From<eventdesk_store::StoreError> for ApiError {
    fn from(e: eventdesk_store::StoreError) -> Self {
        match e {
            eventdesk_store::StoreError::Conflict { .. } => {
                ApiError::Conflict("the resource was modified concurrently; retry".into())
            }
            eventdesk_store::StoreError::IdempotencyMismatch => ApiError::IdempotencyMismatch,
            other => ApiError::internal(other),
        }
    }
}

impl From<eventdesk_domain::ValidationError> for ApiError {
    fn from(e: eventdesk_domain::ValidationError) -> Self {
        ApiError::field(e.field(), e.message())
    }
}

/// Maps a domain rejection to an API error.
pub trait RejectionExt {
    /// The API error for this rejection.
    fn to_api(&self) -> ApiError;
}

impl<E: std::error::Error + RejectionExt + Send + Sync + 'static> From<CommandError<E>>
    for ApiError
{
    fn from(e: CommandError<E>) -> Self {
        match e {
            CommandError::Rejected(r) => r.to_api(),
            CommandError::PreconditionFailed { .. } => ApiError::PreconditionFailed,
            CommandError::Conflict => {
                ApiError::Conflict("the resource was modified concurrently; retry".into())
            }
            CommandError::IdempotencyMismatch => ApiError::IdempotencyMismatch,
            CommandError::Taken { field } => ApiError::field(field, "is already taken"),
            CommandError::Corrupt(m) => ApiError::Internal(m.into()),
            CommandError::Store(s) => s.into(),
        }
    }
}

/// `NotFound` → 404, `AlreadyExists` → 409, every other rule → 422 with the domain's code.
macro_rules! rejection {
    ($($ty:path),*) => {$(
        impl RejectionExt for $ty {
            fn to_api(&self) -> ApiError {
                match self.code() {
                    "not_found" => ApiError::NotFound,
                    "already_exists" => ApiError::Conflict(self.to_string()),
                    code => ApiError::Rule { code, message: self.to_string() },
                }
            }
        }
    )*};
}

rejection!(
    eventdesk_domain::incident::IncidentError,
    eventdesk_domain::directory::UserError,
    eventdesk_domain::directory::TeamError,
    eventdesk_domain::directory::CategoryError,
    eventdesk_domain::directory::TenantError
);

/// Collects the field errors of several parses, to report them all at once.
#[derive(Debug, Default)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    /// Keeps the value, or records the error under the validator's own field name.
    pub fn take<T>(&mut self, r: Result<T, eventdesk_domain::ValidationError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(FieldError::new(e.field(), e.message()));
                None
            }
        }
    }

    /// Keeps the value, or records the error under `field`.
    pub fn take_as<T>(
        &mut self,
        field: &str,
        r: Result<T, eventdesk_domain::ValidationError>,
    ) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(FieldError::new(field, e.message()));
                None
            }
        }
    }

    /// Records an error.
    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// 422 with every recorded error, or Ok.
    pub fn done(self) -> ApiResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

//! The store's error type. Conflicts are decided from SQLSTATE codes and constraint names,
//! never from message text.

use crate::types::ExpectedVersion;

/// A `Result` whose error defaults to [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything that can go wrong in the event store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream was not at the expected version (someone else appended first).
    #[error("version conflict on stream {stream_id}: expected {expected:?}")]
    Conflict {
        /// The stream.
        stream_id: uuid::Uuid,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// The head version, when the database reported it.
        actual: Option<i64>,
    },
    /// The idempotency key was used before for a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyMismatch,
    /// An append with no events and no idempotency key, or a malformed argument.
    #[error("invalid append: {0}")]
    Invalid(String),
    /// A stored event could not be decoded or upcast.
    #[error("event decode failed at position {position}: {message}")]
    Decode {
        /// The event's global position.
        position: i64,
        /// What went wrong.
        message: String,
    },
    /// Any other database failure.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Migration failure.
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// SQLSTATE raised by `eventdesk_append` when the head is not the expected version.
pub(crate) const SQLSTATE_EXPECTED_VERSION: &str = "ED409";
/// SQLSTATE raised by `eventdesk_append` when an idempotency key is reused with another body.
pub(crate) const SQLSTATE_IDEMPOTENCY_MISMATCH: &str = "ED422";
/// unique_violation.
pub(crate) const SQLSTATE_UNIQUE_VIOLATION: &str = "23505";
/// The unique key whose violation means "someone appended this version first".
pub(crate) const STREAM_VERSION_KEY: &str = "events_stream_version_key";

impl StoreError {
    /// Maps a database error raised by an append into a typed error.
    pub(crate) fn from_append(
        err: sqlx::Error,
        stream_id: uuid::Uuid,
        expected: ExpectedVersion,
    ) -> Self {
        if let sqlx::Error::Database(db) = &err {
            let code = db.code();
            match code.as_deref() {
                Some(SQLSTATE_UNIQUE_VIOLATION) if db.constraint() == Some(STREAM_VERSION_KEY) => {
                    return StoreError::Conflict {
                        stream_id,
                        expected,
                        actual: None,
                    };
                }
                Some(SQLSTATE_EXPECTED_VERSION) => {
                    let actual = db
                        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                        .and_then(|e| e.detail())
                        .and_then(|d| d.parse().ok());
                    return StoreError::Conflict {
                        stream_id,
                        expected,
                        actual,
                    };
                }
                Some(SQLSTATE_IDEMPOTENCY_MISMATCH) => return StoreError::IdempotencyMismatch,
                _ => {}
            }
        }
        StoreError::Database(err)
    }

    /// True for a version conflict.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }
}

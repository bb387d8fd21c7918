//! The command layer's error: the domain's rejection, or what the store said.

use eventdesk_store::StoreError;

/// Why a command did not produce its events.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The domain rejected the command.
    #[error(transparent)]
    Rejected(E),
    /// `If-Match` named a version that is not the current one.
    #[error("precondition failed: the aggregate is at version {actual}")]
    PreconditionFailed {
        /// The current version.
        actual: i64,
    },
    /// Another writer appended to the stream between our read and our append.
    #[error("concurrent modification")]
    Conflict,
    /// The idempotency key was used for a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyMismatch,
    /// A unique claim (username, e-mail) is taken.
    #[error("{field} is already taken")]
    Taken {
        /// The field.
        field: &'static str,
    },
    /// A stored event of this stream could not be decoded.
    #[error("stored event could not be decoded: {0}")]
    Corrupt(String),
    /// The store failed.
    #[error("event store failure")]
    Store(#[source] StoreError),
}

impl<E: std::error::Error> From<StoreError> for CommandError<E> {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => CommandError::Conflict,
            StoreError::IdempotencyMismatch => CommandError::IdempotencyMismatch,
            other => CommandError::Store(other),
        }
    }
}

impl<E: std::error::Error> From<sqlx::Error> for CommandError<E> {
    fn from(e: sqlx::Error) -> Self {
        CommandError::Store(StoreError::Database(e))
    }
}

//! The domain layer's error: every aggregate's typed rejection plus value validation, in one
//! enum with `From` conversions, so the command layer can map the domain to HTTP in one place.
//!
//! Suggested mapping (decided by the API layer, not here): `Validation` → 422; `NotFound` → 404;
//! `AlreadyExists` → 409; `InvalidTransition`, `ActionNotAllowed`, `Deactivated` and the other
//! business-rule rejections → 409 (or 422 for malformed combinations such as
//! `EmptyAssignment` and `OwnParent`). Each variant's `code()` is a stable machine code.

use crate::change_request::ChangeError;
use crate::cmdb::{CiError, CiTypeError, RelationshipError};
use crate::directory::{CategoryError, RoleError, TeamError, TenantError, UserError};
use crate::incident::IncidentError;
use crate::problem::ProblemError;
use crate::values::ValidationError;

/// Any rejection by the domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A value failed validation.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// An incident command was rejected.
    #[error(transparent)]
    Incident(#[from] IncidentError),
    /// A tenant command was rejected.
    #[error(transparent)]
    Tenant(#[from] TenantError),
    /// A user command was rejected.
    #[error(transparent)]
    User(#[from] UserError),
    /// A team command was rejected.
    #[error(transparent)]
    Team(#[from] TeamError),
    /// A category command was rejected.
    #[error(transparent)]
    Category(#[from] CategoryError),
    /// A custom role command was rejected.
    #[error(transparent)]
    Role(#[from] RoleError),
    /// A configuration item command was rejected.
    #[error(transparent)]
    Ci(#[from] CiError),
    /// A CI type command was rejected.
    #[error(transparent)]
    CiType(#[from] CiTypeError),
    /// A CI relationship command was rejected.
    #[error(transparent)]
    Relationship(#[from] RelationshipError),
    /// A problem command was rejected.
    #[error(transparent)]
    Problem(#[from] ProblemError),
    /// A change command was rejected.
    #[error(transparent)]
    Change(#[from] ChangeError),
}

impl DomainError {
    /// A stable machine-readable code (`validation_error`, `not_found`, `invalid_transition`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_error",
            Self::Incident(e) => e.code(),
            Self::Tenant(e) => e.code(),
            Self::User(e) => e.code(),
            Self::Team(e) => e.code(),
            Self::Category(e) => e.code(),
            Self::Role(e) => e.code(),
            Self::Ci(e) => e.code(),
            Self::CiType(e) => e.code(),
            Self::Relationship(e) => e.code(),
            Self::Problem(e) => e.code(),
            Self::Change(e) => e.code(),
        }
    }

    /// Whether the error means "no such object" (404).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::Incident(IncidentError::NotFound)
                | Self::Tenant(TenantError::NotFound)
                | Self::User(UserError::NotFound)
                | Self::Team(TeamError::NotFound)
                | Self::Category(CategoryError::NotFound)
                | Self::Role(RoleError::NotFound)
                | Self::Ci(CiError::NotFound)
                | Self::CiType(CiTypeError::NotFound)
                | Self::Relationship(RelationshipError::NotFound)
                | Self::Problem(ProblemError::NotFound)
                | Self::Change(ChangeError::NotFound)
        )
    }
}

/// `Result` with [`DomainError`] as the default error.
pub type Result<T, E = DomainError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::IncidentStatus;

    #[test]
    fn conversions_and_codes() {
        let e: DomainError = IncidentError::InvalidTransition {
            from: IncidentStatus::New,
            to: IncidentStatus::Closed,
        }
        .into();
        assert_eq!(e.code(), "invalid_transition");
        assert_eq!(e.to_string(), "cannot move an incident from new to closed");
        assert!(!e.is_not_found());
        let e: DomainError = TeamError::NotFound.into();
        assert!(e.is_not_found());
        let e: DomainError = ValidationError::Empty { field: "title" }.into();
        assert_eq!(e.code(), "validation_error");
        assert_eq!(e.to_string(), "title must not be empty");
    }
}

//! Strongly typed identifiers. Every id is a UUID (v7 for new entities, so they sort by time).

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered (UUID v7) identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

id_type!(
    /// An organisation. Every row, event and message belongs to exactly one tenant.
    TenantId
);
id_type!(
    /// The id of an event stream (one aggregate instance).
    StreamId
);
id_type!(
    /// A user of one tenant.
    UserId
);
id_type!(
    /// An assignment group.
    TeamId
);
id_type!(
    /// A category (tree node).
    CategoryId
);
id_type!(
    /// An incident.
    IncidentId
);
id_type!(
    /// An API key.
    ApiKeyId
);
id_type!(
    /// A globally unique event id.
    EventId
);
id_type!(
    /// A work note on an incident (chosen by the command layer so retries are idempotent).
    WorkNoteId
);
id_type!(
    /// An attachment on an incident.
    AttachmentId
);
id_type!(
    /// An SLA policy of one tenant.
    SlaPolicyId
);
id_type!(
    /// A business-hours calendar of one tenant.
    CalendarId
);
id_type!(
    /// A custom role of one tenant.
    RoleId
);
id_type!(
    /// A configuration item (CMDB).
    CiId
);
id_type!(
    /// A tenant-defined configuration item type (CMDB).
    CiTypeId
);
id_type!(
    /// A relationship between two configuration items (CMDB).
    CiRelationshipId
);
id_type!(
    /// A problem (the root cause behind incidents).
    ProblemId
);
id_type!(
    /// A change (request for change).
    ChangeId
);
id_type!(
    /// A task of a change.
    ChangeTaskId
);

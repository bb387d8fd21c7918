//! The domain's aggregates by stream type, for code that meets stored events without knowing
//! their aggregate in advance: the audit verifier (does every event decode, with the schema
//! version this build writes?) and time travel (an aggregate's state as of an instant, folded
//! with the aggregate's own `evolve`).
//!
//! Streams of other types (`security`, `bench`, …) are not aggregates of the domain: they are
//! reported as unknown, never guessed at.

use crate::aggregate::{Aggregate, DomainEvent};
use crate::change_request::ChangeAggregate;
use crate::cmdb::{CiAggregate, CiTypeAggregate, RelationshipAggregate};
use crate::directory::{
    CategoryAggregate, RoleAggregate, TeamAggregate, TenantAggregate, UserAggregate,
};
use crate::incident::IncidentAggregate;
use crate::problem::ProblemAggregate;
use crate::sla::{SlaCalendarAggregate, SlaPolicyAggregate};
use serde::Serialize;
use serde_json::Value;

/// Every stream type whose events the domain decodes.
pub const STREAM_TYPES: &[&str] = &[
    IncidentAggregate::STREAM_TYPE,
    TenantAggregate::STREAM_TYPE,
    UserAggregate::STREAM_TYPE,
    TeamAggregate::STREAM_TYPE,
    CategoryAggregate::STREAM_TYPE,
    RoleAggregate::STREAM_TYPE,
    SlaCalendarAggregate::STREAM_TYPE,
    SlaPolicyAggregate::STREAM_TYPE,
    CiAggregate::STREAM_TYPE,
    CiTypeAggregate::STREAM_TYPE,
    RelationshipAggregate::STREAM_TYPE,
    ProblemAggregate::STREAM_TYPE,
    ChangeAggregate::STREAM_TYPE,
];

/// True if `stream_type` is an aggregate of the domain.
pub fn is_aggregate(stream_type: &str) -> bool {
    STREAM_TYPES.contains(&stream_type)
}

/// One stored event as the registry needs it: version, type and (upcast) payload.
#[derive(Debug, Clone, Copy)]
pub struct StoredEvent<'a> {
    /// Version in its stream.
    pub version: i64,
    /// The `event_type` column.
    pub event_type: &'a str,
    /// The payload, after upcasting.
    pub data: &'a Value,
}

/// Why an aggregate's state could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// No aggregate of the domain has this stream type.
    #[error("stream type {0:?} is not an aggregate of the domain (known: {known})", known = STREAM_TYPES.join(", "))]
    UnknownStreamType(String),
    /// A stored event does not decode.
    #[error("event at version {version} does not decode: {message}")]
    Decode {
        /// Its version.
        version: i64,
        /// What went wrong.
        message: String,
    },
    /// The state does not serialise (a bug).
    #[error("the state does not serialise: {0}")]
    Serialize(String),
}

/// Checks that a (stored, upcast) payload decodes as an event of `stream_type`'s aggregate and
/// that `schema_version` is the one the domain writes. `None` if `stream_type` is not an
/// aggregate of the domain.
pub fn check_event(
    stream_type: &str,
    event_type: &str,
    schema_version: i32,
    data: &Value,
) -> Option<Result<(), String>> {
    fn check<A: Aggregate>(
        event_type: &str,
        schema_version: i32,
        data: &Value,
    ) -> Result<(), String> {
        let e = A::Event::decode(event_type, data).map_err(|e| e.0)?;
        let known = e.schema_version();
        if known != schema_version {
            return Err(format!(
                "{event_type}: schema version {schema_version} is not one this build reads \
                 (it reads version {known})"
            ));
        }
        Ok(())
    }
    Some(match stream_type {
        IncidentAggregate::STREAM_TYPE => {
            check::<IncidentAggregate>(event_type, schema_version, data)
        }
        TenantAggregate::STREAM_TYPE => check::<TenantAggregate>(event_type, schema_version, data),
        UserAggregate::STREAM_TYPE => check::<UserAggregate>(event_type, schema_version, data),
        TeamAggregate::STREAM_TYPE => check::<TeamAggregate>(event_type, schema_version, data),
        CategoryAggregate::STREAM_TYPE => {
            check::<CategoryAggregate>(event_type, schema_version, data)
        }
        RoleAggregate::STREAM_TYPE => check::<RoleAggregate>(event_type, schema_version, data),
        SlaCalendarAggregate::STREAM_TYPE => {
            check::<SlaCalendarAggregate>(event_type, schema_version, data)
        }
        SlaPolicyAggregate::STREAM_TYPE => {
            check::<SlaPolicyAggregate>(event_type, schema_version, data)
        }
        CiAggregate::STREAM_TYPE => check::<CiAggregate>(event_type, schema_version, data),
        CiTypeAggregate::STREAM_TYPE => check::<CiTypeAggregate>(event_type, schema_version, data),
        RelationshipAggregate::STREAM_TYPE => {
            check::<RelationshipAggregate>(event_type, schema_version, data)
        }
        ProblemAggregate::STREAM_TYPE => {
            check::<ProblemAggregate>(event_type, schema_version, data)
        }
        ChangeAggregate::STREAM_TYPE => check::<ChangeAggregate>(event_type, schema_version, data),
        _ => return None,
    })
}

/// Folds `events` (one stream's events from version 1, in order) with the aggregate's own
/// `evolve`, from its default state.
pub fn fold<'a, A: Aggregate>(
    events: impl IntoIterator<Item = StoredEvent<'a>>,
) -> Result<A, StateError> {
    let mut state = A::default();
    for e in events {
        let ev = A::Event::decode(e.event_type, e.data).map_err(|err| StateError::Decode {
            version: e.version,
            message: err.0,
        })?;
        state.evolve(&ev);
    }
    Ok(state)
}

/// The state of a `stream_type` aggregate after `events`, serialised as the aggregate
/// serialises itself. This is "the state as of" an instant when `events` are the stream's
/// events recorded up to it.
pub fn state_json<'a>(
    stream_type: &str,
    events: impl IntoIterator<Item = StoredEvent<'a>>,
) -> Result<Value, StateError> {
    fn json<'a, A: Aggregate + Serialize>(
        events: impl IntoIterator<Item = StoredEvent<'a>>,
    ) -> Result<Value, StateError> {
        let state = fold::<A>(events)?;
        serde_json::to_value(&state).map_err(|e| StateError::Serialize(e.to_string()))
    }
    match stream_type {
        IncidentAggregate::STREAM_TYPE => json::<IncidentAggregate>(events),
        TenantAggregate::STREAM_TYPE => json::<TenantAggregate>(events),
        UserAggregate::STREAM_TYPE => json::<UserAggregate>(events),
        TeamAggregate::STREAM_TYPE => json::<TeamAggregate>(events),
        CategoryAggregate::STREAM_TYPE => json::<CategoryAggregate>(events),
        RoleAggregate::STREAM_TYPE => json::<RoleAggregate>(events),
        SlaCalendarAggregate::STREAM_TYPE => json::<SlaCalendarAggregate>(events),
        SlaPolicyAggregate::STREAM_TYPE => json::<SlaPolicyAggregate>(events),
        CiAggregate::STREAM_TYPE => json::<CiAggregate>(events),
        CiTypeAggregate::STREAM_TYPE => json::<CiTypeAggregate>(events),
        RelationshipAggregate::STREAM_TYPE => json::<RelationshipAggregate>(events),
        ProblemAggregate::STREAM_TYPE => json::<ProblemAggregate>(events),
        ChangeAggregate::STREAM_TYPE => json::<ChangeAggregate>(events),
        other => Err(StateError::UnknownStreamType(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_aggregate_is_listed_once() {
        let mut t = STREAM_TYPES.to_vec();
        t.sort_unstable();
        t.dedup();
        assert_eq!(t.len(), STREAM_TYPES.len());
        for s in STREAM_TYPES {
            assert!(is_aggregate(s));
            // Each listed type is dispatched (an unknown event type fails to decode rather
            // than being reported as an unknown stream type).
            assert!(matches!(
                check_event(s, "NoSuchEvent", 1, &json!({})),
                Some(Err(_))
            ));
            assert!(state_json(s, []).is_ok(), "{s}");
        }
        assert!(!is_aggregate("security"));
        assert_eq!(
            check_event("security", "ApiKeyCreated", 1, &json!({})),
            None
        );
        assert_eq!(
            state_json("security", []),
            Err(StateError::UnknownStreamType("security".into()))
        );
    }

    #[test]
    fn a_bad_event_is_named_by_version() {
        let data = json!({"nonsense": true});
        let events = [StoredEvent {
            version: 1,
            event_type: "IncidentCreated",
            data: &data,
        }];
        match state_json("incident", events) {
            Err(StateError::Decode { version, .. }) => assert_eq!(version, 1),
            other => panic!("{other:?}"),
        }
    }
}

//! The aggregate contract: `decide` turns a command into events, `evolve` folds events into state.

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};

/// An event of one aggregate. Events are stored as `(event_type, schema_version, data)`; the
/// serde representation of the enum must be *adjacently tagged* as `{"type": …, "data": …}`
/// (`#[serde(tag = "type", content = "data")]`), which [`DomainEvent::encode`] and
/// [`DomainEvent::decode`] rely on.
pub trait DomainEvent: Serialize + DeserializeOwned + Clone + std::fmt::Debug {
    /// The stable name stored in the `event_type` column.
    fn event_type(&self) -> &'static str;

    /// The schema version written for new events of this type. Readers upcast older versions.
    fn schema_version(&self) -> i32 {
        1
    }

    /// Splits the event into its type name and its JSON payload.
    fn encode(&self) -> Result<(&'static str, serde_json::Value), EventCodecError> {
        let mut v = serde_json::to_value(self).map_err(|e| EventCodecError(e.to_string()))?;
        let data = v
            .as_object_mut()
            .and_then(|o| o.remove("data"))
            .unwrap_or(serde_json::Value::Null);
        Ok((self.event_type(), data))
    }

    /// Rebuilds an event from its stored type name and (already upcast) payload.
    fn decode(event_type: &str, data: &serde_json::Value) -> Result<Self, EventCodecError> {
        let v = serde_json::json!({ "type": event_type, "data": data });
        serde_json::from_value(v).map_err(|e| EventCodecError(format!("{event_type}: {e}")))
    }
}

/// An event could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event codec error: {0}")]
pub struct EventCodecError(pub String);

/// An event-sourced aggregate: a pure decision function and a pure fold.
pub trait Aggregate: Default + Clone + std::fmt::Debug {
    /// The `stream_type` column value for streams of this aggregate.
    const STREAM_TYPE: &'static str;
    /// The commands this aggregate decides on.
    type Command;
    /// The events it emits.
    type Event: DomainEvent;
    /// Its typed rejection.
    type Error: std::error::Error + PartialEq;

    /// Validates `command` against the current state at instant `now` and returns the events
    /// to append (possibly none), or a typed error. Never performs I/O.
    fn decide(
        &self,
        command: Self::Command,
        now: DateTime<Utc>,
    ) -> Result<Vec<Self::Event>, Self::Error>;

    /// Applies one event. Cannot fail and holds no business rules.
    fn evolve(&mut self, event: &Self::Event);

    /// Folds a sequence of events from the default state.
    fn replay<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        let mut s = Self::default();
        for e in events {
            s.evolve(e);
        }
        s
    }
}

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
    ///
    /// The payload is read in place, with the tag first: no copy of it into a
    /// `{"type", "data"}` object, and no buffering of `data` until the tag is known (which
    /// is what serde does for an adjacently tagged enum whose tag comes second, as it does in
    /// a `serde_json::Value` object, whose keys are sorted). Replays and rebuilds decode every
    /// event of the log through here.
    fn decode(event_type: &str, data: &serde_json::Value) -> Result<Self, EventCodecError> {
        Self::deserialize(Tagged { event_type, data })
            .map_err(|e| EventCodecError(format!("{event_type}: {e}")))
    }
}

/// `{"type": event_type, "data": data}` as a deserializer, borrowing both, tag first.
struct Tagged<'a> {
    event_type: &'a str,
    data: &'a serde_json::Value,
}

impl<'de> serde::Deserializer<'de> for Tagged<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_map(TaggedEntries {
            tagged: self,
            next: 0,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct TaggedEntries<'a> {
    tagged: Tagged<'a>,
    /// 0: the tag is next, 1: the payload, 2: done.
    next: u8,
}

impl<'de> serde::de::MapAccess<'de> for TaggedEntries<'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let key = match self.next {
            0 => "type",
            1 => "data",
            _ => return Ok(None),
        };
        seed.deserialize(serde::de::value::BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        self.next += 1;
        if self.next == 1 {
            seed.deserialize(serde::de::value::BorrowedStrDeserializer::new(
                self.tagged.event_type,
            ))
        } else {
            seed.deserialize(self.tagged.data)
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(2usize.saturating_sub(usize::from(self.next)))
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

//! A given / when / then harness for aggregates.
//!
//! ```ignore
//! given::<IncidentAggregate>([created(), assigned()])
//!     .when(IncidentCommand::StartWork { actor })
//!     .then([work_started()]);
//! given::<IncidentAggregate>([created()])
//!     .when(IncidentCommand::Close { actor })
//!     .then_err(IncidentError::InvalidTransition { from: New, to: Closed });
//! ```
//!
//! Compiled for this crate's tests and, for other crates' tests, behind the `testing` feature.
//! The assertions panic with both sides printed, as test assertions do.

use crate::aggregate::Aggregate;
use chrono::{DateTime, TimeDelta, Utc};

/// The fixed instant used as `now` unless [`Given::at`] says otherwise:
/// Monday 2025-01-06 09:00:00 UTC.
pub fn test_now() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + TimeDelta::seconds(1_736_154_000)
}

/// Starts a scenario from the state obtained by folding `events` into the default state.
pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let history: Vec<A::Event> = events.into_iter().collect();
    Given {
        state: A::replay(&history),
        now: test_now(),
    }
}

/// A scenario's starting state.
#[derive(Debug)]
pub struct Given<A: Aggregate> {
    state: A,
    now: DateTime<Utc>,
}

impl<A: Aggregate> Given<A> {
    /// Decides at `now` instead of [`test_now`].
    #[must_use]
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }

    /// The state the command will be decided against.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// Decides `command` against the state.
    pub fn when(self, command: A::Command) -> Then<A> {
        let result = self.state.decide(command, self.now);
        Then {
            state: self.state,
            result,
        }
    }
}

/// The outcome of a decision, to be asserted.
#[derive(Debug)]
pub struct Then<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> Then<A>
where
    A::Event: PartialEq,
{
    /// Asserts that exactly `expected` were emitted (in order) and returns the state after
    /// applying them, for further assertions.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) -> A {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "unexpected events");
                let mut state = self.state;
                for e in &events {
                    state.evolve(e);
                }
                state
            }
            Err(e) => panic!("expected events {expected:?}, got error {e:?}"),
        }
    }

    /// Asserts that no event was emitted (the command changed nothing).
    #[track_caller]
    pub fn then_nothing(self) -> A {
        self.then([])
    }

    /// Asserts that the command was rejected with `expected`.
    #[track_caller]
    pub fn then_err(self, expected: A::Error) {
        match self.result {
            Ok(events) => panic!("expected error {expected:?}, got events {events:?}"),
            Err(e) => assert_eq!(e, expected, "unexpected error"),
        }
    }

    /// The raw result.
    pub fn result(&self) -> &Result<Vec<A::Event>, A::Error> {
        &self.result
    }

    /// The raw result and the state it was decided against.
    pub fn into_parts(self) -> (A, Result<Vec<A::Event>, A::Error>) {
        (self.state, self.result)
    }
}

/// Asserts that `event` survives [`DomainEvent::encode`](crate::DomainEvent::encode) and
/// [`DomainEvent::decode`](crate::DomainEvent::decode) unchanged, and that its stored type name
/// is the serde tag.
#[track_caller]
pub fn assert_round_trip<E: crate::DomainEvent + PartialEq>(event: &E) {
    let (ty, data) = match event.encode() {
        Ok(x) => x,
        Err(e) => panic!("encode {event:?}: {e}"),
    };
    assert_eq!(ty, event.event_type());
    let tagged = match serde_json::to_value(event) {
        Ok(v) => v,
        Err(e) => panic!("serialise {event:?}: {e}"),
    };
    assert_eq!(tagged["type"], ty, "serde tag differs from event_type()");
    match E::decode(ty, &data) {
        Ok(back) => assert_eq!(&back, event, "round trip changed the event"),
        Err(e) => panic!("decode {ty}: {e}"),
    }
}

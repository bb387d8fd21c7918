//! The relationship aggregate (`stream_type = "ci_relationship"`): one directed edge
//! `source —type→ target` between two CIs of a tenant.
//!
//! Reading: `A depends_on B` and `A runs_on B` mean A needs B, so a failure of B affects A
//! (impact flows from target to source). `connected_to` and custom types carry no impact.
//!
//! Rules decided here, on facts the command layer passes in the command:
//! - a CI cannot relate to itself;
//! - neither end may be retired;
//! - a dependency edge (`depends_on`, `runs_on`) must not close a cycle: the command layer
//!   looks, under the tenant's dependency lock, for an existing dependency path from the
//!   target back to the source and passes it as `cycle`; if there is one, the edge is refused
//!   with the whole cycle.
//!
//! `Delete` removes the relationship; a deleted relationship is gone (`NotFound` again).

use super::schema::{CiStatus, RelationshipType};
use crate::actor::Actor;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::ids::{CiId, CiRelationshipId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One end of a new relationship, as the command layer found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CiEndpoint {
    /// The CI.
    pub id: CiId,
    /// Its current status.
    pub status: CiStatus,
}

/// A request about a relationship.
#[derive(Debug, Clone, PartialEq)]
pub enum RelationshipCommand {
    /// Relate `source` to `target`.
    Create {
        /// Id (= stream id).
        id: CiRelationshipId,
        /// The CI that has the relationship (`source depends_on target`).
        source: CiEndpoint,
        /// The CI it is related to.
        target: CiEndpoint,
        /// The type.
        rel_type: RelationshipType,
        /// For a dependency type: the existing dependency path from `target` back to `source`
        /// (`[target, …, source]`), if there is one — the edge would close it into a cycle.
        existing_path_back: Option<Vec<CiId>>,
        /// Who.
        actor: Actor,
    },
    /// Remove it.
    Delete {
        /// Who.
        actor: Actor,
    },
}

/// A relationship was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CiRelationshipCreated {
    /// Id.
    pub id: CiRelationshipId,
    /// Source CI.
    pub source_id: CiId,
    /// Target CI.
    pub target_id: CiId,
    /// Type.
    pub rel_type: RelationshipType,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A relationship was deleted (its ends and type repeated for consumers of the log).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CiRelationshipDeleted {
    /// Source CI.
    pub source_id: CiId,
    /// Target CI.
    pub target_id: CiId,
    /// Type.
    pub rel_type: RelationshipType,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Everything that can happen to a relationship.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
#[allow(clippy::enum_variant_names)] // the shared prefix makes stored type names unique
pub enum RelationshipEvent {
    /// See [`CiRelationshipCreated`].
    CiRelationshipCreated(CiRelationshipCreated),
    /// See [`CiRelationshipDeleted`].
    CiRelationshipDeleted(CiRelationshipDeleted),
}

impl RelationshipEvent {
    /// Every `event_type` of this aggregate.
    pub const EVENT_TYPES: &'static [&'static str] =
        &["CiRelationshipCreated", "CiRelationshipDeleted"];

    /// Who caused the event.
    pub fn actor(&self) -> Actor {
        match self {
            Self::CiRelationshipCreated(e) => e.actor,
            Self::CiRelationshipDeleted(e) => e.actor,
        }
    }

    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::CiRelationshipCreated(e) => e.at,
            Self::CiRelationshipDeleted(e) => e.at,
        }
    }
}

impl DomainEvent for RelationshipEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::CiRelationshipCreated(_) => "CiRelationshipCreated",
            Self::CiRelationshipDeleted(_) => "CiRelationshipDeleted",
        }
    }
}

/// Why a relationship command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelationshipError {
    /// No such relationship (never created, or deleted).
    #[error("relationship not found")]
    NotFound,
    /// `Create` on an existing relationship stream.
    #[error("relationship already exists")]
    AlreadyExists,
    /// One end is not a CI of the tenant (found by the command layer; another tenant's CI is
    /// not one).
    #[error("configuration item {0} not found")]
    CiNotFound(CiId),
    /// Source and target are the same CI.
    #[error("a configuration item cannot be related to itself")]
    SelfRelationship,
    /// One end is retired.
    #[error("configuration item {0} is retired")]
    CiRetired(CiId),
    /// The dependency edge would close a cycle (`[source, target, …, source]`).
    #[error("{} would close a dependency cycle: {}", .rel_type, render_cycle(.cycle))]
    DependencyCycle {
        /// The type of the refused edge.
        rel_type: RelationshipType,
        /// The cycle, starting and ending at the source.
        cycle: Vec<CiId>,
    },
}

fn render_cycle(cycle: &[CiId]) -> String {
    cycle
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" → ")
}

impl RelationshipError {
    /// A stable machine-readable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::CiNotFound(_) => "not_found",
            Self::SelfRelationship => "self_relationship",
            Self::CiRetired(_) => "ci_retired",
            Self::DependencyCycle { .. } => "dependency_cycle",
        }
    }
}

/// The state of a relationship.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CiRelationship {
    /// Id.
    pub id: CiRelationshipId,
    /// Source CI.
    pub source_id: CiId,
    /// Target CI.
    pub target_id: CiId,
    /// Type.
    pub rel_type: RelationshipType,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: Actor,
    /// When deleted (a deleted relationship is gone).
    pub deleted_at: Option<DateTime<Utc>>,
    /// Who deleted it.
    pub deleted_by: Option<Actor>,
}

/// The relationship aggregate: `None` until created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RelationshipAggregate {
    /// The relationship, once created.
    pub state: Option<CiRelationship>,
}

impl RelationshipAggregate {
    /// The relationship if it exists and is not deleted.
    pub fn live(&self) -> Option<&CiRelationship> {
        self.state.as_ref().filter(|r| r.deleted_at.is_none())
    }
}

impl Aggregate for RelationshipAggregate {
    const STREAM_TYPE: &'static str = "ci_relationship";
    type Command = RelationshipCommand;
    type Event = RelationshipEvent;
    type Error = RelationshipError;

    fn decide(
        &self,
        command: RelationshipCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<RelationshipEvent>, RelationshipError> {
        use RelationshipCommand as C;
        use RelationshipEvent as E;
        match command {
            C::Create { .. } if self.state.is_some() => Err(RelationshipError::AlreadyExists),
            C::Create {
                id,
                source,
                target,
                rel_type,
                existing_path_back,
                actor,
            } => {
                if source.id == target.id {
                    return Err(RelationshipError::SelfRelationship);
                }
                for end in [source, target] {
                    if end.status == CiStatus::Retired {
                        return Err(RelationshipError::CiRetired(end.id));
                    }
                }
                if rel_type.is_dependency()
                    && let Some(path) = existing_path_back
                {
                    let mut cycle = Vec::with_capacity(path.len() + 1);
                    cycle.push(source.id);
                    cycle.extend(path);
                    return Err(RelationshipError::DependencyCycle { rel_type, cycle });
                }
                Ok(vec![E::CiRelationshipCreated(CiRelationshipCreated {
                    id,
                    source_id: source.id,
                    target_id: target.id,
                    rel_type,
                    actor,
                    at: now,
                })])
            }
            C::Delete { actor } => {
                let r = self.live().ok_or(RelationshipError::NotFound)?;
                Ok(vec![E::CiRelationshipDeleted(CiRelationshipDeleted {
                    source_id: r.source_id,
                    target_id: r.target_id,
                    rel_type: r.rel_type.clone(),
                    actor,
                    at: now,
                })])
            }
        }
    }

    fn evolve(&mut self, event: &RelationshipEvent) {
        match (self.state.as_mut(), event) {
            (None, RelationshipEvent::CiRelationshipCreated(e)) => {
                self.state = Some(CiRelationship {
                    id: e.id,
                    source_id: e.source_id,
                    target_id: e.target_id,
                    rel_type: e.rel_type.clone(),
                    created_at: e.at,
                    created_by: e.actor,
                    deleted_at: None,
                    deleted_by: None,
                });
            }
            (Some(r), RelationshipEvent::CiRelationshipDeleted(e)) => {
                r.deleted_at = Some(e.at);
                r.deleted_by = Some(e.actor);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cmdb::fixtures::admin;
    use crate::testing::{assert_round_trip, given, test_now};
    use uuid::Uuid;

    fn ci(n: u128) -> CiId {
        CiId(Uuid::from_u128(n))
    }
    fn end(n: u128) -> CiEndpoint {
        CiEndpoint {
            id: ci(n),
            status: CiStatus::Active,
        }
    }
    fn rid() -> CiRelationshipId {
        CiRelationshipId(Uuid::from_u128(99))
    }
    fn create(source: u128, target: u128, t: RelationshipType) -> RelationshipCommand {
        RelationshipCommand::Create {
            id: rid(),
            source: end(source),
            target: end(target),
            rel_type: t,
            existing_path_back: None,
            actor: admin(),
        }
    }
    fn created() -> RelationshipEvent {
        RelationshipEvent::CiRelationshipCreated(CiRelationshipCreated {
            id: rid(),
            source_id: ci(1),
            target_id: ci(2),
            rel_type: RelationshipType::depends_on(),
            actor: admin(),
            at: test_now(),
        })
    }
    fn deleted() -> RelationshipEvent {
        RelationshipEvent::CiRelationshipDeleted(CiRelationshipDeleted {
            source_id: ci(1),
            target_id: ci(2),
            rel_type: RelationshipType::depends_on(),
            actor: admin(),
            at: test_now(),
        })
    }

    #[test]
    fn create_relationship() {
        let s = given::<RelationshipAggregate>([])
            .when(create(1, 2, RelationshipType::depends_on()))
            .then([created()]);
        assert!(s.live().is_some());
        // Custom types are accepted.
        given::<RelationshipAggregate>([])
            .when(create(1, 2, RelationshipType::parse("backs_up").unwrap()))
            .then([RelationshipEvent::CiRelationshipCreated(
                CiRelationshipCreated {
                    id: rid(),
                    source_id: ci(1),
                    target_id: ci(2),
                    rel_type: RelationshipType::parse("backs_up").unwrap(),
                    actor: admin(),
                    at: test_now(),
                },
            )]);
    }

    #[test]
    fn create_twice_is_rejected() {
        given::<RelationshipAggregate>([created()])
            .when(create(1, 2, RelationshipType::depends_on()))
            .then_err(RelationshipError::AlreadyExists);
    }

    #[test]
    fn self_relationships_are_refused() {
        given::<RelationshipAggregate>([])
            .when(create(1, 1, RelationshipType::connected_to()))
            .then_err(RelationshipError::SelfRelationship);
    }

    #[test]
    fn retired_ends_are_refused() {
        for (s, t) in [
            (CiStatus::Retired, CiStatus::Active),
            (CiStatus::Planned, CiStatus::Retired),
        ] {
            let cmd = RelationshipCommand::Create {
                id: rid(),
                source: CiEndpoint {
                    id: ci(1),
                    status: s,
                },
                target: CiEndpoint {
                    id: ci(2),
                    status: t,
                },
                rel_type: RelationshipType::runs_on(),
                existing_path_back: None,
                actor: admin(),
            };
            let retired = if s == CiStatus::Retired { ci(1) } else { ci(2) };
            given::<RelationshipAggregate>([])
                .when(cmd)
                .then_err(RelationshipError::CiRetired(retired));
        }
    }

    #[test]
    fn dependency_cycles_are_refused_with_the_cycle() {
        // Direct: 2 already depends on 1; 1 → 2 closes 1 → 2 → 1.
        let mut cmd = create(1, 2, RelationshipType::depends_on());
        if let RelationshipCommand::Create {
            existing_path_back, ..
        } = &mut cmd
        {
            *existing_path_back = Some(vec![ci(2), ci(1)]);
        }
        given::<RelationshipAggregate>([])
            .when(cmd)
            .then_err(RelationshipError::DependencyCycle {
                rel_type: RelationshipType::depends_on(),
                cycle: vec![ci(1), ci(2), ci(1)],
            });
        // Longer, through runs_on: 2 → 3 → 4 → 1 exists.
        let mut cmd = create(1, 2, RelationshipType::runs_on());
        if let RelationshipCommand::Create {
            existing_path_back, ..
        } = &mut cmd
        {
            *existing_path_back = Some(vec![ci(2), ci(3), ci(4), ci(1)]);
        }
        let (_, r) = given::<RelationshipAggregate>([]).when(cmd).into_parts();
        let e = r.unwrap_err();
        assert_eq!(e.code(), "dependency_cycle");
        assert_eq!(
            e,
            RelationshipError::DependencyCycle {
                rel_type: RelationshipType::runs_on(),
                cycle: vec![ci(1), ci(2), ci(3), ci(4), ci(1)],
            }
        );
        assert!(e.to_string().contains(" → "));
        // A path back does not matter for a type that carries no dependency.
        let mut cmd = create(1, 2, RelationshipType::connected_to());
        if let RelationshipCommand::Create {
            existing_path_back, ..
        } = &mut cmd
        {
            *existing_path_back = Some(vec![ci(2), ci(1)]);
        }
        assert!(
            given::<RelationshipAggregate>([])
                .when(cmd)
                .result()
                .is_ok()
        );
    }

    #[test]
    fn delete_relationship() {
        let s = given::<RelationshipAggregate>([created()])
            .when(RelationshipCommand::Delete { actor: admin() })
            .then([deleted()]);
        assert!(s.live().is_none());
        assert!(s.state.unwrap().deleted_at.is_some());
        given::<RelationshipAggregate>([created(), deleted()])
            .when(RelationshipCommand::Delete { actor: admin() })
            .then_err(RelationshipError::NotFound);
        given::<RelationshipAggregate>([])
            .when(RelationshipCommand::Delete { actor: admin() })
            .then_err(RelationshipError::NotFound);
        // A deleted relationship's stream cannot be created again.
        given::<RelationshipAggregate>([created(), deleted()])
            .when(create(1, 2, RelationshipType::depends_on()))
            .then_err(RelationshipError::AlreadyExists);
    }

    #[test]
    fn events_round_trip() {
        let events = [created(), deleted()];
        let types: Vec<_> = events.iter().map(DomainEvent::event_type).collect();
        assert_eq!(types, RelationshipEvent::EVENT_TYPES);
        for e in &events {
            assert_round_trip(e);
            assert_eq!(e.actor(), admin());
            assert_eq!(e.at(), test_now());
        }
    }
}

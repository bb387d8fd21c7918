//! The team aggregate (`stream_type = "team"`): an assignment group with a manager and
//! members. That the manager and members exist in the same tenant is checked by the command
//! layer; the manager need not be a member.

use crate::actor::Actor;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::change::Change;
use crate::ids::{TeamId, UserId};
use crate::values::{Description, TeamName};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A request to change a team.
#[derive(Debug, Clone, PartialEq)]
pub enum TeamCommand {
    /// Create the team.
    Create {
        /// Id (= stream id).
        id: TeamId,
        /// Name.
        name: TeamName,
        /// Manager.
        manager_id: Option<UserId>,
        /// Description.
        description: Option<Description>,
        /// Who.
        actor: Actor,
    },
    /// Edit; `None` keeps a field, `Some(None)` clears an optional one.
    Update {
        /// New name.
        name: Option<TeamName>,
        /// New manager.
        manager_id: Option<Option<UserId>>,
        /// New description.
        description: Option<Option<Description>>,
        /// Who.
        actor: Actor,
    },
    /// Add a member (no event if already a member).
    AddMember {
        /// The user.
        user_id: UserId,
        /// Who.
        actor: Actor,
    },
    /// Remove a member (no event if not a member).
    RemoveMember {
        /// The user.
        user_id: UserId,
        /// Who.
        actor: Actor,
    },
    /// Retire the team.
    Deactivate {
        /// Who.
        actor: Actor,
    },
    /// Bring a retired team back.
    Reactivate {
        /// Who.
        actor: Actor,
    },
}

/// A team was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamCreated {
    /// Id.
    pub id: TeamId,
    /// Name.
    pub name: TeamName,
    /// Manager.
    pub manager_id: Option<UserId>,
    /// Description.
    pub description: Option<Description>,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// The changes of one [`TeamUpdated`]; absent = unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TeamChanges {
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Change<TeamName>>,
    /// Manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_id: Option<Change<Option<UserId>>>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Change<Option<Description>>>,
}

impl TeamChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A team was edited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamUpdated {
    /// What changed.
    pub changes: TeamChanges,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A member was added or removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamMembershipChanged {
    /// The member.
    pub user_id: UserId,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A team was deactivated or reactivated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamActivityChanged {
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Everything that can happen to a team (`{"type", "data"}`; `type` is the variant name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
#[allow(clippy::enum_variant_names)] // the shared prefix makes stored type names unique
pub enum TeamEvent {
    /// See [`TeamCreated`].
    TeamCreated(TeamCreated),
    /// See [`TeamUpdated`].
    TeamUpdated(TeamUpdated),
    /// A member joined.
    TeamMemberAdded(TeamMembershipChanged),
    /// A member left.
    TeamMemberRemoved(TeamMembershipChanged),
    /// The team was retired.
    TeamDeactivated(TeamActivityChanged),
    /// The team was brought back.
    TeamReactivated(TeamActivityChanged),
}

impl TeamEvent {
    /// Every `event_type` of this aggregate.
    pub const EVENT_TYPES: &'static [&'static str] = &[
        "TeamCreated",
        "TeamUpdated",
        "TeamMemberAdded",
        "TeamMemberRemoved",
        "TeamDeactivated",
        "TeamReactivated",
    ];

    /// Who caused the event.
    pub fn actor(&self) -> Actor {
        match self {
            Self::TeamCreated(e) => e.actor,
            Self::TeamUpdated(e) => e.actor,
            Self::TeamMemberAdded(e) | Self::TeamMemberRemoved(e) => e.actor,
            Self::TeamDeactivated(e) | Self::TeamReactivated(e) => e.actor,
        }
    }

    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::TeamCreated(e) => e.at,
            Self::TeamUpdated(e) => e.at,
            Self::TeamMemberAdded(e) | Self::TeamMemberRemoved(e) => e.at,
            Self::TeamDeactivated(e) | Self::TeamReactivated(e) => e.at,
        }
    }
}

impl DomainEvent for TeamEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::TeamCreated(_) => "TeamCreated",
            Self::TeamUpdated(_) => "TeamUpdated",
            Self::TeamMemberAdded(_) => "TeamMemberAdded",
            Self::TeamMemberRemoved(_) => "TeamMemberRemoved",
            Self::TeamDeactivated(_) => "TeamDeactivated",
            Self::TeamReactivated(_) => "TeamReactivated",
        }
    }
}

/// Why a team command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TeamError {
    /// The team has not been created.
    #[error("team not found")]
    NotFound,
    /// `Create` on an existing team.
    #[error("team already exists")]
    AlreadyExists,
    /// The team is deactivated.
    #[error("team is deactivated")]
    Deactivated,
}

impl TeamError {
    /// A stable machine-readable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::Deactivated => "deactivated",
        }
    }
}

/// The state of a created team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Team {
    /// Id.
    pub id: TeamId,
    /// Name.
    pub name: TeamName,
    /// Manager.
    pub manager_id: Option<UserId>,
    /// Description.
    pub description: Option<Description>,
    /// Members.
    pub members: BTreeSet<UserId>,
    /// Whether the team is active.
    pub is_active: bool,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
}

/// The team aggregate: `None` until created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TeamAggregate {
    /// The team, once created.
    pub state: Option<Team>,
}

impl Aggregate for TeamAggregate {
    const STREAM_TYPE: &'static str = "team";
    type Command = TeamCommand;
    type Event = TeamEvent;
    type Error = TeamError;

    fn decide(
        &self,
        command: TeamCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<TeamEvent>, TeamError> {
        use TeamCommand as C;
        use TeamEvent as E;
        let Some(team) = &self.state else {
            return match command {
                C::Create {
                    id,
                    name,
                    manager_id,
                    description,
                    actor,
                } => Ok(vec![E::TeamCreated(TeamCreated {
                    id,
                    name,
                    manager_id,
                    description,
                    actor,
                    at: now,
                })]),
                _ => Err(TeamError::NotFound),
            };
        };
        let ensure_active = || {
            if team.is_active {
                Ok(())
            } else {
                Err(TeamError::Deactivated)
            }
        };
        let membership = |user_id, actor| TeamMembershipChanged {
            user_id,
            actor,
            at: now,
        };
        let activity = |actor| TeamActivityChanged { actor, at: now };
        match command {
            C::Create { .. } => Err(TeamError::AlreadyExists),
            C::Update {
                name,
                manager_id,
                description,
                actor,
            } => {
                ensure_active()?;
                let changes = TeamChanges {
                    name: name.and_then(|v| Change::between(team.name.clone(), v)),
                    manager_id: manager_id.and_then(|v| Change::between(team.manager_id, v)),
                    description: description
                        .and_then(|v| Change::between(team.description.clone(), v)),
                };
                if changes.is_empty() {
                    return Ok(Vec::new());
                }
                Ok(vec![E::TeamUpdated(TeamUpdated {
                    changes,
                    actor,
                    at: now,
                })])
            }
            C::AddMember { user_id, actor } => {
                ensure_active()?;
                if team.members.contains(&user_id) {
                    return Ok(Vec::new());
                }
                Ok(vec![E::TeamMemberAdded(membership(user_id, actor))])
            }
            C::RemoveMember { user_id, actor } => {
                ensure_active()?;
                if !team.members.contains(&user_id) {
                    return Ok(Vec::new());
                }
                Ok(vec![E::TeamMemberRemoved(membership(user_id, actor))])
            }
            C::Deactivate { actor } if team.is_active => {
                Ok(vec![E::TeamDeactivated(activity(actor))])
            }
            C::Reactivate { actor } if !team.is_active => {
                Ok(vec![E::TeamReactivated(activity(actor))])
            }
            C::Deactivate { .. } | C::Reactivate { .. } => Ok(Vec::new()),
        }
    }

    fn evolve(&mut self, event: &TeamEvent) {
        if let (None, TeamEvent::TeamCreated(e)) = (&self.state, event) {
            self.state = Some(Team {
                id: e.id,
                name: e.name.clone(),
                manager_id: e.manager_id,
                description: e.description.clone(),
                members: BTreeSet::new(),
                is_active: true,
                created_at: e.at,
                updated_at: e.at,
            });
            return;
        }
        let Some(t) = self.state.as_mut() else {
            return;
        };
        t.updated_at = event.at();
        match event {
            TeamEvent::TeamCreated(_) => {}
            TeamEvent::TeamUpdated(e) => {
                let c = &e.changes;
                if let Some(x) = &c.name {
                    t.name = x.new.clone();
                }
                if let Some(x) = &c.manager_id {
                    t.manager_id = x.new;
                }
                if let Some(x) = &c.description {
                    t.description = x.new.clone();
                }
            }
            TeamEvent::TeamMemberAdded(e) => {
                t.members.insert(e.user_id);
            }
            TeamEvent::TeamMemberRemoved(e) => {
                t.members.remove(&e.user_id);
            }
            TeamEvent::TeamDeactivated(_) => t.is_active = false,
            TeamEvent::TeamReactivated(_) => t.is_active = true,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::directory::fixtures::admin;
    use crate::testing::{assert_round_trip, given, test_now};
    use uuid::Uuid;

    fn at() -> DateTime<Utc> {
        test_now()
    }
    fn tname(s: &str) -> TeamName {
        TeamName::parse(s).unwrap()
    }
    fn user(n: u128) -> UserId {
        UserId(Uuid::from_u128(n))
    }
    fn created() -> TeamEvent {
        TeamEvent::TeamCreated(TeamCreated {
            id: TeamId(Uuid::from_u128(3)),
            name: tname("Network"),
            manager_id: Some(user(1)),
            description: None,
            actor: admin(),
            at: at(),
        })
    }
    fn member_added(n: u128) -> TeamEvent {
        TeamEvent::TeamMemberAdded(TeamMembershipChanged {
            user_id: user(n),
            actor: admin(),
            at: at(),
        })
    }
    fn deactivated() -> TeamEvent {
        TeamEvent::TeamDeactivated(TeamActivityChanged {
            actor: admin(),
            at: at(),
        })
    }
    fn create() -> TeamCommand {
        TeamCommand::Create {
            id: TeamId(Uuid::from_u128(3)),
            name: tname("Network"),
            manager_id: Some(user(1)),
            description: None,
            actor: admin(),
        }
    }

    #[test]
    fn create_team() {
        let s = given::<TeamAggregate>([]).when(create()).then([created()]);
        let t = s.state.unwrap();
        assert!(t.is_active && t.members.is_empty());
    }

    #[test]
    fn create_twice_is_rejected() {
        given::<TeamAggregate>([created()])
            .when(create())
            .then_err(TeamError::AlreadyExists);
    }

    #[test]
    fn commands_on_missing_team_are_not_found() {
        for cmd in [
            TeamCommand::Update {
                name: None,
                manager_id: None,
                description: None,
                actor: admin(),
            },
            TeamCommand::AddMember {
                user_id: user(2),
                actor: admin(),
            },
            TeamCommand::RemoveMember {
                user_id: user(2),
                actor: admin(),
            },
            TeamCommand::Deactivate { actor: admin() },
            TeamCommand::Reactivate { actor: admin() },
        ] {
            given::<TeamAggregate>([])
                .when(cmd)
                .then_err(TeamError::NotFound);
        }
    }

    #[test]
    fn update_team() {
        let d = Description::parse("Routers and switches").unwrap();
        let s = given::<TeamAggregate>([created()])
            .when(TeamCommand::Update {
                name: Some(tname("Networking")),
                manager_id: Some(None),
                description: Some(Some(d.clone())),
                actor: admin(),
            })
            .then([TeamEvent::TeamUpdated(TeamUpdated {
                changes: TeamChanges {
                    name: Some(Change {
                        old: tname("Network"),
                        new: tname("Networking"),
                    }),
                    manager_id: Some(Change {
                        old: Some(user(1)),
                        new: None,
                    }),
                    description: Some(Change {
                        old: None,
                        new: Some(d.clone()),
                    }),
                },
                actor: admin(),
                at: at(),
            })]);
        let t = s.state.unwrap();
        assert_eq!(t.name, tname("Networking"));
        assert_eq!(t.manager_id, None);
        assert_eq!(t.description, Some(d));
        given::<TeamAggregate>([created()])
            .when(TeamCommand::Update {
                name: Some(tname("Network")),
                manager_id: Some(Some(user(1))),
                description: Some(None),
                actor: admin(),
            })
            .then_nothing();
    }

    #[test]
    fn members() {
        let s = given::<TeamAggregate>([created()])
            .when(TeamCommand::AddMember {
                user_id: user(2),
                actor: admin(),
            })
            .then([member_added(2)]);
        assert!(s.state.unwrap().members.contains(&user(2)));
        given::<TeamAggregate>([created(), member_added(2)])
            .when(TeamCommand::AddMember {
                user_id: user(2),
                actor: admin(),
            })
            .then_nothing();
        let s = given::<TeamAggregate>([created(), member_added(2)])
            .when(TeamCommand::RemoveMember {
                user_id: user(2),
                actor: admin(),
            })
            .then([TeamEvent::TeamMemberRemoved(TeamMembershipChanged {
                user_id: user(2),
                actor: admin(),
                at: at(),
            })]);
        assert!(s.state.unwrap().members.is_empty());
        given::<TeamAggregate>([created()])
            .when(TeamCommand::RemoveMember {
                user_id: user(2),
                actor: admin(),
            })
            .then_nothing();
    }

    #[test]
    fn deactivate_and_reactivate() {
        let s = given::<TeamAggregate>([created()])
            .when(TeamCommand::Deactivate { actor: admin() })
            .then([deactivated()]);
        assert!(!s.state.unwrap().is_active);
        given::<TeamAggregate>([created(), deactivated()])
            .when(TeamCommand::Deactivate { actor: admin() })
            .then_nothing();
        let s = given::<TeamAggregate>([created(), deactivated()])
            .when(TeamCommand::Reactivate { actor: admin() })
            .then([TeamEvent::TeamReactivated(TeamActivityChanged {
                actor: admin(),
                at: at(),
            })]);
        assert!(s.state.unwrap().is_active);
        given::<TeamAggregate>([created()])
            .when(TeamCommand::Reactivate { actor: admin() })
            .then_nothing();
    }

    #[test]
    fn deactivated_team_rejects_changes() {
        for cmd in [
            TeamCommand::Update {
                name: Some(tname("X")),
                manager_id: None,
                description: None,
                actor: admin(),
            },
            TeamCommand::AddMember {
                user_id: user(2),
                actor: admin(),
            },
            TeamCommand::RemoveMember {
                user_id: user(2),
                actor: admin(),
            },
        ] {
            given::<TeamAggregate>([created(), deactivated()])
                .when(cmd)
                .then_err(TeamError::Deactivated);
        }
    }

    #[test]
    fn events_round_trip() {
        let events = [
            created(),
            TeamEvent::TeamUpdated(TeamUpdated {
                changes: TeamChanges {
                    name: Some(Change {
                        old: tname("A"),
                        new: tname("B"),
                    }),
                    ..Default::default()
                },
                actor: admin(),
                at: at(),
            }),
            member_added(2),
            TeamEvent::TeamMemberRemoved(TeamMembershipChanged {
                user_id: user(2),
                actor: admin(),
                at: at(),
            }),
            deactivated(),
            TeamEvent::TeamReactivated(TeamActivityChanged {
                actor: admin(),
                at: at(),
            }),
        ];
        let types: Vec<_> = events.iter().map(DomainEvent::event_type).collect();
        assert_eq!(types, TeamEvent::EVENT_TYPES);
        for e in &events {
            assert_round_trip(e);
            assert_eq!(e.actor(), admin());
            assert_eq!(e.at(), at());
        }
    }
}

//! The tenant aggregate (`stream_type = "tenant"`): an organisation and its settings.

use crate::actor::Actor;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::change::Change;
use crate::ids::TenantId;
use crate::priority::PriorityMatrix;
use crate::values::TenantName;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Per-tenant settings. New settings get a `#[serde(default)]` so old events still decode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    /// Impact × urgency → priority for incidents without an explicit priority.
    #[serde(default)]
    pub priority_matrix: PriorityMatrix,
}

/// A request to change a tenant.
#[derive(Debug, Clone, PartialEq)]
pub enum TenantCommand {
    /// Create the organisation.
    Create {
        /// Id (= stream id).
        id: TenantId,
        /// Display name.
        name: TenantName,
        /// Priority matrix; `None` = the ITIL default.
        priority_matrix: Option<PriorityMatrix>,
        /// Who.
        actor: Actor,
    },
    /// Change the display name.
    Rename {
        /// New name.
        name: TenantName,
        /// Who.
        actor: Actor,
    },
    /// Replace the settings.
    UpdateSettings {
        /// New priority matrix.
        priority_matrix: PriorityMatrix,
        /// Who.
        actor: Actor,
    },
    /// Suspend the organisation.
    Deactivate {
        /// Who.
        actor: Actor,
    },
    /// Lift a suspension.
    Reactivate {
        /// Who.
        actor: Actor,
    },
}

/// A tenant was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantCreated {
    /// Id.
    pub id: TenantId,
    /// Name.
    pub name: TenantName,
    /// Settings (the default matrix is written out explicitly).
    pub settings: TenantSettings,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A tenant was renamed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantRenamed {
    /// Old and new name.
    pub name: Change<TenantName>,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A tenant's settings changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantSettingsUpdated {
    /// Old and new priority matrix.
    pub priority_matrix: Change<PriorityMatrix>,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A tenant was deactivated or reactivated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantActivityChanged {
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Everything that can happen to a tenant (`{"type", "data"}`; `type` is the variant name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
#[allow(clippy::enum_variant_names)] // the shared prefix makes stored type names unique
pub enum TenantEvent {
    /// See [`TenantCreated`].
    TenantCreated(TenantCreated),
    /// See [`TenantRenamed`].
    TenantRenamed(TenantRenamed),
    /// See [`TenantSettingsUpdated`].
    TenantSettingsUpdated(TenantSettingsUpdated),
    /// The tenant was deactivated.
    TenantDeactivated(TenantActivityChanged),
    /// The tenant was reactivated.
    TenantReactivated(TenantActivityChanged),
}

impl TenantEvent {
    /// Every `event_type` of this aggregate.
    pub const EVENT_TYPES: &'static [&'static str] = &[
        "TenantCreated",
        "TenantRenamed",
        "TenantSettingsUpdated",
        "TenantDeactivated",
        "TenantReactivated",
    ];

    /// Who caused the event.
    pub fn actor(&self) -> Actor {
        match self {
            Self::TenantCreated(e) => e.actor,
            Self::TenantRenamed(e) => e.actor,
            Self::TenantSettingsUpdated(e) => e.actor,
            Self::TenantDeactivated(e) | Self::TenantReactivated(e) => e.actor,
        }
    }

    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::TenantCreated(e) => e.at,
            Self::TenantRenamed(e) => e.at,
            Self::TenantSettingsUpdated(e) => e.at,
            Self::TenantDeactivated(e) | Self::TenantReactivated(e) => e.at,
        }
    }
}

impl DomainEvent for TenantEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::TenantCreated(_) => "TenantCreated",
            Self::TenantRenamed(_) => "TenantRenamed",
            Self::TenantSettingsUpdated(_) => "TenantSettingsUpdated",
            Self::TenantDeactivated(_) => "TenantDeactivated",
            Self::TenantReactivated(_) => "TenantReactivated",
        }
    }
}

/// Why a tenant command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    /// The tenant has not been created.
    #[error("tenant not found")]
    NotFound,
    /// `Create` on an existing tenant.
    #[error("tenant already exists")]
    AlreadyExists,
    /// The tenant is deactivated.
    #[error("tenant is deactivated")]
    Deactivated,
}

impl TenantError {
    /// A stable machine-readable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::Deactivated => "deactivated",
        }
    }
}

/// The state of a created tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    /// Id.
    pub id: TenantId,
    /// Name.
    pub name: TenantName,
    /// Settings.
    pub settings: TenantSettings,
    /// Whether the tenant is active.
    pub is_active: bool,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
}

/// The tenant aggregate: `None` until created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantAggregate {
    /// The tenant, once created.
    pub state: Option<Tenant>,
}

impl Aggregate for TenantAggregate {
    const STREAM_TYPE: &'static str = "tenant";
    type Command = TenantCommand;
    type Event = TenantEvent;
    type Error = TenantError;

    fn decide(
        &self,
        command: TenantCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<TenantEvent>, TenantError> {
        use TenantCommand as C;
        use TenantEvent as E;
        let Some(tenant) = &self.state else {
            return match command {
                C::Create {
                    id,
                    name,
                    priority_matrix,
                    actor,
                } => Ok(vec![E::TenantCreated(TenantCreated {
                    id,
                    name,
                    settings: TenantSettings {
                        priority_matrix: priority_matrix.unwrap_or_default(),
                    },
                    actor,
                    at: now,
                })]),
                _ => Err(TenantError::NotFound),
            };
        };
        let ensure_active = || {
            if tenant.is_active {
                Ok(())
            } else {
                Err(TenantError::Deactivated)
            }
        };
        let activity = |actor| TenantActivityChanged { actor, at: now };
        match command {
            C::Create { .. } => Err(TenantError::AlreadyExists),
            C::Rename { name, actor } => {
                ensure_active()?;
                Ok(Change::between(tenant.name.clone(), name)
                    .map(|name| {
                        E::TenantRenamed(TenantRenamed {
                            name,
                            actor,
                            at: now,
                        })
                    })
                    .into_iter()
                    .collect())
            }
            C::UpdateSettings {
                priority_matrix,
                actor,
            } => {
                ensure_active()?;
                Ok(
                    Change::between(tenant.settings.priority_matrix, priority_matrix)
                        .map(|priority_matrix| {
                            E::TenantSettingsUpdated(TenantSettingsUpdated {
                                priority_matrix,
                                actor,
                                at: now,
                            })
                        })
                        .into_iter()
                        .collect(),
                )
            }
            C::Deactivate { actor } if tenant.is_active => {
                Ok(vec![E::TenantDeactivated(activity(actor))])
            }
            C::Reactivate { actor } if !tenant.is_active => {
                Ok(vec![E::TenantReactivated(activity(actor))])
            }
            C::Deactivate { .. } | C::Reactivate { .. } => Ok(Vec::new()),
        }
    }

    fn evolve(&mut self, event: &TenantEvent) {
        if let (None, TenantEvent::TenantCreated(e)) = (&self.state, event) {
            self.state = Some(Tenant {
                id: e.id,
                name: e.name.clone(),
                settings: e.settings.clone(),
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
            TenantEvent::TenantCreated(_) => {}
            TenantEvent::TenantRenamed(e) => t.name = e.name.new.clone(),
            TenantEvent::TenantSettingsUpdated(e) => {
                t.settings.priority_matrix = e.priority_matrix.new;
            }
            TenantEvent::TenantDeactivated(_) => t.is_active = false,
            TenantEvent::TenantReactivated(_) => t.is_active = true,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::directory::fixtures::admin;
    use crate::testing::{assert_round_trip, given, test_now};
    use crate::values::{Impact, Priority, Urgency};
    use uuid::Uuid;

    fn id() -> TenantId {
        TenantId(Uuid::from_u128(1))
    }
    fn name(s: &str) -> TenantName {
        TenantName::parse(s).unwrap()
    }
    fn at() -> DateTime<Utc> {
        test_now()
    }
    fn created() -> TenantEvent {
        TenantEvent::TenantCreated(TenantCreated {
            id: id(),
            name: name("Acme"),
            settings: TenantSettings::default(),
            actor: admin(),
            at: at(),
        })
    }
    fn deactivated() -> TenantEvent {
        TenantEvent::TenantDeactivated(TenantActivityChanged {
            actor: admin(),
            at: at(),
        })
    }
    fn custom_matrix() -> PriorityMatrix {
        PriorityMatrix::ITIL.with(Impact::Low, Urgency::Low, Priority::High)
    }

    #[test]
    fn create_with_default_matrix() {
        let s = given::<TenantAggregate>([])
            .when(TenantCommand::Create {
                id: id(),
                name: name("Acme"),
                priority_matrix: None,
                actor: admin(),
            })
            .then([created()]);
        let t = s.state.unwrap();
        assert!(t.is_active);
        assert_eq!(t.settings.priority_matrix, PriorityMatrix::ITIL);
    }

    #[test]
    fn create_with_custom_matrix() {
        given::<TenantAggregate>([])
            .when(TenantCommand::Create {
                id: id(),
                name: name("Acme"),
                priority_matrix: Some(custom_matrix()),
                actor: admin(),
            })
            .then([TenantEvent::TenantCreated(TenantCreated {
                id: id(),
                name: name("Acme"),
                settings: TenantSettings {
                    priority_matrix: custom_matrix(),
                },
                actor: admin(),
                at: at(),
            })]);
    }

    #[test]
    fn create_twice_is_rejected() {
        given::<TenantAggregate>([created()])
            .when(TenantCommand::Create {
                id: id(),
                name: name("Acme"),
                priority_matrix: None,
                actor: admin(),
            })
            .then_err(TenantError::AlreadyExists);
    }

    #[test]
    fn commands_on_missing_tenant_are_not_found() {
        for cmd in [
            TenantCommand::Rename {
                name: name("X"),
                actor: admin(),
            },
            TenantCommand::UpdateSettings {
                priority_matrix: custom_matrix(),
                actor: admin(),
            },
            TenantCommand::Deactivate { actor: admin() },
            TenantCommand::Reactivate { actor: admin() },
        ] {
            given::<TenantAggregate>([])
                .when(cmd)
                .then_err(TenantError::NotFound);
        }
    }

    #[test]
    fn rename() {
        let s = given::<TenantAggregate>([created()])
            .when(TenantCommand::Rename {
                name: name("Acme Corp"),
                actor: admin(),
            })
            .then([TenantEvent::TenantRenamed(TenantRenamed {
                name: Change {
                    old: name("Acme"),
                    new: name("Acme Corp"),
                },
                actor: admin(),
                at: at(),
            })]);
        assert_eq!(s.state.unwrap().name, name("Acme Corp"));
        given::<TenantAggregate>([created()])
            .when(TenantCommand::Rename {
                name: name("Acme"),
                actor: admin(),
            })
            .then_nothing();
    }

    #[test]
    fn update_settings() {
        let s = given::<TenantAggregate>([created()])
            .when(TenantCommand::UpdateSettings {
                priority_matrix: custom_matrix(),
                actor: admin(),
            })
            .then([TenantEvent::TenantSettingsUpdated(TenantSettingsUpdated {
                priority_matrix: Change {
                    old: PriorityMatrix::ITIL,
                    new: custom_matrix(),
                },
                actor: admin(),
                at: at(),
            })]);
        assert_eq!(s.state.unwrap().settings.priority_matrix, custom_matrix());
        given::<TenantAggregate>([created()])
            .when(TenantCommand::UpdateSettings {
                priority_matrix: PriorityMatrix::ITIL,
                actor: admin(),
            })
            .then_nothing();
    }

    #[test]
    fn deactivate_and_reactivate() {
        let s = given::<TenantAggregate>([created()])
            .when(TenantCommand::Deactivate { actor: admin() })
            .then([deactivated()]);
        assert!(!s.state.unwrap().is_active);
        given::<TenantAggregate>([created(), deactivated()])
            .when(TenantCommand::Deactivate { actor: admin() })
            .then_nothing();
        let s = given::<TenantAggregate>([created(), deactivated()])
            .when(TenantCommand::Reactivate { actor: admin() })
            .then([TenantEvent::TenantReactivated(TenantActivityChanged {
                actor: admin(),
                at: at(),
            })]);
        assert!(s.state.unwrap().is_active);
        given::<TenantAggregate>([created()])
            .when(TenantCommand::Reactivate { actor: admin() })
            .then_nothing();
    }

    #[test]
    fn deactivated_tenant_rejects_changes() {
        given::<TenantAggregate>([created(), deactivated()])
            .when(TenantCommand::Rename {
                name: name("New"),
                actor: admin(),
            })
            .then_err(TenantError::Deactivated);
        given::<TenantAggregate>([created(), deactivated()])
            .when(TenantCommand::UpdateSettings {
                priority_matrix: custom_matrix(),
                actor: admin(),
            })
            .then_err(TenantError::Deactivated);
    }

    #[test]
    fn events_round_trip() {
        let events = [
            created(),
            TenantEvent::TenantRenamed(TenantRenamed {
                name: Change {
                    old: name("A"),
                    new: name("B"),
                },
                actor: admin(),
                at: at(),
            }),
            TenantEvent::TenantSettingsUpdated(TenantSettingsUpdated {
                priority_matrix: Change {
                    old: PriorityMatrix::ITIL,
                    new: custom_matrix(),
                },
                actor: admin(),
                at: at(),
            }),
            deactivated(),
            TenantEvent::TenantReactivated(TenantActivityChanged {
                actor: admin(),
                at: at(),
            }),
        ];
        let types: Vec<_> = events.iter().map(DomainEvent::event_type).collect();
        assert_eq!(types, TenantEvent::EVENT_TYPES);
        for e in &events {
            assert_round_trip(e);
            assert_eq!(e.actor(), admin());
            assert_eq!(e.at(), at());
        }
    }

    #[test]
    fn settings_default_when_absent_in_old_events() {
        let data = serde_json::json!({
            "id": id(), "name": "Acme", "settings": {},
            "actor": {"kind": "system"}, "at": "2025-01-06T09:00:00Z"
        });
        let e = TenantEvent::decode("TenantCreated", &data).unwrap();
        let TenantEvent::TenantCreated(c) = e else {
            panic!("wrong variant")
        };
        assert_eq!(c.settings.priority_matrix, PriorityMatrix::ITIL);
    }
}

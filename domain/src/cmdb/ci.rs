//! The configuration item aggregate (`stream_type = "ci"`).
//!
//! - `Create` validates the attributes against the schema of the CI's type (passed in the
//!   command by the command layer) and refuses `retired` as a starting status.
//! - `Update` changes name, description, attributes (the whole object is replaced and
//!   re-validated), owner team and status among `planned`, `active` and `maintenance`;
//!   a change that changes nothing emits nothing. The type of a CI never changes.
//! - `Retire` moves any status to `retired` (final); retiring twice emits nothing. A retired
//!   CI accepts no update, and no new relationship (see [`super::relationship`]).

use super::schema::{
    Attributes, CiName, CiSchema, CiStatus, CiTypeKey, FieldIssue, describe_issues,
};
use crate::actor::Actor;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::change::Change;
use crate::ids::{CiId, TeamId};
use crate::values::Description;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A request to change a configuration item.
#[derive(Debug, Clone, PartialEq)]
pub enum CiCommand {
    /// Register the CI.
    Create {
        /// Id (= stream id).
        id: CiId,
        /// Its type's key.
        ci_type: CiTypeKey,
        /// Its type's schema (the command layer looks it up).
        schema: CiSchema,
        /// Name.
        name: CiName,
        /// Description.
        description: Option<Description>,
        /// Attributes as given (validated here against `schema`).
        attributes: Map<String, Value>,
        /// The team that owns it.
        owner_team_id: Option<TeamId>,
        /// Starting status (not `retired`).
        status: CiStatus,
        /// Who.
        actor: Actor,
    },
    /// Edit; `None` keeps a field, `Some(None)` clears an optional one.
    Update {
        /// New name.
        name: Option<CiName>,
        /// New description.
        description: Option<Option<Description>>,
        /// New attributes: replaces the whole object.
        attributes: Option<Map<String, Value>>,
        /// The schema of the CI's type, for `attributes`.
        schema: CiSchema,
        /// New owner team.
        owner_team_id: Option<Option<TeamId>>,
        /// New status (not `retired`: use `Retire`).
        status: Option<CiStatus>,
        /// Who.
        actor: Actor,
    },
    /// Decommission it (final).
    Retire {
        /// Who.
        actor: Actor,
    },
}

/// A CI was registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CiCreated {
    /// Id.
    pub id: CiId,
    /// Type key.
    pub ci_type: CiTypeKey,
    /// Name.
    pub name: CiName,
    /// Description.
    pub description: Option<Description>,
    /// Validated attributes.
    pub attributes: Attributes,
    /// Owner team.
    pub owner_team_id: Option<TeamId>,
    /// Status.
    pub status: CiStatus,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// The changes of one [`CiUpdated`]; absent = unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CiChanges {
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Change<CiName>>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Change<Option<Description>>>,
    /// Attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Change<Attributes>>,
    /// Owner team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_team_id: Option<Change<Option<TeamId>>>,
    /// Status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Change<CiStatus>>,
}

impl CiChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A CI was edited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CiUpdated {
    /// What changed.
    pub changes: CiChanges,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A CI was retired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CiRetired {
    /// The status before.
    pub from: CiStatus,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Everything that can happen to a CI (`{"type", "data"}`; `type` is the variant name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
#[allow(clippy::enum_variant_names)] // the shared prefix makes stored type names unique
pub enum CiEvent {
    /// See [`CiCreated`].
    CiCreated(CiCreated),
    /// See [`CiUpdated`].
    CiUpdated(CiUpdated),
    /// See [`CiRetired`].
    CiRetired(CiRetired),
}

impl CiEvent {
    /// Every `event_type` of this aggregate.
    pub const EVENT_TYPES: &'static [&'static str] = &["CiCreated", "CiUpdated", "CiRetired"];

    /// Who caused the event.
    pub fn actor(&self) -> Actor {
        match self {
            Self::CiCreated(e) => e.actor,
            Self::CiUpdated(e) => e.actor,
            Self::CiRetired(e) => e.actor,
        }
    }

    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::CiCreated(e) => e.at,
            Self::CiUpdated(e) => e.at,
            Self::CiRetired(e) => e.at,
        }
    }
}

impl DomainEvent for CiEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::CiCreated(_) => "CiCreated",
            Self::CiUpdated(_) => "CiUpdated",
            Self::CiRetired(_) => "CiRetired",
        }
    }
}

/// Why a CI command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CiError {
    /// The CI has not been registered.
    #[error("configuration item not found")]
    NotFound,
    /// `Create` on an existing CI.
    #[error("configuration item already exists")]
    AlreadyExists,
    /// The CI is retired and accepts no change.
    #[error("the configuration item is retired")]
    Retired,
    /// `retired` given as a status to `Create` or `Update`.
    #[error("status {status} cannot be set directly; retire the configuration item instead")]
    InvalidStatus {
        /// The refused status.
        status: CiStatus,
    },
    /// The attributes do not match the type's schema.
    #[error("invalid attributes: {}", describe_issues(.0))]
    InvalidAttributes(Vec<FieldIssue>),
}

impl CiError {
    /// A stable machine-readable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::Retired => "ci_retired",
            Self::InvalidStatus { .. } => "invalid_status",
            Self::InvalidAttributes(_) => "validation_error",
        }
    }
}

/// The state of a registered CI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ci {
    /// Id.
    pub id: CiId,
    /// Type key.
    pub ci_type: CiTypeKey,
    /// Name.
    pub name: CiName,
    /// Description.
    pub description: Option<Description>,
    /// Attributes.
    pub attributes: Attributes,
    /// Owner team.
    pub owner_team_id: Option<TeamId>,
    /// Status.
    pub status: CiStatus,
    /// When registered.
    pub created_at: DateTime<Utc>,
    /// Who registered it.
    pub created_by: Actor,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
    /// Who last changed it.
    pub updated_by: Actor,
    /// When retired.
    pub retired_at: Option<DateTime<Utc>>,
}

/// The CI aggregate: `None` until created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CiAggregate {
    /// The CI, once created.
    pub state: Option<Ci>,
}

fn validated(schema: &CiSchema, attributes: &Map<String, Value>) -> Result<Attributes, CiError> {
    schema
        .validate(attributes, "attributes")
        .map_err(CiError::InvalidAttributes)
}

impl Aggregate for CiAggregate {
    const STREAM_TYPE: &'static str = "ci";
    type Command = CiCommand;
    type Event = CiEvent;
    type Error = CiError;

    fn decide(&self, command: CiCommand, now: DateTime<Utc>) -> Result<Vec<CiEvent>, CiError> {
        use CiCommand as C;
        use CiEvent as E;
        let Some(ci) = &self.state else {
            return match command {
                C::Create {
                    id,
                    ci_type,
                    schema,
                    name,
                    description,
                    attributes,
                    owner_team_id,
                    status,
                    actor,
                } => {
                    if status == CiStatus::Retired {
                        return Err(CiError::InvalidStatus { status });
                    }
                    let attributes = validated(&schema, &attributes)?;
                    Ok(vec![E::CiCreated(CiCreated {
                        id,
                        ci_type,
                        name,
                        description,
                        attributes,
                        owner_team_id,
                        status,
                        actor,
                        at: now,
                    })])
                }
                _ => Err(CiError::NotFound),
            };
        };
        match command {
            C::Create { .. } => Err(CiError::AlreadyExists),
            C::Update {
                name,
                description,
                attributes,
                schema,
                owner_team_id,
                status,
                actor,
            } => {
                if ci.status == CiStatus::Retired {
                    return Err(CiError::Retired);
                }
                if let Some(s @ CiStatus::Retired) = status {
                    return Err(CiError::InvalidStatus { status: s });
                }
                let attributes = attributes.map(|a| validated(&schema, &a)).transpose()?;
                let changes = CiChanges {
                    name: name.and_then(|v| Change::between(ci.name.clone(), v)),
                    description: description
                        .and_then(|v| Change::between(ci.description.clone(), v)),
                    attributes: attributes.and_then(|v| Change::between(ci.attributes.clone(), v)),
                    owner_team_id: owner_team_id.and_then(|v| Change::between(ci.owner_team_id, v)),
                    status: status.and_then(|v| Change::between(ci.status, v)),
                };
                if changes.is_empty() {
                    return Ok(Vec::new());
                }
                Ok(vec![E::CiUpdated(CiUpdated {
                    changes,
                    actor,
                    at: now,
                })])
            }
            C::Retire { .. } if ci.status == CiStatus::Retired => Ok(Vec::new()),
            C::Retire { actor } => Ok(vec![E::CiRetired(CiRetired {
                from: ci.status,
                actor,
                at: now,
            })]),
        }
    }

    fn evolve(&mut self, event: &CiEvent) {
        if let (None, CiEvent::CiCreated(e)) = (&self.state, event) {
            self.state = Some(Ci {
                id: e.id,
                ci_type: e.ci_type.clone(),
                name: e.name.clone(),
                description: e.description.clone(),
                attributes: e.attributes.clone(),
                owner_team_id: e.owner_team_id,
                status: e.status,
                created_at: e.at,
                created_by: e.actor,
                updated_at: e.at,
                updated_by: e.actor,
                retired_at: None,
            });
            return;
        }
        let Some(ci) = self.state.as_mut() else {
            return;
        };
        ci.updated_at = event.at();
        ci.updated_by = event.actor();
        match event {
            CiEvent::CiCreated(_) => {}
            CiEvent::CiUpdated(e) => {
                let c = &e.changes;
                if let Some(x) = &c.name {
                    ci.name = x.new.clone();
                }
                if let Some(x) = &c.description {
                    ci.description = x.new.clone();
                }
                if let Some(x) = &c.attributes {
                    ci.attributes = x.new.clone();
                }
                if let Some(x) = &c.owner_team_id {
                    ci.owner_team_id = x.new;
                }
                if let Some(x) = &c.status {
                    ci.status = x.new;
                }
            }
            CiEvent::CiRetired(e) => {
                ci.status = CiStatus::Retired;
                ci.retired_at = Some(e.at);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cmdb::fixtures::admin;
    use crate::cmdb::schema::BuiltinCiType;
    use crate::testing::{assert_round_trip, given, test_now};
    use serde_json::json;
    use uuid::Uuid;

    fn at() -> DateTime<Utc> {
        test_now()
    }
    fn name(s: &str) -> CiName {
        CiName::parse(s).unwrap()
    }
    fn server() -> CiTypeKey {
        CiTypeKey::builtin(BuiltinCiType::Server)
    }
    fn schema() -> CiSchema {
        BuiltinCiType::Server.schema()
    }
    fn team(n: u128) -> TeamId {
        TeamId(Uuid::from_u128(n))
    }
    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }
    fn attrs(v: Value) -> Attributes {
        Attributes(obj(v))
    }
    fn create() -> CiCommand {
        CiCommand::Create {
            id: CiId(Uuid::from_u128(7)),
            ci_type: server(),
            schema: schema(),
            name: name("web-01"),
            description: None,
            attributes: obj(json!({"ip_address": "10.0.0.1", "cpu_cores": 4})),
            owner_team_id: Some(team(1)),
            status: CiStatus::Active,
            actor: admin(),
        }
    }
    fn created() -> CiEvent {
        CiEvent::CiCreated(CiCreated {
            id: CiId(Uuid::from_u128(7)),
            ci_type: server(),
            name: name("web-01"),
            description: None,
            attributes: attrs(json!({"ip_address": "10.0.0.1", "cpu_cores": 4})),
            owner_team_id: Some(team(1)),
            status: CiStatus::Active,
            actor: admin(),
            at: at(),
        })
    }
    fn retired() -> CiEvent {
        CiEvent::CiRetired(CiRetired {
            from: CiStatus::Active,
            actor: admin(),
            at: at(),
        })
    }
    fn update() -> CiCommand {
        CiCommand::Update {
            name: None,
            description: None,
            attributes: None,
            schema: schema(),
            owner_team_id: None,
            status: None,
            actor: admin(),
        }
    }

    #[test]
    fn create_ci() {
        let s = given::<CiAggregate>([]).when(create()).then([created()]);
        let ci = s.state.unwrap();
        assert_eq!(ci.status, CiStatus::Active);
        assert_eq!(ci.attributes.0["cpu_cores"], json!(4));
        assert_eq!(ci.retired_at, None);
    }

    #[test]
    fn create_normalises_attributes() {
        let mut cmd = create();
        if let CiCommand::Create { attributes, .. } = &mut cmd {
            *attributes = obj(json!({"ip_address": "2001:DB8:0:0:0:0:0:1", "os": null}));
        }
        let (_, r) = given::<CiAggregate>([]).when(cmd).into_parts();
        let events = r.unwrap();
        let CiEvent::CiCreated(e) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(e.attributes, attrs(json!({"ip_address": "2001:db8::1"})));
    }

    #[test]
    fn create_rejects_bad_attributes_naming_each() {
        let mut cmd = create();
        if let CiCommand::Create { attributes, .. } = &mut cmd {
            *attributes = obj(json!({"ip_address": "nope", "colour": "red"}));
        }
        given::<CiAggregate>([])
            .when(cmd)
            .then_err(CiError::InvalidAttributes(vec![
                FieldIssue::new(
                    "attributes.colour",
                    "is not an attribute of this type (known: cpu_cores, environment, \
                     hostname, ip_address, is_virtual, memory_gb, os)",
                ),
                FieldIssue::new("attributes.ip_address", "must be an IPv4 or IPv6 address"),
            ]));
        let mut cmd = create();
        if let CiCommand::Create {
            schema, attributes, ..
        } = &mut cmd
        {
            *schema = BuiltinCiType::Database.schema();
            *attributes = Map::new();
        }
        given::<CiAggregate>([])
            .when(cmd)
            .then_err(CiError::InvalidAttributes(vec![FieldIssue::new(
                "attributes.engine",
                "is required",
            )]));
    }

    #[test]
    fn create_rejects_retired_and_existing() {
        let mut cmd = create();
        if let CiCommand::Create { status, .. } = &mut cmd {
            *status = CiStatus::Retired;
        }
        given::<CiAggregate>([])
            .when(cmd)
            .then_err(CiError::InvalidStatus {
                status: CiStatus::Retired,
            });
        given::<CiAggregate>([created()])
            .when(create())
            .then_err(CiError::AlreadyExists);
    }

    #[test]
    fn commands_on_a_missing_ci_are_not_found() {
        for cmd in [update(), CiCommand::Retire { actor: admin() }] {
            given::<CiAggregate>([])
                .when(cmd)
                .then_err(CiError::NotFound);
        }
    }

    #[test]
    fn update_ci() {
        let d = Description::parse("Front web server").unwrap();
        let s = given::<CiAggregate>([created()])
            .when(CiCommand::Update {
                name: Some(name("web-01a")),
                description: Some(Some(d.clone())),
                attributes: Some(obj(json!({"hostname": "web01a"}))),
                schema: schema(),
                owner_team_id: Some(None),
                status: Some(CiStatus::Maintenance),
                actor: admin(),
            })
            .then([CiEvent::CiUpdated(CiUpdated {
                changes: CiChanges {
                    name: Some(Change {
                        old: name("web-01"),
                        new: name("web-01a"),
                    }),
                    description: Some(Change {
                        old: None,
                        new: Some(d.clone()),
                    }),
                    attributes: Some(Change {
                        old: attrs(json!({"ip_address": "10.0.0.1", "cpu_cores": 4})),
                        new: attrs(json!({"hostname": "web01a"})),
                    }),
                    owner_team_id: Some(Change {
                        old: Some(team(1)),
                        new: None,
                    }),
                    status: Some(Change {
                        old: CiStatus::Active,
                        new: CiStatus::Maintenance,
                    }),
                },
                actor: admin(),
                at: at(),
            })]);
        let ci = s.state.unwrap();
        assert_eq!(ci.name, name("web-01a"));
        assert_eq!(ci.description, Some(d));
        assert_eq!(ci.owner_team_id, None);
        assert_eq!(ci.status, CiStatus::Maintenance);
        assert_eq!(ci.attributes, attrs(json!({"hostname": "web01a"})));
    }

    #[test]
    fn update_without_change_emits_nothing() {
        given::<CiAggregate>([created()])
            .when(CiCommand::Update {
                name: Some(name("web-01")),
                description: Some(None),
                attributes: Some(obj(json!({"cpu_cores": 4, "ip_address": "10.0.0.1"}))),
                schema: schema(),
                owner_team_id: Some(Some(team(1))),
                status: Some(CiStatus::Active),
                actor: admin(),
            })
            .then_nothing();
        given::<CiAggregate>([created()])
            .when(update())
            .then_nothing();
    }

    #[test]
    fn update_rejects_bad_attributes_and_retired_status() {
        let mut cmd = update();
        if let CiCommand::Update { attributes, .. } = &mut cmd {
            *attributes = Some(obj(json!({"cpu_cores": "four"})));
        }
        given::<CiAggregate>([created()])
            .when(cmd)
            .then_err(CiError::InvalidAttributes(vec![FieldIssue::new(
                "attributes.cpu_cores",
                "must be an integer (64-bit signed)",
            )]));
        let mut cmd = update();
        if let CiCommand::Update { status, .. } = &mut cmd {
            *status = Some(CiStatus::Retired);
        }
        given::<CiAggregate>([created()])
            .when(cmd)
            .then_err(CiError::InvalidStatus {
                status: CiStatus::Retired,
            });
    }

    #[test]
    fn retire_is_final_and_idempotent() {
        let s = given::<CiAggregate>([created()])
            .when(CiCommand::Retire { actor: admin() })
            .then([retired()]);
        let ci = s.state.unwrap();
        assert_eq!(ci.status, CiStatus::Retired);
        assert_eq!(ci.retired_at, Some(at()));
        given::<CiAggregate>([created(), retired()])
            .when(CiCommand::Retire { actor: admin() })
            .then_nothing();
        let mut cmd = update();
        if let CiCommand::Update { name: n, .. } = &mut cmd {
            *n = Some(name("again"));
        }
        given::<CiAggregate>([created(), retired()])
            .when(cmd)
            .then_err(CiError::Retired);
    }

    #[test]
    fn events_round_trip() {
        let events = [
            created(),
            CiEvent::CiUpdated(CiUpdated {
                changes: CiChanges {
                    status: Some(Change {
                        old: CiStatus::Active,
                        new: CiStatus::Planned,
                    }),
                    attributes: Some(Change {
                        old: Attributes::empty(),
                        new: attrs(json!({"os": "Linux"})),
                    }),
                    ..Default::default()
                },
                actor: admin(),
                at: at(),
            }),
            retired(),
        ];
        let types: Vec<_> = events.iter().map(DomainEvent::event_type).collect();
        assert_eq!(types, CiEvent::EVENT_TYPES);
        for e in &events {
            assert_round_trip(e);
            assert_eq!(e.actor(), admin());
            assert_eq!(e.at(), at());
        }
    }
}

//! The custom CI type aggregate (`stream_type = "ci_type"`): a tenant's own kind of
//! configuration item with its attribute schema. A type is defined once and not edited (its
//! CIs were validated against its schema); that its key is free in the tenant is checked by
//! the command layer, that it is not a built-in key here.

use super::schema::{BuiltinCiType, CiName, CiSchema, CiTypeKey};
use crate::actor::Actor;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::ids::CiTypeId;
use crate::values::Description;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A request about a custom CI type.
#[derive(Debug, Clone, PartialEq)]
pub enum CiTypeCommand {
    /// Define the type.
    Create {
        /// Id (= stream id).
        id: CiTypeId,
        /// Key (what CIs name as their `type`).
        key: CiTypeKey,
        /// Display name.
        name: CiName,
        /// Description.
        description: Option<Description>,
        /// Attribute schema.
        schema: CiSchema,
        /// Who.
        actor: Actor,
    },
}

/// A custom CI type was defined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CiTypeCreated {
    /// Id.
    pub id: CiTypeId,
    /// Key.
    pub key: CiTypeKey,
    /// Display name.
    pub name: CiName,
    /// Description.
    pub description: Option<Description>,
    /// Attribute schema.
    pub schema: CiSchema,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Everything that can happen to a CI type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum CiTypeEvent {
    /// See [`CiTypeCreated`].
    CiTypeCreated(CiTypeCreated),
}

impl CiTypeEvent {
    /// Every `event_type` of this aggregate.
    pub const EVENT_TYPES: &'static [&'static str] = &["CiTypeCreated"];
}

impl DomainEvent for CiTypeEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::CiTypeCreated(_) => "CiTypeCreated",
        }
    }
}

/// Why a CI type command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CiTypeError {
    /// The type has not been defined.
    #[error("configuration item type not found")]
    NotFound,
    /// `Create` on an existing type.
    #[error("configuration item type already exists")]
    AlreadyExists,
    /// The key is a built-in type's.
    #[error("{0} is a built-in type")]
    ReservedKey(CiTypeKey),
}

impl CiTypeError {
    /// A stable machine-readable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::ReservedKey(_) => "reserved_key",
        }
    }
}

/// The state of a defined custom type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CiType {
    /// Id.
    pub id: CiTypeId,
    /// Key.
    pub key: CiTypeKey,
    /// Display name.
    pub name: CiName,
    /// Description.
    pub description: Option<Description>,
    /// Attribute schema.
    pub schema: CiSchema,
    /// When defined.
    pub created_at: DateTime<Utc>,
    /// Who defined it.
    pub created_by: Actor,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
}

/// The CI type aggregate: `None` until created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CiTypeAggregate {
    /// The type, once defined.
    pub state: Option<CiType>,
}

impl Aggregate for CiTypeAggregate {
    const STREAM_TYPE: &'static str = "ci_type";
    type Command = CiTypeCommand;
    type Event = CiTypeEvent;
    type Error = CiTypeError;

    fn decide(
        &self,
        command: CiTypeCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<CiTypeEvent>, CiTypeError> {
        let CiTypeCommand::Create {
            id,
            key,
            name,
            description,
            schema,
            actor,
        } = command;
        if self.state.is_some() {
            return Err(CiTypeError::AlreadyExists);
        }
        if key.as_builtin().is_some() {
            return Err(CiTypeError::ReservedKey(key));
        }
        Ok(vec![CiTypeEvent::CiTypeCreated(CiTypeCreated {
            id,
            key,
            name,
            description,
            schema,
            actor,
            at: now,
        })])
    }

    fn evolve(&mut self, event: &CiTypeEvent) {
        match (&self.state, event) {
            (None, CiTypeEvent::CiTypeCreated(e)) => {
                self.state = Some(CiType {
                    id: e.id,
                    key: e.key.clone(),
                    name: e.name.clone(),
                    description: e.description.clone(),
                    schema: e.schema.clone(),
                    created_at: e.at,
                    created_by: e.actor,
                    updated_at: e.at,
                });
            }
            (Some(_), CiTypeEvent::CiTypeCreated(_)) => {}
        }
    }
}

/// What the command layer knows about a CI's type: its key and schema, built-in or custom.
#[derive(Debug, Clone, PartialEq)]
pub struct CiTypeInfo {
    /// Key.
    pub key: CiTypeKey,
    /// Schema.
    pub schema: CiSchema,
    /// The custom type's id (`None` for a built-in type).
    pub id: Option<CiTypeId>,
}

impl CiTypeInfo {
    /// A built-in type.
    pub fn builtin(t: BuiltinCiType) -> Self {
        Self {
            key: CiTypeKey::builtin(t),
            schema: t.schema(),
            id: None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cmdb::fixtures::admin;
    use crate::testing::{assert_round_trip, given, test_now};
    use serde_json::json;
    use uuid::Uuid;

    fn schema() -> CiSchema {
        CiSchema::parse(
            &json!({"vip": {"type": "ip", "required": true}}),
            "attributes",
        )
        .unwrap()
    }
    fn create(key: &str) -> CiTypeCommand {
        CiTypeCommand::Create {
            id: CiTypeId(Uuid::from_u128(5)),
            key: CiTypeKey::parse(key).unwrap(),
            name: CiName::parse("Load balancer").unwrap(),
            description: None,
            schema: schema(),
            actor: admin(),
        }
    }
    fn created() -> CiTypeEvent {
        CiTypeEvent::CiTypeCreated(CiTypeCreated {
            id: CiTypeId(Uuid::from_u128(5)),
            key: CiTypeKey::parse("load_balancer").unwrap(),
            name: CiName::parse("Load balancer").unwrap(),
            description: None,
            schema: schema(),
            actor: admin(),
            at: test_now(),
        })
    }

    #[test]
    fn create_type() {
        let s = given::<CiTypeAggregate>([])
            .when(create("load_balancer"))
            .then([created()]);
        let t = s.state.unwrap();
        assert_eq!(t.key.as_str(), "load_balancer");
        assert!(t.schema.0["vip"].required);
    }

    #[test]
    fn create_twice_is_rejected() {
        given::<CiTypeAggregate>([created()])
            .when(create("load_balancer"))
            .then_err(CiTypeError::AlreadyExists);
    }

    #[test]
    fn builtin_keys_are_reserved() {
        for t in BuiltinCiType::ALL {
            given::<CiTypeAggregate>([])
                .when(create(t.as_str()))
                .then_err(CiTypeError::ReservedKey(CiTypeKey::builtin(*t)));
        }
    }

    #[test]
    fn events_round_trip() {
        let e = created();
        assert_round_trip(&e);
        assert_eq!(vec![e.event_type()], CiTypeEvent::EVENT_TYPES);
        let info = CiTypeInfo::builtin(BuiltinCiType::Service);
        assert_eq!(info.key.as_str(), "service");
        assert!(info.id.is_none());
    }
}

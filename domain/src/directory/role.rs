//! The custom role aggregate (`stream_type = "role"`): a named set of `resource:action`
//! permissions that a tenant defines and assigns to its users instead of a built-in role.
//!
//! The domain does not know the permission matrix (it lives in `eventdesk-auth`, which depends
//! on the domain, not the other way round): a [`PermissionName`] is only checked to be
//! well-formed, and the command layer (the API) checks every permission against the matrix
//! before it builds a command. What the domain does enforce:
//!
//! - the name is a [`RoleName`]: 1..=100 characters, one line, and **not** a built-in role name
//!   (`admin`, `manager`, `operator`, `user`, `viewer`, compared case-insensitively);
//! - a custom role never holds the platform permission [`PLATFORM_PERMISSION`]
//!   (`tenant:manage`);
//! - a deactivated role accepts no change (deleting a role deactivates it; it stays readable,
//!   and its holders hold nothing while it is deactivated);
//! - nobody grants what they do not hold: a command carries what its actor may grant
//!   ([`Grantable`], the caller's own permissions), and every permission a create *adds*, or an
//!   update adds to the current set, must be among them ([`RoleError::NotGrantable`]). Keeping
//!   or removing a permission grants nothing and is not checked. Deciding this here, on the
//!   state the events are appended to, leaves no window between the check and the write.
//!
//! Uniqueness of names within a tenant needs other streams and is checked by the command layer
//! (`eventdesk_commands::role`).

use crate::actor::Actor;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::change::Change;
use crate::ids::RoleId;
use crate::values::{Description, Role, TeamName, ValidationError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// The platform permission, which no custom role may hold.
pub const PLATFORM_PERMISSION: &str = "tenant:manage";

/// The name of a custom role: trimmed, 1..=100 characters, one line (the rule of
/// [`TeamName`]), and not the name of a built-in [`Role`] in any letter case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoleName(String);

impl RoleName {
    /// The field name reported in validation errors.
    pub const FIELD: &'static str = "name";
    /// The minimum length in characters.
    pub const MIN_CHARS: usize = TeamName::MIN_CHARS;
    /// The maximum length in characters.
    pub const MAX_CHARS: usize = TeamName::MAX_CHARS;

    /// Validates and normalises (trims) `input`.
    pub fn parse(input: impl AsRef<str>) -> Result<Self, ValidationError> {
        let name = TeamName::parse(input)?.into_inner();
        if Role::NAMES.contains(&name.to_lowercase().as_str()) {
            return Err(ValidationError::Invalid {
                field: Self::FIELD,
                reason: "is the name of a built-in role",
            });
        }
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The uniqueness key: lower-cased (names are unique per tenant regardless of case).
    pub fn canonical(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A well-formed `resource:action` permission name (`incident:read`): two non-empty runs of
/// `a-z` and `_` joined by one colon, at most 64 characters. Whether the pair exists is the
/// API's check (the matrix is not the domain's).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PermissionName(String);

impl PermissionName {
    /// The field name reported in validation errors.
    pub const FIELD: &'static str = "permissions";

    /// Validates `input` (no trimming: permissions are identifiers).
    pub fn parse(input: impl AsRef<str>) -> Result<Self, ValidationError> {
        let s = input.as_ref();
        let part_ok =
            |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        let ok = s.len() <= 64
            && s.split_once(':')
                .is_some_and(|(r, a)| part_ok(r) && part_ok(a));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::Invalid {
                field: Self::FIELD,
                reason: "must be resource:action permissions",
            })
        }
    }

    /// The permission, e.g. `incident:read`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the platform permission.
    pub fn is_platform(&self) -> bool {
        self.0 == PLATFORM_PERMISSION
    }
}

impl fmt::Display for PermissionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the actor of a role command may grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantable {
    /// Anything (the system itself, e.g. provisioning).
    Any,
    /// Only these permissions: the ones the caller holds.
    Only(BTreeSet<PermissionName>),
}

impl Grantable {
    /// `Ok` if every permission of `added` may be granted, else the first that may not.
    fn check<'a>(
        &self,
        mut added: impl Iterator<Item = &'a PermissionName>,
    ) -> Result<(), RoleError> {
        match self {
            Self::Any => Ok(()),
            Self::Only(held) => match added.find(|p| !held.contains(*p)) {
                Some(p) => Err(RoleError::NotGrantable(p.clone())),
                None => Ok(()),
            },
        }
    }
}

/// A request to change a custom role.
#[derive(Debug, Clone, PartialEq)]
pub enum RoleCommand {
    /// Define the role.
    Create {
        /// Id (= stream id).
        id: RoleId,
        /// Name (unique in the tenant; checked by the command layer).
        name: RoleName,
        /// Description.
        description: Option<Description>,
        /// What holders may do.
        permissions: BTreeSet<PermissionName>,
        /// What the actor may grant (every permission must be among them).
        grantable: Grantable,
        /// Who.
        actor: Actor,
    },
    /// Edit; `None` keeps a field, `Some(None)` clears the description. `permissions`
    /// replaces the whole set.
    Update {
        /// New name.
        name: Option<RoleName>,
        /// New description.
        description: Option<Option<Description>>,
        /// New permission set.
        permissions: Option<BTreeSet<PermissionName>>,
        /// What the actor may grant (every permission added to the set must be among them).
        grantable: Grantable,
        /// Who.
        actor: Actor,
    },
    /// Delete (soft): the role stays readable, its holders hold nothing.
    Deactivate {
        /// Who.
        actor: Actor,
    },
}

/// A custom role was defined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleCreated {
    /// Id.
    pub id: RoleId,
    /// Name.
    pub name: RoleName,
    /// Description.
    pub description: Option<Description>,
    /// Permissions.
    pub permissions: BTreeSet<PermissionName>,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// The changes of one [`RoleUpdated`]; absent = unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleChanges {
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Change<RoleName>>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Change<Option<Description>>>,
    /// Permissions (the whole set before and after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Change<BTreeSet<PermissionName>>>,
}

impl RoleChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A custom role was edited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleUpdated {
    /// What changed.
    pub changes: RoleChanges,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A custom role was deactivated (deleted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleDeactivated {
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Everything that can happen to a custom role (`{"type", "data"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
#[allow(clippy::enum_variant_names)] // the shared prefix makes stored type names unique
pub enum RoleEvent {
    /// See [`RoleCreated`].
    RoleCreated(RoleCreated),
    /// See [`RoleUpdated`].
    RoleUpdated(RoleUpdated),
    /// See [`RoleDeactivated`].
    RoleDeactivated(RoleDeactivated),
}

impl RoleEvent {
    /// Every `event_type` of this aggregate.
    pub const EVENT_TYPES: &'static [&'static str] =
        &["RoleCreated", "RoleUpdated", "RoleDeactivated"];

    /// Who caused the event.
    pub fn actor(&self) -> Actor {
        match self {
            Self::RoleCreated(e) => e.actor,
            Self::RoleUpdated(e) => e.actor,
            Self::RoleDeactivated(e) => e.actor,
        }
    }

    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::RoleCreated(e) => e.at,
            Self::RoleUpdated(e) => e.at,
            Self::RoleDeactivated(e) => e.at,
        }
    }
}

impl DomainEvent for RoleEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::RoleCreated(_) => "RoleCreated",
            Self::RoleUpdated(_) => "RoleUpdated",
            Self::RoleDeactivated(_) => "RoleDeactivated",
        }
    }
}

/// Why a role command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// The role has not been created.
    #[error("role not found")]
    NotFound,
    /// `Create` on an existing role.
    #[error("role already exists")]
    AlreadyExists,
    /// The role is deactivated.
    #[error("role is deactivated")]
    Deactivated,
    /// The permissions include the platform permission.
    #[error("a custom role cannot hold the platform permission tenant:manage")]
    PlatformPermission,
    /// The actor would grant a permission they do not hold.
    #[error("{0} cannot be granted by a caller who does not hold it")]
    NotGrantable(PermissionName),
}

impl RoleError {
    /// A stable machine-readable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::Deactivated => "deactivated",
            Self::PlatformPermission => "platform_permission",
            Self::NotGrantable(_) => "not_grantable",
        }
    }
}

/// The state of a defined custom role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomRole {
    /// Id.
    pub id: RoleId,
    /// Name.
    pub name: RoleName,
    /// Description.
    pub description: Option<Description>,
    /// Permissions.
    pub permissions: BTreeSet<PermissionName>,
    /// Whether holders hold its permissions (false once deleted).
    pub is_active: bool,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
}

/// The custom role aggregate: `None` until created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleAggregate {
    /// The role, once created.
    pub state: Option<CustomRole>,
}

fn check_permissions(permissions: &BTreeSet<PermissionName>) -> Result<(), RoleError> {
    if permissions.iter().any(PermissionName::is_platform) {
        Err(RoleError::PlatformPermission)
    } else {
        Ok(())
    }
}

impl Aggregate for RoleAggregate {
    const STREAM_TYPE: &'static str = "role";
    type Command = RoleCommand;
    type Event = RoleEvent;
    type Error = RoleError;

    fn decide(
        &self,
        command: RoleCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<RoleEvent>, RoleError> {
        use RoleCommand as C;
        use RoleEvent as E;
        let Some(role) = &self.state else {
            return match command {
                C::Create {
                    id,
                    name,
                    description,
                    permissions,
                    grantable,
                    actor,
                } => {
                    check_permissions(&permissions)?;
                    grantable.check(permissions.iter())?;
                    Ok(vec![E::RoleCreated(RoleCreated {
                        id,
                        name,
                        description,
                        permissions,
                        actor,
                        at: now,
                    })])
                }
                _ => Err(RoleError::NotFound),
            };
        };
        match command {
            C::Create { .. } => Err(RoleError::AlreadyExists),
            C::Update { .. } if !role.is_active => Err(RoleError::Deactivated),
            C::Update {
                name,
                description,
                permissions,
                grantable,
                actor,
            } => {
                if let Some(p) = &permissions {
                    check_permissions(p)?;
                    grantable.check(p.difference(&role.permissions))?;
                }
                let changes = RoleChanges {
                    name: name.and_then(|v| Change::between(role.name.clone(), v)),
                    description: description
                        .and_then(|v| Change::between(role.description.clone(), v)),
                    permissions: permissions
                        .and_then(|v| Change::between(role.permissions.clone(), v)),
                };
                if changes.is_empty() {
                    return Ok(Vec::new());
                }
                Ok(vec![E::RoleUpdated(RoleUpdated {
                    changes,
                    actor,
                    at: now,
                })])
            }
            C::Deactivate { actor } if role.is_active => {
                Ok(vec![E::RoleDeactivated(RoleDeactivated { actor, at: now })])
            }
            C::Deactivate { .. } => Ok(Vec::new()),
        }
    }

    fn evolve(&mut self, event: &RoleEvent) {
        if let (None, RoleEvent::RoleCreated(e)) = (&self.state, event) {
            self.state = Some(CustomRole {
                id: e.id,
                name: e.name.clone(),
                description: e.description.clone(),
                permissions: e.permissions.clone(),
                is_active: true,
                created_at: e.at,
                updated_at: e.at,
            });
            return;
        }
        let Some(r) = self.state.as_mut() else {
            return;
        };
        r.updated_at = event.at();
        match event {
            RoleEvent::RoleCreated(_) => {}
            RoleEvent::RoleUpdated(e) => {
                let c = &e.changes;
                if let Some(x) = &c.name {
                    r.name = x.new.clone();
                }
                if let Some(x) = &c.description {
                    r.description = x.new.clone();
                }
                if let Some(x) = &c.permissions {
                    r.permissions = x.new.clone();
                }
            }
            RoleEvent::RoleDeactivated(_) => r.is_active = false,
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
    fn rname(s: &str) -> RoleName {
        RoleName::parse(s).unwrap()
    }
    fn perms(ps: &[&str]) -> BTreeSet<PermissionName> {
        ps.iter()
            .map(|p| PermissionName::parse(p).unwrap())
            .collect()
    }
    fn id() -> RoleId {
        RoleId(Uuid::from_u128(5))
    }
    fn create() -> RoleCommand {
        RoleCommand::Create {
            id: id(),
            name: rname("Triage"),
            description: None,
            permissions: perms(&["incident:read", "incident:create"]),
            grantable: Grantable::Any,
            actor: admin(),
        }
    }
    fn created() -> RoleEvent {
        RoleEvent::RoleCreated(RoleCreated {
            id: id(),
            name: rname("Triage"),
            description: None,
            permissions: perms(&["incident:read", "incident:create"]),
            actor: admin(),
            at: at(),
        })
    }
    fn deactivated() -> RoleEvent {
        RoleEvent::RoleDeactivated(RoleDeactivated {
            actor: admin(),
            at: at(),
        })
    }
    fn update(permissions: Option<&[&str]>) -> RoleCommand {
        RoleCommand::Update {
            name: None,
            description: None,
            permissions: permissions.map(perms),
            grantable: Grantable::Any,
            actor: admin(),
        }
    }

    #[test]
    fn names_are_validated_and_built_in_names_reserved() {
        assert_eq!(rname("  Triage ").as_str(), "Triage");
        assert_eq!(rname("Triage").canonical(), "triage");
        assert!(RoleName::parse("x".repeat(100)).is_ok());
        for bad in ["", "   ", "a\nb"] {
            assert!(RoleName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(RoleName::parse("x".repeat(101)).is_err());
        for builtin in Role::NAMES {
            for name in [
                builtin.to_string(),
                builtin.to_uppercase(),
                format!(" {builtin} "),
            ] {
                assert_eq!(
                    RoleName::parse(&name),
                    Err(ValidationError::Invalid {
                        field: "name",
                        reason: "is the name of a built-in role"
                    }),
                    "{name:?}"
                );
            }
        }
        assert!(RoleName::parse("administrator").is_ok());
    }

    #[test]
    fn permission_names_are_well_formed() {
        for good in ["incident:read", "tenant_settings:write", "tenant:manage"] {
            assert_eq!(PermissionName::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "incident",
            "incident:",
            ":read",
            "incident:read:x",
            "Incident:read",
            " incident:read",
            "incident:re ad",
            "incident-x:read",
        ] {
            assert!(PermissionName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(PermissionName::parse(format!("{}:read", "a".repeat(60))).is_err());
        assert!(
            PermissionName::parse(PLATFORM_PERMISSION)
                .unwrap()
                .is_platform()
        );
    }

    #[test]
    fn create_role() {
        let s = given::<RoleAggregate>([]).when(create()).then([created()]);
        let r = s.state.unwrap();
        assert!(r.is_active);
        assert_eq!(r.permissions, perms(&["incident:create", "incident:read"]));
        assert_eq!(r.created_at, at());
    }

    #[test]
    fn create_twice_is_rejected() {
        given::<RoleAggregate>([created()])
            .when(create())
            .then_err(RoleError::AlreadyExists);
    }

    #[test]
    fn an_empty_role_may_be_defined() {
        let s = given::<RoleAggregate>([])
            .when(RoleCommand::Create {
                id: id(),
                name: rname("Nobody"),
                description: Some(Description::parse("holds nothing").unwrap()),
                permissions: BTreeSet::new(),
                grantable: Grantable::Any,
                actor: admin(),
            })
            .then([RoleEvent::RoleCreated(RoleCreated {
                id: id(),
                name: rname("Nobody"),
                description: Some(Description::parse("holds nothing").unwrap()),
                permissions: BTreeSet::new(),
                actor: admin(),
                at: at(),
            })]);
        assert!(s.state.unwrap().permissions.is_empty());
    }

    #[test]
    fn the_platform_permission_is_refused() {
        given::<RoleAggregate>([])
            .when(RoleCommand::Create {
                id: id(),
                name: rname("Root"),
                description: None,
                permissions: perms(&["incident:read", PLATFORM_PERMISSION]),
                grantable: Grantable::Any,
                actor: admin(),
            })
            .then_err(RoleError::PlatformPermission);
        given::<RoleAggregate>([created()])
            .when(update(Some(&[PLATFORM_PERMISSION])))
            .then_err(RoleError::PlatformPermission);
        assert_eq!(RoleError::PlatformPermission.code(), "platform_permission");
    }

    fn only(ps: &[&str]) -> Grantable {
        Grantable::Only(perms(ps))
    }

    #[test]
    fn nobody_grants_what_they_do_not_hold() {
        let create_as = |grantable| RoleCommand::Create {
            id: id(),
            name: rname("Triage"),
            description: None,
            permissions: perms(&["incident:read", "incident:create"]),
            grantable,
            actor: admin(),
        };
        given::<RoleAggregate>([])
            .when(create_as(only(&["incident:read"])))
            .then_err(RoleError::NotGrantable(
                PermissionName::parse("incident:create").unwrap(),
            ));
        given::<RoleAggregate>([])
            .when(create_as(only(&[
                "incident:read",
                "incident:create",
                "role:create",
            ])))
            .then([created()]);
        // An update is checked on what it adds: keeping incident:create (which this caller
        // lacks) while adding team:read (which they hold) is fine; adding api_key:create is not.
        let update_as = |ps: &[&str], grantable| RoleCommand::Update {
            name: None,
            description: None,
            permissions: Some(perms(ps)),
            grantable,
            actor: admin(),
        };
        given::<RoleAggregate>([created()])
            .when(update_as(
                &["incident:read", "incident:create", "team:read"],
                only(&["incident:read", "team:read"]),
            ))
            .then([RoleEvent::RoleUpdated(RoleUpdated {
                changes: RoleChanges {
                    permissions: Some(Change {
                        old: perms(&["incident:read", "incident:create"]),
                        new: perms(&["incident:read", "incident:create", "team:read"]),
                    }),
                    ..Default::default()
                },
                actor: admin(),
                at: at(),
            })]);
        given::<RoleAggregate>([created()])
            .when(update_as(
                &["incident:read", "api_key:create"],
                only(&["incident:read", "incident:create"]),
            ))
            .then_err(RoleError::NotGrantable(
                PermissionName::parse("api_key:create").unwrap(),
            ));
        // Removing permissions grants nothing.
        given::<RoleAggregate>([created()])
            .when(update_as(&[], only(&[])))
            .then([RoleEvent::RoleUpdated(RoleUpdated {
                changes: RoleChanges {
                    permissions: Some(Change {
                        old: perms(&["incident:read", "incident:create"]),
                        new: BTreeSet::new(),
                    }),
                    ..Default::default()
                },
                actor: admin(),
                at: at(),
            })]);
        // The platform permission is refused before the grant check.
        given::<RoleAggregate>([created()])
            .when(update_as(&[PLATFORM_PERMISSION], only(&[])))
            .then_err(RoleError::PlatformPermission);
        assert_eq!(
            RoleError::NotGrantable(PermissionName::parse("x:y").unwrap()).code(),
            "not_grantable"
        );
    }

    #[test]
    fn commands_on_missing_role_are_not_found() {
        for cmd in [update(None), RoleCommand::Deactivate { actor: admin() }] {
            given::<RoleAggregate>([])
                .when(cmd)
                .then_err(RoleError::NotFound);
        }
    }

    #[test]
    fn update_role() {
        let d = Description::parse("First line").unwrap();
        let s = given::<RoleAggregate>([created()])
            .when(RoleCommand::Update {
                name: Some(rname("Triage desk")),
                description: Some(Some(d.clone())),
                permissions: Some(perms(&["incident:read"])),
                grantable: Grantable::Any,
                actor: admin(),
            })
            .then([RoleEvent::RoleUpdated(RoleUpdated {
                changes: RoleChanges {
                    name: Some(Change {
                        old: rname("Triage"),
                        new: rname("Triage desk"),
                    }),
                    description: Some(Change {
                        old: None,
                        new: Some(d.clone()),
                    }),
                    permissions: Some(Change {
                        old: perms(&["incident:read", "incident:create"]),
                        new: perms(&["incident:read"]),
                    }),
                },
                actor: admin(),
                at: at(),
            })]);
        let r = s.state.unwrap();
        assert_eq!(r.name, rname("Triage desk"));
        assert_eq!(r.description, Some(d));
        assert_eq!(r.permissions, perms(&["incident:read"]));
    }

    #[test]
    fn update_without_change_emits_nothing() {
        given::<RoleAggregate>([created()])
            .when(update(None))
            .then_nothing();
        given::<RoleAggregate>([created()])
            .when(RoleCommand::Update {
                name: Some(rname("Triage")),
                description: Some(None),
                // Same set, other order.
                permissions: Some(perms(&["incident:create", "incident:read"])),
                grantable: Grantable::Any,
                actor: admin(),
            })
            .then_nothing();
    }

    #[test]
    fn deactivate() {
        let s = given::<RoleAggregate>([created()])
            .when(RoleCommand::Deactivate { actor: admin() })
            .then([deactivated()]);
        assert!(!s.state.unwrap().is_active);
        given::<RoleAggregate>([created(), deactivated()])
            .when(RoleCommand::Deactivate { actor: admin() })
            .then_nothing();
    }

    #[test]
    fn deactivated_role_rejects_changes() {
        for cmd in [update(None), update(Some(&["incident:read"])), create()] {
            let expected = if matches!(cmd, RoleCommand::Create { .. }) {
                RoleError::AlreadyExists
            } else {
                RoleError::Deactivated
            };
            given::<RoleAggregate>([created(), deactivated()])
                .when(cmd)
                .then_err(expected);
        }
    }

    #[test]
    fn events_round_trip() {
        let events = [
            created(),
            RoleEvent::RoleUpdated(RoleUpdated {
                changes: RoleChanges {
                    permissions: Some(Change {
                        old: perms(&["incident:read"]),
                        new: perms(&["incident:read", "analytics:read"]),
                    }),
                    ..Default::default()
                },
                actor: admin(),
                at: at(),
            }),
            deactivated(),
        ];
        let types: Vec<_> = events.iter().map(DomainEvent::event_type).collect();
        assert_eq!(types, RoleEvent::EVENT_TYPES);
        for e in &events {
            assert_round_trip(e);
            assert_eq!(e.actor(), admin());
            assert_eq!(e.at(), at());
        }
        // Permissions are stored as a sorted array of strings.
        let (_, data) = created().encode().unwrap();
        assert_eq!(
            data["permissions"],
            serde_json::json!(["incident:create", "incident:read"])
        );
    }
}

//! The user aggregate (`stream_type = "user"`): a person of one tenant, their profile, role and
//! password hash.
//!
//! The password is hashed by the caller (Argon2id); the domain only stores the hash. Note that
//! the hash is part of `UserRegistered`/`UserPasswordChanged` and therefore of the immutable
//! log: audit exports should redact `password_hash` (its `Debug` is already redacted).
//! Username and e-mail uniqueness are checked by the command layer.
//!
//! **Roles.** `role` is the user's built-in role. A user may also hold a tenant's custom role
//! (`custom_role_id`): then their permissions are exactly the custom role's, and `role` is
//! their *base* role, which only decides how incidents are scoped (a base role `user` is a
//! requester: only their own incidents, public notes only). That the custom role exists in
//! the tenant and is active is checked by the command layer (ADR 0011).

use crate::actor::Actor;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::change::Change;
use crate::ids::{RoleId, TenantId, UserId};
use crate::values::{Department, Email, PasswordHash, PersonName, Phone, Role, Username};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A request to change a user.
#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    /// Create the user.
    Register {
        /// Id (= stream id).
        id: UserId,
        /// The tenant the user belongs to.
        tenant_id: TenantId,
        /// Login name (immutable).
        username: Username,
        /// E-mail.
        email: Email,
        /// First name.
        first_name: PersonName,
        /// Last name.
        last_name: PersonName,
        /// Phone.
        phone: Option<Phone>,
        /// Department.
        department: Option<Department>,
        /// Role.
        role: Role,
        /// Argon2id hash computed by the caller.
        password_hash: PasswordHash,
        /// Who (the user themselves for self-registration, or an admin).
        actor: Actor,
    },
    /// Edit the profile; `None` keeps a field, `Some(None)` clears an optional one.
    UpdateProfile {
        /// New e-mail.
        email: Option<Email>,
        /// New first name.
        first_name: Option<PersonName>,
        /// New last name.
        last_name: Option<PersonName>,
        /// New phone.
        phone: Option<Option<Phone>>,
        /// New department.
        department: Option<Option<Department>>,
        /// Who.
        actor: Actor,
    },
    /// Change the role.
    ChangeRole {
        /// New role.
        role: Role,
        /// Who.
        actor: Actor,
    },
    /// Assign a custom role (`Some`) or return to the built-in `role` alone (`None`).
    AssignCustomRole {
        /// The tenant's custom role, or `None`.
        custom_role_id: Option<RoleId>,
        /// Who.
        actor: Actor,
    },
    /// Replace the password hash.
    ChangePassword {
        /// New hash.
        password_hash: PasswordHash,
        /// Who.
        actor: Actor,
    },
    /// Disable the account.
    Deactivate {
        /// Who.
        actor: Actor,
    },
    /// Re-enable the account.
    Reactivate {
        /// Who.
        actor: Actor,
    },
}

/// A user was registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRegistered {
    /// Id.
    pub id: UserId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Login name.
    pub username: Username,
    /// E-mail.
    pub email: Email,
    /// First name.
    pub first_name: PersonName,
    /// Last name.
    pub last_name: PersonName,
    /// Phone.
    pub phone: Option<Phone>,
    /// Department.
    pub department: Option<Department>,
    /// Role.
    pub role: Role,
    /// Password hash.
    pub password_hash: PasswordHash,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// The profile changes of one [`UserProfileUpdated`]; absent = unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserProfileChanges {
    /// E-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Change<Email>>,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<Change<PersonName>>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<Change<PersonName>>,
    /// Phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Change<Option<Phone>>>,
    /// Department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<Change<Option<Department>>>,
}

impl UserProfileChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A user's profile was edited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserProfileUpdated {
    /// What changed.
    pub changes: UserProfileChanges,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A user's role changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRoleChanged {
    /// Old and new role.
    pub role: Change<Role>,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A user's custom role was assigned, replaced or removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserCustomRoleChanged {
    /// Old and new custom role (`None`: the built-in role alone).
    pub custom_role_id: Change<Option<RoleId>>,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A user's password hash was replaced (sessions/refresh tokens should be revoked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserPasswordChanged {
    /// The new hash.
    pub password_hash: PasswordHash,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A user was deactivated or reactivated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserActivityChanged {
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Everything that can happen to a user (`{"type", "data"}`; `type` is the variant name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
#[allow(clippy::enum_variant_names)] // the shared prefix makes stored type names unique
pub enum UserEvent {
    /// See [`UserRegistered`].
    UserRegistered(UserRegistered),
    /// See [`UserProfileUpdated`].
    UserProfileUpdated(UserProfileUpdated),
    /// See [`UserRoleChanged`].
    UserRoleChanged(UserRoleChanged),
    /// See [`UserPasswordChanged`].
    UserPasswordChanged(UserPasswordChanged),
    /// The account was disabled.
    UserDeactivated(UserActivityChanged),
    /// The account was re-enabled.
    UserReactivated(UserActivityChanged),
    /// See [`UserCustomRoleChanged`].
    UserCustomRoleChanged(UserCustomRoleChanged),
}

impl UserEvent {
    /// Every `event_type` of this aggregate.
    pub const EVENT_TYPES: &'static [&'static str] = &[
        "UserRegistered",
        "UserProfileUpdated",
        "UserRoleChanged",
        "UserPasswordChanged",
        "UserDeactivated",
        "UserReactivated",
        "UserCustomRoleChanged",
    ];

    /// Who caused the event.
    pub fn actor(&self) -> Actor {
        match self {
            Self::UserRegistered(e) => e.actor,
            Self::UserProfileUpdated(e) => e.actor,
            Self::UserRoleChanged(e) => e.actor,
            Self::UserPasswordChanged(e) => e.actor,
            Self::UserDeactivated(e) | Self::UserReactivated(e) => e.actor,
            Self::UserCustomRoleChanged(e) => e.actor,
        }
    }

    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::UserRegistered(e) => e.at,
            Self::UserProfileUpdated(e) => e.at,
            Self::UserRoleChanged(e) => e.at,
            Self::UserPasswordChanged(e) => e.at,
            Self::UserDeactivated(e) | Self::UserReactivated(e) => e.at,
            Self::UserCustomRoleChanged(e) => e.at,
        }
    }
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::UserRegistered(_) => "UserRegistered",
            Self::UserProfileUpdated(_) => "UserProfileUpdated",
            Self::UserRoleChanged(_) => "UserRoleChanged",
            Self::UserPasswordChanged(_) => "UserPasswordChanged",
            Self::UserDeactivated(_) => "UserDeactivated",
            Self::UserReactivated(_) => "UserReactivated",
            Self::UserCustomRoleChanged(_) => "UserCustomRoleChanged",
        }
    }
}

/// Why a user command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// The user has not been registered.
    #[error("user not found")]
    NotFound,
    /// `Register` on an existing user.
    #[error("user already exists")]
    AlreadyExists,
    /// The user is deactivated.
    #[error("user is deactivated")]
    Deactivated,
}

impl UserError {
    /// A stable machine-readable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::Deactivated => "deactivated",
        }
    }
}

/// The state of a registered user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Login name.
    pub username: Username,
    /// E-mail.
    pub email: Email,
    /// First name.
    pub first_name: PersonName,
    /// Last name.
    pub last_name: PersonName,
    /// Phone.
    pub phone: Option<Phone>,
    /// Department.
    pub department: Option<Department>,
    /// Built-in role (the base role while a custom role is assigned).
    pub role: Role,
    /// The tenant's custom role whose permissions the user holds, if any.
    #[serde(default)]
    pub custom_role_id: Option<RoleId>,
    /// Password hash.
    pub password_hash: PasswordHash,
    /// Whether the account is enabled.
    pub is_active: bool,
    /// When registered.
    pub created_at: DateTime<Utc>,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
}

/// The user aggregate: `None` until registered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserAggregate {
    /// The user, once registered.
    pub state: Option<User>,
}

impl Aggregate for UserAggregate {
    const STREAM_TYPE: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;

    fn decide(
        &self,
        command: UserCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<UserEvent>, UserError> {
        use UserCommand as C;
        use UserEvent as E;
        let Some(user) = &self.state else {
            return match command {
                C::Register {
                    id,
                    tenant_id,
                    username,
                    email,
                    first_name,
                    last_name,
                    phone,
                    department,
                    role,
                    password_hash,
                    actor,
                } => Ok(vec![E::UserRegistered(UserRegistered {
                    id,
                    tenant_id,
                    username,
                    email,
                    first_name,
                    last_name,
                    phone,
                    department,
                    role,
                    password_hash,
                    actor,
                    at: now,
                })]),
                _ => Err(UserError::NotFound),
            };
        };
        let ensure_active = || {
            if user.is_active {
                Ok(())
            } else {
                Err(UserError::Deactivated)
            }
        };
        let activity = |actor| UserActivityChanged { actor, at: now };
        match command {
            C::Register { .. } => Err(UserError::AlreadyExists),
            C::UpdateProfile {
                email,
                first_name,
                last_name,
                phone,
                department,
                actor,
            } => {
                ensure_active()?;
                let changes = UserProfileChanges {
                    email: email.and_then(|v| Change::between(user.email.clone(), v)),
                    first_name: first_name
                        .and_then(|v| Change::between(user.first_name.clone(), v)),
                    last_name: last_name.and_then(|v| Change::between(user.last_name.clone(), v)),
                    phone: phone.and_then(|v| Change::between(user.phone.clone(), v)),
                    department: department
                        .and_then(|v| Change::between(user.department.clone(), v)),
                };
                if changes.is_empty() {
                    return Ok(Vec::new());
                }
                Ok(vec![E::UserProfileUpdated(UserProfileUpdated {
                    changes,
                    actor,
                    at: now,
                })])
            }
            C::ChangeRole { role, actor } => {
                ensure_active()?;
                Ok(Change::between(user.role, role)
                    .map(|role| {
                        E::UserRoleChanged(UserRoleChanged {
                            role,
                            actor,
                            at: now,
                        })
                    })
                    .into_iter()
                    .collect())
            }
            C::AssignCustomRole {
                custom_role_id,
                actor,
            } => {
                ensure_active()?;
                Ok(Change::between(user.custom_role_id, custom_role_id)
                    .map(|custom_role_id| {
                        E::UserCustomRoleChanged(UserCustomRoleChanged {
                            custom_role_id,
                            actor,
                            at: now,
                        })
                    })
                    .into_iter()
                    .collect())
            }
            C::ChangePassword {
                password_hash,
                actor,
            } => {
                ensure_active()?;
                if password_hash == user.password_hash {
                    return Ok(Vec::new());
                }
                Ok(vec![E::UserPasswordChanged(UserPasswordChanged {
                    password_hash,
                    actor,
                    at: now,
                })])
            }
            C::Deactivate { actor } if user.is_active => {
                Ok(vec![E::UserDeactivated(activity(actor))])
            }
            C::Reactivate { actor } if !user.is_active => {
                Ok(vec![E::UserReactivated(activity(actor))])
            }
            C::Deactivate { .. } | C::Reactivate { .. } => Ok(Vec::new()),
        }
    }

    fn evolve(&mut self, event: &UserEvent) {
        if let (None, UserEvent::UserRegistered(e)) = (&self.state, event) {
            self.state = Some(User {
                id: e.id,
                tenant_id: e.tenant_id,
                username: e.username.clone(),
                email: e.email.clone(),
                first_name: e.first_name.clone(),
                last_name: e.last_name.clone(),
                phone: e.phone.clone(),
                department: e.department.clone(),
                role: e.role,
                custom_role_id: None,
                password_hash: e.password_hash.clone(),
                is_active: true,
                created_at: e.at,
                updated_at: e.at,
            });
            return;
        }
        let Some(u) = self.state.as_mut() else {
            return;
        };
        u.updated_at = event.at();
        match event {
            UserEvent::UserRegistered(_) => {}
            UserEvent::UserProfileUpdated(e) => {
                let c = &e.changes;
                if let Some(x) = &c.email {
                    u.email = x.new.clone();
                }
                if let Some(x) = &c.first_name {
                    u.first_name = x.new.clone();
                }
                if let Some(x) = &c.last_name {
                    u.last_name = x.new.clone();
                }
                if let Some(x) = &c.phone {
                    u.phone = x.new.clone();
                }
                if let Some(x) = &c.department {
                    u.department = x.new.clone();
                }
            }
            UserEvent::UserRoleChanged(e) => u.role = e.role.new,
            UserEvent::UserPasswordChanged(e) => u.password_hash = e.password_hash.clone(),
            UserEvent::UserDeactivated(_) => u.is_active = false,
            UserEvent::UserReactivated(_) => u.is_active = true,
            UserEvent::UserCustomRoleChanged(e) => u.custom_role_id = e.custom_role_id.new,
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
    fn hash(s: &str) -> PasswordHash {
        PasswordHash::parse(format!("$argon2id$v=19$m=19456,t=2,p=1${s}")).unwrap()
    }
    fn pname(s: &str) -> PersonName {
        PersonName::parse(s).unwrap()
    }
    fn email(s: &str) -> Email {
        Email::parse(s).unwrap()
    }
    fn registered() -> UserEvent {
        UserEvent::UserRegistered(UserRegistered {
            id: UserId(Uuid::from_u128(7)),
            tenant_id: TenantId(Uuid::from_u128(1)),
            username: Username::parse("ada").unwrap(),
            email: email("ada@example.com"),
            first_name: pname("Ada"),
            last_name: pname("Lovelace"),
            phone: None,
            department: Some(Department::parse("IT").unwrap()),
            role: Role::Operator,
            password_hash: hash("one"),
            actor: admin(),
            at: at(),
        })
    }
    fn register() -> UserCommand {
        UserCommand::Register {
            id: UserId(Uuid::from_u128(7)),
            tenant_id: TenantId(Uuid::from_u128(1)),
            username: Username::parse("ada").unwrap(),
            email: email("ada@example.com"),
            first_name: pname("Ada"),
            last_name: pname("Lovelace"),
            phone: None,
            department: Some(Department::parse("IT").unwrap()),
            role: Role::Operator,
            password_hash: hash("one"),
            actor: admin(),
        }
    }
    fn deactivated() -> UserEvent {
        UserEvent::UserDeactivated(UserActivityChanged {
            actor: admin(),
            at: at(),
        })
    }
    fn no_profile_change() -> UserCommand {
        UserCommand::UpdateProfile {
            email: None,
            first_name: None,
            last_name: None,
            phone: None,
            department: None,
            actor: admin(),
        }
    }

    #[test]
    fn register_creates_active_user() {
        let s = given::<UserAggregate>([])
            .when(register())
            .then([registered()]);
        let u = s.state.unwrap();
        assert!(u.is_active);
        assert_eq!(u.role, Role::Operator);
    }

    #[test]
    fn register_twice_is_rejected() {
        given::<UserAggregate>([registered()])
            .when(register())
            .then_err(UserError::AlreadyExists);
    }

    #[test]
    fn commands_on_missing_user_are_not_found() {
        for cmd in [
            no_profile_change(),
            UserCommand::ChangeRole {
                role: Role::Admin,
                actor: admin(),
            },
            UserCommand::ChangePassword {
                password_hash: hash("two"),
                actor: admin(),
            },
            UserCommand::Deactivate { actor: admin() },
            UserCommand::Reactivate { actor: admin() },
        ] {
            given::<UserAggregate>([])
                .when(cmd)
                .then_err(UserError::NotFound);
        }
    }

    #[test]
    fn update_profile_records_old_and_new() {
        let phone = Phone::parse("+81 3 1234 5678").unwrap();
        let s = given::<UserAggregate>([registered()])
            .when(UserCommand::UpdateProfile {
                email: Some(email("ada@example.org")),
                first_name: Some(pname("Ada")), // unchanged: not recorded
                last_name: None,
                phone: Some(Some(phone.clone())),
                department: Some(None),
                actor: admin(),
            })
            .then([UserEvent::UserProfileUpdated(UserProfileUpdated {
                changes: UserProfileChanges {
                    email: Some(Change {
                        old: email("ada@example.com"),
                        new: email("ada@example.org"),
                    }),
                    first_name: None,
                    last_name: None,
                    phone: Some(Change {
                        old: None,
                        new: Some(phone.clone()),
                    }),
                    department: Some(Change {
                        old: Some(Department::parse("IT").unwrap()),
                        new: None,
                    }),
                },
                actor: admin(),
                at: at(),
            })]);
        let u = s.state.unwrap();
        assert_eq!(u.email, email("ada@example.org"));
        assert_eq!(u.phone, Some(phone));
        assert_eq!(u.department, None);
    }

    #[test]
    fn update_profile_without_change_emits_nothing() {
        given::<UserAggregate>([registered()])
            .when(no_profile_change())
            .then_nothing();
        given::<UserAggregate>([registered()])
            .when(UserCommand::UpdateProfile {
                email: Some(email("ADA@example.com")),
                first_name: Some(pname("Ada")),
                last_name: Some(pname("Lovelace")),
                phone: Some(None),
                department: Some(Some(Department::parse("IT").unwrap())),
                actor: admin(),
            })
            .then_nothing();
    }

    #[test]
    fn change_role() {
        let s = given::<UserAggregate>([registered()])
            .when(UserCommand::ChangeRole {
                role: Role::Manager,
                actor: admin(),
            })
            .then([UserEvent::UserRoleChanged(UserRoleChanged {
                role: Change {
                    old: Role::Operator,
                    new: Role::Manager,
                },
                actor: admin(),
                at: at(),
            })]);
        assert_eq!(s.state.unwrap().role, Role::Manager);
        given::<UserAggregate>([registered()])
            .when(UserCommand::ChangeRole {
                role: Role::Operator,
                actor: admin(),
            })
            .then_nothing();
    }

    fn custom(n: u128) -> RoleId {
        RoleId(Uuid::from_u128(0x7000 + n))
    }
    fn assign(role: Option<RoleId>) -> UserCommand {
        UserCommand::AssignCustomRole {
            custom_role_id: role,
            actor: admin(),
        }
    }
    fn custom_role_changed(old: Option<RoleId>, new: Option<RoleId>) -> UserEvent {
        UserEvent::UserCustomRoleChanged(UserCustomRoleChanged {
            custom_role_id: Change { old, new },
            actor: admin(),
            at: at(),
        })
    }

    #[test]
    fn assign_replace_and_remove_a_custom_role() {
        let s = given::<UserAggregate>([registered()])
            .when(assign(Some(custom(1))))
            .then([custom_role_changed(None, Some(custom(1)))]);
        let u = s.state.unwrap();
        assert_eq!(u.custom_role_id, Some(custom(1)));
        // The built-in role stays: it is the base role.
        assert_eq!(u.role, Role::Operator);
        let s = given::<UserAggregate>([registered(), custom_role_changed(None, Some(custom(1)))])
            .when(assign(Some(custom(2))))
            .then([custom_role_changed(Some(custom(1)), Some(custom(2)))]);
        assert_eq!(s.state.unwrap().custom_role_id, Some(custom(2)));
        let s = given::<UserAggregate>([registered(), custom_role_changed(None, Some(custom(1)))])
            .when(assign(None))
            .then([custom_role_changed(Some(custom(1)), None)]);
        assert_eq!(s.state.unwrap().custom_role_id, None);
    }

    #[test]
    fn assigning_the_same_custom_role_emits_nothing() {
        given::<UserAggregate>([registered()])
            .when(assign(None))
            .then_nothing();
        given::<UserAggregate>([registered(), custom_role_changed(None, Some(custom(1)))])
            .when(assign(Some(custom(1))))
            .then_nothing();
    }

    #[test]
    fn changing_the_base_role_keeps_the_custom_role() {
        let s = given::<UserAggregate>([registered(), custom_role_changed(None, Some(custom(1)))])
            .when(UserCommand::ChangeRole {
                role: Role::User,
                actor: admin(),
            })
            .then([UserEvent::UserRoleChanged(UserRoleChanged {
                role: Change {
                    old: Role::Operator,
                    new: Role::User,
                },
                actor: admin(),
                at: at(),
            })]);
        let u = s.state.unwrap();
        assert_eq!((u.role, u.custom_role_id), (Role::User, Some(custom(1))));
    }

    #[test]
    fn custom_role_commands_need_an_active_user() {
        given::<UserAggregate>([])
            .when(assign(Some(custom(1))))
            .then_err(UserError::NotFound);
        given::<UserAggregate>([registered(), deactivated()])
            .when(assign(Some(custom(1))))
            .then_err(UserError::Deactivated);
    }

    #[test]
    fn state_without_custom_role_field_loads() {
        // Read-model rows and snapshots written before custom roles lack the field.
        let s = given::<UserAggregate>([registered()]).when(no_profile_change());
        let (state, _) = s.into_parts();
        let mut v = serde_json::to_value(&state).unwrap();
        v["state"].as_object_mut().unwrap().remove("custom_role_id");
        let back: UserAggregate = serde_json::from_value(v).unwrap();
        assert_eq!(back, state);
    }

    #[test]
    fn change_password() {
        let s = given::<UserAggregate>([registered()])
            .when(UserCommand::ChangePassword {
                password_hash: hash("two"),
                actor: admin(),
            })
            .then([UserEvent::UserPasswordChanged(UserPasswordChanged {
                password_hash: hash("two"),
                actor: admin(),
                at: at(),
            })]);
        assert_eq!(s.state.unwrap().password_hash, hash("two"));
        given::<UserAggregate>([registered()])
            .when(UserCommand::ChangePassword {
                password_hash: hash("one"),
                actor: admin(),
            })
            .then_nothing();
    }

    #[test]
    fn deactivate_and_reactivate() {
        let s = given::<UserAggregate>([registered()])
            .when(UserCommand::Deactivate { actor: admin() })
            .then([deactivated()]);
        assert!(!s.state.unwrap().is_active);
        given::<UserAggregate>([registered(), deactivated()])
            .when(UserCommand::Deactivate { actor: admin() })
            .then_nothing();
        let s = given::<UserAggregate>([registered(), deactivated()])
            .when(UserCommand::Reactivate { actor: admin() })
            .then([UserEvent::UserReactivated(UserActivityChanged {
                actor: admin(),
                at: at(),
            })]);
        assert!(s.state.unwrap().is_active);
        given::<UserAggregate>([registered()])
            .when(UserCommand::Reactivate { actor: admin() })
            .then_nothing();
    }

    #[test]
    fn deactivated_user_rejects_changes() {
        for cmd in [
            UserCommand::UpdateProfile {
                email: Some(email("x@example.com")),
                first_name: None,
                last_name: None,
                phone: None,
                department: None,
                actor: admin(),
            },
            UserCommand::ChangeRole {
                role: Role::Admin,
                actor: admin(),
            },
            UserCommand::ChangePassword {
                password_hash: hash("two"),
                actor: admin(),
            },
        ] {
            given::<UserAggregate>([registered(), deactivated()])
                .when(cmd)
                .then_err(UserError::Deactivated);
        }
    }

    #[test]
    fn events_round_trip_and_hash_is_not_in_debug() {
        let events = [
            registered(),
            UserEvent::UserProfileUpdated(UserProfileUpdated {
                changes: UserProfileChanges {
                    last_name: Some(Change {
                        old: pname("A"),
                        new: pname("B"),
                    }),
                    ..Default::default()
                },
                actor: admin(),
                at: at(),
            }),
            UserEvent::UserRoleChanged(UserRoleChanged {
                role: Change {
                    old: Role::User,
                    new: Role::Viewer,
                },
                actor: admin(),
                at: at(),
            }),
            UserEvent::UserPasswordChanged(UserPasswordChanged {
                password_hash: hash("two"),
                actor: admin(),
                at: at(),
            }),
            deactivated(),
            UserEvent::UserReactivated(UserActivityChanged {
                actor: admin(),
                at: at(),
            }),
            custom_role_changed(None, Some(custom(3))),
        ];
        let types: Vec<_> = events.iter().map(DomainEvent::event_type).collect();
        assert_eq!(types, UserEvent::EVENT_TYPES);
        for e in &events {
            assert_round_trip(e);
            assert_eq!(e.actor(), admin());
            assert_eq!(e.at(), at());
            assert!(!format!("{e:?}").contains("argon2id"));
        }
    }
}

//! Role-based access control: permissions are `resource:action` pairs, and a role is a set of
//! them. Deny by default: a principal holds only what its set lists, and a pair missing from the
//! matrix below is held by nobody (and refused by [`Permission::parse`]).
//!
//! The built-in roles ([`Role`]) come from one table, [`MATRIX`] (a test checks that the table
//! below matches it). A tenant's custom role is just a named [`PermissionSet`]; an API key holds
//! a [`PermissionSet`] too. Scoping (a requester reads only *their own* incidents, every query is
//! limited to the principal's tenant) is the API's job: this module answers only "does the
//! principal hold `incident:read`?".
//!
//! Actions: `read` (view/list), `create`, `write` (update), `delete` (delete, cancel or revoke),
//! `assign` (route to a team or person), `comment` (add a note visible to the requester),
//! `manage` (administer membership or the resource itself).
//! Resources: `incident`, `work_note` (internal agent notes), `user`, `team`, `category`,
//! `tenant_settings`, `role` (custom roles), `api_key`, `audit` (event log), `analytics`, `sla`,
//! `webhook`, `integration`, `problem`, `change`, `ci` (configuration items and their
//! relationships), `ci_type` (custom CI types), `security` (security event log), and `tenant`
//! (platform level, see [`PLATFORM`]).
//!
//! | permission | admin | manager | operator | user | viewer |
//! |---|---|---|---|---|---|
//! | `incident:read` | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | `incident:create` | ✓ | ✓ | ✓ | ✓ |   |
//! | `incident:write` | ✓ | ✓ | ✓ |   |   |
//! | `incident:assign` | ✓ | ✓ | ✓ |   |   |
//! | `incident:comment` | ✓ | ✓ | ✓ | ✓ |   |
//! | `incident:delete` | ✓ | ✓ |   |   |   |
//! | `work_note:read` | ✓ | ✓ | ✓ |   |   |
//! | `work_note:create` | ✓ | ✓ | ✓ |   |   |
//! | `user:read` | ✓ | ✓ | ✓ |   |   |
//! | `user:create` | ✓ |   |   |   |   |
//! | `user:write` | ✓ |   |   |   |   |
//! | `user:delete` | ✓ |   |   |   |   |
//! | `team:read` | ✓ | ✓ | ✓ |   | ✓ |
//! | `team:create` | ✓ | ✓ |   |   |   |
//! | `team:write` | ✓ | ✓ |   |   |   |
//! | `team:delete` | ✓ | ✓ |   |   |   |
//! | `team:manage` | ✓ | ✓ |   |   |   |
//! | `category:read` | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | `category:create` | ✓ |   |   |   |   |
//! | `category:write` | ✓ |   |   |   |   |
//! | `category:delete` | ✓ |   |   |   |   |
//! | `tenant_settings:read` | ✓ | ✓ |   |   |   |
//! | `tenant_settings:write` | ✓ |   |   |   |   |
//! | `role:read` | ✓ | ✓ |   |   |   |
//! | `role:create` | ✓ |   |   |   |   |
//! | `role:write` | ✓ |   |   |   |   |
//! | `role:delete` | ✓ |   |   |   |   |
//! | `api_key:read` | ✓ |   |   |   |   |
//! | `api_key:create` | ✓ |   |   |   |   |
//! | `api_key:delete` | ✓ |   |   |   |   |
//! | `audit:read` | ✓ |   |   |   |   |
//! | `analytics:read` | ✓ | ✓ |   |   | ✓ |
//! | `sla:read` | ✓ | ✓ |   |   |   |
//! | `sla:create` | ✓ | ✓ |   |   |   |
//! | `sla:write` | ✓ | ✓ |   |   |   |
//! | `sla:delete` | ✓ | ✓ |   |   |   |
//! | `webhook:read` | ✓ |   |   |   |   |
//! | `webhook:create` | ✓ |   |   |   |   |
//! | `webhook:write` | ✓ |   |   |   |   |
//! | `webhook:delete` | ✓ |   |   |   |   |
//! | `integration:read` | ✓ |   |   |   |   |
//! | `integration:create` | ✓ |   |   |   |   |
//! | `integration:write` | ✓ |   |   |   |   |
//! | `integration:delete` | ✓ |   |   |   |   |
//! | `problem:read` | ✓ | ✓ | ✓ |   | ✓ |
//! | `problem:create` | ✓ | ✓ |   |   |   |
//! | `problem:write` | ✓ | ✓ |   |   |   |
//! | `problem:assign` | ✓ | ✓ |   |   |   |
//! | `problem:delete` | ✓ | ✓ |   |   |   |
//! | `change:read` | ✓ | ✓ | ✓ |   | ✓ |
//! | `change:create` | ✓ | ✓ |   |   |   |
//! | `change:write` | ✓ | ✓ |   |   |   |
//! | `change:assign` | ✓ | ✓ |   |   |   |
//! | `change:delete` | ✓ | ✓ |   |   |   |
//! | `ci:read` | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | `ci:create` | ✓ | ✓ | ✓ |   |   |
//! | `ci:write` | ✓ | ✓ | ✓ |   |   |
//! | `ci:delete` | ✓ | ✓ |   |   |   |
//! | `ci_type:read` | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | `ci_type:create` | ✓ | ✓ |   |   |   |
//! | `security:read` | ✓ |   |   |   |   |
//! | `tenant:manage` |   |   |   |   |   |
//!
//! In words: **admin** holds every permission of its tenant; **manager** runs the service desk
//! (incidents, problems, changes, SLAs, teams, analytics; the CMDB: CIs, their retirement and
//! custom CI types; reads users, roles and settings) but manages no API keys, roles, users,
//! integrations or categories; **operator** (agent) works incidents (read, create, write,
//! assign, comment, work notes), registers and updates CIs and their relationships (but does
//! not retire them), and reads users, teams and categories; **user** (requester) creates,
//! reads and comments on incidents (the API limits this to their own) and reads categories
//! and CIs to pick one; **viewer** reads incidents, analytics, teams, categories and the CMDB. `tenant:manage` ([`PLATFORM`]) belongs to no tenant role: only the
//! platform key that creates tenants holds it.

use crate::error::{AuthError, Result};
use eventdesk_domain::ValidationError;
use eventdesk_domain::values::Role;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// A closed list of names: `as_str`, `ALL` and `from_name` from one list.
macro_rules! names {
    ($(#[$meta:meta])* $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $s:literal ),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The snake_case name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $s),+
                }
            }

            /// The value with this name.
            pub fn from_name(s: &str) -> Option<Self> {
                match s {
                    $($s => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names!(
    /// What a permission is about.
    Resource {
        /// Incidents.
        Incident => "incident",
        /// Internal work notes on incidents (not shown to requesters).
        WorkNote => "work_note",
        /// Users of the tenant.
        User => "user",
        /// Assignment groups.
        Team => "team",
        /// Categories.
        Category => "category",
        /// Tenant settings (priority matrix, business hours, …).
        TenantSettings => "tenant_settings",
        /// Custom roles.
        Role => "role",
        /// API keys.
        ApiKey => "api_key",
        /// The audit trail (event log).
        Audit => "audit",
        /// Dashboards.
        Analytics => "analytics",
        /// SLA policies.
        Sla => "sla",
        /// Webhook subscriptions and deliveries.
        Webhook => "webhook",
        /// Slack, Jira and other integrations.
        Integration => "integration",
        /// Problems.
        Problem => "problem",
        /// Changes.
        Change => "change",
        /// Configuration items (and their relationships).
        Ci => "ci",
        /// Custom configuration item types (with their attribute schemas).
        CiType => "ci_type",
        /// The security event log.
        Security => "security",
        /// Tenants themselves (platform level).
        Tenant => "tenant",
    }
);

names!(
    /// What may be done to a resource.
    Action {
        /// View and list.
        Read => "read",
        /// Update.
        Write => "write",
        /// Create.
        Create => "create",
        /// Delete, cancel or revoke.
        Delete => "delete",
        /// Route to a team or a person.
        Assign => "assign",
        /// Administer (membership, lifecycle).
        Manage => "manage",
        /// Add a note visible to the requester.
        Comment => "comment",
    }
);

/// A `resource:action` permission.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    resource: Resource,
    action: Action,
}

/// The platform permission: create and administer tenants. No tenant role holds it.
pub const PLATFORM: Permission = Permission::new(Resource::Tenant, Action::Manage);

impl Permission {
    /// The pair. Unchecked, so it can be a `const`; a pair that is not in [`MATRIX`] is held by
    /// nobody. Use [`Permission::parse`] for input.
    pub const fn new(resource: Resource, action: Action) -> Self {
        Self { resource, action }
    }

    /// Parses `resource:action`, accepting only the pairs of [`MATRIX`]. The error names the
    /// field `permissions` (how the API receives them).
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let invalid = || ValidationError::Invalid {
            field: "permissions",
            reason: "must be known resource:action permissions",
        };
        let (r, a) = s.split_once(':').ok_or_else(invalid)?;
        let p = Self::new(
            Resource::from_name(r).ok_or_else(invalid)?,
            Action::from_name(a).ok_or_else(invalid)?,
        );
        if p.is_known() { Ok(p) } else { Err(invalid()) }
    }

    /// The resource.
    pub const fn resource(self) -> Resource {
        self.resource
    }

    /// The action.
    pub const fn action(self) -> Action {
        self.action
    }

    /// True if the pair is in [`MATRIX`].
    pub fn is_known(self) -> bool {
        MATRIX.iter().any(|(p, _)| *p == self)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.resource, self.action)
    }
}

impl fmt::Debug for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permission({self})")
    }
}

impl FromStr for Permission {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Permission {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

const A: Role = Role::Admin;
const M: Role = Role::Manager;
const O: Role = Role::Operator;
const U: Role = Role::User;
const V: Role = Role::Viewer;

const fn p(resource: Resource, action: Action) -> Permission {
    Permission::new(resource, action)
}

use Action::{Assign, Comment, Create, Delete, Manage, Read, Write};
use Resource as R;

/// Every permission that exists, and the built-in roles that hold it. The single source of the
/// role matrix (the module documentation shows it as a table).
pub const MATRIX: &[(Permission, &[Role])] = &[
    (p(R::Incident, Read), &[A, M, O, U, V]),
    (p(R::Incident, Create), &[A, M, O, U]),
    (p(R::Incident, Write), &[A, M, O]),
    (p(R::Incident, Assign), &[A, M, O]),
    (p(R::Incident, Comment), &[A, M, O, U]),
    (p(R::Incident, Delete), &[A, M]),
    (p(R::WorkNote, Read), &[A, M, O]),
    (p(R::WorkNote, Create), &[A, M, O]),
    (p(R::User, Read), &[A, M, O]),
    (p(R::User, Create), &[A]),
    (p(R::User, Write), &[A]),
    (p(R::User, Delete), &[A]),
    (p(R::Team, Read), &[A, M, O, V]),
    (p(R::Team, Create), &[A, M]),
    (p(R::Team, Write), &[A, M]),
    (p(R::Team, Delete), &[A, M]),
    (p(R::Team, Manage), &[A, M]),
    (p(R::Category, Read), &[A, M, O, U, V]),
    (p(R::Category, Create), &[A]),
    (p(R::Category, Write), &[A]),
    (p(R::Category, Delete), &[A]),
    (p(R::TenantSettings, Read), &[A, M]),
    (p(R::TenantSettings, Write), &[A]),
    (p(R::Role, Read), &[A, M]),
    (p(R::Role, Create), &[A]),
    (p(R::Role, Write), &[A]),
    (p(R::Role, Delete), &[A]),
    (p(R::ApiKey, Read), &[A]),
    (p(R::ApiKey, Create), &[A]),
    (p(R::ApiKey, Delete), &[A]),
    (p(R::Audit, Read), &[A]),
    (p(R::Analytics, Read), &[A, M, V]),
    (p(R::Sla, Read), &[A, M]),
    (p(R::Sla, Create), &[A, M]),
    (p(R::Sla, Write), &[A, M]),
    (p(R::Sla, Delete), &[A, M]),
    (p(R::Webhook, Read), &[A]),
    (p(R::Webhook, Create), &[A]),
    (p(R::Webhook, Write), &[A]),
    (p(R::Webhook, Delete), &[A]),
    (p(R::Integration, Read), &[A]),
    (p(R::Integration, Create), &[A]),
    (p(R::Integration, Write), &[A]),
    (p(R::Integration, Delete), &[A]),
    (p(R::Problem, Read), &[A, M, O, V]),
    (p(R::Problem, Create), &[A, M]),
    (p(R::Problem, Write), &[A, M]),
    (p(R::Problem, Assign), &[A, M]),
    (p(R::Problem, Delete), &[A, M]),
    (p(R::Change, Read), &[A, M, O, V]),
    (p(R::Change, Create), &[A, M]),
    (p(R::Change, Write), &[A, M]),
    (p(R::Change, Assign), &[A, M]),
    (p(R::Change, Delete), &[A, M]),
    (p(R::Ci, Read), &[A, M, O, U, V]),
    (p(R::Ci, Create), &[A, M, O]),
    (p(R::Ci, Write), &[A, M, O]),
    (p(R::Ci, Delete), &[A, M]),
    (p(R::CiType, Read), &[A, M, O, U, V]),
    (p(R::CiType, Create), &[A, M]),
    (p(R::Security, Read), &[A]),
    (PLATFORM, &[]),
];

/// A set of permissions: a built-in role's, a custom role's or an API key's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PermissionSet(BTreeSet<Permission>);

impl PermissionSet {
    /// The empty set (holds nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// The permissions of a built-in role, from [`MATRIX`].
    pub fn from_role(role: Role) -> Self {
        MATRIX
            .iter()
            .filter(|(_, roles)| roles.contains(&role))
            .map(|(p, _)| *p)
            .collect()
    }

    /// The permissions of the built-in role named `name` (`admin`, …), or `None` if `name` is
    /// not a built-in role (look the tenant's custom roles up instead).
    pub fn from_role_name(name: &str) -> Option<Self> {
        name.parse::<Role>().ok().map(Self::from_role)
    }

    /// Parses client input (a custom role's or a new API key's permissions). Strict: any
    /// unknown permission is an error.
    pub fn parse_all<I, S>(items: I) -> Result<Self, ValidationError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        items
            .into_iter()
            .map(|s| Permission::parse(s.as_ref()))
            .collect()
    }

    /// Reads stored permissions. Lenient: a permission that no longer exists (removed from
    /// [`MATRIX`] since it was stored) is dropped with a warning, never granted.
    pub fn from_stored<I, S>(items: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        items
            .into_iter()
            .filter_map(|s| match Permission::parse(s.as_ref()) {
                Ok(p) => Some(p),
                Err(_) => {
                    tracing::warn!(permission = s.as_ref(), "unknown stored permission ignored");
                    None
                }
            })
            .collect()
    }

    /// True if the set holds `permission`.
    pub fn contains(&self, permission: Permission) -> bool {
        self.0.contains(&permission)
    }

    /// `Ok` if the set holds `permission`, else [`AuthError::Forbidden`].
    pub fn require(&self, permission: Permission) -> Result<()> {
        if self.contains(permission) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(permission))
        }
    }

    /// Adds `permission`; true if it was not there.
    pub fn insert(&mut self, permission: Permission) -> bool {
        self.0.insert(permission)
    }

    /// Removes `permission`; true if it was there.
    pub fn remove(&mut self, permission: Permission) -> bool {
        self.0.remove(&permission)
    }

    /// True if every permission of `self` is in `other`. Use it so that nobody grants (to an
    /// API key or a custom role) more than they hold.
    pub fn is_subset(&self, other: &PermissionSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The permissions, in order.
    pub fn iter(&self) -> impl Iterator<Item = Permission> + '_ {
        self.0.iter().copied()
    }

    /// The permissions as strings (the `text[]` column).
    pub fn to_strings(&self) -> Vec<String> {
        self.iter().map(|p| p.to_string()).collect()
    }

    /// Number of permissions.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<T: IntoIterator<Item = Permission>>(iter: T) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a PermissionSet {
    type Item = Permission;
    type IntoIter = std::iter::Copied<std::collections::btree_set::Iter<'a, Permission>>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn perm(s: &str) -> Permission {
        Permission::parse(s).unwrap()
    }

    fn can(role: Role, s: &str) -> bool {
        PermissionSet::from_role(role).contains(perm(s))
    }

    #[test]
    fn matrix_spot_checks() {
        assert!(!can(Role::Viewer, "incident:write"));
        assert!(can(Role::Viewer, "incident:read"));
        assert!(can(Role::Viewer, "analytics:read"));
        assert!(can(Role::Admin, "api_key:create"));
        assert!(!can(Role::Manager, "api_key:create"));
        assert!(!can(Role::Manager, "role:write"));
        assert!(can(Role::Manager, "user:read"));
        assert!(!can(Role::Manager, "user:write"));
        assert!(can(Role::Manager, "problem:assign"));
        assert!(can(Role::Manager, "sla:write"));
        assert!(!can(Role::User, "incident:assign"));
        assert!(can(Role::User, "incident:create"));
        assert!(can(Role::User, "incident:comment"));
        assert!(!can(Role::User, "work_note:read"));
        assert!(can(Role::Operator, "incident:assign"));
        assert!(can(Role::Operator, "work_note:create"));
        assert!(can(Role::Operator, "team:read"));
        assert!(!can(Role::Operator, "team:write"));
        assert!(!can(Role::Operator, "incident:delete"));
    }

    #[test]
    fn admin_holds_every_tenant_permission_and_nobody_holds_platform() {
        let admin = PermissionSet::from_role(Role::Admin);
        for (p, _) in MATRIX {
            assert_eq!(admin.contains(*p), *p != PLATFORM, "{p}");
        }
        for role in Role::ALL {
            assert!(!PermissionSet::from_role(*role).contains(PLATFORM));
        }
        assert_eq!(PLATFORM.to_string(), "tenant:manage");
    }

    #[test]
    fn lower_roles_hold_no_more_than_higher_ones() {
        // Each role holds at most what the role above holds.
        let set = |r| PermissionSet::from_role(r);
        assert!(set(Role::Manager).is_subset(&set(Role::Admin)));
        assert!(set(Role::Operator).is_subset(&set(Role::Manager)));
        assert!(set(Role::User).is_subset(&set(Role::Admin)));
        assert!(set(Role::Viewer).is_subset(&set(Role::Manager)));
    }

    #[test]
    fn parse_validates() {
        assert_eq!(
            perm("incident:read"),
            Permission::new(Resource::Incident, Action::Read)
        );
        assert_eq!(
            perm("tenant_settings:write").resource(),
            Resource::TenantSettings
        );
        for bad in [
            "",
            "incident",
            "incident:",
            ":read",
            "incident:read:x",
            "Incident:read",
            "incident:READ",
            " incident:read",
            "incident:fly",
            "spaceship:read",
            "audit:delete", // well-formed but not in the matrix
        ] {
            assert!(Permission::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Permission::parse("x"),
            Err(ValidationError::Invalid {
                field: "permissions",
                reason: "must be known resource:action permissions"
            })
        );
    }

    #[test]
    fn matrix_has_no_duplicates_and_covers_required_resources() {
        let all: BTreeSet<Permission> = MATRIX.iter().map(|(p, _)| *p).collect();
        assert_eq!(all.len(), MATRIX.len());
        for r in Resource::ALL {
            assert!(all.iter().any(|p| p.resource() == *r), "{r} unused");
        }
        for (p, _) in MATRIX {
            assert_eq!(perm(&p.to_string()), *p);
        }
    }

    #[test]
    fn permission_sets() {
        let custom = PermissionSet::parse_all(["incident:read", "analytics:read"]).unwrap();
        assert_eq!(custom.len(), 2);
        assert!(custom.contains(perm("analytics:read")));
        assert!(custom.require(perm("analytics:read")).is_ok());
        assert!(matches!(
            custom.require(perm("incident:write")),
            Err(AuthError::Forbidden(p)) if p == perm("incident:write")
        ));
        assert!(custom.is_subset(&PermissionSet::from_role(Role::Viewer)));
        assert!(PermissionSet::parse_all(["incident:read", "nope"]).is_err());
        assert!(PermissionSet::new().is_empty());
        assert!(!PermissionSet::new().contains(perm("incident:read")));

        let stored = PermissionSet::from_stored(["incident:read", "removed:thing"]);
        assert_eq!(stored.to_strings(), vec!["incident:read".to_owned()]);

        assert_eq!(
            PermissionSet::from_role_name("viewer"),
            Some(PermissionSet::from_role(Role::Viewer))
        );
        assert_eq!(PermissionSet::from_role_name("auditor"), None);

        let json = serde_json::to_string(&custom).unwrap();
        assert_eq!(json, r#"["incident:read","analytics:read"]"#);
        assert_eq!(
            serde_json::from_str::<PermissionSet>(&json).unwrap(),
            custom
        );
        assert!(serde_json::from_str::<PermissionSet>(r#"["bogus:read"]"#).is_err());
    }

    #[test]
    fn documented_matrix_matches_the_table() {
        let doc: Vec<&str> = include_str!("rbac.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! | `"))
            .collect();
        let rendered: Vec<String> = MATRIX
            .iter()
            .map(|(p, roles)| {
                let cells: Vec<&str> = Role::ALL
                    .iter()
                    .map(|r| if roles.contains(r) { "✓" } else { " " })
                    .collect();
                format!("{p}` | {} |", cells.join(" | "))
            })
            .collect();
        assert_eq!(doc, rendered, "update the table in the module doc");
    }
}

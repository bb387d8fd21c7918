//! `directory`: the read models of tenants, users, teams, categories and custom roles
//! (`rm_tenants`, `rm_users`, `rm_teams`, `rm_categories`, `rm_roles`), fed by the `tenant`,
//! `user`, `team`, `category` and `role` streams. Events of other stream types are ignored.
//!
//! Per batch and per entity kind: one SELECT loads the rows the batch touches, the domain's
//! `evolve` folds the events on top (events at or below a row's version are skipped, so a
//! replay is a no-op), and one upsert writes the changed rows.
//!
//! Invariants checked (a violation fails the event, which the runtime dead-letters):
//! a tenant's stream has `stream_id = tenant_id`; an entity's id is its stream id; a user's
//! `tenant_id` is its stream's tenant. Deployment-wide uniqueness of usernames and e-mails is
//! enforced by `rm_users`' unique indexes (the command layer checks first; a race that slips
//! through fails here loudly instead of silently shadowing an account). Unique checks are
//! immediate, so two users swapping e-mails inside one batch fail that batch; the runtime then
//! applies its events one by one, in order, which succeeds.

use crate::fold::{self, Folded, Key, changed_rows, err, upsert_sql, write_rows};
use crate::runtime::{HandlerError, Projection};
use async_trait::async_trait;
use eventdesk_domain::{
    Aggregate, CategoryAggregate, RoleAggregate, TeamAggregate, TenantAggregate, UserAggregate,
};
use eventdesk_store::RecordedEvent;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// The directory read models.
#[derive(Debug, Default, Clone, Copy)]
pub struct DirectoryProjection;

const TENANT_COLS: &[&str] = &[
    "id",
    "name",
    "is_active",
    "priority_matrix",
    "created_at",
    "updated_at",
    "version",
];
const USER_COLS: &[&str] = &[
    "tenant_id",
    "id",
    "username",
    "username_canonical",
    "email",
    "first_name",
    "last_name",
    "phone",
    "department",
    "role",
    "custom_role_id",
    "is_active",
    "password_hash",
    "created_at",
    "updated_at",
    "version",
];
const TEAM_COLS: &[&str] = &[
    "tenant_id",
    "id",
    "name",
    "manager_id",
    "description",
    "members",
    "is_active",
    "created_at",
    "updated_at",
    "version",
];
const CATEGORY_COLS: &[&str] = &[
    "tenant_id",
    "id",
    "name",
    "parent_id",
    "description",
    "is_active",
    "created_at",
    "updated_at",
    "version",
];

const ROLE_COLS: &[&str] = &[
    "tenant_id",
    "id",
    "name",
    "description",
    "permissions",
    "is_active",
    "created_at",
    "updated_at",
    "version",
];

static TENANT_UPSERT: LazyLock<String> =
    LazyLock::new(|| upsert_sql("rm_tenants", &["id"], TENANT_COLS, &[]));
static USER_UPSERT: LazyLock<String> =
    LazyLock::new(|| upsert_sql("rm_users", &["tenant_id", "id"], USER_COLS, &[]));
static TEAM_UPSERT: LazyLock<String> =
    LazyLock::new(|| upsert_sql("rm_teams", &["tenant_id", "id"], TEAM_COLS, &[]));
static CATEGORY_UPSERT: LazyLock<String> =
    LazyLock::new(|| upsert_sql("rm_categories", &["tenant_id", "id"], CATEGORY_COLS, &[]));
static ROLE_UPSERT: LazyLock<String> =
    LazyLock::new(|| upsert_sql("rm_roles", &["tenant_id", "id"], ROLE_COLS, &[]));

// The loaders select (tenant_id, id, version, domain state). Extra columns in the state object
// are ignored by serde; the tenant's settings are nested in the domain.
const TENANT_LOAD: &str = "SELECT t.id, t.id, t.version, \
     to_jsonb(t) || jsonb_build_object('settings', jsonb_build_object('priority_matrix', \
     t.priority_matrix)) FROM rm_tenants t \
     WHERE (t.id, t.id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))";
const USER_LOAD: &str = "SELECT r.tenant_id, r.id, r.version, to_jsonb(r) FROM rm_users r \
     WHERE (r.tenant_id, r.id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))";
const TEAM_LOAD: &str = "SELECT r.tenant_id, r.id, r.version, to_jsonb(r) FROM rm_teams r \
     WHERE (r.tenant_id, r.id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))";
const CATEGORY_LOAD: &str = "SELECT r.tenant_id, r.id, r.version, to_jsonb(r) \
     FROM rm_categories r \
     WHERE (r.tenant_id, r.id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))";

const ROLE_LOAD: &str = "SELECT r.tenant_id, r.id, r.version, to_jsonb(r) FROM rm_roles r \
     WHERE (r.tenant_id, r.id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))";

/// Loads and folds the events of one aggregate kind.
async fn fold_kind<A>(
    conn: &mut PgConnection,
    load_sql: &str,
    events: &[&RecordedEvent],
) -> Result<BTreeMap<Key, Folded<A>>, HandlerError>
where
    A: Aggregate + DeserializeOwned + Serialize,
{
    let mut states = fold::load::<A>(conn, load_sql, events).await?;
    fold::apply(&mut states, events, |_, _| Ok(()))?;
    Ok(states)
}

#[async_trait]
impl Projection for DirectoryProjection {
    fn name(&self) -> &'static str {
        "directory"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "rm_tenants",
            "rm_users",
            "rm_teams",
            "rm_categories",
            "rm_roles",
        ]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), HandlerError> {
        let of = |ty: &str| -> Vec<&RecordedEvent> {
            events.iter().filter(|e| e.stream_type == ty).collect()
        };

        let tenants = of(TenantAggregate::STREAM_TYPE);
        if let Some(e) = tenants.iter().find(|e| e.stream_id.0 != e.tenant_id.0) {
            return Err(err(format!(
                "tenant stream {} is not the tenant's own ({}) stream",
                e.stream_id, e.tenant_id
            )));
        }
        let states = fold_kind::<TenantAggregate>(tx, TENANT_LOAD, &tenants).await?;
        let rows = changed_rows(&states, false, |_, agg, row| {
            if let Some(t) = &agg.state {
                row.insert(
                    "priority_matrix".into(),
                    serde_json::to_value(t.settings.priority_matrix)?,
                );
            }
            Ok(())
        })?;
        write_rows(tx, &TENANT_UPSERT, rows).await?;

        let users = of(UserAggregate::STREAM_TYPE);
        let states = fold_kind::<UserAggregate>(tx, USER_LOAD, &users).await?;
        let rows = changed_rows(&states, true, |key, agg, row| {
            if let Some(u) = &agg.state {
                if u.tenant_id.0 != key.0 {
                    return Err(err(format!(
                        "user {} claims tenant {} but its stream is in tenant {}",
                        u.id, u.tenant_id, key.0
                    )));
                }
                row.insert(
                    "username_canonical".into(),
                    serde_json::Value::String(u.username.canonical()),
                );
            }
            Ok(())
        })?;
        write_rows(tx, &USER_UPSERT, rows).await?;

        let teams = of(TeamAggregate::STREAM_TYPE);
        let states = fold_kind::<TeamAggregate>(tx, TEAM_LOAD, &teams).await?;
        write_rows(
            tx,
            &TEAM_UPSERT,
            changed_rows(&states, true, |_, _, _| Ok(()))?,
        )
        .await?;

        let categories = of(CategoryAggregate::STREAM_TYPE);
        let states = fold_kind::<CategoryAggregate>(tx, CATEGORY_LOAD, &categories).await?;
        write_rows(
            tx,
            &CATEGORY_UPSERT,
            changed_rows(&states, true, |_, _, _| Ok(()))?,
        )
        .await?;

        let roles = of(RoleAggregate::STREAM_TYPE);
        let states = fold_kind::<RoleAggregate>(tx, ROLE_LOAD, &roles).await?;
        write_rows(
            tx,
            &ROLE_UPSERT,
            changed_rows(&states, true, |_, _, _| Ok(()))?,
        )
        .await?;
        Ok(())
    }
}

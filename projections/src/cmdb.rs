//! `cmdb`: the read models of the CMDB — custom CI types (`rm_ci_types`), configuration items
//! (`rm_cis`) and relationships (`rm_ci_relationships`) — fed by the `ci_type`, `ci` and
//! `ci_relationship` streams (ADR 0017). Events of other stream types are ignored.
//!
//! As for the directory: per batch and per kind, one SELECT loads the rows the batch touches,
//! the domain's `evolve` folds the events on top (events at or below a row's version are
//! skipped, so a replay is a no-op) and one upsert writes the changed rows. A deleted
//! relationship keeps its row with `deleted_at` set (the version guard needs it); the
//! relationship list and impact analysis read only rows without it, through partial indexes.

use crate::fold::{self, Folded, Key, changed_rows, upsert_sql, write_rows};
use crate::runtime::{HandlerError, Projection};
use async_trait::async_trait;
use eventdesk_domain::Aggregate;
use eventdesk_domain::cmdb::{CiAggregate, CiTypeAggregate, RelationshipAggregate};
use eventdesk_store::RecordedEvent;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// The CMDB read models.
#[derive(Debug, Default, Clone, Copy)]
pub struct CmdbProjection;

const CI_TYPE_COLS: &[&str] = &[
    "tenant_id",
    "id",
    "key",
    "name",
    "description",
    "schema",
    "created_at",
    "created_by",
    "updated_at",
    "version",
];
const CI_COLS: &[&str] = &[
    "tenant_id",
    "id",
    "ci_type",
    "name",
    "description",
    "attributes",
    "owner_team_id",
    "status",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "retired_at",
    "version",
];
const RELATIONSHIP_COLS: &[&str] = &[
    "tenant_id",
    "id",
    "source_id",
    "target_id",
    "rel_type",
    "created_at",
    "created_by",
    "deleted_at",
    "deleted_by",
    "version",
];

static CI_TYPE_UPSERT: LazyLock<String> =
    LazyLock::new(|| upsert_sql("rm_ci_types", &["tenant_id", "id"], CI_TYPE_COLS, &[]));
static CI_UPSERT: LazyLock<String> =
    LazyLock::new(|| upsert_sql("rm_cis", &["tenant_id", "id"], CI_COLS, &[]));
static RELATIONSHIP_UPSERT: LazyLock<String> = LazyLock::new(|| {
    upsert_sql(
        "rm_ci_relationships",
        &["tenant_id", "id"],
        RELATIONSHIP_COLS,
        &[],
    )
});

const CI_TYPE_LOAD: &str = "SELECT r.tenant_id, r.id, r.version, to_jsonb(r) FROM rm_ci_types r \
     WHERE (r.tenant_id, r.id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))";
const CI_LOAD: &str = "SELECT r.tenant_id, r.id, r.version, to_jsonb(r) FROM rm_cis r \
     WHERE (r.tenant_id, r.id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))";
const RELATIONSHIP_LOAD: &str = "SELECT r.tenant_id, r.id, r.version, to_jsonb(r) \
     FROM rm_ci_relationships r \
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
impl Projection for CmdbProjection {
    fn name(&self) -> &'static str {
        "cmdb"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_ci_types", "rm_cis", "rm_ci_relationships"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), HandlerError> {
        let of = |ty: &str| -> Vec<&RecordedEvent> {
            events.iter().filter(|e| e.stream_type == ty).collect()
        };

        let types = of(CiTypeAggregate::STREAM_TYPE);
        let states = fold_kind::<CiTypeAggregate>(tx, CI_TYPE_LOAD, &types).await?;
        write_rows(
            tx,
            &CI_TYPE_UPSERT,
            changed_rows(&states, true, |_, _, _| Ok(()))?,
        )
        .await?;

        let cis = of(CiAggregate::STREAM_TYPE);
        let states = fold_kind::<CiAggregate>(tx, CI_LOAD, &cis).await?;
        write_rows(
            tx,
            &CI_UPSERT,
            changed_rows(&states, true, |_, _, _| Ok(()))?,
        )
        .await?;

        let relationships = of(RelationshipAggregate::STREAM_TYPE);
        let states =
            fold_kind::<RelationshipAggregate>(tx, RELATIONSHIP_LOAD, &relationships).await?;
        write_rows(
            tx,
            &RELATIONSHIP_UPSERT,
            changed_rows(&states, true, |_, _, _| Ok(()))?,
        )
        .await?;
        Ok(())
    }
}

//! `changes`: the read model of changes (`rm_changes`), fed by the `change` streams
//! (ADR 0022). Events of other stream types are ignored.
//!
//! As for problems: per batch, one SELECT loads the rows the batch touches, the domain's
//! `evolve` folds the events on top (events at or below a row's version are skipped, so a
//! replay is a no-op) and one upsert writes the changed rows.

use crate::fold::{self, changed_rows, upsert_sql, write_rows};
use crate::runtime::{HandlerError, Projection};
use async_trait::async_trait;
use eventdesk_domain::Aggregate;
use eventdesk_domain::change_request::ChangeAggregate;
use eventdesk_store::RecordedEvent;
use sqlx::PgConnection;
use std::sync::LazyLock;

/// The changes read model.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChangeProjection;

const COLS: &[&str] = &[
    "tenant_id",
    "id",
    "title",
    "description",
    "change_type",
    "status",
    "risk",
    "planned_start",
    "planned_end",
    "ci_ids",
    "incident_ids",
    "approvers",
    "quorum",
    "on_rejection",
    "approval_round",
    "votes",
    "approved_at",
    "tasks",
    "overridden_conflicts",
    "override_reason",
    "scheduled_at",
    "closed_at",
    "cancelled_at",
    "cancel_reason",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "version",
];

static UPSERT: LazyLock<String> =
    LazyLock::new(|| upsert_sql("rm_changes", &["tenant_id", "id"], COLS, &[]));

const LOAD: &str = "SELECT r.tenant_id, r.id, r.version, to_jsonb(r) FROM rm_changes r \
     WHERE (r.tenant_id, r.id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))";

#[async_trait]
impl Projection for ChangeProjection {
    fn name(&self) -> &'static str {
        "changes"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_changes"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), HandlerError> {
        let mine: Vec<&RecordedEvent> = events
            .iter()
            .filter(|e| e.stream_type == ChangeAggregate::STREAM_TYPE)
            .collect();
        if mine.is_empty() {
            return Ok(());
        }
        let mut states = fold::load::<ChangeAggregate>(tx, LOAD, &mine).await?;
        fold::apply(&mut states, &mine, |_, _| Ok(()))?;
        write_rows(tx, &UPSERT, changed_rows(&states, true, |_, _, _| Ok(()))?).await
    }
}

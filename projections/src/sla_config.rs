//! `sla_config`: the read models of the tenants' SLA configuration — `rm_sla_calendars` and
//! `rm_sla_policies` — fed by the `sla_calendar` and `sla_policy` streams. Events of other
//! stream types are ignored.
//!
//! As in [`crate::directory`]: per batch and per kind, one SELECT loads the rows the batch
//! touches, the domain's `evolve` folds the events on top (events at or below a row's version
//! are skipped, so a replay is a no-op), and one upsert writes the changed rows.
//!
//! Invariant checked (a violation fails the event, which the runtime dead-letters): the
//! configuration version in the state equals the stream version — the domain bumps it by one
//! with every event, and timers rely on `(id, version)` naming one definition.

use crate::fold::{self, Folded, Key, changed_rows, err, upsert_sql, write_rows};
use crate::runtime::{HandlerError, Projection};
use async_trait::async_trait;
use eventdesk_domain::Aggregate;
use eventdesk_domain::sla::{SlaCalendarAggregate, SlaPolicyAggregate};
use eventdesk_store::RecordedEvent;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// The SLA configuration read models.
#[derive(Debug, Default, Clone, Copy)]
pub struct SlaConfigProjection;

/// The projection's name (its checkpoint row).
pub const NAME: &str = "sla_config";

const CALENDAR_COLS: &[&str] = &[
    "tenant_id",
    "id",
    "name",
    "definition",
    "active",
    "created_at",
    "updated_at",
    "version",
];
const POLICY_COLS: &[&str] = &[
    "tenant_id",
    "id",
    "name",
    "rank",
    "condition",
    "calendar_id",
    "targets",
    "active",
    "created_at",
    "updated_at",
    "version",
];

static CALENDAR_UPSERT: LazyLock<String> =
    LazyLock::new(|| upsert_sql("rm_sla_calendars", &["tenant_id", "id"], CALENDAR_COLS, &[]));
static POLICY_UPSERT: LazyLock<String> =
    LazyLock::new(|| upsert_sql("rm_sla_policies", &["tenant_id", "id"], POLICY_COLS, &[]));

const CALENDAR_LOAD: &str = "SELECT r.tenant_id, r.id, r.version, to_jsonb(r) \
     FROM rm_sla_calendars r \
     WHERE (r.tenant_id, r.id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))";
const POLICY_LOAD: &str = "SELECT r.tenant_id, r.id, r.version, to_jsonb(r) \
     FROM rm_sla_policies r \
     WHERE (r.tenant_id, r.id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))";

/// Loads, folds and upserts the events of one aggregate kind. `config_version` reads the
/// configuration version of a state, checked against the stream version.
async fn project_kind<A>(
    conn: &mut PgConnection,
    load_sql: &str,
    upsert: &str,
    events: &[&RecordedEvent],
    config_version: fn(&A) -> Option<u32>,
) -> Result<(), HandlerError>
where
    A: Aggregate + DeserializeOwned + Serialize,
{
    if events.is_empty() {
        return Ok(());
    }
    let mut states: BTreeMap<Key, Folded<A>> = fold::load::<A>(conn, load_sql, events).await?;
    fold::apply(&mut states, events, |_, _| Ok(()))?;
    let rows = changed_rows(&states, true, |key, agg, _| {
        let stream = states.get(&key).map_or(0, |f| f.version);
        match config_version(agg) {
            Some(v) if i64::from(v) == stream => Ok(()),
            v => Err(err(format!(
                "{} stream {}/{} is at version {stream} but its state says {v:?}",
                A::STREAM_TYPE,
                key.0,
                key.1
            ))),
        }
    })?;
    write_rows(conn, upsert, rows).await
}

#[async_trait]
impl Projection for SlaConfigProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_sla_calendars", "rm_sla_policies"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), HandlerError> {
        let of = |ty: &str| -> Vec<&RecordedEvent> {
            events.iter().filter(|e| e.stream_type == ty).collect()
        };
        project_kind::<SlaCalendarAggregate>(
            tx,
            CALENDAR_LOAD,
            &CALENDAR_UPSERT,
            &of(SlaCalendarAggregate::STREAM_TYPE),
            |a| a.state.as_ref().map(|c| c.version),
        )
        .await?;
        project_kind::<SlaPolicyAggregate>(
            tx,
            POLICY_LOAD,
            &POLICY_UPSERT,
            &of(SlaPolicyAggregate::STREAM_TYPE),
            |a| a.state.as_ref().map(|p| p.version),
        )
        .await
    }
}

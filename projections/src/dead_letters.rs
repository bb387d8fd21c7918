//! Dead letters: listing them and replaying them once the cause is fixed
//! (`eventdesk projections dead-letters`).
//!
//! A retry re-reads the dead-lettered event from the log (upcast by *this* build, so a fixed
//! upcaster or a newly known event type takes effect), applies it through the projection's own
//! `apply` in one transaction, and in that same transaction marks the dead letter resolved.
//! When no unresolved dead letter of the projection version remains, the `degraded` state is
//! cleared (`running`) in that transaction too. A retry that fails again leaves the dead letter
//! open with the new error and one more attempt.
//!
//! The transaction first locks the projection's checkpoint row: the live runner moves that row
//! at the end of every batch, so a retry and a batch never commit interleaved.
//!
//! **Limit:** projections that fold per stream (directory, incidents, sla_config, sla_timers)
//! skip an event at or below the version already applied to its row. If later events of the
//! same stream were applied after the dead letter, the retry changes nothing for that row;
//! [`RetryOutcome::later_applied`] counts those events and the command warns — rebuild the
//! projection (`projections rebuild NAME`) to get the event's effect.

use crate::runtime::Projection;
use chrono::{DateTime, Utc};
use eventdesk_store::PgEventStore;
use eventdesk_store::pg::EVENT_COLUMNS;
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use std::sync::Arc;
use uuid::Uuid;

/// One row of `projection_dead_letters`.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// Id (what `--retry` takes).
    pub id: i64,
    /// Projection name.
    pub projection: String,
    /// Projection version.
    pub projection_version: i32,
    /// The event's tenant.
    pub tenant_id: Uuid,
    /// The event's global position.
    pub global_position: i64,
    /// The event's transaction id.
    pub transaction_id: u64,
    /// The event's id.
    pub event_id: Uuid,
    /// The event's type.
    pub event_type: String,
    /// The last error.
    pub error: String,
    /// Attempts so far.
    pub attempts: i32,
    /// When it was dead-lettered.
    pub created_at: DateTime<Utc>,
    /// When a retry applied it (None: still open).
    pub resolved_at: Option<DateTime<Utc>>,
}

const DEAD_LETTER_COLUMNS: &str = "id, projection, projection_version, tenant_id, \
     global_position, transaction_id::text::int8, event_id, event_type, error, attempts, \
     created_at, resolved_at";

fn dead_letter(r: &PgRow) -> Result<DeadLetter, sqlx::Error> {
    Ok(DeadLetter {
        id: r.try_get(0)?,
        projection: r.try_get(1)?,
        projection_version: r.try_get(2)?,
        tenant_id: r.try_get(3)?,
        global_position: r.try_get(4)?,
        transaction_id: r.try_get::<i64, _>(5)? as u64,
        event_id: r.try_get(6)?,
        event_type: r.try_get(7)?,
        error: r.try_get(8)?,
        attempts: r.try_get(9)?,
        created_at: r.try_get(10)?,
        resolved_at: r.try_get(11)?,
    })
}

/// Dead letters in log order, of one projection or all; open ones only unless
/// `include_resolved`.
pub async fn list_dead_letters(
    pool: &PgPool,
    projection: Option<&str>,
    include_resolved: bool,
) -> Result<Vec<DeadLetter>, sqlx::Error> {
    let sql = format!(
        "SELECT {DEAD_LETTER_COLUMNS} FROM projection_dead_letters \
         WHERE ($1::text IS NULL OR projection = $1) AND ($2 OR resolved_at IS NULL) \
         ORDER BY projection, projection_version, transaction_id, global_position"
    );
    sqlx::query(&sql)
        .bind(projection)
        .bind(include_resolved)
        .fetch_all(pool)
        .await?
        .iter()
        .map(dead_letter)
        .collect()
}

/// Why a retry could not even be attempted.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// No dead letter with this id.
    #[error("no dead letter with id {0}")]
    NotFound(i64),
    /// It was already replayed.
    #[error("dead letter {0} is already resolved")]
    AlreadyResolved(i64),
    /// This build does not run the projection, or runs another version of it.
    #[error("dead letter {id} belongs to {projection} v{version}, which this build does not run")]
    UnknownProjection {
        /// The dead letter.
        id: i64,
        /// Its projection.
        projection: String,
        /// Its projection version.
        version: i32,
    },
    /// The event is no longer in the log (it cannot be: events are immutable).
    #[error("the event of dead letter {0} is missing from the log")]
    EventMissing(i64),
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// The result of one retry.
#[derive(Debug, Clone, Serialize)]
pub struct RetryOutcome {
    /// The dead letter.
    pub id: i64,
    /// Its projection.
    pub projection: String,
    /// The event.
    pub event_id: Uuid,
    /// The event's global position.
    pub global_position: i64,
    /// Whether the event applied (the dead letter is then resolved).
    pub applied: bool,
    /// The error of a failed retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Later events of the same stream the projection had already applied (a per-stream fold
    /// ignores an older event: rebuild the projection if this is not 0).
    pub later_applied: i64,
    /// Whether the projection is back to `running` (no open dead letter left).
    pub projection_recovered: bool,
}

/// Replays dead letter `id` through its projection (one of `projections`).
pub async fn retry_dead_letter(
    store: &PgEventStore,
    projections: &[Arc<dyn Projection>],
    id: i64,
) -> Result<RetryOutcome, RetryError> {
    let pool = store.pool();
    let mut tx = pool.begin().await?;
    let sql = format!("SELECT {DEAD_LETTER_COLUMNS} FROM projection_dead_letters WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(RetryError::NotFound(id))?;
    let dl = dead_letter(&row)?;
    if dl.resolved_at.is_some() {
        return Err(RetryError::AlreadyResolved(id));
    }
    let Some(p) = projections
        .iter()
        .find(|p| p.name() == dl.projection && p.version() == dl.projection_version)
    else {
        return Err(RetryError::UnknownProjection {
            id,
            projection: dl.projection,
            version: dl.projection_version,
        });
    };
    // Serialise with the live runner (it moves this row at the end of each batch), then take
    // the dead letter itself (a concurrent retry of the same one waits and then sees it
    // resolved).
    let checkpoint: Option<(i64, i64)> = sqlx::query_as(
        "SELECT last_txid::text::int8, last_position FROM projection_checkpoints \
         WHERE name = $1 AND version = $2 FOR UPDATE",
    )
    .bind(&dl.projection)
    .bind(dl.projection_version)
    .fetch_optional(&mut *tx)
    .await?;
    let open: bool = sqlx::query_scalar(
        "SELECT resolved_at IS NULL FROM projection_dead_letters WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    if !open {
        return Err(RetryError::AlreadyResolved(id));
    }
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events \
         WHERE transaction_id = $1::int8::text::xid8 AND global_position = $2"
    );
    let row = sqlx::query(&sql)
        .bind(dl.transaction_id as i64)
        .bind(dl.global_position)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(RetryError::EventMissing(id))?;
    let mut outcome = RetryOutcome {
        id,
        projection: dl.projection.clone(),
        event_id: dl.event_id,
        global_position: dl.global_position,
        applied: false,
        error: None,
        later_applied: 0,
        projection_recovered: false,
    };
    let applied = match store.decode_row(&row) {
        Ok(event) => {
            outcome.later_applied = later_applied(&mut tx, &dl, &event, checkpoint).await?;
            p.apply(&mut tx, std::slice::from_ref(&event))
                .await
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = applied {
        // The handler may have written part of the event: undo all of it, then record the
        // attempt on its own.
        tx.rollback().await?;
        sqlx::query(
            "UPDATE projection_dead_letters SET error = $2, attempts = attempts + 1 \
             WHERE id = $1 AND resolved_at IS NULL",
        )
        .bind(id)
        .bind(&e)
        .execute(pool)
        .await?;
        outcome.error = Some(e);
        return Ok(outcome);
    }
    sqlx::query(
        "UPDATE projection_dead_letters SET resolved_at = now(), attempts = attempts + 1 \
         WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let recovered = sqlx::query(
        "UPDATE projection_checkpoints c SET state = 'running', last_error = NULL, \
         updated_at = now() \
         WHERE c.name = $1 AND c.version = $2 AND c.state = 'degraded' \
           AND NOT EXISTS (SELECT 1 FROM projection_dead_letters d WHERE d.projection = c.name \
                           AND d.projection_version = c.version AND d.resolved_at IS NULL)",
    )
    .bind(&dl.projection)
    .bind(dl.projection_version)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    outcome.applied = true;
    outcome.projection_recovered = recovered.rows_affected() == 1;
    Ok(outcome)
}

/// Events of the dead letter's stream after it that the projection has applied (below its
/// checkpoint and not themselves open dead letters).
async fn later_applied(
    conn: &mut sqlx::PgConnection,
    dl: &DeadLetter,
    event: &eventdesk_store::RecordedEvent,
    checkpoint: Option<(i64, i64)>,
) -> Result<i64, sqlx::Error> {
    let Some((txid, position)) = checkpoint else {
        return Ok(0);
    };
    sqlx::query_scalar(
        "SELECT count(*) FROM events e \
         WHERE e.tenant_id = $1 AND e.stream_id = $2 AND e.version > $3 \
           AND (e.transaction_id, e.global_position) <= ($4::int8::text::xid8, $5) \
           AND NOT EXISTS (SELECT 1 FROM projection_dead_letters d \
                           WHERE d.projection = $6 AND d.projection_version = $7 \
                             AND d.event_id = e.event_id AND d.resolved_at IS NULL)",
    )
    .bind(event.tenant_id.0)
    .bind(event.stream_id.0)
    .bind(event.version)
    .bind(txid)
    .bind(position)
    .bind(&dl.projection)
    .bind(dl.projection_version)
    .fetch_one(conn)
    .await
}

/// Replays every open dead letter (of `projection`, or of all projections this build runs),
/// oldest first, so a stream's creation event is replayed before the events that needed it.
pub async fn retry_all(
    store: &PgEventStore,
    projections: &[Arc<dyn Projection>],
    projection: Option<&str>,
) -> Result<Vec<RetryOutcome>, RetryError> {
    let open = list_dead_letters(store.pool(), projection, false).await?;
    let mut out = Vec::with_capacity(open.len());
    // Dead letters of a rebuild in progress (`rebuild:<name>`) belong to its shadow tables:
    // its swap settles them (ADR 0013), they are not replayed into the live read model.
    for dl in open
        .into_iter()
        .filter(|d| !d.projection.starts_with("rebuild:"))
    {
        if !projections
            .iter()
            .any(|p| p.name() == dl.projection && p.version() == dl.projection_version)
        {
            return Err(RetryError::UnknownProjection {
                id: dl.id,
                projection: dl.projection,
                version: dl.projection_version,
            });
        }
        match retry_dead_letter(store, projections, dl.id).await {
            Ok(o) => out.push(o),
            // Resolved meanwhile by someone else: nothing to do.
            Err(RetryError::AlreadyResolved(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

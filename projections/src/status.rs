//! Status of every projection: position, lag (events and milliseconds), state, dead letters.

use serde::Serialize;
use sqlx::{PgPool, Row};

/// The state a projection reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectionState {
    /// Applying events normally.
    Running,
    /// At least one event was dead-lettered; the projection skipped it and keeps going.
    Degraded,
    /// A new version is being built beside the live one (`projections rebuild`); the live
    /// one keeps running until the swap.
    Rebuilding,
    /// Not running.
    Stopped,
}

impl ProjectionState {
    fn parse(s: &str) -> Self {
        match s {
            "degraded" => Self::Degraded,
            "rebuilding" => Self::Rebuilding,
            "stopped" => Self::Stopped,
            _ => Self::Running,
        }
    }
}

/// One row of `projections status`.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectionStatus {
    /// Name.
    pub name: String,
    /// Version.
    pub version: i32,
    /// Global position of the last applied event.
    pub position: i64,
    /// Events committed below the horizon and not yet applied (capped at 10,000,000).
    pub lag_events: i64,
    /// Age of the oldest unapplied event, in milliseconds (0 when caught up).
    pub lag_ms: i64,
    /// State.
    pub state: ProjectionState,
    /// Events applied since the checkpoint was created.
    pub events_processed: i64,
    /// Dead letters not yet resolved.
    pub dead_letters: i64,
    /// Last error recorded.
    pub last_error: Option<String>,
    /// The rebuild in progress beside the live read model, if any (`state` is then
    /// `rebuilding`; the other fields still describe the live projection, which keeps
    /// running until the swap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebuild: Option<RebuildStatus>,
}

/// Where a rebuild (`projections rebuild`, ADR 0013) stands.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildStatus {
    /// The projection version being built.
    pub version: i32,
    /// `bulk` (no secondary indexes yet) or `catch_up` (indexes in place, following the log
    /// until the swap).
    pub phase: String,
    /// Global position of the last event applied to the shadow tables.
    pub position: i64,
    /// Events below the horizon not yet applied to the shadow (capped at 10,000,000).
    pub lag_events: i64,
    /// Events applied to the shadow so far.
    pub events_processed: i64,
    /// Dead letters of the rebuild (events the new version could not apply).
    pub dead_letters: i64,
    /// When the rebuild started (its first run).
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// When it last applied a batch.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Status of every projection known to the database.
pub async fn projection_status(pool: &PgPool) -> Result<Vec<ProjectionStatus>, sqlx::Error> {
    let rows = sqlx::query(
        "WITH h AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) \
         SELECT c.name, c.version, c.last_position, c.state, c.events_processed, c.last_error, \
           (SELECT count(*) FROM (SELECT 1 FROM events e, h \
              WHERE (e.transaction_id, e.global_position) > (c.last_txid, c.last_position) \
                AND e.transaction_id < h.xmin LIMIT 10000000) x) AS lag_events, \
           (SELECT (extract(epoch FROM now() - e.recorded_at) * 1000)::int8 FROM events e, h \
              WHERE (e.transaction_id, e.global_position) > (c.last_txid, c.last_position) \
                AND e.transaction_id < h.xmin \
              ORDER BY e.transaction_id, e.global_position LIMIT 1) AS lag_ms, \
           (SELECT count(*) FROM projection_dead_letters d WHERE d.projection = c.name \
              AND d.projection_version = c.version AND d.resolved_at IS NULL) AS dead_letters, \
           r.version AS r_version, r.phase, r.last_position AS r_position, \
           (SELECT count(*) FROM (SELECT 1 FROM events e, h \
              WHERE (e.transaction_id, e.global_position) > (r.last_txid, r.last_position) \
                AND e.transaction_id < h.xmin LIMIT 10000000) x) AS r_lag, \
           r.events_processed AS r_processed, \
           (SELECT count(*) FROM projection_dead_letters d \
              WHERE d.projection = 'rebuild:' || r.name \
                AND d.projection_version = r.version AND d.resolved_at IS NULL) AS r_dead, \
           r.started_at, r.updated_at \
         FROM projection_checkpoints c \
         LEFT JOIN projection_rebuilds r ON r.name = c.name \
              AND c.version = (SELECT max(version) FROM projection_checkpoints m \
                               WHERE m.name = c.name) \
         ORDER BY c.name, c.version",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let rebuild = match r.try_get::<Option<i32>, _>(9)? {
                Some(version) => Some(RebuildStatus {
                    version,
                    phase: r.try_get(10)?,
                    position: r.try_get(11)?,
                    lag_events: r.try_get(12)?,
                    events_processed: r.try_get(13)?,
                    dead_letters: r.try_get(14)?,
                    started_at: r.try_get(15)?,
                    updated_at: r.try_get(16)?,
                }),
                None => None,
            };
            Ok(ProjectionStatus {
                name: r.try_get(0)?,
                version: r.try_get(1)?,
                position: r.try_get(2)?,
                state: if rebuild.is_some() {
                    ProjectionState::Rebuilding
                } else {
                    ProjectionState::parse(r.try_get::<&str, _>(3)?)
                },
                events_processed: r.try_get(4)?,
                last_error: r.try_get(5)?,
                lag_events: r.try_get(6)?,
                lag_ms: r.try_get::<Option<i64>, _>(7)?.unwrap_or(0).max(0),
                dead_letters: r.try_get(8)?,
                rebuild,
            })
        })
        .collect()
}

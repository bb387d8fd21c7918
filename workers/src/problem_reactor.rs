//! The problem reactor (ADR 0021): when a problem is resolved, each incident linked to it gets
//! a work note saying so.
//!
//! It runs off the log, never inside the problem's command transaction: the `problems`
//! projection writes one `problem_incident_notes` row per (resolved problem, linked incident)
//! in the transaction of its checkpoint, and this worker claims pending rows with
//! `FOR UPDATE SKIP LOCKED`, appends `IncidentWorkNoteAdded` through the command path, and
//! marks the row done in the claim's transaction.
//!
//! # At least once, never twice
//! A row's `note_id` is derived from the `ProblemResolved` event id and the incident id, and is
//! the work note's id. If the worker dies after the append but before marking the row (or two
//! workers raced on a row, or a rebuild wrote the rows again), the retry's command is refused
//! by the incident with `DuplicateWorkNote` — which counts as done. A closed, cancelled or
//! missing incident takes no note and counts as done too.

use eventdesk_commands::{Clock, CommandError, Options, execute};
use eventdesk_domain::incident::{IncidentAggregate, IncidentCommand, IncidentError};
use eventdesk_domain::values::{WorkNoteBody, WorkNoteType};
use eventdesk_domain::{Actor, StreamId, TenantId, WorkNoteId};
use eventdesk_store::{EventMetadata, PgEventStore};
use sqlx::{PgPool, Row};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken as StopToken;
use uuid::Uuid;

/// The actor label of the reactor's events.
pub const ACTOR: &str = "system:problem-reactor";

/// Tuning of the reactor.
#[derive(Debug, Clone)]
pub struct ReactorConfig {
    /// Time between sweeps when nothing is pending.
    pub poll: Duration,
    /// Rows claimed per transaction.
    pub batch: i64,
}

impl Default for ReactorConfig {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(250),
            batch: 128,
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReactorReport {
    /// Notes appended.
    pub noted: u64,
    /// Rows that needed no note (already there, incident final or missing).
    pub skipped: u64,
    /// Rows left for the next sweep (transient errors).
    pub deferred: u64,
}

/// The reactor. Cheap to clone; several nodes may run it (they share the rows).
#[derive(Clone)]
pub struct ProblemReactor {
    system: PgPool,
    store: PgEventStore,
    clock: Arc<dyn Clock>,
    config: ReactorConfig,
}

impl std::fmt::Debug for ProblemReactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProblemReactor")
            .field("config", &self.config)
            .finish()
    }
}

enum Outcome {
    Noted,
    Done,
    Keep,
}

impl ProblemReactor {
    /// A reactor reading its rows through `system` (BYPASSRLS: every tenant's rows) and
    /// appending through `store`.
    pub fn new(
        system: PgPool,
        store: PgEventStore,
        clock: Arc<dyn Clock>,
        config: ReactorConfig,
    ) -> Self {
        Self {
            system,
            store,
            clock,
            config,
        }
    }

    /// Sweeps until `stop`, sleeping `poll` between sweeps that found nothing to do.
    pub async fn run(self, stop: StopToken) {
        while !stop.is_cancelled() {
            let busy = match self.sweep().await {
                Ok(r) => r.noted + r.skipped > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "problem reactor sweep failed");
                    false
                }
            };
            if !busy {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(self.config.poll) => {}
                }
            }
        }
    }

    /// One pass over the pending rows (one batch).
    pub async fn sweep(&self) -> Result<ReactorReport, sqlx::Error> {
        let mut tx = self.system.begin().await?;
        let rows = sqlx::query(
            "SELECT tenant_id, note_id, problem_id, incident_id, body FROM problem_incident_notes \
             WHERE done_at IS NULL ORDER BY recorded_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(self.config.batch)
        .fetch_all(&mut *tx)
        .await?;
        let mut report = ReactorReport::default();
        let (mut tenants, mut notes) = (Vec::new(), Vec::new());
        for row in rows {
            let tenant: Uuid = row.try_get(0)?;
            let note: Uuid = row.try_get(1)?;
            let problem: Uuid = row.try_get(2)?;
            let incident: Uuid = row.try_get(3)?;
            let body: String = row.try_get(4)?;
            match self.note(tenant, note, problem, incident, &body).await {
                Outcome::Noted => report.noted += 1,
                Outcome::Done => report.skipped += 1,
                Outcome::Keep => {
                    report.deferred += 1;
                    continue;
                }
            }
            tenants.push(tenant);
            notes.push(note);
        }
        if !tenants.is_empty() {
            sqlx::query(
                "UPDATE problem_incident_notes SET done_at = now() \
                 WHERE (tenant_id, note_id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))",
            )
            .bind(&tenants)
            .bind(&notes)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(report)
    }

    async fn note(
        &self,
        tenant: Uuid,
        note: Uuid,
        problem: Uuid,
        incident: Uuid,
        body: &str,
    ) -> Outcome {
        let Ok(body) = WorkNoteBody::parse(body) else {
            tracing::warn!(%tenant, %problem, %incident, "problem note body is not a valid work note");
            return Outcome::Done;
        };
        let command = IncidentCommand::AddWorkNote {
            note_id: WorkNoteId(note),
            body,
            note_type: WorkNoteType::WorkNote,
            is_public: false,
            by_agent: false,
            author: Actor::System,
        };
        let opts = Options {
            metadata: EventMetadata {
                actor: ACTOR.into(),
                correlation_id: Some(problem),
                ..EventMetadata::default()
            },
            ..Options::default()
        };
        for _ in 0..5 {
            let r = execute::<IncidentAggregate>(
                &self.store,
                &*self.clock,
                TenantId(tenant),
                StreamId(incident),
                command.clone(),
                &opts,
            )
            .await;
            return match r {
                Ok(done) if done.appended.is_some() => Outcome::Noted,
                Ok(_) => Outcome::Done,
                Err(CommandError::Conflict) => continue,
                Err(CommandError::Rejected(
                    IncidentError::DuplicateWorkNote(_)
                    | IncidentError::NotFound
                    | IncidentError::ActionNotAllowed { .. },
                )) => Outcome::Done,
                Err(e) => {
                    tracing::warn!(%tenant, %problem, %incident, error = %e,
                        "problem note not added; will retry");
                    Outcome::Keep
                }
            };
        }
        Outcome::Keep
    }
}

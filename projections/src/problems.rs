//! `problems`: the read model of problems and the known-error database (`rm_problems`), fed by
//! the `problem` streams (ADR 0021), plus the problem reactor's work rows
//! (`problem_incident_notes`). Events of other stream types are ignored.
//!
//! As for the CMDB: per batch, one SELECT loads the rows the batch touches, the domain's
//! `evolve` folds the events on top (events at or below a row's version are skipped, so a
//! replay is a no-op) and one upsert writes the changed rows.
//!
//! Each `ProblemResolved` also writes one row per incident it names into
//! `problem_incident_notes` (`ON CONFLICT DO NOTHING`, keyed by a note id derived from the
//! event id and the incident id), in the transaction of the checkpoint. The problem reactor
//! (`eventdesk-workers`) turns them into work notes on the incidents; this projection never
//! appends anything itself.

use crate::fold::{self, changed_rows, upsert_sql, write_rows};
use crate::runtime::{HandlerError, Projection};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use eventdesk_domain::Aggregate;
use eventdesk_domain::problem::{ProblemAggregate, ProblemEvent};
use eventdesk_store::RecordedEvent;
use sqlx::PgConnection;
use std::sync::LazyLock;
use uuid::Uuid;

/// The problems read model.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProblemProjection;

const COLS: &[&str] = &[
    "tenant_id",
    "id",
    "title",
    "description",
    "status",
    "priority",
    "category_id",
    "ci_id",
    "assignee_id",
    "root_cause",
    "workaround",
    "resolution",
    "incident_ids",
    "known_error_at",
    "resolved_at",
    "closed_at",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "version",
];

static UPSERT: LazyLock<String> =
    LazyLock::new(|| upsert_sql("rm_problems", &["tenant_id", "id"], COLS, &[]));

const LOAD: &str = "SELECT r.tenant_id, r.id, r.version, to_jsonb(r) FROM rm_problems r \
     WHERE (r.tenant_id, r.id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))";

/// The work rows of the reactor; the note id is `md5(event id ':' incident id)` as a UUID, so
/// the same event always asks for the same note.
const NOTES: &str = "INSERT INTO problem_incident_notes \
     (tenant_id, note_id, problem_id, incident_id, body, recorded_at) \
     SELECT x.tenant_id, md5(x.event_id::text || ':' || x.incident_id::text)::uuid, \
            x.problem_id, x.incident_id, x.body, x.recorded_at \
     FROM jsonb_to_recordset($1) AS x(tenant_id uuid, event_id uuid, problem_id uuid, \
          incident_id uuid, body text, recorded_at timestamptz) \
     ON CONFLICT DO NOTHING";

/// A resolution seen in the batch.
struct Resolution {
    tenant: Uuid,
    problem: Uuid,
    event_id: Uuid,
    incidents: Vec<Uuid>,
    resolution: String,
    recorded_at: DateTime<Utc>,
}

#[async_trait]
impl Projection for ProblemProjection {
    fn name(&self) -> &'static str {
        "problems"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_problems", "problem_incident_notes"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), HandlerError> {
        let mine: Vec<&RecordedEvent> = events
            .iter()
            .filter(|e| e.stream_type == ProblemAggregate::STREAM_TYPE)
            .collect();
        if mine.is_empty() {
            return Ok(());
        }
        let mut states = fold::load::<ProblemAggregate>(tx, LOAD, &mine).await?;
        let mut resolutions = Vec::new();
        fold::apply(&mut states, &mine, |rec, event| {
            if let ProblemEvent::ProblemResolved(e) = event
                && !e.incident_ids.is_empty()
            {
                resolutions.push(Resolution {
                    tenant: rec.tenant_id.0,
                    problem: rec.stream_id.0,
                    event_id: rec.event_id,
                    incidents: e.incident_ids.iter().map(|i| i.0).collect(),
                    resolution: e.resolution.as_str().to_owned(),
                    recorded_at: rec.recorded_at,
                });
            }
            Ok(())
        })?;
        write_rows(tx, &UPSERT, changed_rows(&states, true, |_, _, _| Ok(()))?).await?;
        let mut notes = Vec::new();
        for r in resolutions {
            let title = states
                .get(&(r.tenant, r.problem))
                .and_then(|f| f.agg.state.as_ref())
                .map(|p| p.title.as_str().to_owned())
                .unwrap_or_default();
            let body = format!(
                "Problem \"{title}\" ({}) was resolved: {}",
                r.problem, r.resolution
            );
            for i in r.incidents {
                notes.push(serde_json::json!({
                    "tenant_id": r.tenant,
                    "event_id": r.event_id,
                    "problem_id": r.problem,
                    "incident_id": i,
                    "body": body,
                    "recorded_at": r.recorded_at,
                }));
            }
        }
        if !notes.is_empty() {
            sqlx::query(NOTES)
                .bind(serde_json::Value::Array(notes))
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }
}

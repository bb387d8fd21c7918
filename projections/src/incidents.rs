//! `incidents`: the incident list/detail read model (`rm_incidents`) and its related lists —
//! field history (`rm_incident_history`), work notes (`rm_incident_work_notes`) and
//! attachments (`rm_incident_attachments`) — fed by the `incident` streams.
//!
//! Per batch: one SELECT loads the rows of the incidents the batch touches, the domain's
//! `evolve` folds the events on top (events at or below a row's version are skipped), and one
//! statement per table writes the result:
//! - `rm_incidents`: upsert guarded by `WHERE rm_incidents.version < EXCLUDED.version`;
//!   `response_due_at`/`resolution_due_at` are the current due times of the SLA timers, taken
//!   from the `SlaTimerStarted`/`SlaTimerRescheduled` events of the batch; a batch without
//!   them keeps the stored values (`COALESCE`);
//! - history: one row per [`IncidentEvent::history`] entry, keyed by `(incident, version, seq)`;
//! - work notes and attachments: one row per `…Added` event, keyed by their ids.
//!
//! The three lists use `ON CONFLICT DO NOTHING`, so re-applying a batch changes nothing.
//!
//! `rm_incident_counts` (incidents per tenant × status × priority × impact × urgency, for exact
//! list totals) is kept by statement-level triggers on `rm_incidents` (migration 0007), in the
//! statement that writes the rows: they see only the rows the upsert actually inserted or
//! updated, so rows the version guard skips change no count, and any batching of a rebuild (or
//! a replay) ends with the same counts. `TRUNCATE rm_incidents` empties them.
//! An event type the domain does not know fails to decode and is dead-lettered by the runtime.

use crate::fold::{self, changed_rows, err, upsert_sql};
use crate::runtime::{HandlerError, Projection};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use eventdesk_domain::incident::IncidentEvent;
use eventdesk_domain::sla::policy::SlaMetric;
use eventdesk_domain::values::Priority;
use eventdesk_domain::{Aggregate, IncidentAggregate};
use eventdesk_store::RecordedEvent;
use sqlx::PgConnection;
use std::sync::LazyLock;
use uuid::Uuid;

/// The incident read models.
#[derive(Debug, Default, Clone, Copy)]
pub struct IncidentProjection;

/// The sort rank of a priority: `low` 0 … `critical` 3 (the `priority_rank` column).
pub fn priority_rank(p: Priority) -> i16 {
    match p {
        Priority::Low => 0,
        Priority::Medium => 1,
        Priority::High => 2,
        Priority::Critical => 3,
    }
}

const INCIDENT_COLS: &[&str] = &[
    "tenant_id",
    "id",
    "number",
    "number_seq",
    "title",
    "description",
    "status",
    "priority",
    "priority_rank",
    "priority_overridden",
    "impact",
    "urgency",
    "category_id",
    "team_id",
    "assignee_id",
    "reporter_id",
    "ci_id",
    "resolution",
    "hold_reason",
    "held_from",
    "on_hold_since",
    "responded_at",
    "resolved_at",
    "closed_at",
    "cancelled_at",
    "reopen_count",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "version",
    "response_due_at",
    "resolution_due_at",
];

/// The rows travel as `json` text, not `jsonb`: `json_populate_recordset` reads the text once,
/// where `jsonb` would first be parsed into a tree with sorted keys and then searched key by
/// key — half the server time of the statement for a batch of rows (a rebuild writes
/// thousands per batch).
static INCIDENT_UPSERT: LazyLock<String> = LazyLock::new(|| {
    upsert_sql("rm_incidents", &["tenant_id", "id"], INCIDENT_COLS, &[])
        .replace(
            "jsonb_populate_recordset(NULL::rm_incidents, $1)",
            "json_populate_recordset(NULL::rm_incidents, $1::json)",
        )
        .replace(
            "response_due_at = EXCLUDED.response_due_at",
            "response_due_at = COALESCE(EXCLUDED.response_due_at, rm_incidents.response_due_at)",
        )
        .replace(
            "resolution_due_at = EXCLUDED.resolution_due_at",
            "resolution_due_at = COALESCE(EXCLUDED.resolution_due_at, \
             rm_incidents.resolution_due_at)",
        )
});

/// The domain state needs the lists it keeps; the read model holds them in their own tables,
/// and only the new ones of a batch matter here.
const INCIDENT_LOAD: &str = "SELECT r.tenant_id, r.id, r.version, \
     to_jsonb(r) || '{\"work_notes\": [], \"attachments\": []}'::jsonb FROM rm_incidents r \
     WHERE (r.tenant_id, r.id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))";

const HISTORY_INSERT: &str = "INSERT INTO rm_incident_history (tenant_id, incident_id, version, \
     seq, field, old_value, new_value, changed_by, changed_by_user_id, changed_at) \
     SELECT t, i, v, s, f, to_jsonb(o), to_jsonb(n), b, u, a \
     FROM unnest($1::uuid[], $2::uuid[], $3::int8[], $4::int4[], $5::text[], $6::text[], \
                 $7::text[], $8::text[], $9::uuid[], $10::timestamptz[]) \
          AS x(t, i, v, s, f, o, n, b, u, a) \
     ON CONFLICT DO NOTHING";

const NOTE_INSERT: &str = "INSERT INTO rm_incident_work_notes (tenant_id, incident_id, id, body, \
     note_type, is_public, by_agent, author, author_user_id, created_at) \
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], \
                          $6::bool[], $7::bool[], $8::text[], $9::uuid[], $10::timestamptz[]) \
     ON CONFLICT DO NOTHING";

const ATTACHMENT_INSERT: &str = "INSERT INTO rm_incident_attachments (tenant_id, incident_id, id, \
     filename, content_type, size_bytes, sha256, uploaded_by, uploaded_by_user_id, created_at) \
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], \
                          $6::int8[], $7::text[], $8::text[], $9::uuid[], $10::timestamptz[]) \
     ON CONFLICT DO NOTHING";

/// `rm_incident_counts` from `rm_incidents` (the backfill of migration 0007).
const COUNTS_FROM_SCRATCH: &str = "INSERT INTO rm_incident_counts (tenant_id, status, priority, \
     impact, urgency, count) \
     SELECT tenant_id, status, priority, impact, urgency, count(*) FROM rm_incidents \
     GROUP BY tenant_id, status, priority, impact, urgency";

/// Column arrays of the history rows of a batch.
#[derive(Default)]
struct HistoryRows {
    tenant: Vec<Uuid>,
    incident: Vec<Uuid>,
    version: Vec<i64>,
    seq: Vec<i32>,
    field: Vec<&'static str>,
    old: Vec<Option<String>>,
    new: Vec<Option<String>>,
    by: Vec<String>,
    by_user: Vec<Option<Uuid>>,
    at: Vec<DateTime<Utc>>,
}

/// Column arrays of the work-note rows of a batch.
#[derive(Default)]
struct NoteRows {
    tenant: Vec<Uuid>,
    incident: Vec<Uuid>,
    id: Vec<Uuid>,
    body: Vec<String>,
    note_type: Vec<&'static str>,
    is_public: Vec<bool>,
    by_agent: Vec<bool>,
    author: Vec<String>,
    author_user: Vec<Option<Uuid>>,
    at: Vec<DateTime<Utc>>,
}

/// Column arrays of the attachment rows of a batch.
#[derive(Default)]
struct AttachmentRows {
    tenant: Vec<Uuid>,
    incident: Vec<Uuid>,
    id: Vec<Uuid>,
    filename: Vec<String>,
    content_type: Vec<String>,
    size: Vec<i64>,
    sha256: Vec<String>,
    by: Vec<String>,
    by_user: Vec<Option<Uuid>>,
    at: Vec<DateTime<Utc>>,
}

#[async_trait]
impl Projection for IncidentProjection {
    fn name(&self) -> &'static str {
        "incidents"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "rm_incidents",
            "rm_incident_history",
            "rm_incident_work_notes",
            "rm_incident_attachments",
            "rm_incident_counts",
        ]
    }

    /// The counts are kept by triggers on `rm_incidents`; a rebuild computes them once, in one
    /// statement, after its bulk phase (which runs without the triggers).
    fn derived_tables(&self) -> &'static [(&'static str, &'static str)] {
        &[("rm_incident_counts", COUNTS_FROM_SCRATCH)]
    }

    /// Every row belongs to one incident stream, the batch loads only its own incidents, and
    /// replayed events are skipped (version guard, `ON CONFLICT DO NOTHING`); the counts,
    /// which are shared, are derived after the bulk phase.
    fn streams_independent(&self) -> bool {
        true
    }

    /// The three lists are written with `ON CONFLICT DO NOTHING` (no target), and only for
    /// the events the fold applies — those above the incident row's version, which moves in
    /// the same transaction — so a replay adds no row twice.
    fn keys_after_bulk(&self) -> &'static [&'static str] {
        &[
            "rm_incident_history",
            "rm_incident_work_notes",
            "rm_incident_attachments",
        ]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), HandlerError> {
        let events: Vec<&RecordedEvent> = events
            .iter()
            .filter(|e| e.stream_type == IncidentAggregate::STREAM_TYPE)
            .collect();
        if events.is_empty() {
            return Ok(());
        }
        let mut states = fold::load::<IncidentAggregate>(tx, INCIDENT_LOAD, &events).await?;
        let mut history = HistoryRows::default();
        let mut notes = NoteRows::default();
        let mut files = AttachmentRows::default();
        let mut dues: std::collections::HashMap<(Uuid, Uuid), [Option<DateTime<Utc>>; 2]> =
            std::collections::HashMap::new();
        fold::apply(&mut states, &events, |rec, ev: &IncidentEvent| {
            let due = match ev {
                IncidentEvent::SlaTimerStarted(s) => Some((s.metric, s.schedule.due_at)),
                IncidentEvent::SlaTimerRescheduled(s) => Some((s.metric, s.schedule.due_at)),
                _ => None,
            };
            if let Some((metric, at)) = due {
                let slot = dues.entry((rec.tenant_id.0, rec.stream_id.0)).or_default();
                slot[usize::from(metric == SlaMetric::Resolution)] = Some(at);
            }
            let (actor, at) = (ev.actor(), ev.at());
            for (seq, change) in ev.history().into_iter().enumerate() {
                history.tenant.push(rec.tenant_id.0);
                history.incident.push(rec.stream_id.0);
                history.version.push(rec.version);
                history
                    .seq
                    .push(i32::try_from(seq).map_err(|e| err(e.to_string()))?);
                history.field.push(change.field);
                history.old.push(change.old);
                history.new.push(change.new);
                history.by.push(actor.to_string());
                history.by_user.push(actor.user_id().map(|u| u.0));
                history.at.push(at);
            }
            match ev {
                IncidentEvent::IncidentWorkNoteAdded(n) => {
                    notes.tenant.push(rec.tenant_id.0);
                    notes.incident.push(rec.stream_id.0);
                    notes.id.push(n.note_id.0);
                    notes.body.push(n.body.as_str().to_owned());
                    notes.note_type.push(n.note_type.as_str());
                    notes.is_public.push(n.is_public);
                    notes.by_agent.push(n.by_agent);
                    notes.author.push(n.author.to_string());
                    notes.author_user.push(n.author.user_id().map(|u| u.0));
                    notes.at.push(n.at);
                }
                IncidentEvent::IncidentAttachmentAdded(a) => {
                    files.tenant.push(rec.tenant_id.0);
                    files.incident.push(rec.stream_id.0);
                    files.id.push(a.attachment_id.0);
                    files.filename.push(a.filename.as_str().to_owned());
                    files.content_type.push(a.content_type.as_str().to_owned());
                    files.size.push(
                        i64::try_from(a.size_bytes)
                            .map_err(|_| err("attachment size out of range"))?,
                    );
                    files.sha256.push(a.sha256.as_str().to_owned());
                    files.by.push(a.uploaded_by.to_string());
                    files.by_user.push(a.uploaded_by.user_id().map(|u| u.0));
                    files.at.push(a.at);
                }
                _ => {}
            }
            Ok(())
        })?;

        let rows = changed_rows(&states, true, |key, agg, row| {
            if let Some(i) = &agg.state {
                row.remove("work_notes");
                row.remove("attachments");
                row.remove("sla");
                let [response, resolution] = dues.get(&key).copied().unwrap_or_default();
                row.insert("response_due_at".into(), serde_json::json!(response));
                row.insert("resolution_due_at".into(), serde_json::json!(resolution));
                let seq = i64::try_from(i.number.sequence())
                    .map_err(|_| err("incident number out of range"))?;
                row.insert("number_seq".into(), serde_json::json!(seq));
                row.insert(
                    "priority_rank".into(),
                    serde_json::json!(priority_rank(i.priority)),
                );
            }
            Ok(())
        })?;
        if !rows.is_empty() {
            sqlx::query(&INCIDENT_UPSERT)
                .bind(serde_json::to_string(&rows)?)
                .execute(&mut *tx)
                .await?;
        }

        if !history.tenant.is_empty() {
            sqlx::query(HISTORY_INSERT)
                .bind(&history.tenant)
                .bind(&history.incident)
                .bind(&history.version)
                .bind(&history.seq)
                .bind(&history.field)
                .bind(&history.old)
                .bind(&history.new)
                .bind(&history.by)
                .bind(&history.by_user)
                .bind(&history.at)
                .execute(&mut *tx)
                .await?;
        }
        if !notes.tenant.is_empty() {
            sqlx::query(NOTE_INSERT)
                .bind(&notes.tenant)
                .bind(&notes.incident)
                .bind(&notes.id)
                .bind(&notes.body)
                .bind(&notes.note_type)
                .bind(&notes.is_public)
                .bind(&notes.by_agent)
                .bind(&notes.author)
                .bind(&notes.author_user)
                .bind(&notes.at)
                .execute(&mut *tx)
                .await?;
        }
        if !files.tenant.is_empty() {
            sqlx::query(ATTACHMENT_INSERT)
                .bind(&files.tenant)
                .bind(&files.incident)
                .bind(&files.id)
                .bind(&files.filename)
                .bind(&files.content_type)
                .bind(&files.size)
                .bind(&files.sha256)
                .bind(&files.by)
                .bind(&files.by_user)
                .bind(&files.at)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }
}

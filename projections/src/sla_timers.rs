//! `sla_timers`: the SLA timer read model (`rm_sla_timers`, one row per incident, metric and
//! cycle), the scheduler's due-time rows (`sla_deadlines`) and the re-evaluation queue
//! (`sla_refresh_queue`), fed by the `incident` streams and, for the queue, by the
//! `sla_policy`/`sla_calendar` streams.
//!
//! Per batch: one SELECT loads the current-cycle rows of the incidents the batch touches; the
//! domain's own [`SlaState::apply`] folds the events on top (events at or below the rows'
//! incident version are skipped, so a replay changes nothing); then one upsert writes the
//! timers, one DELETE + one INSERT rewrite the deadlines of the touched incidents (one row per
//! threshold not yet recorded of each *running* timer — a paused timer has none, its due time is
//! recomputed when it resumes), and a policy or calendar change queues every incident of the
//! tenant with an active timer (at the change's place in the log) for re-evaluation. Nothing
//! depends on where batches end, so a rebuild in large batches ends with the live rows.

use crate::fold::err;
use crate::runtime::{HandlerError, Projection};
use async_trait::async_trait;
use eventdesk_domain::incident::IncidentEvent;
use eventdesk_domain::sla::policy::SlaMetric;
use eventdesk_domain::sla::timer::{SlaState, SlaTimer, TimerStage};
use eventdesk_domain::{Aggregate, DomainEvent, IncidentAggregate};
use eventdesk_store::RecordedEvent;
use sqlx::{PgConnection, Row};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The stream types whose events change which policy or calendar governs a timer.
pub const CONFIG_STREAM_TYPES: &[&str] = &["sla_policy", "sla_calendar"];

/// The SLA timer read model.
#[derive(Debug, Default, Clone, Copy)]
pub struct SlaTimerProjection;

const LOAD: &str = "SELECT tenant_id, incident_id, version, state FROM rm_sla_timers \
     WHERE is_current AND (tenant_id, incident_id) IN \
           (SELECT * FROM unnest($1::uuid[], $2::uuid[]))";

const UPSERT: &str = "INSERT INTO rm_sla_timers (tenant_id, incident_id, metric, cycle, \
     is_current, stage, policy_id, calendar_id, target_secs, started_at, due_at, \
     original_due_at, stopped_at, last_threshold, breached, state, version) \
     SELECT tenant_id, incident_id, metric, cycle, is_current, stage, policy_id, calendar_id, \
            target_secs, started_at, due_at, original_due_at, stopped_at, last_threshold, \
            breached, state, version \
     FROM jsonb_populate_recordset(NULL::rm_sla_timers, $1) \
     ON CONFLICT (tenant_id, incident_id, metric, cycle) DO UPDATE SET \
       is_current = EXCLUDED.is_current, stage = EXCLUDED.stage, \
       policy_id = EXCLUDED.policy_id, calendar_id = EXCLUDED.calendar_id, \
       target_secs = EXCLUDED.target_secs, due_at = EXCLUDED.due_at, \
       original_due_at = EXCLUDED.original_due_at, stopped_at = EXCLUDED.stopped_at, \
       last_threshold = EXCLUDED.last_threshold, breached = EXCLUDED.breached, \
       state = EXCLUDED.state, version = EXCLUDED.version \
     WHERE rm_sla_timers.version < EXCLUDED.version";

const DELETE_DEADLINES: &str = "DELETE FROM sla_deadlines WHERE (tenant_id, incident_id) IN \
     (SELECT * FROM unnest($1::uuid[], $2::uuid[]))";

const INSERT_DEADLINES: &str = "INSERT INTO sla_deadlines (tenant_id, incident_id, metric, \
     cycle, threshold, due_at) \
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int4[], $5::int2[], \
                          $6::timestamptz[]) \
     ON CONFLICT (tenant_id, incident_id, metric, cycle, threshold) \
     DO UPDATE SET due_at = EXCLUDED.due_at";

const QUEUE_REFRESH: &str = "INSERT INTO sla_refresh_queue (tenant_id, incident_id, after_txid, \
     after_position) \
     SELECT DISTINCT tenant_id, incident_id, $2, $3 FROM rm_sla_timers \
     WHERE tenant_id = $1 AND is_current AND stage IN ('in_progress', 'paused') \
     ON CONFLICT (tenant_id, incident_id) DO UPDATE \
     SET after_txid = EXCLUDED.after_txid, after_position = EXCLUDED.after_position";

/// One incident being folded.
#[derive(Default)]
struct Folded {
    sla: SlaState,
    version: i64,
    changed: bool,
    /// Timers replaced by a new cycle in this batch (written with `is_current = false`), with
    /// the version of the event that replaced them (not the batch's last: batching must not
    /// show in the rows).
    retired: Vec<(SlaTimer, i64)>,
}

fn timer_row(
    tenant: Uuid,
    incident: Uuid,
    t: &SlaTimer,
    is_current: bool,
    version: i64,
) -> Result<serde_json::Value, HandlerError> {
    Ok(serde_json::json!({
        "tenant_id": tenant,
        "incident_id": incident,
        "metric": t.metric.as_str(),
        "cycle": t.cycle,
        "is_current": is_current,
        "stage": t.stage.as_str(),
        "policy_id": t.basis.policy_id,
        "calendar_id": t.basis.calendar_id,
        "target_secs": t.basis.target_secs,
        "started_at": t.started_at,
        "due_at": t.due_at,
        "original_due_at": t.original_due_at,
        "stopped_at": t.stopped_at,
        "last_threshold": t.last_threshold(),
        "breached": t.breached,
        "state": serde_json::to_value(t)?,
        "version": version,
    }))
}

/// Column arrays of deadline rows.
#[derive(Default)]
struct Deadlines {
    tenant: Vec<Uuid>,
    incident: Vec<Uuid>,
    metric: Vec<&'static str>,
    cycle: Vec<i32>,
    threshold: Vec<i16>,
    due: Vec<chrono::DateTime<chrono::Utc>>,
}

impl Deadlines {
    fn add(&mut self, tenant: Uuid, incident: Uuid, t: &SlaTimer) -> Result<(), HandlerError> {
        if t.stage != TimerStage::InProgress {
            return Ok(());
        }
        let cycle = i32::try_from(t.cycle).map_err(|_| err("SLA cycle out of range"))?;
        for th in t.thresholds.iter().filter(|th| th.crossed_at.is_none()) {
            self.tenant.push(tenant);
            self.incident.push(incident);
            self.metric.push(t.metric.as_str());
            self.cycle.push(cycle);
            self.threshold.push(i16::from(th.percent));
            self.due.push(th.at);
        }
        Ok(())
    }
}

/// Whether an incident event can change a timer.
fn touches_timers(event_type: &str) -> bool {
    event_type.starts_with("Sla")
        || event_type == "IncidentPutOnHold"
        || event_type == "IncidentResumed"
}

#[async_trait]
impl Projection for SlaTimerProjection {
    fn name(&self) -> &'static str {
        "sla_timers"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_sla_timers", "sla_deadlines", "sla_refresh_queue"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), HandlerError> {
        // A policy or calendar change queues the incidents whose timers are active *at its
        // place in the log*: the timer events before it are written first, those after it
        // only after the queueing. So the queue does not depend on where batches happen to
        // end (a rebuild in large batches ends with the same rows as the live runner).
        let mut timer_events: Vec<&RecordedEvent> = Vec::new();
        for e in events {
            if e.stream_type == IncidentAggregate::STREAM_TYPE && touches_timers(&e.event_type) {
                timer_events.push(e);
            } else if CONFIG_STREAM_TYPES.contains(&e.stream_type.as_str()) {
                if !timer_events.is_empty() {
                    apply_incident_events(tx, &timer_events).await?;
                    timer_events.clear();
                }
                sqlx::query(QUEUE_REFRESH)
                    .bind(e.tenant_id.0)
                    .bind(i64::try_from(e.transaction_id).map_err(|_| err("txid out of range"))?)
                    .bind(e.global_position)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if !timer_events.is_empty() {
            apply_incident_events(tx, &timer_events).await?;
        }
        Ok(())
    }
}

async fn apply_incident_events(
    tx: &mut PgConnection,
    events: &[&RecordedEvent],
) -> Result<(), HandlerError> {
    let (tenants, ids) = crate::fold::key_arrays(events);
    let mut states: BTreeMap<(Uuid, Uuid), Folded> = BTreeMap::new();
    for row in sqlx::query(LOAD)
        .bind(&tenants)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
    {
        let key: (Uuid, Uuid) = (row.try_get(0)?, row.try_get(1)?);
        let version: i64 = row.try_get(2)?;
        let timer: SlaTimer = serde_json::from_value(row.try_get(3)?)?;
        let slot = states.entry(key).or_default();
        slot.version = slot.version.max(version);
        match timer.metric {
            SlaMetric::Response => slot.sla.response = Some(timer),
            SlaMetric::Resolution => slot.sla.resolution = Some(timer),
        }
    }
    for rec in events {
        let slot = states
            .entry((rec.tenant_id.0, rec.stream_id.0))
            .or_default();
        if rec.version <= slot.version {
            continue;
        }
        let event = IncidentEvent::decode(&rec.event_type, &rec.data)?;
        if let IncidentEvent::SlaTimerStarted(s) = &event
            && let Some(old) = slot.sla.timer(s.metric)
            && old.cycle != s.cycle
        {
            slot.retired.push((old.clone(), rec.version));
        }
        slot.sla.apply(&event);
        slot.version = rec.version;
        slot.changed = true;
    }

    let mut rows = Vec::new();
    let mut deadlines = Deadlines::default();
    let (mut del_tenants, mut del_ids) = (Vec::new(), Vec::new());
    for ((tenant, incident), f) in states.iter().filter(|(_, f)| f.changed) {
        for (t, version) in &f.retired {
            rows.push(timer_row(*tenant, *incident, t, false, *version)?);
        }
        for t in f.sla.response.iter().chain(f.sla.resolution.iter()) {
            rows.push(timer_row(*tenant, *incident, t, true, f.version)?);
            deadlines.add(*tenant, *incident, t)?;
        }
        del_tenants.push(*tenant);
        del_ids.push(*incident);
    }
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(UPSERT)
        .bind(serde_json::Value::Array(rows))
        .execute(&mut *tx)
        .await?;
    sqlx::query(DELETE_DEADLINES)
        .bind(&del_tenants)
        .bind(&del_ids)
        .execute(&mut *tx)
        .await?;
    if !deadlines.tenant.is_empty() {
        sqlx::query(INSERT_DEADLINES)
            .bind(&deadlines.tenant)
            .bind(&deadlines.incident)
            .bind(&deadlines.metric)
            .bind(&deadlines.cycle)
            .bind(&deadlines.threshold)
            .bind(&deadlines.due)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

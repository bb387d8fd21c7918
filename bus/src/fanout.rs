//! The fan-out: a subscriber on the event log with its own checkpoint. For each event below
//! the horizon, in log order, and each subscription or integration that wants it, one row in
//! `bus_deliveries` — written in the same transaction as the checkpoint's move, so every event
//! is fanned out exactly once, and a crash re-reads only what was not committed.
//!
//! What produces rows (incident streams only):
//! - **webhooks**: every active subscription created before the event, whose filter names
//!   the event type (or `*`);
//! - **Slack**: a new incident of priority `critical`, an SLA warning, an SLA breach (each as
//!   configured);
//! - **Jira**: an issue for a new incident (trigger `critical_incident` or `any_incident`)
//!   or an SLA breach of an incident without one (`sla_breach`), one per incident; a comment
//!   for each later change of an incident that has an issue or is getting one.
//!
//! The checkpoint update is guarded by its previous value (as the projector's, ADR 0005): if
//! two nodes ever read the same batch, one commits and the other rolls back and reloads.
//! A batch that keeps failing is narrowed to its first event; an event that still fails is
//! skipped with an error log, so one poison event cannot stop the bus.

use crate::Bus;
use crate::messages::{self, IncidentInfo};
use crate::model::{
    self, DELIVERABLE_STREAM, IntegrationRow, JiraSettings, JiraTrigger, SlackSettings, Target,
};
use eventdesk_domain::incident::IncidentEvent;
use eventdesk_domain::values::Priority;
use eventdesk_domain::{Aggregate, DomainEvent, IncidentAggregate, StreamId, TenantId};
use eventdesk_store::subscription::wait_for_news;
use eventdesk_store::{Checkpoint, EventStore, RecordedEvent};
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The checkpoint's name.
pub const CHECKPOINT: &str = "integration_bus";

/// Why a batch did not commit.
#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    /// Another node moved the checkpoint: reload it.
    #[error("the checkpoint moved")]
    Stale,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// The log could not be read.
    #[error(transparent)]
    Store(#[from] eventdesk_store::StoreError),
}

/// Runs the fan-out until `stop`.
pub async fn run(bus: Bus, stop: CancellationToken) {
    let mut cp = loop {
        match ensure_and_load(&bus).await {
            Ok(cp) => break cp,
            Err(e) => {
                tracing::warn!(error = %e, "integration bus: cannot load its checkpoint");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    let store = &bus.inner.store;
    let mut rx = store.waker().subscribe();
    let min_poll = Duration::from_millis(5);
    let mut poll = min_poll;
    let mut failures: u32 = 0;
    while !stop.is_cancelled() {
        rx.borrow_and_update();
        let events = match store.read_all(cp, bus.inner.config.batch).await {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(error = %e, "integration bus: read failed");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(bus.inner.config.poll) => {}
                }
                continue;
            }
        };
        if events.is_empty() {
            tokio::select! {
                () = stop.cancelled() => break,
                () = wait_for_news(&mut rx, poll) => {}
            }
            poll = (poll * 2).min(bus.inner.config.poll);
            continue;
        }
        poll = min_poll;
        let narrow = failures >= 3;
        let batch = if narrow { &events[..1] } else { &events[..] };
        match apply(&bus, cp, batch, failures >= 6).await {
            Ok(next) => {
                cp = next;
                failures = 0;
                bus.nudge();
            }
            Err(FanoutError::Stale) => match load(&bus).await {
                Ok(c) => cp = c,
                Err(e) => tracing::warn!(error = %e, "integration bus: reload failed"),
            },
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "integration bus: fan-out failed");
                let backoff = Duration::from_millis(50u64 << failures.min(7));
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
}

async fn ensure_and_load(bus: &Bus) -> Result<Checkpoint, sqlx::Error> {
    sqlx::query("INSERT INTO bus_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(CHECKPOINT)
        .execute(&bus.inner.system)
        .await?;
    load(bus).await
}

/// The stored checkpoint.
pub async fn load(bus: &Bus) -> Result<Checkpoint, sqlx::Error> {
    let row = sqlx::query(
        "SELECT last_txid::text::int8, last_position FROM bus_checkpoints WHERE name = $1",
    )
    .bind(CHECKPOINT)
    .fetch_one(&bus.inner.system)
    .await?;
    Ok(Checkpoint {
        transaction_id: u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0),
        position: row.try_get(1)?,
    })
}

/// One row to insert.
#[derive(Debug, Clone)]
struct NewRow {
    id: Uuid,
    tenant: Uuid,
    target: Target,
    kind: &'static str,
    webhook: Option<Uuid>,
    endpoint: String,
    dedupe: String,
    event_id: Option<Uuid>,
    event_type: Option<String>,
    stream: Option<Uuid>,
    payload: Value,
    dry_run: bool,
}

/// What the batch's tenants have configured.
#[derive(Default)]
struct Subscribers {
    webhooks: HashMap<Uuid, Vec<WebhookSub>>,
    slack: HashMap<Uuid, IntegrationRow<SlackSettings>>,
    jira: HashMap<Uuid, IntegrationRow<JiraSettings>>,
}

struct WebhookSub {
    id: Uuid,
    event_types: Vec<String>,
    created_at: chrono::DateTime<chrono::Utc>,
}

async fn subscribers(bus: &Bus, tenants: &[Uuid]) -> Result<Subscribers, sqlx::Error> {
    let mut s = Subscribers::default();
    let rows = sqlx::query(
        "SELECT id, tenant_id, event_types, created_at FROM webhooks \
         WHERE tenant_id = ANY($1) AND status = 'active'",
    )
    .bind(tenants)
    .fetch_all(&bus.inner.system)
    .await?;
    for r in rows {
        let tenant: Uuid = r.try_get(1)?;
        s.webhooks.entry(tenant).or_default().push(WebhookSub {
            id: r.try_get(0)?,
            event_types: r.try_get(2)?,
            created_at: r.try_get(3)?,
        });
    }
    let rows = sqlx::query(
        "SELECT tenant_id, kind, enabled, settings, credentials_enc, created_at, updated_at \
         FROM integration_settings WHERE tenant_id = ANY($1) AND enabled \
           AND credentials_enc IS NOT NULL",
    )
    .bind(tenants)
    .fetch_all(&bus.inner.system)
    .await?;
    for r in rows {
        let kind: String = r.try_get("kind")?;
        let tenant: Uuid = r.try_get("tenant_id")?;
        match kind.as_str() {
            "slack" => match crate::repo::integration_of::<SlackSettings>(&r) {
                Ok(row) => {
                    s.slack.insert(tenant, row);
                }
                Err(e) => tracing::warn!(%tenant, error = %e, "unreadable Slack settings"),
            },
            "jira" => match crate::repo::integration_of::<JiraSettings>(&r) {
                Ok(row) => {
                    s.jira.insert(tenant, row);
                }
                Err(e) => tracing::warn!(%tenant, error = %e, "unreadable Jira settings"),
            },
            _ => {}
        }
    }
    Ok(s)
}

/// Incidents' current state, read from their streams once per batch.
struct Incidents<'a> {
    bus: &'a Bus,
    cache: HashMap<(Uuid, Uuid), Option<IncidentInfo>>,
}

impl Incidents<'_> {
    async fn info(
        &mut self,
        tenant: Uuid,
        stream: Uuid,
    ) -> Result<Option<IncidentInfo>, FanoutError> {
        if let Some(i) = self.cache.get(&(tenant, stream)) {
            return Ok(i.clone());
        }
        let recs = self
            .bus
            .inner
            .store
            .read_stream(TenantId(tenant), StreamId(stream), 1)
            .await?;
        let events: Vec<IncidentEvent> = recs
            .iter()
            .filter_map(|r| IncidentEvent::decode(&r.event_type, &r.data).ok())
            .collect();
        let agg = IncidentAggregate::replay(events.iter());
        let info = agg.incident().map(|i| IncidentInfo {
            number: i.number.to_string(),
            title: i.title.to_string(),
            description: i.description.to_string(),
            priority: i.priority.to_string(),
            impact: i.impact.to_string(),
            urgency: i.urgency.to_string(),
            status: i.status.to_string(),
        });
        self.cache.insert((tenant, stream), info.clone());
        Ok(info)
    }
}

/// The webhook body of an event (Standard Webhooks: `type`, `timestamp`, `data`).
pub fn webhook_body(ev: &RecordedEvent) -> Value {
    json!({
        "type": ev.event_type,
        "timestamp": ev.recorded_at,
        "data": {
            "event_id": ev.event_id,
            "tenant_id": ev.tenant_id.0,
            "incident_id": ev.stream_id.0,
            "version": ev.version,
            "actor": ev.metadata.actor,
            "payload": ev.data,
        },
    })
}

/// The Jira comment for an incident event, if it deserves one.
fn comment_text(info: &IncidentInfo, ev: &IncidentEvent, actor: &str) -> Option<String> {
    let what = match ev {
        IncidentEvent::IncidentUpdated(e) => {
            let c = &e.changes;
            let mut parts = Vec::new();
            if let Some(x) = &c.title {
                parts.push(format!("title → {}", x.new));
            }
            if c.description.is_some() {
                parts.push("description changed".to_owned());
            }
            if let Some(x) = &c.priority {
                parts.push(format!("priority {} → {}", x.old, x.new));
            }
            if let Some(x) = &c.impact {
                parts.push(format!("impact {} → {}", x.old, x.new));
            }
            if let Some(x) = &c.urgency {
                parts.push(format!("urgency {} → {}", x.old, x.new));
            }
            if parts.is_empty() {
                return None;
            }
            format!("Updated: {}.", parts.join(", "))
        }
        IncidentEvent::IncidentAssigned(e) => format!("Assigned (status {}).", e.to),
        IncidentEvent::IncidentWorkStarted(_) => "Work started.".to_owned(),
        IncidentEvent::IncidentPutOnHold(e) => match &e.comment {
            Some(c) => format!("On hold ({}): {c}", e.reason),
            None => format!("On hold ({}).", e.reason),
        },
        IncidentEvent::IncidentResumed(e) => format!("Resumed (status {}).", e.to),
        IncidentEvent::IncidentResolved(e) => format!("Resolved: {}", e.resolution),
        IncidentEvent::IncidentReopened(e) => format!("Reopened: {}", e.reason),
        IncidentEvent::IncidentClosed(_) => "Closed.".to_owned(),
        IncidentEvent::IncidentCancelled(e) => format!("Cancelled: {}", e.reason),
        IncidentEvent::IncidentWorkNoteAdded(e) if e.is_public => {
            format!("Public note: {}", e.body)
        }
        IncidentEvent::SlaBreached(e) => {
            format!("SLA breached: the {} target was missed.", e.metric)
        }
        _ => return None,
    };
    let label = if info.number.is_empty() {
        "incident".to_owned()
    } else {
        info.number.clone()
    };
    Some(format!("eventdesk {label} — {what}\n({actor})"))
}

/// Decides the rows of a batch (reads what it needs, writes nothing).
async fn rows_of(
    bus: &Bus,
    events: &[RecordedEvent],
) -> Result<(Vec<NewRow>, Vec<(Uuid, Uuid)>), FanoutError> {
    let incident_events: Vec<&RecordedEvent> = events
        .iter()
        .filter(|e| e.stream_type == DELIVERABLE_STREAM)
        .collect();
    if incident_events.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut tenants: Vec<Uuid> = incident_events.iter().map(|e| e.tenant_id.0).collect();
    tenants.sort_unstable();
    tenants.dedup();
    let subs = subscribers(bus, &tenants).await?;
    if subs.webhooks.is_empty() && subs.slack.is_empty() && subs.jira.is_empty() {
        // Nobody listens; still remember test-mode incidents for later.
        let marks = incident_events
            .iter()
            .filter(|e| e.metadata.test_mode && e.event_type == "IncidentCreated")
            .map(|e| (e.tenant_id.0, e.stream_id.0))
            .collect();
        return Ok((Vec::new(), marks));
    }

    // Incidents created by a test-mode key (earlier, or in this batch).
    let (mt, ms): (Vec<Uuid>, Vec<Uuid>) = incident_events
        .iter()
        .map(|e| (e.tenant_id.0, e.stream_id.0))
        .unzip();
    let mut test_streams: HashSet<(Uuid, Uuid)> = sqlx::query(
        "SELECT tenant_id, stream_id FROM bus_test_streams \
         WHERE (tenant_id, stream_id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))",
    )
    .bind(&mt)
    .bind(&ms)
    .fetch_all(&bus.inner.system)
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .collect::<Result<_, sqlx::Error>>()?;
    let mut marks = Vec::new();

    // Jira: incidents with an issue, or with an issue being created.
    let jira_tenants: Vec<Uuid> = subs.jira.keys().copied().collect();
    let mut has_issue: HashSet<(Uuid, Uuid)> = HashSet::new();
    if !jira_tenants.is_empty() {
        let rows = sqlx::query(
            "SELECT tenant_id, incident_id FROM bus_jira_links \
             WHERE (tenant_id, incident_id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[])) \
             UNION SELECT tenant_id, stream_id FROM bus_deliveries \
             WHERE target = 'jira' AND kind = 'create_issue' AND status IN ('pending', 'succeeded') \
               AND (tenant_id, stream_id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))",
        )
        .bind(&mt)
        .bind(&ms)
        .fetch_all(&bus.inner.system)
        .await?;
        for r in rows {
            has_issue.insert((r.try_get(0)?, r.try_get(1)?));
        }
    }

    let mut incidents = Incidents {
        bus,
        cache: HashMap::new(),
    };
    let mut rows = Vec::new();
    for ev in incident_events {
        let tenant = ev.tenant_id.0;
        let stream = ev.stream_id.0;
        if ev.metadata.test_mode && ev.event_type == "IncidentCreated" {
            test_streams.insert((tenant, stream));
            marks.push((tenant, stream));
        }
        let dry_run = ev.metadata.test_mode || test_streams.contains(&(tenant, stream));
        let base = |target: Target,
                    kind: &'static str,
                    endpoint: String,
                    dedupe: String,
                    payload: Value| NewRow {
            id: Uuid::now_v7(),
            tenant,
            target,
            kind,
            webhook: None,
            endpoint,
            dedupe,
            event_id: Some(ev.event_id),
            event_type: Some(ev.event_type.clone()),
            stream: Some(stream),
            payload,
            dry_run,
        };

        for w in subs.webhooks.get(&tenant).into_iter().flatten() {
            if w.created_at <= ev.recorded_at
                && model::filter_matches(&w.event_types, &ev.event_type)
            {
                rows.push(NewRow {
                    webhook: Some(w.id),
                    ..base(
                        Target::Webhook,
                        "event",
                        format!("webhook:{}", w.id),
                        format!("webhook:{}:{}", w.id, ev.event_id),
                        webhook_body(ev),
                    )
                });
            }
        }

        let slack = subs
            .slack
            .get(&tenant)
            .filter(|s| s.created_at <= ev.recorded_at);
        let jira = subs
            .jira
            .get(&tenant)
            .filter(|s| s.created_at <= ev.recorded_at);
        if slack.is_none() && jira.is_none() {
            continue;
        }
        let Ok(decoded) = IncidentEvent::decode(&ev.event_type, &ev.data) else {
            tracing::warn!(event_id = %ev.event_id, event_type = %ev.event_type,
                "integration bus: event does not decode; Slack and Jira skip it");
            continue;
        };

        if let Some(s) = slack {
            let st = &s.settings;
            let slack_row = |kind: &'static str, body: Value| {
                base(
                    Target::Slack,
                    kind,
                    format!("slack:{tenant}"),
                    format!("slack:{}", ev.event_id),
                    json!({ "body": body }),
                )
            };
            match &decoded {
                IncidentEvent::IncidentCreated(c)
                    if st.notify_critical_incidents && c.priority == Priority::Critical =>
                {
                    let info = info_of_created(c);
                    rows.push(slack_row(
                        "critical_incident",
                        messages::slack_critical_incident(&info, c.at),
                    ));
                }
                IncidentEvent::SlaWarningIssued(w) if st.notify_sla_warnings => {
                    let info = incidents.info(tenant, stream).await?.unwrap_or_default();
                    rows.push(slack_row(
                        "sla_warning",
                        messages::slack_sla(&info, w.metric.as_str(), w.threshold, w.crossed_at),
                    ));
                }
                IncidentEvent::SlaBreached(b) if st.notify_sla_breaches => {
                    let info = incidents.info(tenant, stream).await?.unwrap_or_default();
                    rows.push(slack_row(
                        "sla_breach",
                        messages::slack_sla(&info, b.metric.as_str(), 100, b.crossed_at),
                    ));
                }
                _ => {}
            }
        }

        if let Some(j) = jira {
            let st = &j.settings;
            let create = match &decoded {
                IncidentEvent::IncidentCreated(c) => {
                    (st.triggers.contains(&JiraTrigger::AnyIncident)
                        || (st.triggers.contains(&JiraTrigger::CriticalIncident)
                            && c.priority == Priority::Critical))
                        .then(|| info_of_created(c))
                }
                IncidentEvent::SlaBreached(_)
                    if st.triggers.contains(&JiraTrigger::SlaBreach)
                        && !has_issue.contains(&(tenant, stream)) =>
                {
                    incidents.info(tenant, stream).await?
                }
                _ => None,
            };
            if let Some(info) = create {
                has_issue.insert((tenant, stream));
                rows.push(base(
                    Target::Jira,
                    "create_issue",
                    format!("jira:{tenant}"),
                    format!("jira:create:{stream}"),
                    json!({
                        "body": messages::jira_issue(&st.project_key, &st.issue_type, &info),
                        "base_url": st.base_url,
                    }),
                ));
            } else if st.comment_on_updates && has_issue.contains(&(tenant, stream)) {
                let info = incidents.info(tenant, stream).await?.unwrap_or_default();
                if let Some(text) = comment_text(&info, &decoded, &ev.metadata.actor) {
                    rows.push(base(
                        Target::Jira,
                        "comment",
                        format!("jira:{tenant}"),
                        format!("jira:comment:{}", ev.event_id),
                        json!({ "body": messages::jira_comment(&text), "base_url": st.base_url }),
                    ));
                }
            }
        }
    }
    Ok((rows, marks))
}

fn info_of_created(c: &eventdesk_domain::incident::IncidentCreated) -> IncidentInfo {
    IncidentInfo {
        number: c.number.to_string(),
        title: c.title.to_string(),
        description: c.description.to_string(),
        priority: c.priority.to_string(),
        impact: c.impact.to_string(),
        urgency: c.urgency.to_string(),
        status: "new".to_owned(),
    }
}

/// Fans `events` (read after `cp`) out and moves the checkpoint past them, in one transaction.
/// With `skip`, writes no rows: the events are passed over (poison events, logged).
pub async fn apply(
    bus: &Bus,
    cp: Checkpoint,
    events: &[RecordedEvent],
    skip: bool,
) -> Result<Checkpoint, FanoutError> {
    let Some(last) = events.last() else {
        return Ok(cp);
    };
    let (rows, marks) = if skip {
        for e in events {
            tracing::error!(event_id = %e.event_id, event_type = %e.event_type,
                tenant_id = %e.tenant_id, "integration bus: event skipped after repeated failures");
        }
        (Vec::new(), Vec::new())
    } else {
        rows_of(bus, events).await?
    };
    let next = last.checkpoint();
    let mut tx = bus.inner.system.begin().await?;
    let moved = sqlx::query(
        "UPDATE bus_checkpoints SET last_txid = $2::int8::text::xid8, last_position = $3, \
         events_processed = events_processed + $4, updated_at = now() \
         WHERE name = $1 AND last_txid = $5::int8::text::xid8 AND last_position = $6",
    )
    .bind(CHECKPOINT)
    .bind(i64::try_from(next.transaction_id).unwrap_or(i64::MAX))
    .bind(next.position)
    .bind(i64::try_from(events.len()).unwrap_or(0))
    .bind(i64::try_from(cp.transaction_id).unwrap_or(i64::MAX))
    .bind(cp.position)
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() != 1 {
        let _ = tx.rollback().await;
        return Err(FanoutError::Stale);
    }
    if !marks.is_empty() {
        let (t, s): (Vec<Uuid>, Vec<Uuid>) = marks.into_iter().unzip();
        sqlx::query(
            "INSERT INTO bus_test_streams (tenant_id, stream_id) \
             SELECT * FROM unnest($1::uuid[], $2::uuid[]) ON CONFLICT DO NOTHING",
        )
        .bind(&t)
        .bind(&s)
        .execute(&mut *tx)
        .await?;
    }
    if !rows.is_empty() {
        insert_rows(&mut tx, &rows).await?;
    }
    tx.commit().await?;
    Ok(next)
}

async fn insert_rows(tx: &mut sqlx::PgConnection, rows: &[NewRow]) -> Result<(), sqlx::Error> {
    let mut c = Cols::default();
    for r in rows {
        c.id.push(r.id);
        c.tenant.push(r.tenant);
        c.target.push(r.target.as_str());
        c.kind.push(r.kind);
        c.webhook.push(r.webhook);
        c.endpoint.push(r.endpoint.as_str());
        c.dedupe.push(r.dedupe.as_str());
        c.event_id.push(r.event_id);
        c.event_type.push(r.event_type.as_deref());
        c.stream.push(r.stream);
        c.payload.push(r.payload.clone());
        c.status.push(if r.dry_run { "dry_run" } else { "pending" });
    }
    sqlx::query(
        "INSERT INTO bus_deliveries (id, tenant_id, target, kind, webhook_id, endpoint, \
         dedupe_key, event_id, event_type, stream_id, payload, status, completed_at) \
         SELECT i, t, tg, k, w, ep, dk, e, et, s, p, st, \
                CASE WHEN st = 'dry_run' THEN now() END \
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::text[], \
                     $7::text[], $8::uuid[], $9::text[], $10::uuid[], $11::jsonb[], $12::text[]) \
              AS x(i, t, tg, k, w, ep, dk, e, et, s, p, st) \
         ON CONFLICT (tenant_id, dedupe_key) DO NOTHING",
    )
    .bind(&c.id)
    .bind(&c.tenant)
    .bind(&c.target)
    .bind(&c.kind)
    .bind(&c.webhook)
    .bind(&c.endpoint)
    .bind(&c.dedupe)
    .bind(&c.event_id)
    .bind(&c.event_type)
    .bind(&c.stream)
    .bind(&c.payload)
    .bind(&c.status)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[derive(Default)]
struct Cols<'a> {
    id: Vec<Uuid>,
    tenant: Vec<Uuid>,
    target: Vec<&'static str>,
    kind: Vec<&'static str>,
    webhook: Vec<Option<Uuid>>,
    endpoint: Vec<&'a str>,
    dedupe: Vec<&'a str>,
    event_id: Vec<Option<Uuid>>,
    event_type: Vec<Option<&'a str>>,
    stream: Vec<Option<Uuid>>,
    payload: Vec<Value>,
    status: Vec<&'static str>,
}

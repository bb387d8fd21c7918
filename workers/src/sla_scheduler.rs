//! The SLA scheduler: records warnings (50/75/90 %) and breaches (100 %) when they are due, and
//! re-evaluates timers after policy or calendar changes.
//!
//! # Exactly once
//! Work is driven by durable rows, never by in-memory sleeps alone:
//! - `sla_deadlines` (written by the `sla_timers` projection): one row per threshold not yet
//!   recorded of a running timer, with its due instant;
//! - `sla_refresh_queue` (same projection): incidents to re-evaluate after a policy or calendar
//!   change, once the `sla_config` read model has caught up with that change.
//!
//! A sweep claims due rows with `FOR UPDATE SKIP LOCKED` (so several nodes share the work
//! without waiting on each other), sends `RecordSlaThreshold` / `RefreshSla` through the
//! command path, and deletes the rows it handled in the same transaction as the claim. The
//! guarantee does not rest on the rows, though: the incident aggregate refuses to record a
//! threshold twice (a second `RecordSlaThreshold` decides no events), and the append is
//! optimistic, so two schedulers that raced on a stale row still produce one event. A
//! scheduler that dies mid-sweep leaves its rows locked only until its connection drops; after a
//! restart, every threshold whose instant has passed is still a row and fires once, stamped
//! with the instant it was really crossed (`crossed_at`), not the instant it was noticed.
//!
//! # Cost
//! Idle, a sweep is one index probe on `sla_deadlines(due_at)` and one on the queue, every
//! `poll` (250 ms by default). Due rows are handled `concurrency` at a time.

use crate::sla_rules::SlaRulesCache;
use eventdesk_commands::incident::execute_incident;
use eventdesk_commands::{Clock, CommandError, Options, execute};
use eventdesk_domain::incident::{IncidentAggregate, IncidentCommand, IncidentError};
use eventdesk_domain::sla::policy::SlaMetric;
use eventdesk_domain::sla::timer::ThresholdError;
use eventdesk_domain::{IncidentId, StreamId, TenantId};
use eventdesk_store::{EventMetadata, PgEventStore};
use futures::StreamExt;
use sqlx::{PgPool, Row};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken as StopToken;
use uuid::Uuid;

/// Tuning of the scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Time between sweeps when nothing is due.
    pub poll: Duration,
    /// Rows claimed per transaction.
    pub batch: i64,
    /// Commands in flight at once.
    pub concurrency: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(250),
            batch: 256,
            concurrency: 8,
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Warnings and breaches appended.
    pub recorded: u64,
    /// Rows that needed no event (already recorded, timer stopped or paused).
    pub skipped: u64,
    /// Incidents re-evaluated.
    pub refreshed: u64,
    /// Rows left for the next sweep (stale schedule, transient error).
    pub deferred: u64,
}

impl SweepReport {
    fn add(&mut self, o: SweepReport) {
        self.recorded += o.recorded;
        self.skipped += o.skipped;
        self.refreshed += o.refreshed;
        self.deferred += o.deferred;
    }
}

/// The scheduler. Cheap to clone; run one per node (or several: they share the rows).
#[derive(Clone)]
pub struct SlaScheduler {
    system: PgPool,
    store: PgEventStore,
    clock: Arc<dyn Clock>,
    rules: SlaRulesCache,
    config: SchedulerConfig,
}

impl std::fmt::Debug for SlaScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlaScheduler")
            .field("config", &self.config)
            .finish()
    }
}

/// A claimed deadline row.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    tenant: Uuid,
    incident: Uuid,
    metric: SlaMetric,
    cycle: i32,
    threshold: i16,
}

/// What to do with a claimed row after its command ran.
enum Outcome {
    Recorded,
    Done,
    Keep,
}

impl SlaScheduler {
    /// A scheduler reading its rows through `system` (a pool whose role bypasses RLS: the rows
    /// of every tenant) and appending through `store`.
    pub fn new(
        system: PgPool,
        store: PgEventStore,
        clock: Arc<dyn Clock>,
        rules: SlaRulesCache,
        config: SchedulerConfig,
    ) -> Self {
        Self {
            system,
            store,
            clock,
            rules,
            config,
        }
    }

    /// Sweeps until `stop`, sleeping `poll` between sweeps that found nothing to do.
    pub async fn run(self, stop: StopToken) {
        while !stop.is_cancelled() {
            let busy = match self.sweep().await {
                Ok(r) => r.recorded + r.refreshed + r.skipped > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "SLA scheduler sweep failed");
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

    /// One pass: every due deadline, then every ready re-evaluation.
    pub async fn sweep(&self) -> Result<SweepReport, sqlx::Error> {
        let mut report = SweepReport::default();
        loop {
            let (r, claimed) = self.sweep_deadlines().await?;
            report.add(r);
            if claimed < self.config.batch {
                break;
            }
        }
        loop {
            let (r, claimed) = self.sweep_refreshes().await?;
            report.add(r);
            if claimed < self.config.batch {
                break;
            }
        }
        Ok(report)
    }

    async fn sweep_deadlines(&self) -> Result<(SweepReport, i64), sqlx::Error> {
        let now = self.clock.now();
        let mut tx = self.system.begin().await?;
        let rows = sqlx::query(
            "SELECT tenant_id, incident_id, metric, cycle, threshold FROM sla_deadlines \
             WHERE due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(now)
        .bind(self.config.batch)
        .fetch_all(&mut *tx)
        .await?;
        let claimed = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        let mut deadlines = Vec::with_capacity(rows.len());
        for row in rows {
            let metric: String = row.try_get(2)?;
            deadlines.push(Deadline {
                tenant: row.try_get(0)?,
                incident: row.try_get(1)?,
                metric: if metric == "response" {
                    SlaMetric::Response
                } else {
                    SlaMetric::Resolution
                },
                cycle: row.try_get(3)?,
                threshold: row.try_get(4)?,
            });
        }
        let outcomes: Vec<(Deadline, Outcome)> = futures::stream::iter(deadlines)
            .map(|d| async move { (d, self.record(d).await) })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        let mut report = SweepReport::default();
        let (mut t, mut i, mut m, mut c, mut th) = (vec![], vec![], vec![], vec![], vec![]);
        for (d, outcome) in outcomes {
            match outcome {
                Outcome::Keep => {
                    report.deferred += 1;
                    continue;
                }
                Outcome::Recorded => report.recorded += 1,
                Outcome::Done => report.skipped += 1,
            }
            t.push(d.tenant);
            i.push(d.incident);
            m.push(d.metric.as_str());
            c.push(d.cycle);
            th.push(d.threshold);
        }
        if !t.is_empty() {
            sqlx::query(
                "DELETE FROM sla_deadlines WHERE (tenant_id, incident_id, metric, cycle, threshold) \
                 IN (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int4[], \
                                          $5::int2[]))",
            )
            .bind(&t)
            .bind(&i)
            .bind(&m)
            .bind(&c)
            .bind(&th)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok((report, claimed))
    }

    /// Records one threshold through the command path, retrying version conflicts.
    async fn record(&self, d: Deadline) -> Outcome {
        let tenant = TenantId(d.tenant);
        let command = IncidentCommand::RecordSlaThreshold {
            metric: d.metric,
            cycle: u32::try_from(d.cycle).unwrap_or(0),
            threshold: u8::try_from(d.threshold).unwrap_or(0),
        };
        let opts = Options {
            metadata: EventMetadata {
                actor: "system:sla-scheduler".into(),
                ..EventMetadata::default()
            },
            ..Options::default()
        };
        for _ in 0..5 {
            let r = execute::<IncidentAggregate>(
                &self.store,
                &*self.clock,
                tenant,
                StreamId(d.incident),
                command.clone(),
                &opts,
            )
            .await;
            return match r {
                Ok(done) if done.appended.is_some() => Outcome::Recorded,
                Ok(_) => Outcome::Done,
                Err(CommandError::Conflict) => continue,
                Err(CommandError::Rejected(
                    IncidentError::NotFound
                    | IncidentError::Sla(
                        ThresholdError::NotRunning { .. } | ThresholdError::UnknownThreshold(_),
                    ),
                )) => Outcome::Done,
                // The row is older than the aggregate's schedule; the projection will move it.
                Err(CommandError::Rejected(IncidentError::Sla(ThresholdError::NotDue {
                    ..
                }))) => Outcome::Keep,
                Err(e) => {
                    tracing::warn!(tenant_id = %d.tenant, incident_id = %d.incident,
                        error = %e, "SLA threshold not recorded; will retry");
                    Outcome::Keep
                }
            };
        }
        Outcome::Keep
    }

    async fn sweep_refreshes(&self) -> Result<(SweepReport, i64), sqlx::Error> {
        let mut tx = self.system.begin().await?;
        let rows = sqlx::query(
            "SELECT q.tenant_id, q.incident_id FROM sla_refresh_queue q \
             JOIN LATERAL (SELECT last_txid::text::bigint AS t, last_position AS p \
                           FROM projection_checkpoints WHERE name = 'sla_config' \
                           ORDER BY version DESC LIMIT 1) c \
               ON (c.t, c.p) >= (q.after_txid, q.after_position) \
             ORDER BY q.tenant_id LIMIT $1 FOR UPDATE OF q SKIP LOCKED",
        )
        .bind(self.config.batch)
        .fetch_all(&mut *tx)
        .await?;
        let claimed = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        let mut report = SweepReport::default();
        let mut done: (Vec<Uuid>, Vec<Uuid>) = (vec![], vec![]);
        let mut current: Option<(Uuid, eventdesk_domain::sla::timer::SlaRules)> = None;
        for row in rows {
            let (tenant, incident): (Uuid, Uuid) = (row.try_get(0)?, row.try_get(1)?);
            if current.as_ref().is_none_or(|(t, _)| *t != tenant) {
                current = Some((tenant, self.load_rules(TenantId(tenant)).await?));
            }
            let Some((_, rules)) = current.as_ref() else {
                continue;
            };
            let opts = Options {
                metadata: EventMetadata {
                    actor: "system:sla-scheduler".into(),
                    ..EventMetadata::default()
                },
                ..Options::default()
            };
            let mut ok = false;
            for _ in 0..5 {
                match execute_incident(
                    &self.store,
                    &*self.clock,
                    TenantId(tenant),
                    IncidentId(incident),
                    vec![IncidentCommand::RefreshSla],
                    &opts,
                    rules,
                )
                .await
                {
                    Ok(_) | Err(CommandError::Rejected(_)) => {
                        ok = true;
                        break;
                    }
                    Err(CommandError::Conflict) => continue,
                    Err(e) => {
                        tracing::warn!(tenant_id = %tenant, incident_id = %incident,
                            error = %e, "SLA refresh failed; will retry");
                        break;
                    }
                }
            }
            if ok {
                report.refreshed += 1;
                done.0.push(tenant);
                done.1.push(incident);
            } else {
                report.deferred += 1;
            }
        }
        if !done.0.is_empty() {
            sqlx::query(
                "DELETE FROM sla_refresh_queue WHERE (tenant_id, incident_id) IN \
                 (SELECT * FROM unnest($1::uuid[], $2::uuid[]))",
            )
            .bind(&done.0)
            .bind(&done.1)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok((report, claimed))
    }

    async fn load_rules(
        &self,
        tenant: TenantId,
    ) -> Result<eventdesk_domain::sla::timer::SlaRules, sqlx::Error> {
        let mut tx = self.system.begin().await?;
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant.0.to_string())
            .execute(&mut *tx)
            .await?;
        let rules = self.rules.load(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(rules)
    }
}

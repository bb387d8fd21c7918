//! Creating an incident: the number is allocated in the same transaction as the append.

use crate::error::CommandError;
use crate::execute::{Clock, Executed, Options, encode};
use chrono::{DateTime, Utc};
use eventdesk_domain::incident::IncidentEvent;
use eventdesk_domain::incident::{IncidentAggregate, IncidentCommand, IncidentError};
use eventdesk_domain::sla::timer::{SlaRules, follow_up};
use eventdesk_domain::values::{Description, Impact, IncidentNumber, Priority, Title, Urgency};
use eventdesk_domain::{
    Actor, Aggregate, CategoryId, CiId, IncidentId, PriorityMatrix, StreamId, TeamId, TenantId,
    UserId,
};
use eventdesk_store::AppendOutcome;
use eventdesk_store::{EventStore, ExpectedVersion, PgEventStore, StreamRef};
use std::sync::Arc;

/// Everything `IncidentCommand::Create` needs except the number, which the command layer
/// allocates.
#[derive(Debug, Clone)]
pub struct NewIncident {
    /// The new incident's id.
    pub id: IncidentId,
    /// Title.
    pub title: Title,
    /// Description.
    pub description: Description,
    /// Impact.
    pub impact: Impact,
    /// Urgency.
    pub urgency: Urgency,
    /// Explicit priority (else derived from `matrix`).
    pub priority: Option<Priority>,
    /// The tenant's priority matrix.
    pub matrix: PriorityMatrix,
    /// Category.
    pub category_id: Option<CategoryId>,
    /// Team.
    pub team_id: Option<TeamId>,
    /// Assignee.
    pub assignee_id: Option<UserId>,
    /// Reporter.
    pub reporter_id: UserId,
    /// The affected configuration item (the caller checks that it exists in the tenant).
    pub ci_id: Option<CiId>,
    /// Who logs it.
    pub actor: Actor,
    /// The tenant's SLA policies and calendars (the timers start with the incident).
    pub sla: Arc<SlaRules>,
}

impl NewIncident {
    /// The events creating the incident with `number` at `now`: the domain's decision plus the
    /// SLA timers it starts.
    fn decide(
        &self,
        number: IncidentNumber,
        now: DateTime<Utc>,
    ) -> Result<Vec<IncidentEvent>, IncidentError> {
        let fresh = IncidentAggregate::default();
        let events = fresh.decide(self.command(number), now)?;
        Ok(with_sla_follow_up(&fresh, events, &self.sla, now))
    }

    /// The create command with `number`.
    pub fn command(&self, number: IncidentNumber) -> IncidentCommand {
        IncidentCommand::Create {
            id: self.id,
            number,
            title: self.title.clone(),
            description: self.description.clone(),
            impact: self.impact,
            urgency: self.urgency,
            priority: self.priority,
            matrix: self.matrix,
            category_id: self.category_id,
            team_id: self.team_id,
            assignee_id: self.assignee_id,
            reporter_id: self.reporter_id,
            ci_id: self.ci_id,
            actor: self.actor,
        }
    }
}

/// Creates incident `id`: takes the tenant's next number (row-locked until commit, so numbers
/// are gap-free and unique under concurrency), decides, and appends — all in one transaction.
/// A replayed idempotency key rolls the number back and returns the first request's incident.
pub async fn create_incident(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    new: &NewIncident,
    opts: &Options,
) -> Result<Executed<IncidentAggregate>, CommandError<IncidentError>> {
    Ok(create_incident_events(store, clock, tenant, new, opts)
        .await?
        .0)
}

/// [`create_incident`], also returning the events it wrote (`None` for a replay).
async fn create_incident_events(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    new: &NewIncident,
    opts: &Options,
) -> Result<(Executed<IncidentAggregate>, Option<Vec<IncidentEvent>>), CommandError<IncidentError>>
{
    let stream = StreamId(new.id.0);
    let mut tx = store.pool().begin().await?;
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO incident_counters (tenant_id, last) VALUES ($1, 1) \
         ON CONFLICT (tenant_id) DO UPDATE SET last = incident_counters.last + 1 RETURNING last",
    )
    .bind(tenant.0)
    .fetch_one(&mut *tx)
    .await?;
    let number = IncidentNumber::from_sequence(u64::try_from(seq).unwrap_or(0))
        .map_err(|e| CommandError::Corrupt(e.to_string()))?;
    let mut state = IncidentAggregate::default();
    let events = new
        .decide(number, clock.now())
        .map_err(CommandError::Rejected)?;
    let envelopes = encode(&events).map_err(CommandError::Corrupt)?;
    let out = store
        .append_in(
            &mut tx,
            tenant,
            &StreamRef::new(IncidentAggregate::STREAM_TYPE, stream),
            ExpectedVersion::NoStream,
            &envelopes,
            &opts.metadata,
            opts.idempotency.as_ref(),
        )
        .await?;
    if out.replayed {
        tx.rollback().await?;
        let (state, version) =
            crate::load::<IncidentAggregate>(store, tenant, stream_of(&out, stream)).await?;
        let executed = Executed {
            state,
            version,
            appended: Some(out),
        };
        return Ok((executed, None));
    }
    tx.commit().await?;
    store.notify_appended();
    for e in &events {
        state.evolve(e);
    }
    let executed = Executed {
        state,
        version: out.next_version,
        appended: Some(out),
    };
    Ok((executed, Some(events)))
}

/// [`create_incident`], keeping the events it wrote.
async fn create_one(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    new: &NewIncident,
    opts: &Options,
) -> CreateResult {
    let (executed, events) = create_incident_events(store, clock, tenant, new, opts).await?;
    Ok(match events {
        Some(events) => Created::new(executed, events),
        None => Created::replayed(executed),
    })
}

/// The stream a replayed outcome refers to (the first request's incident).
fn stream_of(out: &AppendOutcome, fallback: StreamId) -> StreamId {
    out.stream_id.map(StreamId).unwrap_or(fallback)
}

/// The answer to one create through the [`CreateBatcher`].
pub type CreateResult = Result<Created, CommandError<IncidentError>>;

/// One create's outcome: the incident after it, and the events it wrote (with their versions,
/// from 1) — empty for a replayed idempotency key, whose first request wrote them.
#[derive(Debug)]
pub struct Created {
    /// The aggregate, its version and the append.
    pub executed: Executed<IncidentAggregate>,
    /// The events this create appended, with their versions.
    pub events: Vec<(i64, IncidentEvent)>,
}

impl Created {
    fn new(executed: Executed<IncidentAggregate>, events: Vec<IncidentEvent>) -> Self {
        let events = (1..).zip(events).collect();
        Self { executed, events }
    }

    fn replayed(executed: Executed<IncidentAggregate>) -> Self {
        Self {
            executed,
            events: Vec::new(),
        }
    }
}

/// One create waiting in a tenant's batch.
struct Job {
    new: NewIncident,
    opts: Options,
    reply: tokio::sync::oneshot::Sender<CreateResult>,
}

type Queues = std::collections::HashMap<TenantId, tokio::sync::mpsc::Sender<Job>>;

/// Group commit for incident creation.
///
/// Gap-free numbers need the tenant's counter row locked until the append commits, which
/// serialises a tenant's creates on one fsync each (about 500/s). The batcher collects the
/// creates that arrive while a batch is being written and commits them together: one counter
/// update, one transaction, one fsync for the whole batch. If anything in a batch fails, the
/// batch is rolled back and each of its creates is retried alone ([`create_incident`]), so one
/// bad request never fails its neighbours.
#[derive(Clone)]
pub struct CreateBatcher {
    store: PgEventStore,
    clock: std::sync::Arc<dyn Clock>,
    queues: std::sync::Arc<std::sync::Mutex<Queues>>,
    max_batch: usize,
}

impl std::fmt::Debug for CreateBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateBatcher")
            .field("max_batch", &self.max_batch)
            .finish()
    }
}

impl CreateBatcher {
    /// A batcher over `store`, committing at most `max_batch` creates per transaction.
    pub fn new(store: PgEventStore, clock: std::sync::Arc<dyn Clock>, max_batch: usize) -> Self {
        Self {
            store,
            clock,
            queues: Default::default(),
            max_batch: max_batch.max(1),
        }
    }

    /// Creates an incident of `tenant` (semantics of [`create_incident`]).
    pub async fn create(&self, tenant: TenantId, new: NewIncident, opts: Options) -> CreateResult {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let mut job = Job { new, opts, reply };
        for _ in 0..2 {
            match self.queue(tenant).send(job).await {
                Ok(()) => {
                    return rx.await.unwrap_or_else(|_| {
                        Err(CommandError::Corrupt("incident batcher stopped".into()))
                    });
                }
                // The tenant's worker exited while idle: start a new one and resend.
                Err(tokio::sync::mpsc::error::SendError(j)) => {
                    job = j;
                    if let Ok(mut q) = self.queues.lock() {
                        q.remove(&tenant);
                    }
                }
            }
        }
        Err(CommandError::Corrupt("incident batcher unavailable".into()))
    }

    fn queue(&self, tenant: TenantId) -> tokio::sync::mpsc::Sender<Job> {
        let mut queues = match self.queues.lock() {
            Ok(q) => q,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(s) = queues.get(&tenant)
            && !s.is_closed()
        {
            return s.clone();
        }
        let (tx, rx) = tokio::sync::mpsc::channel(4 * self.max_batch);
        queues.insert(tenant, tx.clone());
        let me = self.clone();
        tokio::spawn(async move { me.worker(tenant, rx).await });
        tx
    }

    /// Drains the tenant's queue batch by batch; exits after a minute without work.
    async fn worker(self, tenant: TenantId, mut rx: tokio::sync::mpsc::Receiver<Job>) {
        let idle = std::time::Duration::from_secs(60);
        while let Ok(Some(first)) = tokio::time::timeout(idle, rx.recv()).await {
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
            let results = if batch.len() == 1 {
                None
            } else {
                match self.write_batch(tenant, &batch).await {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::warn!(tenant_id = %tenant, error = %e,
                            "batched create failed; retrying one by one");
                        None
                    }
                }
            };
            match results {
                Some(results) => {
                    for (job, r) in batch.into_iter().zip(results) {
                        let _ = job.reply.send(r);
                    }
                }
                None => {
                    for job in batch {
                        let r = create_one(&self.store, &*self.clock, tenant, &job.new, &job.opts)
                            .await;
                        let _ = job.reply.send(r);
                    }
                }
            }
        }
    }

    /// Writes every job in one transaction; on error nothing is committed.
    async fn write_batch(
        &self,
        tenant: TenantId,
        batch: &[Job],
    ) -> Result<Vec<CreateResult>, String> {
        let mut tx = self.store.pool().begin().await.map_err(|e| e.to_string())?;
        // Lock the tenant's counter row (creating it if needed) and read the last number.
        let last: i64 = sqlx::query_scalar(
            "INSERT INTO incident_counters (tenant_id, last) VALUES ($1, 0) \
             ON CONFLICT (tenant_id) DO UPDATE SET last = incident_counters.last RETURNING last",
        )
        .bind(tenant.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
        let now = self.clock.now();
        if batch.iter().all(|j| j.opts.idempotency.is_none()) {
            return self.write_new_streams(tenant, batch, tx, last, now).await;
        }
        let mut next = last;
        let mut staged: Vec<Staged> = Vec::with_capacity(batch.len());
        for job in batch {
            let number = IncidentNumber::from_sequence(u64::try_from(next + 1).unwrap_or(0))
                .map_err(|e| e.to_string())?;
            let state = IncidentAggregate::default();
            let events = match job.new.decide(number, now) {
                Ok(ev) => ev,
                Err(e) => {
                    staged.push(Staged::Rejected(e));
                    continue;
                }
            };
            let envelopes = encode(&events)?;
            let out = self
                .store
                .append_in(
                    &mut tx,
                    tenant,
                    &StreamRef::new(IncidentAggregate::STREAM_TYPE, StreamId(job.new.id.0)),
                    ExpectedVersion::NoStream,
                    &envelopes,
                    &job.opts.metadata,
                    job.opts.idempotency.as_ref(),
                )
                .await
                .map_err(|e| e.to_string())?;
            if out.replayed {
                staged.push(Staged::Replayed(out));
            } else {
                next += 1;
                staged.push(Staged::Written(Box::new(state), events, out));
            }
        }
        sqlx::query("UPDATE incident_counters SET last = $2 WHERE tenant_id = $1")
            .bind(tenant.0)
            .bind(next)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        self.store.notify_appended();
        let mut results = Vec::with_capacity(staged.len());
        for (job, s) in batch.iter().zip(staged) {
            results.push(match s {
                Staged::Rejected(e) => Err(CommandError::Rejected(e)),
                Staged::Written(mut state, events, out) => {
                    for e in &events {
                        state.evolve(e);
                    }
                    let executed = Executed {
                        state: *state,
                        version: out.next_version,
                        appended: Some(out),
                    };
                    Ok(Created::new(executed, events))
                }
                Staged::Replayed(out) => {
                    let stream = stream_of(&out, StreamId(job.new.id.0));
                    crate::load::<IncidentAggregate>(&self.store, tenant, stream)
                        .await
                        .map(|(state, version)| {
                            Created::replayed(Executed {
                                state,
                                version,
                                appended: Some(out),
                            })
                        })
                }
            });
        }
        Ok(results)
    }
}

impl CreateBatcher {
    /// The rest of [`write_batch`](Self::write_batch) when no job carries an idempotency key
    /// (so none can be a replay): every accepted create is decided with the next number, then
    /// all their events go in with one statement ([`PgEventStore::append_new_streams_in`]),
    /// the counter moves once, and the transaction commits once.
    async fn write_new_streams(
        &self,
        tenant: TenantId,
        batch: &[Job],
        mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
        last: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<CreateResult>, String> {
        let mut next = last;
        // Per job: the decision's events and their encoding, or the rejection.
        let mut decided: Vec<Decided> = Vec::with_capacity(batch.len());
        for job in batch {
            let number = IncidentNumber::from_sequence(u64::try_from(next + 1).unwrap_or(0))
                .map_err(|e| e.to_string())?;
            match job.new.decide(number, now) {
                Ok(events) => {
                    let envelopes = encode(&events)?;
                    next += 1;
                    decided.push(Ok((events, envelopes)));
                }
                Err(e) => decided.push(Err(e)),
            }
        }
        let streams: Vec<eventdesk_store::NewStream<'_>> = batch
            .iter()
            .zip(&decided)
            .filter_map(|(job, d)| {
                d.as_ref()
                    .ok()
                    .map(|(_, envelopes)| eventdesk_store::NewStream {
                        stream_id: StreamId(job.new.id.0),
                        events: envelopes,
                        metadata: &job.opts.metadata,
                    })
            })
            .collect();
        let mut outcomes = self
            .store
            .append_new_streams_in(&mut tx, tenant, IncidentAggregate::STREAM_TYPE, &streams)
            .await
            .map_err(|e| e.to_string())?
            .into_iter();
        sqlx::query("UPDATE incident_counters SET last = $2 WHERE tenant_id = $1")
            .bind(tenant.0)
            .bind(next)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        self.store.notify_appended();
        let mut results = Vec::with_capacity(batch.len());
        for d in decided {
            results.push(match d {
                Err(e) => Err(CommandError::Rejected(e)),
                // Committed: from here on no error may send the batch to the one-by-one retry.
                Ok((events, _)) => match outcomes.next() {
                    Some(out) => {
                        let mut state = IncidentAggregate::default();
                        for e in &events {
                            state.evolve(e);
                        }
                        let executed = Executed {
                            state,
                            version: out.next_version,
                            appended: Some(out),
                        };
                        Ok(Created::new(executed, events))
                    }
                    None => Err(CommandError::Corrupt(
                        "fewer append outcomes than streams".into(),
                    )),
                },
            });
        }
        Ok(results)
    }
}

/// One job's decision in [`CreateBatcher::write_new_streams`]: its events and their encoding,
/// or the rejection.
type Decided = Result<(Vec<IncidentEvent>, Vec<eventdesk_store::NewEvent>), IncidentError>;

/// What happened to one job of a batch.
enum Staged {
    Rejected(IncidentError),
    Written(Box<IncidentAggregate>, Vec<IncidentEvent>, AppendOutcome),
    Replayed(AppendOutcome),
}

/// `events` (decided on `before`) followed by the SLA events they cause under `rules`.
pub fn with_sla_follow_up(
    before: &IncidentAggregate,
    mut events: Vec<IncidentEvent>,
    rules: &SlaRules,
    now: DateTime<Utc>,
) -> Vec<IncidentEvent> {
    let mut after = before.clone();
    for e in &events {
        after.evolve(e);
    }
    if let Some(incident) = after.incident() {
        let more = follow_up(incident, &events, rules, now);
        events.extend(more);
    }
    events
}

/// A clock stopped at one instant, so that a decision and its SLA follow-up share `now`.
#[derive(Debug, Clone, Copy)]
struct FixedClock(DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// Runs incident commands like [`crate::execute_many`], then appends, in the same batch, the SLA
/// events they cause under the tenant's `rules` (timers stopped, restarted, rescheduled). Every
/// user-facing incident command goes through here; the SLA scheduler's `RecordSlaThreshold`
/// needs no rules and uses the generic path.
pub async fn execute_incident(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    id: IncidentId,
    commands: Vec<IncidentCommand>,
    opts: &Options,
    rules: &SlaRules,
) -> Result<Executed<IncidentAggregate>, CommandError<IncidentError>> {
    let now = FixedClock(clock.now());
    let stream = StreamId(id.0);
    let mut prepared =
        crate::prepare::<IncidentAggregate>(store, &now, tenant, stream, commands, opts).await?;
    let decided = std::mem::take(&mut prepared.events);
    prepared.events = with_sla_follow_up(&prepared.state, decided, rules, now.0);
    if prepared.events.is_empty() {
        return Ok(prepared.into_executed(None));
    }
    let envelopes = encode(&prepared.events).map_err(CommandError::Corrupt)?;
    let out = store
        .append(
            tenant,
            &StreamRef::new(IncidentAggregate::STREAM_TYPE, stream),
            prepared.expected(),
            envelopes,
            &opts.metadata,
            opts.idempotency.as_ref(),
        )
        .await?;
    if out.replayed {
        let (state, version) = crate::load::<IncidentAggregate>(store, tenant, stream).await?;
        return Ok(Executed {
            state,
            version,
            appended: Some(out),
        });
    }
    Ok(prepared.into_executed(Some(out)))
}

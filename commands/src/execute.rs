//! load → decide → append.

use crate::error::CommandError;
use chrono::{DateTime, Utc};
use eventdesk_domain::{Aggregate, DomainEvent, StreamId, TenantId};
use eventdesk_store::{
    AppendOutcome, Checkpoint, EventMetadata, EventStore, ExpectedVersion, IdempotencyKey,
    NewEvent, PgEventStore, StreamRef,
};

/// The source of "now". The server uses [`SystemClock`]; tests inject their own.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock, at PostgreSQL's precision (microseconds): an instant written into an
/// event's data then equals the same instant read back from a read model's `timestamptz`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        use chrono::SubsecRound;
        Utc::now().trunc_subsecs(6)
    }
}

/// Per-call options.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Who, and in answer to which request.
    pub metadata: EventMetadata,
    /// The client's `Idempotency-Key` with its request hash.
    pub idempotency: Option<IdempotencyKey>,
    /// The client's `If-Match` version.
    pub if_match: Option<i64>,
}

/// The result of a command.
#[derive(Debug, Clone)]
pub struct Executed<A> {
    /// The aggregate after the command.
    pub state: A,
    /// Its version (the new ETag).
    pub version: i64,
    /// The append (None when the command produced no events).
    pub appended: Option<AppendOutcome>,
}

impl<A> Executed<A> {
    /// The position a reader must have reached to see this write (read-your-writes).
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        self.appended.as_ref().and_then(|a| a.checkpoint())
    }
}

/// Loads and folds an aggregate; returns it with its version (0 = no stream).
pub async fn load<A: Aggregate>(
    store: &PgEventStore,
    tenant: TenantId,
    id: StreamId,
) -> Result<(A, i64), CommandError<A::Error>> {
    let events = store.read_stream(tenant, id, 1).await?;
    let mut state = A::default();
    let mut version = 0;
    for e in &events {
        let ev = A::Event::decode(&e.event_type, &e.data)
            .map_err(|err| CommandError::Corrupt(format!("{}: {err}", e.global_position)))?;
        state.evolve(&ev);
        version = e.version;
    }
    Ok((state, version))
}

/// Encodes domain events into store envelopes.
pub fn encode<E: DomainEvent>(events: &[E]) -> Result<Vec<NewEvent>, String> {
    events
        .iter()
        .map(|e| {
            let (ty, data) = e.encode().map_err(|c| c.to_string())?;
            Ok(NewEvent::new(ty, e.schema_version(), data))
        })
        .collect()
}

/// Runs `command` against the aggregate `id` of `tenant`: load, check `If-Match`, decide,
/// append with the loaded version as the expected version. A concurrent writer yields
/// [`CommandError::Conflict`]; nothing is retried here.
pub async fn execute<A: Aggregate>(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    id: StreamId,
    command: A::Command,
    opts: &Options,
) -> Result<Executed<A>, CommandError<A::Error>> {
    execute_many(store, clock, tenant, id, vec![command], opts).await
}

/// A decision taken but not yet appended: the state it was taken on and its events.
#[derive(Debug, Clone)]
pub struct Prepared<A: Aggregate> {
    /// The state the commands were decided on.
    pub state: A,
    /// Its version (the expected version of the append).
    pub version: i64,
    /// The events decided (possibly none).
    pub events: Vec<A::Event>,
}

impl<A: Aggregate> Prepared<A> {
    /// The expected version for appending these events.
    pub fn expected(&self) -> ExpectedVersion {
        if self.version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(self.version)
        }
    }

    /// The state after the events.
    pub fn into_executed(mut self, appended: Option<AppendOutcome>) -> Executed<A> {
        for e in &self.events {
            self.state.evolve(e);
        }
        let version = appended.as_ref().map_or(self.version, |a| a.next_version);
        Executed {
            state: self.state,
            version,
            appended,
        }
    }
}

/// Loads the aggregate, checks `If-Match`, and decides each command on the state left by the
/// previous ones. Appends nothing.
pub async fn prepare<A: Aggregate>(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    id: StreamId,
    commands: Vec<A::Command>,
    opts: &Options,
) -> Result<Prepared<A>, CommandError<A::Error>> {
    let (state, version) = load::<A>(store, tenant, id).await?;
    if let Some(expected) = opts.if_match
        && expected != version
    {
        return Err(CommandError::PreconditionFailed { actual: version });
    }
    let now = clock.now();
    let mut events = Vec::new();
    let mut scratch = state.clone();
    for command in commands {
        let new = scratch
            .decide(command, now)
            .map_err(CommandError::Rejected)?;
        for e in &new {
            scratch.evolve(e);
        }
        events.extend(new);
    }
    Ok(Prepared {
        state,
        version,
        events,
    })
}

/// Like [`execute`] for several commands that must succeed or fail together: each is decided
/// on the state left by the previous ones, and all their events are appended in one batch.
pub async fn execute_many<A: Aggregate>(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    id: StreamId,
    commands: Vec<A::Command>,
    opts: &Options,
) -> Result<Executed<A>, CommandError<A::Error>> {
    let prepared = prepare::<A>(store, clock, tenant, id, commands, opts).await?;
    if prepared.events.is_empty() {
        return Ok(prepared.into_executed(None));
    }
    let envelopes = encode(&prepared.events).map_err(CommandError::Corrupt)?;
    let out = store
        .append(
            tenant,
            &StreamRef::new(A::STREAM_TYPE, id),
            prepared.expected(),
            envelopes,
            &opts.metadata,
            opts.idempotency.as_ref(),
        )
        .await?;
    if out.replayed {
        // The first request with this key already did the work; answer with today's state.
        let (state, version) = load::<A>(store, tenant, id).await?;
        return Ok(Executed {
            state,
            version,
            appended: Some(out),
        });
    }
    Ok(prepared.into_executed(Some(out)))
}

//! CMDB commands (ADR 0017): configuration items, custom CI types and relationships.
//!
//! - Every CMDB aggregate is loaded from its own stream only ([`load_typed`]): an id that
//!   names another kind of stream of the tenant (an incident's, say) is an object that does
//!   not exist, never a decoding failure.
//! - A custom type's key is claimed per tenant (`ci_type_claims`) in the transaction of its
//!   `CiTypeCreated`; the claim also resolves a CI's `type` to its schema
//!   ([`resolve_ci_type`]) whatever the read models' lag.
//! - A relationship is written to `ci_edges` in the transaction of its event (a duplicate
//!   source, target and type is [`CommandError::Taken`] on `type`). A `depends_on` / `runs_on`
//!   edge first takes the tenant's **dependency lock** (`pg_advisory_xact_lock`, held until
//!   commit) and looks for an existing dependency path from its target back to its source in
//!   the committed edges; the domain refuses the edge if there is one. Two concurrent edges
//!   that together close a cycle are serialised by the lock: the second one's search runs
//!   after the first committed and sees its edge. Edges of other types take no lock.

use crate::error::CommandError;
use crate::execute::{Clock, Executed, Options, Prepared, encode};
use eventdesk_domain::cmdb::{
    CiAggregate, CiCommand, CiEndpoint, CiError, CiSchema, CiTypeAggregate, CiTypeCommand,
    CiTypeError, CiTypeInfo, CiTypeKey, RelationshipAggregate, RelationshipCommand,
    RelationshipError, RelationshipType,
};
use eventdesk_domain::{
    Actor, Aggregate, CiId, CiRelationshipId, CiTypeId, DomainEvent, StreamId, TenantId,
};
use eventdesk_store::{EventStore, ExpectedVersion, PgEventStore, StreamRef};
use sqlx::PgConnection;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Loads aggregate `A` from stream `id` of `tenant` with its version; a default state at
/// version 0 if there is no such stream, or if the stream is of another type.
pub async fn load_typed<A: Aggregate>(
    store: &PgEventStore,
    tenant: TenantId,
    id: StreamId,
) -> Result<(A, i64), CommandError<A::Error>> {
    let events = store.read_stream(tenant, id, 1).await?;
    let mut state = A::default();
    let mut version = 0;
    if events
        .first()
        .is_some_and(|e| e.stream_type != A::STREAM_TYPE)
    {
        return Ok((state, version));
    }
    for e in &events {
        let ev = A::Event::decode(&e.event_type, &e.data)
            .map_err(|err| CommandError::Corrupt(format!("{}: {err}", e.global_position)))?;
        state.evolve(&ev);
        version = e.version;
    }
    Ok((state, version))
}

/// Loads (typed), checks `If-Match`, and decides each command on the state left by the
/// previous ones; appends nothing.
pub(crate) async fn prepare_typed<A: Aggregate>(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    id: StreamId,
    commands: Vec<A::Command>,
    opts: &Options,
) -> Result<Prepared<A>, CommandError<A::Error>> {
    let (state, version) = load_typed::<A>(store, tenant, id).await?;
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

/// Runs CI commands against CI `id` (create, update, retire): typed load, `If-Match`, decide,
/// append with the loaded version as the expected version.
pub async fn execute_ci(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    id: CiId,
    commands: Vec<CiCommand>,
    opts: &Options,
) -> Result<Executed<CiAggregate>, CommandError<CiError>> {
    let stream = StreamId(id.0);
    let prepared =
        prepare_typed::<CiAggregate>(store, clock, tenant, stream, commands, opts).await?;
    if prepared.events.is_empty() {
        return Ok(prepared.into_executed(None));
    }
    let envelopes = encode(&prepared.events).map_err(CommandError::Corrupt)?;
    let out = store
        .append(
            tenant,
            &StreamRef::new(CiAggregate::STREAM_TYPE, stream),
            prepared.expected(),
            envelopes,
            &opts.metadata,
            None,
        )
        .await?;
    Ok(prepared.into_executed(Some(out)))
}

/// The CI `id` of `tenant`, if it exists.
pub async fn load_ci(
    store: &PgEventStore,
    tenant: TenantId,
    id: CiId,
) -> Result<(CiAggregate, i64), CommandError<CiError>> {
    load_typed::<CiAggregate>(store, tenant, StreamId(id.0)).await
}

/// The type named `key` in `tenant`: a built-in type, or the tenant's custom type with that
/// key (read from its stream through the key's claim); `None` if there is none.
pub async fn resolve_ci_type<E: std::error::Error>(
    store: &PgEventStore,
    tenant: TenantId,
    key: &CiTypeKey,
) -> Result<Option<CiTypeInfo>, CommandError<E>> {
    if let Some(b) = key.as_builtin() {
        return Ok(Some(CiTypeInfo::builtin(b)));
    }
    let id: Option<Uuid> =
        sqlx::query_scalar("SELECT type_id FROM ci_type_claims WHERE tenant_id = $1 AND key = $2")
            .bind(tenant.0)
            .bind(key.as_str())
            .fetch_optional(store.pool())
            .await?;
    let Some(id) = id else {
        return Ok(None);
    };
    let (agg, _) = load_typed::<CiTypeAggregate>(store, tenant, StreamId(id))
        .await
        .map_err(|e| match e {
            CommandError::Rejected(r) => CommandError::Corrupt(r.to_string()),
            CommandError::Store(s) => CommandError::Store(s),
            other => CommandError::Corrupt(other.to_string()),
        })?;
    Ok(agg.state.map(|t| CiTypeInfo {
        key: t.key,
        schema: t.schema,
        id: Some(t.id),
    }))
}

/// The schema of CI `id`'s type (`None` if there is no such CI).
pub async fn ci_schema(
    store: &PgEventStore,
    tenant: TenantId,
    id: CiId,
) -> Result<Option<CiSchema>, CommandError<CiError>> {
    let (agg, _) = load_ci(store, tenant, id).await?;
    let Some(ci) = agg.state else {
        return Ok(None);
    };
    let info = resolve_ci_type::<CiError>(store, tenant, &ci.ci_type).await?;
    Ok(Some(info.map(|i| i.schema).unwrap_or_default()))
}

/// Defines a custom CI type (`command` must be `CiTypeCommand::Create`) in `tenant`. Its key
/// must be free in the tenant, else [`CommandError::Taken`] names `key`.
pub async fn create_ci_type(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    command: CiTypeCommand,
    opts: &Options,
) -> Result<Executed<CiTypeAggregate>, CommandError<CiTypeError>> {
    let CiTypeCommand::Create { id, key, .. } = &command;
    let (id, key): (CiTypeId, String) = (*id, key.as_str().to_owned());
    let mut state = CiTypeAggregate::default();
    let events = state
        .decide(command, clock.now())
        .map_err(CommandError::Rejected)?;
    let envelopes = encode(&events).map_err(CommandError::Corrupt)?;
    let mut tx = store.pool().begin().await?;
    let claimed = sqlx::query(
        "INSERT INTO ci_type_claims (tenant_id, key, type_id) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant.0)
    .bind(&key)
    .bind(id.0)
    .execute(&mut *tx)
    .await?;
    if claimed.rows_affected() == 0 {
        return Err(CommandError::Taken { field: "key" });
    }
    let out = store
        .append_in(
            &mut tx,
            tenant,
            &StreamRef::new(CiTypeAggregate::STREAM_TYPE, StreamId(id.0)),
            ExpectedVersion::NoStream,
            &envelopes,
            &opts.metadata,
            None,
        )
        .await?;
    tx.commit().await?;
    store.notify_appended();
    for e in &events {
        state.evolve(e);
    }
    Ok(Executed {
        state,
        version: out.next_version,
        appended: Some(out),
    })
}

/// A new relationship `source —rel_type→ target`.
#[derive(Debug, Clone)]
pub struct NewRelationship {
    /// Its id.
    pub id: CiRelationshipId,
    /// The CI that has it.
    pub source: CiId,
    /// The CI it relates to.
    pub target: CiId,
    /// The type.
    pub rel_type: RelationshipType,
    /// Who.
    pub actor: Actor,
}

/// One end as its stream says: `CiNotFound` if it is not a CI of the tenant.
async fn endpoint(
    store: &PgEventStore,
    tenant: TenantId,
    id: CiId,
) -> Result<CiEndpoint, CommandError<RelationshipError>> {
    let (agg, _) = load_typed::<CiAggregate>(store, tenant, StreamId(id.0))
        .await
        .map_err(|e| match e {
            CommandError::Store(s) => CommandError::Store(s),
            other => CommandError::Corrupt(other.to_string()),
        })?;
    let ci = agg
        .state
        .ok_or(CommandError::Rejected(RelationshipError::CiNotFound(id)))?;
    Ok(CiEndpoint {
        id,
        status: ci.status,
    })
}

/// The advisory lock key of a tenant's dependency graph.
fn dependency_lock(tenant: TenantId) -> String {
    format!("eventdesk:cmdb:dependencies:{tenant}")
}

/// An existing dependency path `[from, …, to]` in the committed `ci_edges` of `tenant`
/// (following `depends_on` / `runs_on` from source to target), if there is one. Breadth
/// first, one statement per level, one index probe per CI of the level.
async fn dependency_path(
    conn: &mut PgConnection,
    tenant: TenantId,
    from: CiId,
    to: CiId,
) -> Result<Option<Vec<CiId>>, sqlx::Error> {
    let mut parent: HashMap<Uuid, Uuid> = HashMap::new();
    let mut visited: HashSet<Uuid> = HashSet::from([from.0]);
    let mut frontier = vec![from.0];
    while !frontier.is_empty() {
        let mut rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT e.source_id, e.target_id FROM unnest($2::uuid[]) AS f(id) \
             CROSS JOIN LATERAL (SELECT e.source_id, e.target_id FROM ci_edges e \
               WHERE e.tenant_id = $1 AND e.source_id = f.id \
               AND e.rel_type IN ('depends_on', 'runs_on') OFFSET 0) AS e",
        )
        .bind(tenant.0)
        .bind(&frontier)
        .fetch_all(&mut *conn)
        .await?;
        rows.sort_unstable();
        let mut next = Vec::new();
        for (s, t) in rows {
            if !visited.insert(t) {
                continue;
            }
            parent.insert(t, s);
            if t == to.0 {
                let mut path = vec![CiId(t)];
                let mut cursor = t;
                while let Some(p) = parent.get(&cursor) {
                    path.push(CiId(*p));
                    cursor = *p;
                }
                path.reverse();
                return Ok(Some(path));
            }
            next.push(t);
        }
        frontier = next;
    }
    Ok(None)
}

/// Creates a relationship (see the module docs for the cycle check and duplicates).
pub async fn create_relationship(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    new: &NewRelationship,
    opts: &Options,
) -> Result<Executed<RelationshipAggregate>, CommandError<RelationshipError>> {
    let source = endpoint(store, tenant, new.source).await?;
    let target = if new.target == new.source {
        source
    } else {
        endpoint(store, tenant, new.target).await?
    };
    let mut tx = store.pool().begin().await?;
    // Each statement must see what committed before it (the lock's point).
    sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .execute(&mut *tx)
        .await?;
    let existing_path_back = if new.rel_type.is_dependency() && new.source != new.target {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(dependency_lock(tenant))
            .execute(&mut *tx)
            .await?;
        dependency_path(&mut tx, tenant, new.target, new.source).await?
    } else {
        None
    };
    let mut state = RelationshipAggregate::default();
    let events = state
        .decide(
            RelationshipCommand::Create {
                id: new.id,
                source,
                target,
                rel_type: new.rel_type.clone(),
                existing_path_back,
                actor: new.actor,
            },
            clock.now(),
        )
        .map_err(CommandError::Rejected)?;
    let claimed = sqlx::query(
        "INSERT INTO ci_edges (tenant_id, rel_id, source_id, target_id, rel_type) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(tenant.0)
    .bind(new.id.0)
    .bind(new.source.0)
    .bind(new.target.0)
    .bind(new.rel_type.as_str())
    .execute(&mut *tx)
    .await?;
    if claimed.rows_affected() == 0 {
        return Err(CommandError::Taken { field: "type" });
    }
    let envelopes = encode(&events).map_err(CommandError::Corrupt)?;
    let out = store
        .append_in(
            &mut tx,
            tenant,
            &StreamRef::new(RelationshipAggregate::STREAM_TYPE, StreamId(new.id.0)),
            ExpectedVersion::NoStream,
            &envelopes,
            &opts.metadata,
            None,
        )
        .await?;
    tx.commit().await?;
    store.notify_appended();
    for e in &events {
        state.evolve(e);
    }
    Ok(Executed {
        state,
        version: out.next_version,
        appended: Some(out),
    })
}

/// Deletes relationship `id` as listed for CI `ci`: [`RelationshipError::NotFound`] unless it
/// is a live relationship of the tenant with `ci` at one end.
pub async fn delete_relationship(
    store: &PgEventStore,
    clock: &dyn Clock,
    tenant: TenantId,
    ci: CiId,
    id: CiRelationshipId,
    actor: Actor,
    opts: &Options,
) -> Result<Executed<RelationshipAggregate>, CommandError<RelationshipError>> {
    let stream = StreamId(id.0);
    let (state, version) = load_typed::<RelationshipAggregate>(store, tenant, stream).await?;
    if !state
        .live()
        .is_some_and(|r| r.source_id == ci || r.target_id == ci)
    {
        return Err(CommandError::Rejected(RelationshipError::NotFound));
    }
    if let Some(expected) = opts.if_match
        && expected != version
    {
        return Err(CommandError::PreconditionFailed { actual: version });
    }
    let events = state
        .decide(RelationshipCommand::Delete { actor }, clock.now())
        .map_err(CommandError::Rejected)?;
    let envelopes = encode(&events).map_err(CommandError::Corrupt)?;
    let mut tx = store.pool().begin().await?;
    sqlx::query("DELETE FROM ci_edges WHERE tenant_id = $1 AND rel_id = $2")
        .bind(tenant.0)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
    let out = store
        .append_in(
            &mut tx,
            tenant,
            &StreamRef::new(RelationshipAggregate::STREAM_TYPE, stream),
            ExpectedVersion::Exact(version),
            &envelopes,
            &opts.metadata,
            None,
        )
        .await?;
    tx.commit().await?;
    store.notify_appended();
    let prepared = Prepared {
        state,
        version,
        events,
    };
    Ok(prepared.into_executed(Some(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SQL of [`dependency_path`] and the partial index `ci_edges_dependencies` (migration
    /// 0017) spell the dependency types out.
    #[test]
    fn the_sql_names_the_dependency_types_of_the_domain() {
        assert_eq!(RelationshipType::DEPENDENCY, ["depends_on", "runs_on"]);
    }
}

//! The fold shared by the entity read models: load the current rows of the streams a batch
//! touches (one SELECT), rebuild the domain aggregate from each row, apply the batch's events
//! with the domain's own `evolve`, and hand back what changed for one upsert per table.
//!
//! Rows are converted to and from domain state through serde: the read-model columns are named
//! like the fields of the domain state structs, `to_jsonb(row)` rebuilds a state and
//! `jsonb_populate_recordset` writes one back. So the read model cannot drift from the domain's
//! `evolve`, and no mapping is written twice.

use crate::runtime::HandlerError;
use eventdesk_domain::{Aggregate, DomainEvent};
use eventdesk_store::RecordedEvent;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::{PgConnection, Row};
use std::collections::BTreeMap;
use uuid::Uuid;

/// `(tenant_id, stream_id)`.
pub(crate) type Key = (Uuid, Uuid);

/// One aggregate being folded.
#[derive(Debug)]
pub(crate) struct Folded<A> {
    /// The aggregate after the events applied so far.
    pub agg: A,
    /// The stream version of the last event applied (0 = nothing yet).
    pub version: i64,
    /// Whether this batch applied at least one event to it.
    pub changed: bool,
}

/// Builds a handler error from a message.
pub(crate) fn err(msg: impl Into<String>) -> HandlerError {
    msg.into().into()
}

/// The distinct `(tenant, stream)` keys of `events`, as two parallel arrays for `unnest`.
pub(crate) fn key_arrays(events: &[&RecordedEvent]) -> (Vec<Uuid>, Vec<Uuid>) {
    let keys: std::collections::BTreeSet<Key> = events
        .iter()
        .map(|e| (e.tenant_id.0, e.stream_id.0))
        .collect();
    keys.into_iter().unzip()
}

/// Loads the current state of some streams. `sql` must select `(tenant_id, id, version,
/// state jsonb)` for the keys bound as `$1::uuid[]` (tenants) and `$2::uuid[]` (ids), where
/// `state` is the domain state object (the aggregate's `state` field).
pub(crate) async fn load<A>(
    conn: &mut PgConnection,
    sql: &str,
    events: &[&RecordedEvent],
) -> Result<BTreeMap<Key, Folded<A>>, HandlerError>
where
    A: Aggregate + DeserializeOwned,
{
    let mut out = BTreeMap::new();
    if events.is_empty() {
        return Ok(out);
    }
    let (tenants, ids) = key_arrays(events);
    let rows = sqlx::query(sql)
        .bind(&tenants)
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
    for row in rows {
        let tenant: Uuid = row.try_get(0)?;
        let id: Uuid = row.try_get(1)?;
        let version: i64 = row.try_get(2)?;
        let state: serde_json::Value = row.try_get(3)?;
        let agg: A = serde_json::from_value(serde_json::json!({ "state": state }))
            .map_err(|e| err(format!("read model row {tenant}/{id} does not load: {e}")))?;
        out.insert(
            (tenant, id),
            Folded {
                agg,
                version,
                changed: false,
            },
        );
    }
    Ok(out)
}

/// Applies `events` (all of aggregate `A`, in log order) to `states`, skipping every event
/// at or below a stream's version (already applied: this makes replays no-ops). `on_event` sees
/// each applied event before it is evolved, with its decoded form.
pub(crate) fn apply<A, F>(
    states: &mut BTreeMap<Key, Folded<A>>,
    events: &[&RecordedEvent],
    mut on_event: F,
) -> Result<(), HandlerError>
where
    A: Aggregate,
    F: FnMut(&RecordedEvent, &A::Event) -> Result<(), HandlerError>,
{
    for rec in events {
        let slot = states
            .entry((rec.tenant_id.0, rec.stream_id.0))
            .or_insert_with(|| Folded {
                agg: A::default(),
                version: 0,
                changed: false,
            });
        if rec.version <= slot.version {
            continue;
        }
        let event = <A::Event as DomainEvent>::decode(&rec.event_type, &rec.data)?;
        on_event(rec, &event)?;
        slot.agg.evolve(&event);
        slot.version = rec.version;
        slot.changed = true;
    }
    Ok(())
}

/// The domain state of a folded aggregate as a JSON object (its `state` field), or an error if
/// the stream's events did not create it (an event before the creation event).
pub(crate) fn state_object<A: Serialize>(
    key: Key,
    agg: &A,
) -> Result<serde_json::Map<String, serde_json::Value>, HandlerError> {
    let v = serde_json::to_value(agg)?;
    match v {
        serde_json::Value::Object(mut o) => match o.remove("state") {
            Some(serde_json::Value::Object(state)) => Ok(state),
            _ => Err(err(format!(
                "stream {}/{} has events but no creation event",
                key.0, key.1
            ))),
        },
        _ => Err(err("aggregate does not serialise to an object")),
    }
}

/// The rows to upsert for the changed aggregates of `states`: each aggregate's state object,
/// checked to belong to its stream (`id` = stream id), with `tenant_id` (unless
/// `tenant_column` is false) and `version` added, then completed by `extra`.
pub(crate) fn changed_rows<A, F>(
    states: &BTreeMap<Key, Folded<A>>,
    tenant_column: bool,
    mut extra: F,
) -> Result<Vec<serde_json::Value>, HandlerError>
where
    A: Serialize,
    F: FnMut(Key, &A, &mut serde_json::Map<String, serde_json::Value>) -> Result<(), HandlerError>,
{
    let mut rows = Vec::new();
    for (key, f) in states.iter().filter(|(_, f)| f.changed) {
        let mut row = state_object(*key, &f.agg)?;
        let id = row.get("id").and_then(|v| v.as_str()).map(str::to_owned);
        if id.as_deref() != Some(key.1.to_string().as_str()) {
            return Err(err(format!(
                "stream {}/{} holds an entity with id {id:?}",
                key.0, key.1
            )));
        }
        if tenant_column {
            row.insert("tenant_id".into(), serde_json::json!(key.0));
        }
        row.insert("version".into(), serde_json::json!(f.version));
        extra(*key, &f.agg, &mut row)?;
        rows.push(serde_json::Value::Object(row));
    }
    Ok(rows)
}

/// `INSERT INTO table (cols) SELECT cols FROM jsonb_populate_recordset(NULL::table, $1)
/// ON CONFLICT (conflict) DO UPDATE SET <cols but conflict and keep> WHERE version is older`:
/// one statement for the whole batch. Names are compile-time constants, never input.
pub(crate) fn upsert_sql(table: &str, conflict: &[&str], cols: &[&str], keep: &[&str]) -> String {
    let list = cols.join(", ");
    let set = cols
        .iter()
        .filter(|c| !conflict.contains(c) && !keep.contains(c))
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO {table} ({list}) SELECT {list} FROM jsonb_populate_recordset(NULL::{table}, $1) \
         ON CONFLICT ({conflict}) DO UPDATE SET {set} WHERE {table}.version < EXCLUDED.version",
        conflict = conflict.join(", ")
    )
}

/// Runs an upsert built by [`upsert_sql`] with `rows` (nothing to do when empty).
pub(crate) async fn write_rows(
    conn: &mut PgConnection,
    sql: &str,
    rows: Vec<serde_json::Value>,
) -> Result<(), HandlerError> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(sql)
        .bind(serde_json::Value::Array(rows))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

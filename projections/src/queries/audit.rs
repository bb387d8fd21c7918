//! The audit trail over REST: a tenant's events as stored, with who did what, when and in
//! answer to which request (`GET /api/v1/audit/events`, `/audit/streams/{id}`,
//! `/security/events`).
//!
//! These read the event log itself, not a read model: the log is the audit trail. The `events`
//! table has no row-level security (the projector reads every tenant), so every statement here
//! filters on the tenant explicitly.
//!
//! **Order and paging.** Newest first in the log's reading order `(transaction_id,
//! global_position)`, and only below the gap-free horizon (ADR 0002): an event appears only
//! once no transaction that could still commit before it is in flight, so the listed set only
//! ever grows at the head and a cursor never skips an event. Within one stream the order is the
//! version order. Page-mode totals are exact up to [`AUDIT_COUNT_CAP`] events and a lower bound
//! (`total_items_exact: false`) beyond.
//!
//! **Redaction.** Payload fields named `password_hash` (the Argon2id hashes in user events)
//! are shown as `"[redacted]"`: the stored event and its hash chain are untouched.

use super::paging::{CappedPagination, Cursor, Pagination};
use super::{Page, Paging, QueryError, Result};
use chrono::{DateTime, Utc};
use eventdesk_domain::TenantId;
use serde::Serialize;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

/// Page-mode totals count up to this many events.
pub const AUDIT_COUNT_CAP: u64 = 10_000;

/// The stream type of the tenants' security logs.
pub const SECURITY_STREAM_TYPE: &str = "security";

/// Filters of an audit listing (all optional; they combine with AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// One stream (aggregate id).
    pub stream_id: Option<Uuid>,
    /// One stream type (`incident`, `user`, `security`, …).
    pub stream_type: Option<String>,
    /// Event types (any of them).
    pub event_types: Vec<String>,
    /// The actor: `user:<id>`, `api_key:<id>`, `system:<name>`, or a bare id (a user's or a
    /// key's).
    pub actor: Option<String>,
    /// Recorded at or after.
    pub since: Option<DateTime<Utc>>,
    /// Recorded before.
    pub until: Option<DateTime<Utc>>,
}

/// One event of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    /// Global position (the log's identity column).
    pub position: i64,
    /// The writing transaction (with `position`, the reading order).
    pub transaction_id: i64,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
    /// Stream type.
    pub stream_type: String,
    /// Stream (aggregate) id.
    pub stream_id: Uuid,
    /// Version in the stream.
    pub version: i64,
    /// Event id.
    pub event_id: Uuid,
    /// Event type.
    pub event_type: String,
    /// Schema version as stored.
    pub schema_version: i32,
    /// Who (`user:<id>`, `api_key:<id>`, `system:<name>`).
    pub actor: Option<String>,
    /// The HTTP request id that caused it.
    pub request_id: Option<String>,
    /// Correlates the events of one user intent.
    pub correlation_id: Option<String>,
    /// The event that caused it.
    pub causation_id: Option<String>,
    /// The payload as stored (with `password_hash` values redacted).
    pub data: Value,
    /// The event's link in its stream's hash chain (hex).
    pub hash: String,
}

/// A page of events.
pub type AuditPage = Page<AuditEvent, CappedPagination>;

const COLUMNS: &str = "SELECT global_position, transaction_id::text::int8 AS txid, recorded_at, \
     stream_type, stream_id, version, event_id, event_type, schema_version, data, \
     metadata->>'actor' AS actor, metadata->>'request_id' AS request_id, \
     metadata->>'correlation_id' AS correlation_id, metadata->>'causation_id' AS causation_id, \
     hash ";

/// Replaces every value of a `password_hash` key with `"[redacted]"`.
fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if k == "password_hash" {
                    *x = Value::String("[redacted]".into());
                } else {
                    redact(x);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn event_of(row: &PgRow) -> Result<AuditEvent> {
    let mut data: Value = row.try_get("data")?;
    redact(&mut data);
    let hash: Vec<u8> = row.try_get("hash")?;
    Ok(AuditEvent {
        position: row.try_get("global_position")?,
        transaction_id: row.try_get("txid")?,
        recorded_at: row.try_get("recorded_at")?,
        stream_type: row.try_get("stream_type")?,
        stream_id: row.try_get("stream_id")?,
        version: row.try_get("version")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get("schema_version")?,
        actor: row.try_get("actor")?,
        request_id: row.try_get("request_id")?,
        correlation_id: row.try_get("correlation_id")?,
        causation_id: row.try_get("causation_id")?,
        data,
        hash: hex(&hash),
    })
}

fn push_filter(q: &mut QueryBuilder<'static, Postgres>, tenant: TenantId, f: &AuditFilter) {
    q.push("FROM events WHERE tenant_id = ")
        .push_bind(tenant.0)
        .push(" AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())");
    if let Some(s) = f.stream_id {
        q.push(" AND stream_id = ").push_bind(s);
    }
    if let Some(t) = &f.stream_type {
        q.push(" AND stream_type = ").push_bind(t.clone());
    }
    if !f.event_types.is_empty() {
        q.push(" AND event_type = ANY(")
            .push_bind(f.event_types.clone())
            .push(")");
    }
    if let Some(a) = &f.actor {
        match a.parse::<Uuid>() {
            Ok(id) => {
                q.push(" AND metadata->>'actor' IN (")
                    .push_bind(format!("user:{id}"))
                    .push(", ")
                    .push_bind(format!("api_key:{id}"))
                    .push(")");
            }
            Err(_) => {
                q.push(" AND metadata->>'actor' = ").push_bind(a.clone());
            }
        }
    }
    if let Some(t) = f.since {
        q.push(" AND recorded_at >= ").push_bind(t);
    }
    if let Some(t) = f.until {
        q.push(" AND recorded_at < ").push_bind(t);
    }
}

/// The tenant's events matching `filter`, newest first (see the module docs).
pub async fn list_events(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &AuditFilter,
    paging: Paging,
) -> Result<AuditPage> {
    const SORT: &str = "-log";
    let limit = paging.limit();
    let mut q = QueryBuilder::new(COLUMNS);
    push_filter(&mut q, tenant, filter);
    let mut offset = 0;
    match &paging {
        Paging::Page { page, .. } => offset = (i64::from((*page).max(1)) - 1) * i64::from(limit),
        Paging::Cursor {
            after: Some(after), ..
        } => {
            let c = Cursor::decode(after, SORT)?;
            let (txid, position) =
                c.n.as_deref()
                    .and_then(|n| n.split_once('.'))
                    .and_then(|(t, p)| Some((t.parse::<i64>().ok()?, p.parse::<i64>().ok()?)))
                    .ok_or(QueryError::InvalidCursor)?;
            q.push(" AND (transaction_id, global_position) < (")
                .push_bind(txid.to_string())
                .push("::xid8, ")
                .push_bind(position)
                .push(")");
        }
        Paging::Cursor { after: None, .. } => {}
    }
    q.push(" ORDER BY transaction_id DESC, global_position DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);
    if offset > 0 {
        q.push(" OFFSET ").push_bind(offset);
    }
    let mut data = q
        .build()
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(event_of)
        .collect::<Result<Vec<_>>>()?;
    let has_next = data.len() > limit as usize;
    data.truncate(limit as usize);
    let (pagination, total_items_exact) = match paging {
        Paging::Page { page, .. } => {
            let mut count = QueryBuilder::new("SELECT count(*) FROM (SELECT 1 ");
            push_filter(&mut count, tenant, filter);
            count
                .push(" LIMIT ")
                .push_bind(i64::try_from(AUDIT_COUNT_CAP + 1).unwrap_or(i64::MAX))
                .push(") c");
            let n: i64 = count.build().fetch_one(&mut *conn).await?.try_get(0)?;
            let n = u64::try_from(n).unwrap_or(0);
            let exact = n <= AUDIT_COUNT_CAP;
            (
                Pagination::page(page, limit, n.min(AUDIT_COUNT_CAP), has_next),
                Some(exact),
            )
        }
        Paging::Cursor { after, .. } => {
            let next = if has_next {
                data.last().map(|e| {
                    let mut c = Cursor::new(SORT, e.event_id);
                    c.n = Some(format!("{}.{}", e.transaction_id, e.position));
                    c.encode()
                })
            } else {
                None
            };
            (
                Pagination::cursor(limit, after.is_some(), has_next, next),
                None,
            )
        }
    };
    Ok(Page {
        data,
        pagination: CappedPagination {
            pagination,
            total_items_exact,
        },
    })
}

/// A stream of the tenant: its type, head and the verification of its hash chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamSummary {
    /// Stream id.
    pub stream_id: Uuid,
    /// Stream type.
    pub stream_type: String,
    /// The last version.
    pub head_version: i64,
    /// Created (first event recorded).
    pub first_recorded_at: DateTime<Utc>,
    /// Last event recorded.
    pub last_recorded_at: DateTime<Utc>,
}

/// A stream's events in version order, with its summary; `None` if the tenant has no such
/// stream. Page or cursor paging by version.
pub async fn stream_events(
    conn: &mut PgConnection,
    tenant: TenantId,
    stream_id: Uuid,
    paging: Paging,
) -> Result<Option<(StreamSummary, Page<AuditEvent>)>> {
    let head = sqlx::query(
        "SELECT stream_type, max(version) AS head, min(recorded_at) AS first, \
         max(recorded_at) AS last FROM events \
         WHERE tenant_id = $1 AND stream_id = $2 \
           AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
         GROUP BY stream_type",
    )
    .bind(tenant.0)
    .bind(stream_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(head) = head else {
        return Ok(None);
    };
    let summary = StreamSummary {
        stream_id,
        stream_type: head.try_get("stream_type")?,
        head_version: head.try_get("head")?,
        first_recorded_at: head.try_get("first")?,
        last_recorded_at: head.try_get("last")?,
    };
    let limit = paging.limit();
    let mut q = QueryBuilder::new(COLUMNS);
    q.push("FROM events WHERE tenant_id = ")
        .push_bind(tenant.0)
        .push(" AND stream_id = ")
        .push_bind(stream_id)
        .push(" AND version <= ")
        .push_bind(summary.head_version);
    let mut offset = 0;
    match &paging {
        Paging::Page { page, .. } => offset = (i64::from((*page).max(1)) - 1) * i64::from(limit),
        Paging::Cursor {
            after: Some(after), ..
        } => {
            let c = Cursor::decode(after, "version")?;
            let v =
                c.n.as_deref()
                    .and_then(|n| n.parse::<i64>().ok())
                    .ok_or(QueryError::InvalidCursor)?;
            q.push(" AND version > ").push_bind(v);
        }
        Paging::Cursor { after: None, .. } => {}
    }
    q.push(" ORDER BY version LIMIT ")
        .push_bind(i64::from(limit) + 1);
    if offset > 0 {
        q.push(" OFFSET ").push_bind(offset);
    }
    let mut data = q
        .build()
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(event_of)
        .collect::<Result<Vec<_>>>()?;
    let has_next = data.len() > limit as usize;
    data.truncate(limit as usize);
    let total = u64::try_from(summary.head_version).unwrap_or(0);
    let pagination = match paging {
        Paging::Page { page, .. } => Pagination::page(page, limit, total, has_next),
        Paging::Cursor { after, .. } => {
            let next = if has_next {
                data.last().map(|e| {
                    let mut c = Cursor::new("version", e.stream_id);
                    c.n = Some(e.version.to_string());
                    c.encode()
                })
            } else {
                None
            };
            Pagination::cursor(limit, after.is_some(), has_next, next)
        }
    };
    Ok(Some((summary, Page { data, pagination })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn password_hashes_are_redacted_at_any_depth() {
        let mut v = json!({"user": {"password_hash": "$argon2id$…", "name": "a"},
                           "list": [{"password_hash": "x"}], "password": "kept"});
        redact(&mut v);
        assert_eq!(
            v,
            json!({"user": {"password_hash": "[redacted]", "name": "a"},
                   "list": [{"password_hash": "[redacted]"}], "password": "kept"})
        );
    }
}

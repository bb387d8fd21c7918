//! Time travel: an aggregate's state as of an instant, folded from its stream with the domain's
//! own `evolve` (never from a read model), for `audit show` and
//! `GET /api/v1/incidents/{id}?as_of=…`.
//!
//! "As of `t`" means after every event of the stream recorded at or before `t`. The log is the
//! authority; the read models only lend the *current* names of the users, teams and categories
//! an old state refers to (names are not history: an incident as of May shows its assignee's
//! name as it is today).

use super::incidents::{
    ActorSummary, AttachmentView, IncidentDetail, IncidentHistoryEntry, IncidentListItem, NamedRef,
    UserSummary, WorkNoteView,
};
use super::{QueryError, Result};
use chrono::{DateTime, Utc};
use eventdesk_domain::incident::{IncidentAggregate, IncidentEvent};
use eventdesk_domain::registry::{self, StateError, StoredEvent};
use eventdesk_domain::sla::policy::SlaMetric;
use eventdesk_domain::{Actor, Aggregate, DomainEvent, IncidentId, StreamId, TenantId, UserId};
use eventdesk_store::{EventStore, PgEventStore, RecordedEvent};
use serde_json::Value;
use sqlx::{PgConnection, Row};
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

/// The prefix of a stream's events (in version order) recorded at or before `at`. The prefix
/// stops at the first later event, so a clock step back between two appends can never fold a
/// version without its predecessors.
pub fn events_as_of(events: &[RecordedEvent], at: DateTime<Utc>) -> &[RecordedEvent] {
    let n = events
        .iter()
        .position(|e| e.recorded_at > at)
        .unwrap_or(events.len());
    &events[..n]
}

fn stored(events: &[RecordedEvent]) -> impl Iterator<Item = StoredEvent<'_>> {
    events.iter().map(|e| StoredEvent {
        version: e.version,
        event_type: &e.event_type,
        data: &e.data,
    })
}

/// The state of an aggregate of `stream_type` after `events` (its stream's events from version
/// 1, in order, already upcast), serialised as the aggregate serialises itself.
pub fn state_as_of(
    stream_type: &str,
    events: &[RecordedEvent],
) -> std::result::Result<Value, StateError> {
    registry::state_json(stream_type, stored(events))
}

fn corrupt(message: impl std::fmt::Display) -> QueryError {
    QueryError::Corrupt {
        column: "events.data",
        message: message.to_string(),
    }
}

/// The incident `id` of `tenant` as it was at `at`, in the shape of `GET /incidents/{id}`
/// (private work notes only with `include_private`), or `None` if it did not exist yet (or is
/// not the tenant's). `conn` must be scoped to `tenant` (names are read from the read models).
pub async fn incident_as_of(
    conn: &mut PgConnection,
    store: &PgEventStore,
    tenant: TenantId,
    id: IncidentId,
    at: DateTime<Utc>,
    include_private: bool,
) -> Result<Option<IncidentDetail>> {
    let events = store.read_stream(tenant, StreamId(id.0), 1).await?;
    if events
        .first()
        .is_some_and(|e| e.stream_type != IncidentAggregate::STREAM_TYPE)
    {
        return Ok(None);
    }
    let events = events_as_of(&events, at);
    if events.is_empty() {
        return Ok(None);
    }
    let mut decoded = Vec::with_capacity(events.len());
    for e in events {
        let ev = IncidentEvent::decode(&e.event_type, &e.data)
            .map_err(|err| corrupt(format!("version {} does not decode: {}", e.version, err.0)))?;
        decoded.push((e.version, ev));
    }
    let mut names = NameBook::default();
    names.load(conn, tenant, &referenced(&decoded)).await?;
    render_incident(&decoded, &names, include_private)
}

/// The users, team and category that the incident folded from `decoded` refers to (whose
/// current names its detail shows).
pub fn referenced(decoded: &[(i64, IncidentEvent)]) -> References {
    let state = IncidentAggregate::replay(decoded.iter().map(|(_, e)| e));
    let mut refs = References::default();
    let Some(inc) = state.state else {
        return refs;
    };
    refs.users.insert(inc.reporter_id.0);
    refs.users.extend(inc.assignee_id.map(|u| u.0));
    let actors = decoded
        .iter()
        .map(|(_, e)| e.actor())
        .chain(inc.work_notes.iter().map(|n| n.author))
        .chain(inc.attachments.iter().map(|a| a.uploaded_by));
    refs.users
        .extend(actors.filter_map(|a| a.user_id()).map(|u| u.0));
    refs.team = inc.team_id.map(|t| t.0);
    refs.category = inc.category_id.map(|c| c.0);
    refs
}

/// What an incident's detail names: users, a team, a category.
#[derive(Debug, Clone, Default)]
pub struct References {
    /// Reporter, assignee and every user who acted on it.
    pub users: BTreeSet<Uuid>,
    /// Its team.
    pub team: Option<Uuid>,
    /// Its category.
    pub category: Option<Uuid>,
}

/// The current names of users, a team and a category, read from the read models (names are
/// not history).
#[derive(Debug, Clone, Default)]
pub struct NameBook {
    users: HashMap<Uuid, Names>,
    team: Option<(Uuid, String)>,
    category: Option<(Uuid, String)>,
}

impl NameBook {
    /// Reads the names of `refs` (of `tenant`; `conn` must be scoped to it). Something that
    /// does not exist (any more) simply has no name.
    pub async fn load(
        &mut self,
        conn: &mut PgConnection,
        tenant: TenantId,
        refs: &References,
    ) -> Result<()> {
        let ids: Vec<Uuid> = refs.users.iter().copied().collect();
        self.users = user_names(conn, tenant, &ids).await?;
        self.team = match refs.team {
            Some(t) => name_of(conn, tenant, "rm_teams", t).await?.map(|n| (t, n)),
            None => None,
        };
        self.category = match refs.category {
            Some(c) => name_of(conn, tenant, "rm_categories", c)
                .await?
                .map(|n| (c, n)),
            None => None,
        };
        Ok(())
    }

    /// Whether user `id` exists (in the read model the names came from).
    pub fn has_user(&self, id: Uuid) -> bool {
        self.users.contains_key(&id)
    }

    /// Whether the team of the references exists.
    pub fn has_team(&self) -> bool {
        self.team.is_some()
    }

    /// Whether the category of the references exists.
    pub fn has_category(&self) -> bool {
        self.category.is_some()
    }

    fn team_name(&self, id: Uuid) -> Option<String> {
        self.team
            .as_ref()
            .filter(|(t, _)| *t == id)
            .map(|(_, n)| n.clone())
    }

    fn category_name(&self, id: Uuid) -> Option<String> {
        self.category
            .as_ref()
            .filter(|(c, _)| *c == id)
            .map(|(_, n)| n.clone())
    }
}

/// The incident folded from `decoded` (its stream's events from version 1, in order, with
/// their versions) in the shape of `GET /incidents/{id}`, with the current names of `names`
/// (private work notes only with `include_private`); `None` if the events create nothing.
/// Pure: the create path answers with it straight from its own events (ADR 0024), time
/// travel after reading the stream. Links to problems and suggested known errors are not on
/// the incident's stream: they are left empty.
pub fn render_incident(
    decoded: &[(i64, IncidentEvent)],
    names: &NameBook,
    include_private: bool,
) -> Result<Option<IncidentDetail>> {
    let Some(last_version) = decoded.last().map(|(v, _)| *v) else {
        return Ok(None);
    };
    let state = IncidentAggregate::replay(decoded.iter().map(|(_, e)| e));
    let Some(inc) = state.state else {
        return Ok(None);
    };

    // The read model's rule for the due times: the latest scheduled due time per metric.
    let mut due: [Option<DateTime<Utc>>; 2] = [None, None];
    let mut history = Vec::new();
    for (version, ev) in decoded {
        match ev {
            IncidentEvent::SlaTimerStarted(s) => {
                due[usize::from(s.metric == SlaMetric::Resolution)] = Some(s.schedule.due_at);
            }
            IncidentEvent::SlaTimerRescheduled(s) => {
                due[usize::from(s.metric == SlaMetric::Resolution)] = Some(s.schedule.due_at);
            }
            _ => {}
        }
        for (seq, change) in ev.history().into_iter().enumerate() {
            history.push((*version, seq, change, ev.actor(), ev.at()));
        }
    }

    let user = |id: UserId| {
        let n = names.users.get(&id.0);
        UserSummary {
            id,
            username: n.map(|n| n.0.clone()),
            first_name: n.map(|n| n.1.clone()),
            last_name: n.map(|n| n.2.clone()),
        }
    };
    let actor = |a: Actor| {
        let u = a.user_id().map(user);
        ActorSummary {
            actor: a.to_string(),
            id: a.user_id(),
            username: u.as_ref().and_then(|u| u.username.clone()),
            first_name: u.as_ref().and_then(|u| u.first_name.clone()),
            last_name: u.as_ref().and_then(|u| u.last_name.clone()),
        }
    };
    let team = inc.team_id.map(|t| NamedRef {
        id: t.0,
        name: names.team_name(t.0),
    });
    let category = inc.category_id.map(|c| NamedRef {
        id: c.0,
        name: names.category_name(c.0),
    });

    let mut work_notes: Vec<WorkNoteView> = inc
        .work_notes
        .iter()
        .filter(|n| include_private || n.is_public)
        .map(|n| WorkNoteView {
            id: n.id,
            content: n.body.as_str().to_owned(),
            note_type: n.note_type,
            is_public: n.is_public,
            by_agent: n.by_agent,
            created_by: actor(n.author),
            created_at: n.created_at,
        })
        .collect();
    work_notes.sort_by_key(|n| (n.created_at, n.id.0));
    let mut attachments = inc
        .attachments
        .iter()
        .map(|a| {
            Ok(AttachmentView {
                id: a.id,
                file_name: a.filename.as_str().to_owned(),
                file_size: i64::try_from(a.size_bytes)
                    .map_err(|_| corrupt("attachment size out of range"))?,
                content_type: a.content_type.as_str().to_owned(),
                sha256: a.sha256.as_str().to_owned(),
                uploaded_by: actor(a.uploaded_by),
                uploaded_at: a.uploaded_at,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    attachments.sort_by_key(|a| (a.uploaded_at, a.id.0));
    let history = history
        .into_iter()
        .map(|(version, seq, change, by, changed_at)| {
            Ok(IncidentHistoryEntry {
                field_name: change.field.to_owned(),
                old_value: change.old,
                new_value: change.new,
                changed_by: actor(by),
                changed_at,
                version,
                seq: i32::try_from(seq).map_err(|_| corrupt("too many changes in one event"))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;

    Ok(Some(IncidentDetail {
        incident: IncidentListItem {
            id: inc.id,
            incident_number: inc.number.to_string(),
            title: inc.title.as_str().to_owned(),
            description: inc.description.as_str().to_owned(),
            status: inc.status,
            priority: inc.priority,
            impact: inc.impact,
            urgency: inc.urgency,
            reporter: user(inc.reporter_id),
            assignee: inc.assignee_id.map(user),
            team,
            category,
            ci_id: inc.ci_id,
            hold_reason: inc.hold_reason,
            resolution: inc.resolution.as_ref().map(|r| r.as_str().to_owned()),
            reopen_count: i32::try_from(inc.reopen_count)
                .map_err(|_| corrupt("reopen count out of range"))?,
            response_due_at: due[0],
            resolution_due_at: due[1],
            responded_at: inc.responded_at,
            resolved_at: inc.resolved_at,
            closed_at: inc.closed_at,
            cancelled_at: inc.cancelled_at,
            created_at: inc.created_at,
            updated_at: inc.updated_at,
            version: last_version,
        },
        priority_overridden: inc.priority_overridden,
        created_by: inc.created_by,
        updated_by: inc.updated_by,
        history,
        work_notes,
        attachments,
        // Links to problems live on the problem's stream, not the incident's: time travel of
        // an incident does not show them.
        problem_id: None,
        suggested_known_errors: Vec::new(),
    }))
}

type Names = (String, String, String);

async fn user_names(
    conn: &mut PgConnection,
    tenant: TenantId,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Names>> {
    let rows = sqlx::query(
        "SELECT id, username, first_name, last_name FROM rm_users \
         WHERE tenant_id = $1 AND id = ANY($2)",
    )
    .bind(tenant.0)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("id")?,
                (
                    r.try_get("username")?,
                    r.try_get("first_name")?,
                    r.try_get("last_name")?,
                ),
            ))
        })
        .collect()
}

async fn name_of(
    conn: &mut PgConnection,
    tenant: TenantId,
    table: &'static str,
    id: Uuid,
) -> Result<Option<String>> {
    let sql = format!("SELECT name FROM {table} WHERE tenant_id = $1 AND id = $2");
    Ok(sqlx::query_scalar(&sql)
        .bind(tenant.0)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
}

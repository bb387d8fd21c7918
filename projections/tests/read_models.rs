//! The directory and incident read models and their queries, against the real PostgreSQL:
//! events are decided by the domain, appended to the store, projected by the runtime, and read
//! back through the query functions (as `eventdesk_system` and, for RLS, as `eventdesk_app`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use eventdesk_domain::values::CategoryName;
use eventdesk_domain::values::{
    ContentType, Department, Description, Email, FileName, HoldReason, Impact, IncidentNumber,
    IncidentStatus, PasswordHash, PersonName, Priority, ReasonText, ResolutionText, Role,
    Sha256Hex, TeamName, TenantName, Title, Urgency, Username, WorkNoteBody, WorkNoteType,
};
use eventdesk_domain::{
    Actor, Aggregate, AttachmentId, CategoryAggregate, CategoryCommand, CategoryId, DomainEvent,
    IncidentAggregate, IncidentCommand, IncidentId, PriorityMatrix, StreamId, TeamAggregate,
    TeamCommand, TeamId, TenantAggregate, TenantCommand, TenantId, UserAggregate, UserCommand,
    UserId, WorkNoteId,
};
use eventdesk_projections::queries::{self, IncidentFilter, IncidentSort, Paging};
use eventdesk_projections::{
    DirectoryProjection, IncidentProjection, ProjectorRuntime, RuntimeConfig,
};
use eventdesk_store::{
    Db, DbConfig, EventMetadata, EventStore, ExpectedVersion, NewEvent, PgEventStore, StreamRef,
    Upcasters, db,
};
use sqlx::{PgPool, Row};
use std::sync::Arc;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

fn base_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh database: `store` runs as `eventdesk_system` (the projector's role), `app` as
/// `eventdesk_app`, `admin` as the login (owner) user. Dropped on drop.
struct Env {
    url: String,
    admin: PgPool,
    app: PgPool,
    store: PgEventStore,
}

impl Env {
    async fn new() -> Self {
        let name = format!("edt_rm_{}", Uuid::now_v7().simple());
        let url = db::with_database(&base_url(), &name).unwrap();
        db::ensure_database(&url).await.unwrap();
        let mut cfg = DbConfig::new(url.clone());
        Db::migrate(&cfg).await.unwrap();
        cfg.app_role = Some("eventdesk_system".into());
        cfg.max_connections = 8;
        let system = Db::connect(cfg).await.unwrap();
        let mut app_cfg = DbConfig::new(url.clone());
        app_cfg.max_connections = 4;
        let app = Db::connect(app_cfg).await.unwrap().pool;
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .unwrap();
        Self {
            url,
            admin,
            app,
            store: PgEventStore::new(system.pool, Upcasters::new()),
        }
    }

    fn runtime(&self, batch_size: i64) -> ProjectorRuntime {
        let config = RuntimeConfig {
            batch_size,
            max_retries: 2,
            retry_backoff: std::time::Duration::from_millis(1),
            ..RuntimeConfig::default()
        };
        ProjectorRuntime::new(
            self.store.clone(),
            vec![Arc::new(DirectoryProjection), Arc::new(IncidentProjection)],
            config,
        )
    }

    /// Runs both projections until they have consumed every event appended so far (the read
    /// horizon may lag behind other sessions' transactions on a shared server, so poll).
    async fn project(&self, batch_size: i64) {
        let rt = self.runtime(batch_size);
        let head: i64 = sqlx::query_scalar("SELECT coalesce(max(global_position), 0) FROM events")
            .fetch_one(&self.admin)
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        for p in rt.projections() {
            loop {
                rt.catch_up(p.as_ref()).await.unwrap();
                let at: i64 = sqlx::query_scalar(
                    "SELECT last_position FROM projection_checkpoints WHERE name = $1",
                )
                .bind(p.name())
                .fetch_one(&self.admin)
                .await
                .unwrap();
                if at >= head {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "projection stuck");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }

    /// A system-role connection (BYPASSRLS), for queries.
    async fn sys(&self) -> sqlx::pool::PoolConnection<sqlx::Postgres> {
        self.store.pool().acquire().await.unwrap()
    }

    /// Every read-model row, in a stable order (for comparing rebuilds).
    async fn snapshot(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for (table, order) in [
            ("rm_tenants", "id"),
            ("rm_users", "tenant_id, id"),
            ("rm_teams", "tenant_id, id"),
            ("rm_categories", "tenant_id, id"),
            ("rm_incidents", "tenant_id, id"),
            (
                "rm_incident_history",
                "tenant_id, incident_id, version, seq",
            ),
            ("rm_incident_work_notes", "tenant_id, incident_id, id"),
            ("rm_incident_attachments", "tenant_id, incident_id, id"),
            (
                // Cells that dropped to 0 stay; which ones exist depends on the batching.
                "rm_incident_counts",
                "tenant_id, status, priority, impact, urgency",
            ),
        ] {
            let v: Option<serde_json::Value> = sqlx::query_scalar(&format!(
                "SELECT jsonb_agg(to_jsonb(t) ORDER BY {order}) FROM {table} t \
                 WHERE to_jsonb(t)->>'count' IS DISTINCT FROM '0'"
            ))
            .fetch_one(&self.admin)
            .await
            .unwrap();
            out.insert(table.into(), v.unwrap_or(serde_json::Value::Null));
        }
        serde_json::Value::Object(out)
    }
}

impl Env {
    /// Asserts that `rm_incident_counts` holds exactly the per-cell counts of `rm_incidents`
    /// (cells at 0 aside), and returns how many incidents they count.
    async fn assert_counts_match_rows(&self) -> i64 {
        let diff: Vec<(Uuid, String, String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT tenant_id, status, priority, impact, urgency, \
                    coalesce(c.count, 0), coalesce(r.n, 0) \
             FROM (SELECT tenant_id, status, priority, impact, urgency, count(*) AS n \
                   FROM rm_incidents GROUP BY 1, 2, 3, 4, 5) r \
             FULL JOIN rm_incident_counts c USING (tenant_id, status, priority, impact, urgency) \
             WHERE coalesce(c.count, 0) <> coalesce(r.n, 0)",
        )
        .fetch_all(&self.admin)
        .await
        .unwrap();
        assert!(diff.is_empty(), "counts differ from the rows: {diff:?}");
        sqlx::query_scalar("SELECT coalesce(sum(count), 0)::int8 FROM rm_incident_counts")
            .fetch_one(&self.admin)
            .await
            .unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let url = self.url.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(db::drop_database(&url));
            }
        })
        .join();
    }
}

fn meta() -> EventMetadata {
    EventMetadata {
        actor: "user:test".into(),
        ..EventMetadata::default()
    }
}

/// An aggregate and its stream version, as the command layer would hold them.
struct Stream<A> {
    tenant: TenantId,
    id: Uuid,
    agg: A,
    version: i64,
}

impl<A: Aggregate> Stream<A>
where
    A::Error: std::fmt::Debug,
{
    fn new(tenant: TenantId, id: Uuid) -> Self {
        Self {
            tenant,
            id,
            agg: A::default(),
            version: 0,
        }
    }

    /// Decides `cmd` at `now`, appends the events and evolves.
    async fn exec(&mut self, store: &PgEventStore, cmd: A::Command, now: DateTime<Utc>) {
        let events = self.agg.decide(cmd, now).expect("command accepted");
        if events.is_empty() {
            return;
        }
        let new = events
            .iter()
            .map(|e| {
                let (ty, data) = e.encode().unwrap();
                NewEvent::new(ty, e.schema_version(), data)
            })
            .collect();
        let expected = match self.version {
            0 => ExpectedVersion::NoStream,
            v => ExpectedVersion::Exact(v),
        };
        let out = store
            .append(
                self.tenant,
                &StreamRef::new(A::STREAM_TYPE, StreamId(self.id)),
                expected,
                new,
                &meta(),
                None,
            )
            .await
            .unwrap();
        for e in &events {
            self.agg.evolve(e);
        }
        self.version = out.next_version;
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 9, 0, 0).unwrap()
}

/// The fixture: two tenants with their directories and incidents.
struct World {
    a: TenantId,
    b: TenantId,
    alice: UserId,
    bob: UserId,
    carol: UserId,
    team: TeamId,
    category: CategoryId,
    /// Tenant A's incidents, in creation order.
    incidents: Vec<Stream<IncidentAggregate>>,
    b_incident: IncidentId,
    mail: IncidentId,
    note_private: WorkNoteId,
    note_public: WorkNoteId,
}

async fn tenant(env: &Env, name: &str) -> TenantId {
    let id = TenantId::new();
    let mut s = Stream::<TenantAggregate>::new(id, id.0);
    s.exec(
        &env.store,
        TenantCommand::Create {
            id,
            name: TenantName::parse(name).unwrap(),
            priority_matrix: None,
            actor: Actor::System,
        },
        t0(),
    )
    .await;
    id
}

async fn user(env: &Env, tenant: TenantId, username: &str, role: Role) -> UserId {
    let id = UserId::new();
    let mut s = Stream::<UserAggregate>::new(tenant, id.0);
    s.exec(
        &env.store,
        UserCommand::Register {
            id,
            tenant_id: tenant,
            username: Username::parse(username).unwrap(),
            email: Email::parse(format!("{}@example.com", username.to_lowercase())).unwrap(),
            first_name: PersonName::parse(format!("{username}-first")).unwrap(),
            last_name: PersonName::parse("山田").unwrap(),
            phone: None,
            department: Some(Department::parse("IT").unwrap()),
            role,
            password_hash: PasswordHash::parse("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")
                .unwrap(),
            actor: Actor::System,
        },
        t0(),
    )
    .await;
    id
}

#[allow(clippy::too_many_arguments)]
fn create(
    id: IncidentId,
    seq: u64,
    title: &str,
    description: &str,
    impact: Impact,
    urgency: Urgency,
    priority: Option<Priority>,
    reporter: UserId,
    category: Option<CategoryId>,
) -> IncidentCommand {
    IncidentCommand::Create {
        id,
        number: IncidentNumber::from_sequence(seq).unwrap(),
        title: Title::parse(title).unwrap(),
        description: Description::parse(description).unwrap(),
        impact,
        urgency,
        priority,
        matrix: PriorityMatrix::default(),
        category_id: category,
        team_id: None,
        assignee_id: None,
        reporter_id: reporter,
        ci_id: None,
        actor: Actor::User(reporter),
    }
}

async fn world(env: &Env) -> World {
    let a = tenant(env, "Acme").await;
    let b = tenant(env, "Globex").await;
    let alice = user(env, a, "Alice", Role::User).await;
    let bob = user(env, a, "bob", Role::Operator).await;
    let carol = user(env, b, "carol", Role::User).await;

    let team = TeamId::new();
    let mut ts = Stream::<TeamAggregate>::new(a, team.0);
    ts.exec(
        &env.store,
        TeamCommand::Create {
            id: team,
            name: TeamName::parse("Service Desk").unwrap(),
            manager_id: Some(bob),
            description: None,
            actor: Actor::System,
        },
        t0(),
    )
    .await;
    ts.exec(
        &env.store,
        TeamCommand::AddMember {
            user_id: bob,
            actor: Actor::System,
        },
        t0(),
    )
    .await;
    let category = CategoryId::new();
    let mut cs = Stream::<CategoryAggregate>::new(a, category.0);
    cs.exec(
        &env.store,
        CategoryCommand::Create {
            id: category,
            name: CategoryName::parse("メール").unwrap(),
            parent_id: None,
            description: Some(Description::parse("E-mail").unwrap()),
            actor: Actor::System,
        },
        t0(),
    )
    .await;

    // Tenant A: five incidents, one minute apart.
    let specs: [(&str, &str, Impact, Urgency, Option<Priority>); 5] = [
        (
            "メールサーバー接続エラー",
            "社内のメールが送信できない",
            Impact::High,
            Urgency::High,
            None,
        ),
        ("Printer jam", "3rd floor", Impact::Low, Urgency::Low, None),
        (
            "VPN down",
            "50% of users cannot connect",
            Impact::Extensive,
            Urgency::Critical,
            None,
        ),
        (
            "DROP TABLE incidents; -- a title about SQL",
            "<script>alert(1)</script>",
            Impact::Medium,
            Urgency::Medium,
            Some(Priority::Low),
        ),
        ("Laptop slow", "", Impact::Low, Urgency::Medium, None),
    ];
    let mut incidents = Vec::new();
    for (i, (title, desc, impact, urgency, priority)) in specs.into_iter().enumerate() {
        let id = IncidentId::new();
        let mut s = Stream::<IncidentAggregate>::new(a, id.0);
        let at = t0() + Duration::minutes(i as i64);
        let cat = (i == 0).then_some(category);
        s.exec(
            &env.store,
            create(
                id,
                i as u64 + 1,
                title,
                desc,
                impact,
                urgency,
                priority,
                alice,
                cat,
            ),
            at,
        )
        .await;
        incidents.push(s);
    }
    let mail = IncidentId(incidents[0].id);

    // The mail incident: assigned, worked, noted, held, resumed… then resolved.
    let at = t0() + Duration::hours(1);
    let actor = Actor::User(bob);
    let note_private = WorkNoteId::new();
    let note_public = WorkNoteId::new();
    let m = &mut incidents[0];
    m.exec(
        &env.store,
        IncidentCommand::Assign {
            assignee_id: Some(bob),
            team_id: Some(team),
            actor,
        },
        at,
    )
    .await;
    m.exec(&env.store, IncidentCommand::StartWork { actor }, at)
        .await;
    m.exec(
        &env.store,
        IncidentCommand::AddWorkNote {
            note_id: note_private,
            body: WorkNoteBody::parse("ログを確認中").unwrap(),
            note_type: WorkNoteType::WorkNote,
            is_public: false,
            by_agent: true,
            author: actor,
        },
        at + Duration::minutes(1),
    )
    .await;
    m.exec(
        &env.store,
        IncidentCommand::AddAttachment {
            attachment_id: AttachmentId::new(),
            filename: FileName::parse("smtp.log").unwrap(),
            content_type: ContentType::parse("text/plain").unwrap(),
            size_bytes: 1234,
            sha256: Sha256Hex::parse("ab".repeat(32)).unwrap(),
            uploaded_by: actor,
        },
        at + Duration::minutes(2),
    )
    .await;
    m.exec(
        &env.store,
        IncidentCommand::PutOnHold {
            reason: HoldReason::AwaitingVendor,
            comment: None,
            actor,
        },
        at + Duration::minutes(3),
    )
    .await;
    m.exec(
        &env.store,
        IncidentCommand::Resume { actor },
        at + Duration::minutes(4),
    )
    .await;
    m.exec(
        &env.store,
        IncidentCommand::AddWorkNote {
            note_id: note_public,
            body: WorkNoteBody::parse("復旧しました").unwrap(),
            note_type: WorkNoteType::ResolutionNote,
            is_public: true,
            by_agent: true,
            author: actor,
        },
        at + Duration::minutes(5),
    )
    .await;
    m.exec(
        &env.store,
        IncidentCommand::Resolve {
            resolution: ResolutionText::parse("SMTP relay restarted").unwrap(),
            actor,
        },
        at + Duration::minutes(6),
    )
    .await;

    // VPN: in progress (priority derived: critical). Printer: cancelled.
    incidents[2]
        .exec(&env.store, IncidentCommand::StartWork { actor }, at)
        .await;
    incidents[1]
        .exec(
            &env.store,
            IncidentCommand::Cancel {
                reason: ReasonText::parse("duplicate").unwrap(),
                actor,
            },
            at,
        )
        .await;

    // Tenant B: one incident whose title also matches "メールサーバー".
    let b_id = IncidentId::new();
    let mut bs = Stream::<IncidentAggregate>::new(b, b_id.0);
    bs.exec(
        &env.store,
        create(
            b_id,
            1,
            "メールサーバー遅延",
            "B社",
            Impact::High,
            Urgency::Critical,
            None,
            carol,
            None,
        ),
        t0(),
    )
    .await;

    World {
        a,
        b,
        alice,
        bob,
        carol,
        team,
        category,
        incidents,
        b_incident: b_id,
        mail,
        note_private,
        note_public,
    }
}

fn ids(page: &queries::IncidentPage) -> Vec<IncidentId> {
    page.data.iter().map(|i| i.id).collect()
}

/// `list_incidents` as the projector's role, in a transaction scoped to `tenant` (which `q`
/// needs whatever the role).
async fn list(
    env: &Env,
    tenant: TenantId,
    filter: &IncidentFilter,
    sort: IncidentSort,
    paging: Paging,
) -> queries::IncidentPage {
    let mut tx = env.store.pool().begin().await.unwrap();
    queries::scope_to_tenant(&mut tx, tenant).await.unwrap();
    let page = queries::list_incidents(&mut tx, tenant, filter, sort, paging)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    page
}

/// Every item under `sort`, walking cursors of `limit`.
async fn walk(env: &Env, tenant: TenantId, sort: IncidentSort, limit: u32) -> Vec<IncidentId> {
    let mut out = Vec::new();
    let mut after = None;
    for _ in 0..100 {
        let page = list(
            env,
            tenant,
            &IncidentFilter::default(),
            sort,
            Paging::Cursor { after, limit },
        )
        .await;
        assert!(page.data.len() <= limit as usize);
        out.extend(ids(&page));
        if !page.pagination.has_next {
            assert!(page.pagination.next_cursor.is_none());
            return out;
        }
        after = page.pagination.next_cursor.clone();
    }
    panic!("cursor walk does not end");
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn incident_list_filters_sorts_and_pages() {
    let env = Env::new().await;
    let w = world(&env).await;
    env.project(2000).await;
    let all = IncidentFilter::default();

    // Default sort: newest first; embedded objects from the joins.
    let page = list(&env, w.a, &all, IncidentSort::default(), Paging::default()).await;
    assert_eq!(page.pagination.total_items, Some(5));
    assert_eq!(page.data.len(), 5);
    let expected: Vec<IncidentId> = w.incidents.iter().rev().map(|s| IncidentId(s.id)).collect();
    assert_eq!(ids(&page), expected);
    let mail = page.data.iter().find(|i| i.id == w.mail).unwrap();
    assert_eq!(mail.incident_number, "INC000001");
    assert_eq!(mail.status, IncidentStatus::Resolved);
    assert_eq!(mail.reporter.username.as_deref(), Some("Alice"));
    let assignee = mail.assignee.as_ref().unwrap();
    assert_eq!(
        (assignee.id, assignee.username.as_deref()),
        (w.bob, Some("bob"))
    );
    assert_eq!(
        mail.team.as_ref().map(|t| (t.id, t.name.as_deref())),
        Some((w.team.0, Some("Service Desk")))
    );
    assert_eq!(
        mail.category.as_ref().map(|c| (c.id, c.name.as_deref())),
        Some((w.category.0, Some("メール")))
    );
    assert_eq!(mail.resolution.as_deref(), Some("SMTP relay restarted"));
    assert_eq!(mail.version, w.incidents[0].version);
    assert!(mail.responded_at.is_some() && mail.resolved_at.is_some());
    let json = serde_json::to_value(&page).unwrap();
    assert_eq!(
        json["pagination"],
        serde_json::json!({"current_page": 1, "total_pages": 1, "page_size": 20,
            "total_items": 5, "has_next": false, "has_prev": false})
    );
    assert_eq!(json["data"][4]["incident_number"], "INC000001");

    // Status: OR within the field.
    let f = IncidentFilter {
        status: vec![IncidentStatus::New, IncidentStatus::InProgress],
        ..Default::default()
    };
    let page = list(&env, w.a, &f, IncidentSort::default(), Paging::default()).await;
    assert_eq!(page.pagination.total_items, Some(3));
    assert!(
        page.data
            .iter()
            .all(|i| matches!(i.status, IncidentStatus::New | IncidentStatus::InProgress))
    );

    // Priority (derived and explicit) and AND across fields.
    let f = IncidentFilter {
        priority: vec![Priority::Low],
        ..Default::default()
    };
    let page = list(&env, w.a, &f, IncidentSort::CreatedAtAsc, Paging::default()).await;
    assert_eq!(
        ids(&page),
        vec![
            IncidentId(w.incidents[1].id),
            IncidentId(w.incidents[3].id),
            IncidentId(w.incidents[4].id)
        ]
    );
    let f = IncidentFilter {
        priority: vec![Priority::Low],
        status: vec![IncidentStatus::Cancelled],
        ..Default::default()
    };
    assert_eq!(
        ids(&list(&env, w.a, &f, IncidentSort::default(), Paging::default()).await),
        vec![IncidentId(w.incidents[1].id)]
    );

    // Assignee / team / category / reporter / time window.
    for f in [
        IncidentFilter {
            assignee_id: Some(w.bob),
            ..Default::default()
        },
        IncidentFilter {
            team_id: Some(w.team),
            ..Default::default()
        },
        IncidentFilter {
            category_id: Some(w.category),
            ..Default::default()
        },
        IncidentFilter {
            created_before: Some(t0() + Duration::seconds(30)),
            ..Default::default()
        },
    ] {
        let page = list(&env, w.a, &f, IncidentSort::default(), Paging::default()).await;
        assert_eq!(ids(&page), vec![w.mail], "{f:?}");
    }
    let f = IncidentFilter {
        created_after: Some(t0() + Duration::minutes(3)),
        only_reporter: Some(w.alice),
        ..Default::default()
    };
    assert_eq!(
        list(&env, w.a, &f, IncidentSort::default(), Paging::default())
            .await
            .pagination
            .total_items,
        Some(2)
    );
    let f = IncidentFilter {
        only_reporter: Some(w.bob),
        ..Default::default()
    };
    assert!(
        list(&env, w.a, &f, IncidentSort::default(), Paging::default())
            .await
            .data
            .is_empty()
    );

    // Full text: Japanese substrings, number, description; wildcards are literal.
    for (q, expect) in [
        ("メールサーバー", vec![w.mail]),
        ("サーバー接続", vec![w.mail]),
        ("送信できない", vec![w.mail]),
        ("inc000003", vec![IncidentId(w.incidents[2].id)]),
        ("drop table", vec![IncidentId(w.incidents[3].id)]),
        ("50%", vec![IncidentId(w.incidents[2].id)]),
        ("%", vec![IncidentId(w.incidents[2].id)]),
        ("_", vec![]),
    ] {
        let f = IncidentFilter {
            q: Some(q.into()),
            ..Default::default()
        };
        let page = list(&env, w.a, &f, IncidentSort::default(), Paging::default()).await;
        assert_eq!(ids(&page), expect, "q = {q:?}");
    }

    // Sorts.
    let page = list(
        &env,
        w.a,
        &all,
        IncidentSort::PriorityDesc,
        Paging::default(),
    )
    .await;
    assert_eq!(page.data[0].priority, Priority::Critical);
    assert_eq!(page.data[0].id, IncidentId(w.incidents[2].id));
    let ranks: Vec<Priority> = page.data.iter().map(|i| i.priority).collect();
    let mut sorted = ranks.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ranks, sorted);
    let page = list(
        &env,
        w.a,
        &all,
        IncidentSort::PriorityAsc,
        Paging::default(),
    )
    .await;
    assert_eq!(page.data[0].priority, Priority::Low);
    let page = list(
        &env,
        w.a,
        &all,
        IncidentSort::UpdatedAtDesc,
        Paging::default(),
    )
    .await;
    assert_eq!(page.data[0].id, w.mail, "the mail incident changed last");

    // Page numbers.
    let page = list(
        &env,
        w.a,
        &all,
        IncidentSort::CreatedAtAsc,
        Paging::page(2, 2),
    )
    .await;
    let p = &page.pagination;
    assert_eq!(
        (
            p.current_page,
            p.total_pages,
            p.page_size,
            p.total_items,
            p.has_next,
            p.has_prev
        ),
        (Some(2), Some(3), 2, Some(5), true, true)
    );
    assert_eq!(
        ids(&page),
        vec![IncidentId(w.incidents[2].id), IncidentId(w.incidents[3].id)]
    );
    let page = list(
        &env,
        w.a,
        &all,
        IncidentSort::CreatedAtAsc,
        Paging::page(3, 2),
    )
    .await;
    assert_eq!((page.data.len(), page.pagination.has_next), (1, false));
    let page = list(
        &env,
        w.a,
        &all,
        IncidentSort::CreatedAtAsc,
        Paging::page(9, 2),
    )
    .await;
    assert!(page.data.is_empty());

    // The SLA engine's columns: written elsewhere, kept by the projection, sortable.
    for (i, hours) in [(4usize, 1i64), (2, 2)] {
        sqlx::query("UPDATE rm_incidents SET resolution_due_at = $1 WHERE id = $2")
            .bind(t0() + Duration::hours(hours))
            .bind(w.incidents[i].id)
            .execute(&env.admin)
            .await
            .unwrap();
    }
    let page = list(
        &env,
        w.a,
        &all,
        IncidentSort::ResolutionDueAt,
        Paging::default(),
    )
    .await;
    assert_eq!(
        ids(&page)[..2],
        [IncidentId(w.incidents[4].id), IncidentId(w.incidents[2].id)]
    );
    assert!(page.data[2..].iter().all(|i| i.resolution_due_at.is_none()));

    // Cursors: every sort walks the same sequence as one big page, without repeats.
    for sort in IncidentSort::ALL {
        let full = ids(&list(&env, w.a, &all, *sort, Paging::page(1, 100)).await);
        for limit in [1, 2, 3] {
            assert_eq!(
                walk(&env, w.a, *sort, limit).await,
                full,
                "{sort} by {limit}"
            );
        }
    }
    let first = list(
        &env,
        w.a,
        &all,
        IncidentSort::default(),
        Paging::Cursor {
            after: None,
            limit: 2,
        },
    )
    .await;
    let json = serde_json::to_value(&first.pagination).unwrap();
    assert_eq!(json["has_next"], true);
    assert!(json.get("total_items").is_none() && json["next_cursor"].is_string());
    // A cursor is bound to its sort, and garbage is refused.
    let mut c = env.sys().await;
    for (sort, after) in [
        (
            IncidentSort::PriorityDesc,
            first.pagination.next_cursor.clone(),
        ),
        (IncidentSort::default(), Some("garbage!".to_owned())),
    ] {
        let r =
            queries::list_incidents(&mut c, w.a, &all, sort, Paging::Cursor { after, limit: 2 })
                .await;
        assert!(matches!(r, Err(queries::QueryError::InvalidCursor)));
    }

    // Tenant isolation at the query level: B sees only its own incident.
    let page = list(&env, w.b, &all, IncidentSort::default(), Paging::default()).await;
    assert_eq!(ids(&page), vec![w.b_incident]);
    assert_eq!(page.data[0].reporter.username.as_deref(), Some("carol"));
    let f = IncidentFilter {
        q: Some("メールサーバー".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(&list(&env, w.b, &f, IncidentSort::default(), Paging::default()).await),
        vec![w.b_incident]
    );
    assert!(
        queries::get_incident(&mut c, w.b, w.mail, true)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        queries::get_user(&mut c, w.b, w.alice)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn incident_detail_history_notes_and_attachments() {
    let env = Env::new().await;
    let w = world(&env).await;
    env.project(2000).await;
    let mut c = env.sys().await;

    let d = queries::get_incident(&mut c, w.a, w.mail, true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.incident.version, w.incidents[0].version);
    assert_eq!(d.created_by, Actor::User(w.alice));
    assert_eq!(d.updated_by, Actor::User(w.bob));
    let rows: Vec<(&str, Option<&str>, Option<&str>)> = d
        .history
        .iter()
        .map(|h| {
            (
                h.field_name.as_str(),
                h.old_value.as_deref(),
                h.new_value.as_deref(),
            )
        })
        .collect();
    let bob = w.bob.to_string();
    let team = w.team.to_string();
    let responded = (t0() + Duration::hours(1)).to_rfc3339();
    assert_eq!(
        rows,
        vec![
            ("status", None, Some("new")),
            ("status", Some("new"), Some("assigned")),
            ("assignee_id", None, Some(bob.as_str())),
            ("team_id", None, Some(team.as_str())),
            ("responded_at", None, Some(responded.as_str())),
            ("status", Some("assigned"), Some("in_progress")),
            ("status", Some("in_progress"), Some("on_hold")),
            ("hold_reason", None, Some("awaiting_vendor")),
            ("status", Some("on_hold"), Some("in_progress")),
            ("hold_reason", Some("awaiting_vendor"), None),
            ("status", Some("in_progress"), Some("resolved")),
            ("resolution", None, Some("SMTP relay restarted")),
        ]
    );
    let first = &d.history[0];
    assert_eq!(first.changed_by.actor, format!("user:{}", w.alice));
    assert_eq!(first.changed_by.username.as_deref(), Some("Alice"));
    assert_eq!(first.changed_at, t0());
    assert!(
        d.history
            .windows(2)
            .all(|p| (p[0].version, p[0].seq) < (p[1].version, p[1].seq))
    );

    let notes: Vec<_> = d.work_notes.iter().map(|n| n.id).collect();
    assert_eq!(notes, vec![w.note_private, w.note_public]);
    assert_eq!(d.work_notes[1].note_type, WorkNoteType::ResolutionNote);
    assert_eq!(d.work_notes[1].created_by.username.as_deref(), Some("bob"));
    assert_eq!(d.attachments.len(), 1);
    let f = &d.attachments[0];
    assert_eq!(
        (f.file_name.as_str(), f.file_size, f.content_type.as_str()),
        ("smtp.log", 1234, "text/plain")
    );
    assert_eq!(f.uploaded_by.id, Some(w.bob));

    // Requesters see public notes only.
    let d = queries::get_incident(&mut c, w.a, w.mail, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        d.work_notes.iter().map(|n| n.id).collect::<Vec<_>>(),
        vec![w.note_public]
    );

    // Seed field names on the wire.
    let json = serde_json::to_value(&d).unwrap();
    for key in [
        "id",
        "incident_number",
        "title",
        "status",
        "priority",
        "reporter",
        "assignee",
        "team",
        "category",
        "history",
        "work_notes",
        "attachments",
        "version",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert_eq!(json["history"][0]["field_name"], "status");
    assert_eq!(json["work_notes"][0]["content"], "復旧しました");
    assert_eq!(json["attachments"][0]["file_name"], "smtp.log");

    // Later events update the row but keep the SLA engine's columns.
    let due = t0() + Duration::hours(8);
    sqlx::query(
        "UPDATE rm_incidents SET response_due_at = $1, resolution_due_at = $1 WHERE id = $2",
    )
    .bind(due)
    .bind(w.mail.0)
    .execute(&env.admin)
    .await
    .unwrap();
    let mut w = w;
    w.incidents[0]
        .exec(
            &env.store,
            IncidentCommand::Close {
                actor: Actor::User(w.alice),
            },
            t0() + Duration::hours(3),
        )
        .await;
    env.project(2000).await;
    let d = queries::get_incident(&mut c, w.a, w.mail, true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.incident.status, IncidentStatus::Closed);
    assert_eq!(d.incident.version, w.incidents[0].version);
    assert_eq!(d.incident.resolution_due_at, Some(due));
    assert_eq!(d.incident.response_due_at, Some(due));
    assert_eq!(
        d.history.last().unwrap().new_value.as_deref(),
        Some("closed")
    );

    assert_eq!(
        queries::find_incident_by_number(&mut c, w.a, IncidentNumber::parse("INC000001").unwrap())
            .await
            .unwrap(),
        Some(w.mail)
    );
    assert_eq!(
        queries::find_incident_by_number(&mut c, w.b, IncidentNumber::parse("INC000001").unwrap())
            .await
            .unwrap(),
        Some(w.b_incident)
    );
}

#[tokio::test]
async fn directory_queries() {
    let env = Env::new().await;
    let w = world(&env).await;
    env.project(2000).await;
    let mut c = env.sys().await;

    // Login looks users up across tenants by canonical username.
    let auth = queries::get_user_by_username(&mut c, "alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (auth.tenant_id, auth.id, auth.role),
        (w.a, w.alice, Role::User)
    );
    assert!(auth.password_hash.starts_with("$argon2id$"));
    assert!(!format!("{auth:?}").contains("argon2"));
    assert!(
        serde_json::to_value(&auth)
            .unwrap()
            .get("password_hash")
            .is_none()
    );
    let carol = queries::get_user_by_username(&mut c, "carol")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(carol.tenant_id, w.b);
    assert!(
        queries::get_user_by_username(&mut c, "nobody")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        queries::username_or_email_taken(&mut c, "alice", "x@example.com")
            .await
            .unwrap()
    );
    assert!(
        queries::username_or_email_taken(&mut c, "zed", "CAROL@example.com")
            .await
            .unwrap()
    );
    assert!(
        !queries::username_or_email_taken(&mut c, "zed", "zed@example.com")
            .await
            .unwrap()
    );

    let users = queries::list_users(&mut c, w.a, Paging::default())
        .await
        .unwrap();
    let names: Vec<_> = users.data.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, vec!["Alice", "bob"]);
    assert_eq!(users.pagination.total_items, Some(2));
    let json = serde_json::to_value(&users.data[0]).unwrap();
    assert_eq!(json["email"], "alice@example.com");
    assert_eq!(json["role"], "user");
    assert!(json.get("password_hash").is_none());
    // Cursor paging over users.
    let p1 = queries::list_users(
        &mut c,
        w.a,
        Paging::Cursor {
            after: None,
            limit: 1,
        },
    )
    .await
    .unwrap();
    let p2 = queries::list_users(
        &mut c,
        w.a,
        Paging::Cursor {
            after: p1.pagination.next_cursor.clone(),
            limit: 1,
        },
    )
    .await
    .unwrap();
    assert_eq!(p1.data[0].id, w.alice);
    assert_eq!(p2.data[0].id, w.bob);
    assert!(!p2.pagination.has_next);

    let user = queries::get_user(&mut c, w.a, w.bob)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (user.role, user.department.as_deref()),
        (Role::Operator, Some("IT"))
    );
    assert_eq!(user.version, 1);

    let teams = queries::list_teams(&mut c, w.a, Paging::default())
        .await
        .unwrap();
    assert_eq!(teams.data.len(), 1);
    assert_eq!(teams.data[0].members, vec![w.bob]);
    assert_eq!(teams.data[0].manager_id, Some(w.bob));
    assert_eq!(teams.data[0].version, 2);
    assert!(
        queries::list_teams(&mut c, w.b, Paging::default())
            .await
            .unwrap()
            .data
            .is_empty()
    );
    let cats = queries::list_categories(&mut c, w.a, Paging::default())
        .await
        .unwrap();
    assert_eq!(cats.data[0].name, "メール");
    assert_eq!(
        queries::get_category(&mut c, w.a, w.category)
            .await
            .unwrap()
            .map(|c| c.id),
        Some(w.category)
    );
    assert!(
        queries::get_team(&mut c, w.b, w.team)
            .await
            .unwrap()
            .is_none()
    );

    let t = queries::get_tenant(&mut c, w.a).await.unwrap().unwrap();
    assert_eq!((t.name.as_str(), t.is_active), ("Acme", true));
    assert_eq!(t.priority_matrix, PriorityMatrix::default());
    let tenants = queries::list_tenants(&mut c, Paging::default())
        .await
        .unwrap();
    let names: Vec<_> = tenants.data.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["Acme", "Globex"]);
    let _ = w.carol;
}

#[tokio::test]
async fn row_level_security_scopes_app_sessions_to_one_tenant() {
    let env = Env::new().await;
    let w = world(&env).await;
    env.project(2000).await;

    let mut tx = env.app.begin().await.unwrap();
    let role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(role, "eventdesk_app");
    for table in [
        "rm_incidents",
        "rm_users",
        "rm_tenants",
        "rm_incident_history",
        "rm_teams",
    ] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table} without app.tenant_id");
    }
    tx.rollback().await.unwrap();

    let mut tx = env.app.begin().await.unwrap();
    queries::scope_to_tenant(&mut tx, w.a).await.unwrap();
    let rows: Vec<(Uuid,)> = sqlx::query_as("SELECT DISTINCT tenant_id FROM rm_incidents")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(rows, vec![(w.a.0,)]);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_incidents")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 5);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_tenants")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 1);
    // The query functions work in a scoped app transaction…
    let page = queries::list_incidents(
        &mut tx,
        w.a,
        &IncidentFilter::default(),
        IncidentSort::default(),
        Paging::default(),
    )
    .await
    .unwrap();
    assert_eq!(page.pagination.total_items, Some(5));
    assert!(
        queries::get_incident(&mut tx, w.a, w.mail, true)
            .await
            .unwrap()
            .is_some()
    );
    // …and asking for another tenant under A's scope finds nothing (both guards agree).
    let page = queries::list_incidents(
        &mut tx,
        w.b,
        &IncidentFilter::default(),
        IncidentSort::default(),
        Paging::default(),
    )
    .await
    .unwrap();
    assert_eq!(page.pagination.total_items, Some(0));
    // The app role cannot write read models.
    let err = sqlx::query("UPDATE rm_incidents SET title = 'x'")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("42501")
    );
    tx.rollback().await.unwrap();

    // Scoped to B: only B's rows.
    let mut tx = env.app.begin().await.unwrap();
    queries::scope_to_tenant(&mut tx, w.b).await.unwrap();
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM rm_incidents")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(ids, vec![w.b_incident.0]);
    tx.rollback().await.unwrap();

    // The scope is transaction-local: a later transaction on the pool sees nothing again.
    let mut tx = env.app.begin().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_incidents")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 0);
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn rebuild_and_replay_reach_the_same_state() {
    let env = Env::new().await;
    let _w = world(&env).await;
    env.project(2000).await;
    let once = env.snapshot().await;
    assert_eq!(once["rm_incidents"].as_array().map(Vec::len), Some(6));
    assert_eq!(env.assert_counts_match_rows().await, 6);

    // Replay everything over the existing rows: nothing changes.
    sqlx::query("DELETE FROM projection_checkpoints")
        .execute(&env.admin)
        .await
        .unwrap();
    env.project(2000).await;
    assert_eq!(env.snapshot().await, once);
    assert_eq!(env.assert_counts_match_rows().await, 6);

    // Rebuild from zero with tiny batches (state carried across batches through the rows).
    // Truncating rm_incidents empties rm_incident_counts (trigger).
    sqlx::query(
        "TRUNCATE rm_tenants, rm_users, rm_teams, rm_categories, rm_incidents, \
         rm_incident_history, rm_incident_work_notes, rm_incident_attachments",
    )
    .execute(&env.admin)
    .await
    .unwrap();
    assert_eq!(env.assert_counts_match_rows().await, 0);
    let cells: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_incident_counts")
        .fetch_one(&env.admin)
        .await
        .unwrap();
    assert_eq!(cells, 0);
    sqlx::query("DELETE FROM projection_checkpoints")
        .execute(&env.admin)
        .await
        .unwrap();
    env.project(3).await;
    assert_eq!(env.snapshot().await, once);
    assert_eq!(env.assert_counts_match_rows().await, 6);

    // And replaying the tiny batches once more is still a no-op.
    sqlx::query("DELETE FROM projection_checkpoints")
        .execute(&env.admin)
        .await
        .unwrap();
    env.project(1).await;
    assert_eq!(env.snapshot().await, once);
    assert_eq!(env.assert_counts_match_rows().await, 6);
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_dead_letters")
        .fetch_one(&env.admin)
        .await
        .unwrap();
    assert_eq!(dead, 0);
}

#[tokio::test]
async fn unknown_incident_event_is_dead_lettered_and_others_are_ignored() {
    let env = Env::new().await;
    let w = world(&env).await;
    // An incident event type the domain does not know, and a stream type nobody projects.
    let unknown = NewEvent::new("IncidentTeleported", 1, serde_json::json!({ "to": "mars" }));
    env.store
        .append(
            w.a,
            &StreamRef::new("incident", StreamId(w.mail.0)),
            ExpectedVersion::Exact(w.incidents[0].version),
            vec![unknown],
            &meta(),
            None,
        )
        .await
        .unwrap();
    env.store
        .append(
            w.a,
            &StreamRef::new("problem", StreamId::new()),
            ExpectedVersion::NoStream,
            vec![NewEvent::new("ProblemLogged", 1, serde_json::json!({}))],
            &meta(),
            None,
        )
        .await
        .unwrap();
    env.project(2000).await;

    let dead: Vec<(String, String)> =
        sqlx::query_as("SELECT projection, event_type FROM projection_dead_letters")
            .fetch_all(&env.admin)
            .await
            .unwrap();
    assert_eq!(
        dead,
        vec![("incidents".to_owned(), "IncidentTeleported".to_owned())]
    );
    let mut c = env.sys().await;
    let page = queries::list_incidents(
        &mut c,
        w.a,
        &IncidentFilter::default(),
        IncidentSort::default(),
        Paging::default(),
    )
    .await
    .unwrap();
    assert_eq!(page.pagination.total_items, Some(5));
    let row = sqlx::query("SELECT state FROM projection_checkpoints WHERE name = 'incidents'")
        .fetch_one(&env.admin)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>(0), "degraded");
}

/// A write like the projector's upsert (version-guarded), as the projector's role.
async fn upsert_incident(env: &Env, id: Uuid, status: &str, version: i64) -> u64 {
    sqlx::query(
        "INSERT INTO rm_incidents (tenant_id, id, number, number_seq, title, description, \
         status, priority, priority_rank, priority_overridden, impact, urgency, reporter_id, \
         reopen_count, created_at, created_by, updated_at, updated_by, version) \
         SELECT tenant_id, id, number, number_seq, title, description, $2, priority, \
         priority_rank, priority_overridden, impact, urgency, reporter_id, reopen_count, \
         created_at, created_by, updated_at, updated_by, $3 FROM rm_incidents WHERE id = $1 \
         ON CONFLICT (tenant_id, id) DO UPDATE SET status = EXCLUDED.status, \
         version = EXCLUDED.version WHERE rm_incidents.version < EXCLUDED.version",
    )
    .bind(id)
    .bind(status)
    .bind(version)
    .execute(env.store.pool())
    .await
    .unwrap()
    .rows_affected()
}

/// The count of one status in `tenant`, from the cells.
async fn cells_of(env: &Env, tenant: TenantId, status: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(count), 0)::int8 FROM rm_incident_counts \
         WHERE tenant_id = $1 AND status = $2",
    )
    .bind(tenant.0)
    .bind(status)
    .fetch_one(&env.admin)
    .await
    .unwrap()
}

#[tokio::test]
async fn incident_counts_follow_every_write_and_only_actual_changes() {
    let env = Env::new().await;
    let w = world(&env).await;
    env.project(2000).await;
    assert_eq!(env.assert_counts_match_rows().await, 6);
    assert_eq!(cells_of(&env, w.a, "resolved").await, 1);
    let v = w.incidents[0].version;

    // A stale write (what a replayed or concurrent batch sends): the guard skips it, and the
    // counts do not move.
    assert_eq!(upsert_incident(&env, w.mail.0, "closed", v - 1).await, 0);
    assert_eq!(upsert_incident(&env, w.mail.0, "closed", v).await, 0);
    assert_eq!(cells_of(&env, w.a, "resolved").await, 1);
    assert_eq!(cells_of(&env, w.a, "closed").await, 0);
    // A newer one moves the incident from one cell to the other.
    assert_eq!(upsert_incident(&env, w.mail.0, "closed", v + 1).await, 1);
    assert_eq!(cells_of(&env, w.a, "resolved").await, 0);
    assert_eq!(cells_of(&env, w.a, "closed").await, 1);
    assert_eq!(env.assert_counts_match_rows().await, 6);
    // Writes that change no counted column (the SLA engine's) change no count.
    sqlx::query("UPDATE rm_incidents SET resolution_due_at = now(), title = title || '!'")
        .execute(env.store.pool())
        .await
        .unwrap();
    assert_eq!(env.assert_counts_match_rows().await, 6);
    // Deletes count too.
    sqlx::query("DELETE FROM rm_incidents WHERE id = $1")
        .bind(w.b_incident.0)
        .execute(&env.admin)
        .await
        .unwrap();
    assert_eq!(env.assert_counts_match_rows().await, 5);

    // Page-mode totals of status/priority/impact/urgency filters come from the cells.
    let f = IncidentFilter {
        status: vec![IncidentStatus::Closed, IncidentStatus::New],
        priority: vec![Priority::Low, Priority::Critical, Priority::Medium],
        ..Default::default()
    };
    let expected: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rm_incidents WHERE tenant_id = $1 \
         AND status IN ('closed', 'new') AND priority IN ('low', 'critical', 'medium')",
    )
    .bind(w.a.0)
    .fetch_one(&env.admin)
    .await
    .unwrap();
    let page = list(&env, w.a, &f, IncidentSort::default(), Paging::default()).await;
    assert_eq!(page.pagination.total_items, Some(expected as u64));
    assert_eq!(page.pagination.total_items_exact, Some(true));
    assert_eq!(page.data.len() as i64, expected);

    // RLS: an app session sees its tenant's cells only, and none unscoped; it cannot write.
    let mut tx = env.app.begin().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_incident_counts")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 0);
    queries::scope_to_tenant(&mut tx, w.a).await.unwrap();
    let tenants: Vec<Uuid> =
        sqlx::query_scalar("SELECT DISTINCT tenant_id FROM rm_incident_counts")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(tenants, vec![w.a.0]);
    let err = sqlx::query("UPDATE rm_incident_counts SET count = 0")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("42501")
    );
    tx.rollback().await.unwrap();
}

/// Tenant C of [`incident_list_totals_and_search_at_scale`]: `BULK` incidents written
/// straight into the read model, one minute apart (`i` = 1 oldest … `BULK` newest). With
/// `p = BULK + 1 - i` the position from the newest, the titles hold:
/// - `bulk` always (dense: every page is found by the first walk);
/// - `zyxthird` where `p % 3 = 0` (3,500: dense, but few enough to count through the index);
/// - `qwmid` where `3001 ≤ p ≤ 4200` (1,200 from the 3,001st newest on: beyond the first
///   walk, found by the second);
/// - `qwold` where `p > 9300` (the 1,200 oldest: beyond both walks, the plain query);
/// - `qwrare` where `p % 200 = 7` (53: all found through the trigram index).
const BULK: i64 = 10_500;

async fn bulk_tenant(env: &Env, team: Uuid, category: Uuid) -> TenantId {
    let c = TenantId::new();
    sqlx::query(
        "INSERT INTO rm_incidents (tenant_id, id, number, number_seq, title, description, \
         status, priority, priority_rank, priority_overridden, impact, urgency, category_id, \
         team_id, reporter_id, reopen_count, created_at, created_by, updated_at, updated_by, \
         version) \
         SELECT $1, gen_random_uuid(), 'INC' || lpad(i::text, 6, '0'), i, \
           'Bulk incident ' || i \
             || CASE WHEN p % 3 = 0 THEN ' zyxthird' ELSE '' END \
             || CASE WHEN p BETWEEN 3001 AND 4200 THEN ' qwmid' ELSE '' END \
             || CASE WHEN p > 9300 THEN ' qwold' ELSE '' END \
             || CASE WHEN p % 200 = 7 THEN ' qwrare' ELSE '' END, \
           '', (ARRAY['new','assigned','in_progress','on_hold','resolved','closed', \
                      'cancelled'])[1 + i % 7], \
           (ARRAY['low','medium','high','critical'])[1 + i % 4], i % 4, false, \
           (ARRAY['low','medium','high','extensive'])[1 + i % 3], \
           (ARRAY['low','medium','high','critical'])[1 + i % 5 % 4], \
           CASE WHEN i % 3 = 0 THEN $3 END, $2, $4, 0, \
           $5::timestamptz + make_interval(mins => i::int), '\"system\"', \
           $5::timestamptz + make_interval(mins => i::int), '\"system\"', 1 \
         FROM generate_series(1, $6::int8) AS i, LATERAL (SELECT $6 + 1 - i AS p) AS x",
    )
    .bind(c.0)
    .bind(team)
    .bind(category)
    .bind(Uuid::now_v7())
    .bind(t0())
    .bind(BULK)
    .execute(&env.admin)
    .await
    .unwrap();
    c
}

/// The ids of a page of `tenant`'s incidents matching `q` (and `status`), computed plainly.
async fn reference(
    env: &Env,
    tenant: TenantId,
    q: &str,
    status: Option<&str>,
    order: &str,
    limit: i64,
    offset: i64,
) -> Vec<IncidentId> {
    let ids: Vec<Uuid> = sqlx::query_scalar(&format!(
        "SELECT id FROM rm_incidents WHERE tenant_id = $1 AND search_text ILIKE $2 \
         AND ($3::text IS NULL OR status = $3) ORDER BY {order} LIMIT $4 OFFSET $5"
    ))
    .bind(tenant.0)
    .bind(format!("%{q}%"))
    .bind(status)
    .bind(limit)
    .bind(offset)
    .fetch_all(&env.admin)
    .await
    .unwrap();
    ids.into_iter().map(IncidentId).collect()
}

#[tokio::test]
async fn incident_list_totals_and_search_at_scale() {
    let env = Env::new().await;
    let (team, category) = (Uuid::now_v7(), Uuid::now_v7());
    let c = bulk_tenant(&env, team, category).await;
    sqlx::query("ANALYZE rm_incidents")
        .execute(&env.admin)
        .await
        .unwrap();
    // The triggers counted the rows written directly.
    assert_eq!(env.assert_counts_match_rows().await, BULK);
    let all = IncidentFilter::default();
    let json = |p: &queries::IncidentPage| serde_json::to_value(&p.pagination).unwrap();

    // No filter, or only counted fields: exact, from the cells.
    let page = list(&env, c, &all, IncidentSort::default(), Paging::default()).await;
    assert_eq!(page.pagination.total_items, Some(BULK as u64));
    assert_eq!(
        json(&page).get("total_items_exact"),
        None,
        "exact: not added"
    );
    let f = IncidentFilter {
        status: vec![IncidentStatus::New],
        impact: vec![Impact::Extensive],
        ..Default::default()
    };
    let expected: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rm_incidents WHERE tenant_id = $1 AND status = 'new' \
         AND impact = 'extensive'",
    )
    .bind(c.0)
    .fetch_one(&env.admin)
    .await
    .unwrap();
    let page = list(&env, c, &f, IncidentSort::default(), Paging::default()).await;
    assert_eq!(
        (
            page.pagination.total_items,
            page.pagination.total_items_exact
        ),
        (Some(expected as u64), Some(true))
    );

    // Other filters: exact up to the cap…
    let f = IncidentFilter {
        category_id: Some(CategoryId(category)),
        ..Default::default()
    };
    let page = list(&env, c, &f, IncidentSort::default(), Paging::default()).await;
    assert_eq!(page.pagination.total_items, Some(BULK as u64 / 3));
    assert_eq!(page.pagination.total_items_exact, Some(true));
    // …and the cap beyond it, flagged.
    let f = IncidentFilter {
        team_id: Some(TeamId(team)),
        ..Default::default()
    };
    let page = list(&env, c, &f, IncidentSort::default(), Paging::default()).await;
    assert_eq!(
        json(&page),
        serde_json::json!({"current_page": 1, "total_pages": 500, "page_size": 20,
            "total_items": 10_000, "has_next": true, "has_prev": false,
            "total_items_exact": false})
    );
    // A page beyond the cap raises the lower bound to what it proves.
    let page = list(&env, c, &f, IncidentSort::default(), Paging::page(510, 20)).await;
    assert_eq!(page.data.len(), 20);
    let p = &page.pagination;
    assert_eq!(
        (
            p.total_items,
            p.total_pages,
            p.has_next,
            p.total_items_exact
        ),
        (Some(10_201), Some(511), true, Some(false))
    );
    let page = list(&env, c, &f, IncidentSort::default(), Paging::page(526, 20)).await;
    assert_eq!(page.data.len(), 0);
    assert!(!page.pagination.has_next);

    // q: every strategy returns what the plain query returns, in every sort and page.
    let sorts = [
        (IncidentSort::CreatedAtDesc, "created_at DESC, id DESC"),
        (IncidentSort::CreatedAtAsc, "created_at ASC, id ASC"),
        (
            IncidentSort::PriorityDesc,
            "priority_rank DESC, created_at DESC, id DESC",
        ),
        (IncidentSort::UpdatedAtAsc, "updated_at ASC, id ASC"),
    ];
    for term in [
        "bulk", "zyxthird", "qwmid", "qwold", "qwrare", "QWRARE", "nomatch",
    ] {
        let f = IncidentFilter {
            q: Some(term.into()),
            ..Default::default()
        };
        for (sort, order) in sorts {
            for (page, limit) in [(1u32, 20u32), (3, 20), (2, 100)] {
                let got = list(&env, c, &f, sort, Paging::page(page, limit)).await;
                let offset = i64::from((page - 1) * limit);
                let want = reference(&env, c, term, None, order, limit.into(), offset).await;
                assert_eq!(ids(&got), want, "q={term} {sort} page {page} of {limit}");
            }
        }
    }
    // Totals (newest first): exact for few matches, lower bounds for many.
    for (term, total, exact) in [
        ("bulk", 21, false),       // dense in a large tenant: what the page proves
        ("zyxthird", 1000, false), // dense, but few enough to ask the index: the cap
        ("qwmid", 1000, false),
        ("qwold", 1000, false),
        ("qwrare", 53, true),
        ("nomatch", 0, true),
    ] {
        let f = IncidentFilter {
            q: Some(term.into()),
            ..Default::default()
        };
        let page = list(&env, c, &f, IncidentSort::default(), Paging::default()).await;
        let p = &page.pagination;
        assert_eq!(
            (p.total_items, p.total_items_exact),
            (Some(total), Some(exact)),
            "q={term}"
        );
        assert_eq!(p.has_next, total > 20, "q={term}");
    }
    // q with another filter.
    let f = IncidentFilter {
        q: Some("qwmid".into()),
        status: vec![IncidentStatus::Closed],
        ..Default::default()
    };
    let got = list(&env, c, &f, IncidentSort::default(), Paging::page(2, 20)).await;
    let want = reference(
        &env,
        c,
        "qwmid",
        Some("closed"),
        "created_at DESC, id DESC",
        20,
        20,
    )
    .await;
    assert_eq!(ids(&got), want);
    assert_eq!(got.pagination.total_items_exact, Some(false));
    let f = IncidentFilter {
        q: Some("qwrare".into()),
        category_id: Some(CategoryId(category)),
        ..Default::default()
    };
    let got = list(&env, c, &f, IncidentSort::default(), Paging::default()).await;
    let want = reference(&env, c, "qwrare", None, "created_at DESC, id DESC", 1000, 0).await;
    let in_category: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rm_incidents WHERE tenant_id = $1 AND category_id = $2 \
         AND search_text ILIKE '%qwrare%'",
    )
    .bind(c.0)
    .bind(category)
    .fetch_one(&env.admin)
    .await
    .unwrap();
    assert!(in_category > 0 && (in_category as usize) < want.len());
    assert_eq!(
        (got.pagination.total_items, got.pagination.total_items_exact),
        (Some(in_category as u64), Some(true))
    );

    // A frequent term beyond the first walk, with filters that leave few incidents (the plain
    // query through their index) or many (the long walk).
    for (f, cond) in [
        (
            IncidentFilter {
                category_id: Some(CategoryId(category)),
                ..Default::default()
            },
            format!("category_id = '{category}'"),
        ),
        (
            IncidentFilter {
                status: vec![IncidentStatus::OnHold],
                ..Default::default()
            },
            "status = 'on_hold'".to_owned(),
        ),
        (
            IncidentFilter {
                team_id: Some(TeamId(team)),
                ..Default::default()
            },
            format!("team_id = '{team}'"),
        ),
    ] {
        let f = IncidentFilter {
            q: Some("qwold".into()),
            ..f
        };
        let got = list(&env, c, &f, IncidentSort::default(), Paging::default()).await;
        let want: Vec<Uuid> = sqlx::query_scalar(&format!(
            "SELECT id FROM rm_incidents WHERE tenant_id = $1 AND search_text ILIKE '%qwold%' \
             AND {cond} ORDER BY created_at DESC, id DESC LIMIT 20"
        ))
        .bind(c.0)
        .fetch_all(&env.admin)
        .await
        .unwrap();
        assert_eq!(
            ids(&got),
            want.into_iter().map(IncidentId).collect::<Vec<_>>(),
            "{cond}"
        );
        assert_eq!(got.pagination.total_items_exact, Some(false), "{cond}");
    }

    // Cursors walk every match of each strategy in order.
    for term in ["qwmid", "qwold", "qwrare", "zyxthird"] {
        let f = IncidentFilter {
            q: Some(term.into()),
            ..Default::default()
        };
        let mut walked = Vec::new();
        let mut after = None;
        loop {
            let page = list(
                &env,
                c,
                &f,
                IncidentSort::CreatedAtDesc,
                Paging::Cursor { after, limit: 100 },
            )
            .await;
            walked.extend(ids(&page));
            if !page.pagination.has_next {
                break;
            }
            after = page.pagination.next_cursor.clone();
        }
        let want = reference(&env, c, term, None, "created_at DESC, id DESC", BULK, 0).await;
        assert_eq!(walked, want, "q={term}");
    }

    // As the app role (RLS): the same answers; the search function serves only the scoped
    // tenant.
    for term in ["qwrare", "qwold", "bulk"] {
        let f = IncidentFilter {
            q: Some(term.into()),
            ..Default::default()
        };
        let mut tx = env.app.begin().await.unwrap();
        queries::scope_to_tenant(&mut tx, c).await.unwrap();
        let got =
            queries::list_incidents(&mut tx, c, &f, IncidentSort::default(), Paging::default())
                .await
                .unwrap();
        tx.commit().await.unwrap();
        let want = reference(&env, c, term, None, "created_at DESC, id DESC", 20, 0).await;
        assert_eq!(ids(&got), want, "app role, q={term}");
    }
    let other = TenantId::new();
    for scope in [None, Some(other)] {
        let mut tx = env.app.begin().await.unwrap();
        if let Some(t) = scope {
            queries::scope_to_tenant(&mut tx, t).await.unwrap();
        }
        let err = sqlx::query("SELECT id FROM eventdesk_incident_search($1, 'qwrare', 10)")
            .bind(c.0)
            .fetch_all(&mut *tx)
            .await
            .unwrap_err();
        assert_eq!(
            err.as_database_error().and_then(|e| e.code()).as_deref(),
            Some("42501"),
            "scope {scope:?}"
        );
        tx.rollback().await.unwrap();
    }
    // Wildcards in the term are literal inside the function too.
    let mut tx = env.app.begin().await.unwrap();
    queries::scope_to_tenant(&mut tx, c).await.unwrap();
    for (term, n) in [
        ("qwra%", 0usize),
        ("qwra_e", 0),
        ("qwrare", 53),
        ("bul", 1001),
    ] {
        let found: Vec<Uuid> =
            sqlx::query_scalar("SELECT id FROM eventdesk_incident_search($1, $2, 1001)")
                .bind(c.0)
                .bind(term)
                .fetch_all(&mut *tx)
                .await
                .unwrap();
        assert_eq!(found.len(), n, "{term}");
    }
    tx.rollback().await.unwrap();
}

//! `eventdesk bench cmdb`: impact analysis (`GET /api/v1/cis/{id}/impact`) over a large CMDB.
//!
//! 1. **Populates the read model directly**: `--cis` rows of `rm_cis` and `--relationships`
//!    rows of `rm_ci_relationships` (plus `--incidents` open incidents on random CIs in
//!    `rm_incidents`), bulk-inserted with the columns and values the `cmdb` projection writes
//!    (version 1, live edges). Why not the write path: the impact query reads only these
//!    tables (through the partial index of live edges), never the log; appending 400,000
//!    events and projecting them would measure the append and projection throughput (see
//!    `bench append` / `bench replay`) and take minutes, and would leave the same rows.
//!    That the write path produces these rows is checked in the same run: a small graph is
//!    created in a second tenant through the commands (`commands::cmdb`), projected by the
//!    real `CmdbProjection`, and its impact answer compared with the expected one.
//! 2. The graph is a layered CMDB: services depend on applications; applications run on
//!    servers, depend on databases and sometimes on other applications; databases run on
//!    servers; servers depend on edge network devices, which depend on a few core devices
//!    (the hubs). The rest of the budget is `connected_to` links, which carry no impact.
//! 3. Times, with the app role and RLS (one `REPEATABLE READ` transaction scoped to the tenant
//!    per call, as the API does): the impact query at several depths for roots drawn from
//!    every CI, from servers, and from the core devices (the worst case), beside a raw
//!    baseline — one indexed lookup of a CI's incoming dependency edges — in the same run.

use crate::bench::{metadata, pad, system_db, verdict};
use anyhow::Context;
use clap::Args;
use eventdesk_api::Config;
use eventdesk_commands::cmdb::{NewRelationship, create_relationship, execute_ci};
use eventdesk_commands::{Options, SystemClock};
use eventdesk_domain::cmdb::{
    BuiltinCiType, CiCommand, CiName, CiStatus, CiTypeKey, RelationshipType,
};
use eventdesk_domain::{Actor, CiId, CiRelationshipId, TenantId};
use eventdesk_projections::queries::cmdb::{IncidentScope, impact};
use eventdesk_projections::{CmdbProjection, Projection, ProjectorRuntime, RuntimeConfig};
use eventdesk_store::{Db, PgEventStore, Upcasters};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use std::collections::HashSet;
use std::time::Instant;
use uuid::Uuid;

/// `bench cmdb`.
#[derive(Args, Debug)]
pub struct CmdbArgs {
    /// Configuration items.
    #[arg(long, default_value_t = 100_000)]
    cis: usize,
    /// Relationships (dependency edges first, the rest `connected_to`).
    #[arg(long, default_value_t = 300_000)]
    relationships: usize,
    /// Open incidents on random CIs.
    #[arg(long, default_value_t = 20_000)]
    incidents: usize,
    /// Depths to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,3,5,10")]
    depths: Vec<u32>,
    /// Timed calls per (root kind, depth).
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Keep the scratch database.
    #[arg(long)]
    pub keep: bool,
}

/// The layers of the generated CMDB, as index ranges into the CI list.
struct Graph {
    ids: Vec<Uuid>,
    types: Vec<&'static str>,
    servers: std::ops::Range<usize>,
    core: std::ops::Range<usize>,
    /// `(source, target, type)`.
    edges: Vec<(usize, usize, &'static str)>,
    dependency_edges: usize,
}

fn generate(n: usize, budget: usize, rng: &mut StdRng) -> Graph {
    // Layer sizes: services 5 %, applications 20 %, databases 10 %, servers 40 %, network 25 %
    // (of which 0.5 % core devices).
    let count = |pct: usize| (n * pct / 100).max(1);
    let (s, a, d, v) = (count(5), count(20), count(10), count(40));
    let net = n.saturating_sub(s + a + d + v).max(2);
    let core_n = (net / 200).max(1);
    let services = 0..s;
    let apps = s..s + a;
    let dbs = s + a..s + a + d;
    let servers = s + a + d..s + a + d + v;
    let core = s + a + d + v..s + a + d + v + core_n;
    let edge_net = core.end..core.end + (net - core_n);
    let total = edge_net.end;
    let mut types = Vec::with_capacity(total);
    for i in 0..total {
        types.push(if services.contains(&i) {
            BuiltinCiType::Service.as_str()
        } else if apps.contains(&i) {
            BuiltinCiType::Application.as_str()
        } else if dbs.contains(&i) {
            BuiltinCiType::Database.as_str()
        } else if servers.contains(&i) {
            BuiltinCiType::Server.as_str()
        } else {
            BuiltinCiType::NetworkDevice.as_str()
        });
    }
    let ids: Vec<Uuid> = (0..total).map(|_| Uuid::now_v7()).collect();
    let mut seen = HashSet::new();
    let mut edges = Vec::with_capacity(budget);
    let pick = |rng: &mut StdRng, r: &std::ops::Range<usize>| rng.gen_range(r.clone());
    let mut add = |edges: &mut Vec<(usize, usize, &'static str)>, s: usize, t: usize, ty| {
        if s != t && seen.insert((s, t, ty)) {
            edges.push((s, t, ty));
        }
    };
    const DEP: &str = RelationshipType::DEPENDS_ON;
    const RUNS: &str = RelationshipType::RUNS_ON;
    for svc in services.clone() {
        for _ in 0..rng.gen_range(2..=4) {
            let t = pick(rng, &apps);
            add(&mut edges, svc, t, DEP);
        }
    }
    for app in apps.clone() {
        for _ in 0..rng.gen_range(1..=2) {
            let t = pick(rng, &servers);
            add(&mut edges, app, t, RUNS);
        }
        for _ in 0..rng.gen_range(1..=2) {
            let t = pick(rng, &dbs);
            add(&mut edges, app, t, DEP);
        }
        // Some applications use another one (a lower one: the graph stays acyclic).
        if app > apps.start && rng.gen_bool(0.3) {
            let t = rng.gen_range(apps.start..app);
            add(&mut edges, app, t, DEP);
        }
    }
    for db in dbs.clone() {
        let t = pick(rng, &servers);
        add(&mut edges, db, t, RUNS);
    }
    for srv in servers.clone() {
        for _ in 0..rng.gen_range(1..=2) {
            let t = pick(rng, &edge_net);
            add(&mut edges, srv, t, DEP);
        }
    }
    for dev in edge_net.clone() {
        let t = pick(rng, &core);
        add(&mut edges, dev, t, DEP);
    }
    edges.truncate(budget);
    let dependency_edges = edges.len();
    let mut tries = 0;
    while edges.len() < budget && tries < budget * 4 {
        tries += 1;
        let (s, t) = (rng.gen_range(0..total), rng.gen_range(0..total));
        add(&mut edges, s, t, RelationshipType::CONNECTED_TO);
    }
    Graph {
        ids,
        types,
        servers,
        core,
        edges,
        dependency_edges,
    }
}

/// Bulk-inserts the graph and the incidents into the read models of `tenant`.
async fn populate(
    pool: &PgPool,
    tenant: Uuid,
    g: &Graph,
    incidents: usize,
    rng: &mut StdRng,
) -> anyhow::Result<()> {
    const BATCH: usize = 20_000;
    for (i, chunk) in g.ids.chunks(BATCH).enumerate() {
        let start = i * BATCH;
        let types: Vec<&str> = g.types[start..start + chunk.len()].to_vec();
        let names: Vec<String> = (start..start + chunk.len())
            .map(|k| format!("{}-{k:06}", g.types[k]))
            .collect();
        sqlx::query(
            "INSERT INTO rm_cis (tenant_id, id, ci_type, name, description, attributes, \
             owner_team_id, status, created_at, created_by, updated_at, updated_by, retired_at, \
             version) \
             SELECT $1, id, ty, name, NULL, '{}'::jsonb, NULL, 'active', now(), \
                    '{\"kind\":\"system\"}'::jsonb, now(), '{\"kind\":\"system\"}'::jsonb, NULL, 1 \
             FROM unnest($2::uuid[], $3::text[], $4::text[]) AS x(id, ty, name)",
        )
        .bind(tenant)
        .bind(chunk)
        .bind(&types)
        .bind(&names)
        .execute(pool)
        .await?;
    }
    for chunk in g.edges.chunks(BATCH) {
        let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::now_v7()).collect();
        let sources: Vec<Uuid> = chunk.iter().map(|e| g.ids[e.0]).collect();
        let targets: Vec<Uuid> = chunk.iter().map(|e| g.ids[e.1]).collect();
        let types: Vec<&str> = chunk.iter().map(|e| e.2).collect();
        sqlx::query(
            "INSERT INTO rm_ci_relationships (tenant_id, id, source_id, target_id, rel_type, \
             created_at, created_by, deleted_at, deleted_by, version) \
             SELECT $1, id, s, t, ty, now(), '{\"kind\":\"system\"}'::jsonb, NULL, NULL, 1 \
             FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::text[]) AS x(id, s, t, ty)",
        )
        .bind(tenant)
        .bind(&ids)
        .bind(&sources)
        .bind(&targets)
        .bind(&types)
        .execute(pool)
        .await?;
    }
    let reporter = Uuid::now_v7();
    for (b, chunk_start) in (0..incidents).step_by(BATCH).enumerate() {
        let n = BATCH.min(incidents - chunk_start);
        let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
        let seqs: Vec<i64> = (0..n)
            .map(|k| i64::try_from(b * BATCH + k + 1).unwrap_or(i64::MAX))
            .collect();
        let cis: Vec<Uuid> = (0..n)
            .map(|_| g.ids[rng.gen_range(0..g.ids.len())])
            .collect();
        let statuses: Vec<&str> = (0..n)
            .map(|_| {
                if rng.gen_bool(0.8) {
                    "in_progress"
                } else {
                    "closed"
                }
            })
            .collect();
        sqlx::query(
            "INSERT INTO rm_incidents (tenant_id, id, number, number_seq, title, description, \
             status, priority, priority_rank, priority_overridden, impact, urgency, reporter_id, \
             ci_id, reopen_count, created_at, created_by, updated_at, updated_by, version) \
             SELECT $1, id, 'INC' || lpad(seq::text, 6, '0'), seq, 'CI down #' || seq, '', st, \
                    'high', 2, false, 'high', 'high', $2, ci, 0, now(), \
                    '{\"kind\":\"system\"}'::jsonb, now(), '{\"kind\":\"system\"}'::jsonb, 1 \
             FROM unnest($3::uuid[], $4::int8[], $5::uuid[], $6::text[]) AS x(id, seq, ci, st)",
        )
        .bind(tenant)
        .bind(reporter)
        .bind(&ids)
        .bind(&seqs)
        .bind(&cis)
        .bind(&statuses)
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// The write path, end to end, on a small graph of its own tenant: commands, the event log,
/// the real `CmdbProjection`, then the impact query. `a runs_on b`, `c depends_on a`,
/// `d connected_to b`: if `b` fails, `a` (1) and `c` (2) are affected.
async fn write_path_check(config: &Config, app: &PgPool) -> anyhow::Result<()> {
    let sys = system_db(config, 4).await?;
    let store = PgEventStore::new(sys.pool.clone(), Upcasters::new());
    let tenant = TenantId::new();
    let opts = Options {
        metadata: metadata(),
        ..Default::default()
    };
    let mut ids = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let id = CiId::new();
        execute_ci(
            &store,
            &SystemClock,
            tenant,
            id,
            vec![CiCommand::Create {
                id,
                ci_type: CiTypeKey::builtin(BuiltinCiType::Server),
                schema: BuiltinCiType::Server.schema(),
                name: CiName::parse(name)?,
                description: None,
                attributes: serde_json::Map::new(),
                owner_team_id: None,
                status: CiStatus::Active,
                actor: Actor::System,
            }],
            &opts,
        )
        .await
        .map_err(|e| anyhow::anyhow!("create {name}: {e}"))?;
        ids.push(id);
    }
    for (s, t, ty) in [
        (0, 1, RelationshipType::runs_on()),
        (2, 0, RelationshipType::depends_on()),
        (3, 1, RelationshipType::connected_to()),
    ] {
        let new = NewRelationship {
            id: CiRelationshipId::new(),
            source: ids[s],
            target: ids[t],
            rel_type: ty,
            actor: Actor::System,
        };
        create_relationship(&store, &SystemClock, tenant, &new, &opts)
            .await
            .map_err(|e| anyhow::anyhow!("relate: {e}"))?;
    }
    let runtime = ProjectorRuntime::new(store.clone(), vec![], RuntimeConfig::default());
    runtime
        .catch_up(&CmdbProjection as &dyn Projection)
        .await
        .map_err(anyhow::Error::msg)?;
    sys.pool.close().await;
    let mut tx = tenant_tx(app, tenant.0).await?;
    let view = impact(&mut tx, tenant, ids[1], 5, IncidentScope::All)
        .await?
        .context("the projected CI is missing")?;
    tx.commit().await?;
    let got: Vec<(String, u32)> = view
        .affected
        .iter()
        .map(|a| (a.ci.name.clone(), a.depth))
        .collect();
    anyhow::ensure!(
        got == [("a".to_owned(), 1), ("c".to_owned(), 2)],
        "write path check: unexpected impact {got:?}"
    );
    println!(
        "  write path check: 4 CIs + 3 relationships through the commands, the log and the \
         cmdb projection → impact of b = a (1), c (2): ok"
    );
    Ok(())
}

/// A read-only `REPEATABLE READ` transaction scoped to `tenant`, as `AppState::tenant_tx`.
async fn tenant_tx(
    pool: &PgPool,
    tenant: Uuid,
) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Latencies (ms) and result sizes of one measured kind.
#[derive(Default)]
struct Stats {
    ms: Vec<f64>,
    affected: Vec<usize>,
}

impl Stats {
    fn row(&mut self, label: &str, budget_ms: Option<f64>) {
        self.ms.sort_by(f64::total_cmp);
        let mean_aff = if self.affected.is_empty() {
            0.0
        } else {
            self.affected.iter().sum::<usize>() as f64 / self.affected.len() as f64
        };
        let max_aff = self.affected.iter().max().copied().unwrap_or(0);
        let p95 = percentile(&self.ms, 0.95);
        println!(
            "{} {:>9.1} {:>7} | {:>7.2} {:>7.2} {:>7.2} | {}",
            pad(label, 44),
            mean_aff,
            max_aff,
            percentile(&self.ms, 0.50),
            p95,
            percentile(&self.ms, 0.99),
            budget_ms.map_or("", |b| verdict(p95 < b)),
        );
    }
}

/// Runs the benchmark.
pub async fn bench_cmdb(pool: &PgPool, config: &Config, a: CmdbArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.cis >= 100, "--cis must be at least 100");
    let mut rng = StdRng::seed_from_u64(0x00c3_db00);
    let tenant = Uuid::now_v7();
    let t0 = Instant::now();
    let g = generate(a.cis, a.relationships, &mut rng);
    println!(
        "\nbench cmdb: {} CIs, {} relationships ({} depends_on/runs_on, {} connected_to), \
         {} incidents (80 % open); {} core network devices",
        g.ids.len(),
        g.edges.len(),
        g.dependency_edges,
        g.edges.len() - g.dependency_edges,
        a.incidents,
        g.core.len()
    );
    populate(pool, tenant, &g, a.incidents, &mut rng).await?;
    println!(
        "  populated the read model directly in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let t1 = Instant::now();
    sqlx::query("VACUUM ANALYZE rm_cis").execute(pool).await?;
    sqlx::query("VACUUM ANALYZE rm_ci_relationships")
        .execute(pool)
        .await?;
    sqlx::query("VACUUM ANALYZE rm_incidents")
        .execute(pool)
        .await?;
    println!("  VACUUM ANALYZE in {:.1} s", t1.elapsed().as_secs_f64());

    // The API's read path: the app role, RLS, one transaction per call.
    let mut app_cfg = config.db();
    app_cfg.max_connections = 2;
    let app = Db::connect(app_cfg)
        .await
        .context("connecting as the app role")?;
    write_path_check(config, &app.pool).await?;

    let t = TenantId(tenant);
    let dep_types: Vec<String> = RelationshipType::DEPENDENCY
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let kinds: [(&str, std::ops::Range<usize>); 3] = [
        ("any CI", 0..g.ids.len()),
        ("server", g.servers.clone()),
        ("core network device (hub)", g.core.clone()),
    ];
    // Warm-up: one pass over a few roots of each kind.
    for (_, range) in &kinds {
        for _ in 0..5 {
            let root = g.ids[rng.gen_range(range.clone())];
            let mut tx = tenant_tx(&app.pool, tenant).await?;
            impact(&mut tx, t, CiId(root), 5, IncidentScope::All).await?;
            tx.commit().await?;
        }
    }
    println!(
        "\n{} calls per row, app role with RLS, one REPEATABLE READ transaction each (BEGIN, \
         set_config, query(ies), COMMIT); roots drawn at random from the kind",
        a.samples
    );
    println!(
        "{:<44} {:>9} {:>7} | {:>7} {:>7} {:>7} | p95 < 50 ms",
        "query", "affected", "max", "p50 ms", "p95 ms", "p99 ms"
    );
    // Baseline: one indexed lookup of a CI's incoming dependency edges.
    let mut base = Stats::default();
    for _ in 0..a.samples {
        let root = g.ids[rng.gen_range(g.servers.clone())];
        let started = Instant::now();
        let mut tx = tenant_tx(&app.pool, tenant).await?;
        let rows: Vec<Uuid> = sqlx::query_scalar(
            "SELECT source_id FROM rm_ci_relationships WHERE tenant_id = $1 AND target_id = $2 \
             AND rel_type = ANY($3) AND deleted_at IS NULL",
        )
        .bind(tenant)
        .bind(root)
        .bind(&dep_types)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        base.ms.push(started.elapsed().as_secs_f64() * 1000.0);
        base.affected.push(rows.len());
    }
    base.row("raw: one indexed edge lookup (server)", None);
    let mut worst_p95: f64 = 0.0;
    for depth in &a.depths {
        for (label, range) in &kinds {
            let mut s = Stats::default();
            for _ in 0..a.samples {
                let root = g.ids[rng.gen_range(range.clone())];
                let started = Instant::now();
                let mut tx = tenant_tx(&app.pool, tenant).await?;
                let view = impact(&mut tx, t, CiId(root), *depth, IncidentScope::All)
                    .await?
                    .context("root CI missing")?;
                tx.commit().await?;
                s.ms.push(started.elapsed().as_secs_f64() * 1000.0);
                s.affected.push(view.affected.len());
            }
            s.row(&format!("impact depth={depth}, root: {label}"), Some(50.0));
            worst_p95 = worst_p95.max(percentile(&s.ms, 0.95));
        }
    }
    println!(
        "\nworst p95 of the impact query: {worst_p95:.2} ms (budget 50 ms: {})",
        verdict(worst_p95 < 50.0)
    );
    app.pool.close().await;
    Ok(())
}

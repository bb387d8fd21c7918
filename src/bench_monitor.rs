//! `eventdesk bench monitor`: what the performance monitor (ADR 0020) costs the API.
//!
//! The same closed-loop load — per client, three authenticated GETs (`/api/v1/incidents`,
//! `/api/v1/analytics/summary`, `/api/v1/teams`) then one `POST /api/v1/incidents`,
//! with a live API key — runs against `eventdesk serve` child processes started with
//! `EVENTDESK_MONITOR=on` and `off` alternately (ABBA order, so that the database growing
//! under the creates biases neither side) over one scratch database. A separate process per
//! phase, because the Prometheus recorder is process-wide: `off` then really has none.
//! Prints req/s, p50 and p99 of every phase and of each side, and the ratio on/off.
//!
//! `--concurrent` runs an `on` and an `off` server at the same time instead, half of the
//! clients on each, each over its own scratch database (the two swap sides every phase): other
//! load on a shared machine then disturbs both sides of a phase alike.
//!
//! The verdicts take each round's on/off difference (phases of one round ran back to back, or
//! together) and judge the mean with its 95 % interval: met only if the whole interval is below
//! 2 %, not met only if it is above, "unresolved" otherwise. Beside them, the monitor's own work
//! per request measured in this process (no network, no database: the same router structure
//! with and without the monitor's layer), against the off side's server CPU per request.

use crate::bench::{
    Sample, ServerProcess, create_api_key, create_bench_tenant, incident_body, login, pad,
    run_clients, system_db, verdict,
};
use clap::Args;
use eventdesk_api::Config;
use eventdesk_store::{PgEventStore, Upcasters};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `bench monitor`.
#[derive(Args, Debug)]
pub struct MonitorArgs {
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds of load per phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Pairs of phases (each pair is on+off; the order alternates ABBA), or with
    /// `--concurrent` phases of both at once.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Run the `on` and the `off` server at the same time, half of the clients on each, over
    /// the same window: both see the same machine (the other load on a shared box moves both
    /// sides at once instead of one phase or the other). Each server has its own scratch
    /// database (a second one is created beside the first), so that each runs its own
    /// projections exactly as in a phase of its own; the two databases swap sides every round.
    #[arg(long)]
    concurrent: bool,
    /// Count the server's instructions instead of timing it: each phase's server runs under
    /// valgrind's callgrind with its instrumentation switched on for exactly `--requests`
    /// requests (after a warm-up), so the figure is the work the server did for them, which
    /// other load on the machine does not change. Phases alternate ABBA as without it.
    #[arg(long, conflicts_with = "concurrent")]
    instructions: bool,
    /// Requests counted per `--instructions` phase (rounded down to whole cycles of the four
    /// request kinds per client).
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// More options for valgrind in `--instructions` phases (repeatable), e.g.
    /// `--callgrind-arg=--toggle-collect=PATTERN` to count only some functions.
    #[arg(long = "callgrind-arg", allow_hyphen_values = true)]
    callgrind_args: Vec<String>,
    /// Keep the scratch database.
    #[arg(long)]
    pub(crate) keep: bool,
}

/// The API-key pepper and JWT secret of every phase's server (a scratch database only).
const PEPPER: &str = "bench-monitor-pepper-0123456789abcdef0123456789abcdef";

struct Load {
    http: reqwest::Client,
    base: String,
    key: String,
    bodies: Vec<Vec<u8>>,
}

impl Load {
    async fn request(&self, i: usize) -> Result<(), String> {
        let (req, want) = match i % 4 {
            0 => (
                self.http
                    .get(format!("{}/api/v1/incidents?limit=20", self.base)),
                reqwest::StatusCode::OK,
            ),
            1 => (
                self.http
                    .get(format!("{}/api/v1/analytics/summary", self.base)),
                reqwest::StatusCode::OK,
            ),
            2 => (
                self.http.get(format!("{}/api/v1/teams", self.base)),
                reqwest::StatusCode::OK,
            ),
            _ => (
                self.http
                    .post(format!("{}/api/v1/incidents", self.base))
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(self.bodies[i / 4 % self.bodies.len()].clone()),
                reqwest::StatusCode::CREATED,
            ),
        };
        let resp = req
            .bearer_auth(&self.key)
            .send()
            .await
            .map_err(|e| format!("transport error: {e}"))?;
        let status = resp.status();
        let _ = resp.bytes().await.map_err(|e| format!("reading: {e}"))?;
        if status == want {
            Ok(())
        } else {
            Err(format!("HTTP {} (request kind {})", status.as_u16(), i % 4))
        }
    }
}

/// `clients` clients making `per_client` requests each (client `c` starts at kind `c`), all
/// together; returns the requests.
async fn run_counted(
    load: &Arc<Load>,
    clients: usize,
    per_client: usize,
) -> anyhow::Result<Sample> {
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let load = load.clone();
            tokio::spawn(async move {
                let mut s = Sample::default();
                for i in c..c + per_client {
                    let t0 = Instant::now();
                    let outcome = load.request(i).await;
                    s.record(t0.elapsed(), outcome);
                }
                s
            })
        })
        .collect();
    let mut total = Sample::default();
    for t in tasks {
        total.merge(t.await?);
    }
    Ok(total)
}

async fn client(load: Arc<Load>, c: usize, deadline: Instant) -> anyhow::Result<Sample> {
    let mut s = Sample::default();
    let mut i = c;
    while Instant::now() < deadline {
        let t0 = Instant::now();
        let outcome = load.request(i).await;
        s.record(t0.elapsed(), outcome);
        i += 1;
    }
    Ok(s)
}

/// A server for the benchmark: the monitor `on` or `off`, plus `extra` settings, started by
/// `wrapper` (see [`ServerProcess::spawn_under`]).
async fn start(
    config: &Config,
    on: bool,
    extra: &[(&str, &str)],
    wrapper: &[String],
) -> anyhow::Result<(ServerProcess, reqwest::Client)> {
    let mut env = vec![
        ("EVENTDESK_MONITOR", if on { "on" } else { "off" }),
        ("EVENTDESK_METRICS_TOKEN", "bench"),
        // The same secrets in every server: the API key created once stays valid.
        ("EVENTDESK_API_KEY_PEPPER", PEPPER),
        ("EVENTDESK_JWT_SECRET", PEPPER),
    ];
    env.extend_from_slice(extra);
    let mut server =
        ServerProcess::spawn_under(config.database_url.expose(), false, &env, wrapper)?;
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    server.wait_ready(&http).await?;
    Ok((server, http))
}

/// The load against `server` (the API key created through it the first time).
async fn load_for(
    server: &ServerProcess,
    http: reqwest::Client,
    tenant: &crate::bench::BenchTenant,
    key: &mut Option<String>,
) -> anyhow::Result<Arc<Load>> {
    let k = match key {
        Some(k) => k.clone(),
        None => {
            let token = login(&http, &server.base, tenant).await?;
            let k = create_api_key(&http, &server.base, &token).await?;
            *key = Some(k.clone());
            k
        }
    };
    Ok(Arc::new(Load {
        http,
        base: server.base.clone(),
        key: k,
        bodies: (0..64)
            .map(|i| serde_json::to_vec(&incident_body(i)))
            .collect::<Result<_, _>>()?,
    }))
}

/// One side's figures of a phase: req/s, the requests, server CPU µs per request.
type Figures = (f64, Sample, f64);

/// `clients` closed-loop clients on `load` for `secs` seconds, with the server's CPU time.
async fn measure(load: &Arc<Load>, pid: u32, clients: usize, secs: u64) -> anyhow::Result<Figures> {
    let cpu0 = cpu_seconds(pid)?;
    let (rate, s) = run_clients(clients, secs, |c, d| client(load.clone(), c, d)).await?;
    let cpu = cpu_seconds(pid)? - cpu0;
    let served = s.events + s.error_count();
    Ok((rate, s, cpu * 1e6 / served.max(1) as f64))
}

/// One phase: a fresh server with the monitor `on` or `off`, a warm-up, then the load.
async fn phase(
    config: &Config,
    a: &MonitorArgs,
    on: bool,
    tenant: &crate::bench::BenchTenant,
    key: &mut Option<String>,
) -> anyhow::Result<Figures> {
    let (mut server, http) = start(config, on, &[], &[]).await?;
    let load = load_for(&server, http, tenant, key).await?;
    let (_, warm) = run_clients(a.clients, 2, |c, d| client(load.clone(), c, d)).await?;
    if warm.error_count() > 0 {
        println!(
            "  warm-up errors ({}): {}",
            if on { "on" } else { "off" },
            warm.error_summary()
        );
    }
    let figures = measure(&load, server.pid(), a.clients, a.seconds).await?;
    server.stop()?;
    Ok(figures)
}

/// One of the two databases of `--concurrent`: its configuration, tenant and API key.
struct Database {
    config: Config,
    tenant: crate::bench::BenchTenant,
    key: Option<String>,
}

/// One concurrent phase: an `on` server over `on_db` and an `off` server over `off_db`, half
/// of the clients each, warmed up and measured together.
async fn concurrent_phase(
    a: &MonitorArgs,
    on_db: &mut Database,
    off_db: &mut Database,
) -> anyhow::Result<(Figures, Figures)> {
    let (mut on, on_http) = start(&on_db.config, true, &[], &[]).await?;
    let (mut off, off_http) = start(&off_db.config, false, &[], &[]).await?;
    let on_load = load_for(&on, on_http, &on_db.tenant, &mut on_db.key).await?;
    let off_load = load_for(&off, off_http, &off_db.tenant, &mut off_db.key).await?;
    let half = a.clients.div_ceil(2);
    let (w1, w2) = tokio::join!(
        run_clients(half, 2, |c, d| client(on_load.clone(), c, d)),
        run_clients(half, 2, |c, d| client(off_load.clone(), c, d)),
    );
    for (side, w) in [("on", w1?.1), ("off", w2?.1)] {
        if w.error_count() > 0 {
            println!("  warm-up errors ({side}): {}", w.error_summary());
        }
    }
    let (f_on, f_off) = tokio::join!(
        measure(&on_load, on.pid(), half, a.seconds),
        measure(&off_load, off.pid(), half, a.seconds),
    );
    on.stop()?;
    off.stop()?;
    Ok((f_on?, f_off?))
}

/// The second scratch database of `--concurrent` (the first one's name with `_b`), migrated.
async fn second_database(config: &Config) -> anyhow::Result<(Config, String)> {
    let url = config.database_url.expose();
    let name = url
        .rsplit('/')
        .next()
        .and_then(|n| n.split('?').next())
        .filter(|n| n.starts_with("eventdesk_bench_"))
        .ok_or_else(|| anyhow::anyhow!("not a scratch database"))?;
    let second = format!("{name}_b");
    let url = eventdesk_store::db::with_database(url, &second)
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL has no database name"))?;
    eventdesk_store::db::ensure_database(&url).await?;
    let mut c = config.clone();
    c.database_url = eventdesk_api::Secret::new(url.clone());
    let mut dbc = c.db();
    dbc.app_role = None;
    eventdesk_store::Db::migrate(&dbc).await?;
    Ok((c, url))
}

/// A bench tenant in the database of `config`.
async fn tenant_in(config: &Config) -> anyhow::Result<crate::bench::BenchTenant> {
    let sys = system_db(config, 2).await?;
    let tenant = create_bench_tenant(&PgEventStore::new(sys.pool.clone(), Upcasters::new())).await;
    sys.pool.close().await;
    tenant
}

/// The median of `v` (the mean of the middle two for an even count).
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Nanoseconds of CPU this thread has run (`/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> anyhow::Result<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    Ok(s.split_whitespace()
        .next()
        .ok_or_else(|| anyhow::anyhow!("empty schedstat"))?
        .parse()?)
}

/// The monitor's own work per request, without the network, the database or the other
/// processes' noise: the outer router of `app::router` around a routed application whose one
/// route reports what an authenticated GET reports (the route template from a `Router::layer`
/// middleware like the rate limiter's, the tenant, authentication and authorisation times, one
/// database operation) and yields 8 times as a request waiting on the database would, with the
/// monitor's layer and without, alternately in batches on one thread. Returns the CPU nanoseconds per request of each (on, off).
fn bookkeeping() -> anyhow::Result<(f64, f64)> {
    use axum::Router;
    use axum::body::Body;
    use axum::extract::{MatchedPath, Request};
    use eventdesk_api::monitor::{self, Category, Monitor, MonitorConfig};
    use tower::{Layer, ServiceExt};

    async fn handler() -> axum::http::StatusCode {
        monitor::note_tenant(eventdesk_domain::TenantId(uuid::Uuid::from_u128(
            0x0190_0000_0000_7000_8000_0000_0000_0001,
        )));
        monitor::note(Category::Auth, Duration::from_micros(250));
        monitor::note(Category::Security, Duration::from_micros(3));
        eventdesk_store::timing::record("read_tx_begin", Duration::from_micros(400));
        // A real request waits on the database a few times: each wake-up polls the request's
        // future again from the top, through the monitor's layer and its task-local scopes.
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
        axum::http::StatusCode::OK
    }
    async fn note_route(
        request: Request,
        next: axum::middleware::Next,
    ) -> axum::response::Response {
        if let Some(m) = request.extensions().get::<MatchedPath>() {
            monitor::note_route(m);
        }
        next.run(request).await
    }
    eventdesk_api::metrics::install();
    let routed = Router::new()
        .route("/api/v1/incidents", axum::routing::get(handler))
        .layer(axum::middleware::from_fn(note_route));
    let track = Monitor::new(MonitorConfig::default())
        .layer()
        .ok_or_else(|| anyhow::anyhow!("the monitor is off by default?"))?;
    let on = Router::new().fallback_service(track.layer(routed.clone()));
    let off = Router::new().fallback_service(routed);
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    // Batches long enough for the scheduler's accounting (a thread's CPU time advances at
    // ticks and switches, a few milliseconds), totals rather than per-batch figures.
    const BATCH: u32 = 20_000;
    let run = |app: &Router| -> anyhow::Result<f64> {
        let t0 = thread_cpu_ns()?;
        rt.block_on(async {
            for _ in 0..BATCH {
                let request = Request::builder()
                    .uri("/api/v1/incidents?limit=20")
                    .body(Body::empty())?;
                let response = app.clone().oneshot(request).await?;
                anyhow::ensure!(response.status().is_success(), "{}", response.status());
            }
            Ok(())
        })?;
        Ok((thread_cpu_ns()? - t0) as f64)
    };
    // Warm-up (the first request of each registers its handles), then 12 batches each,
    // alternately.
    run(&on)?;
    run(&off)?;
    let (mut on_ns, mut off_ns) = (0.0, 0.0);
    for _ in 0..12 {
        on_ns += run(&on)?;
        off_ns += run(&off)?;
    }
    let per_request = f64::from(12 * BATCH);
    Ok((on_ns / per_request, off_ns / per_request))
}

/// User + system CPU seconds of a process so far (`/proc/<pid>/stat`, clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name (in parentheses, may contain spaces).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/{pid}/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12th and 13th after the name.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(f.get(i)
            .ok_or_else(|| anyhow::anyhow!("short /proc/{pid}/stat"))?
            .parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// The sides of round `round` in ABBA order (monitor on first in even rounds), so that a
/// database growing under the creates favours neither side.
fn abba(round: usize) -> [bool; 2] {
    if round.is_multiple_of(2) {
        [true, false]
    } else {
        [false, true]
    }
}

/// Runs `program` with `args` and fails unless it succeeds.
fn run_tool(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .map_err(|e| anyhow::anyhow!("running {program}: {e} (is valgrind installed?)"))?;
    anyhow::ensure!(
        out.status.success(),
        "{program} {} failed ({}): {}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The callgrind dumps in `dir` (each holds what was counted since the one before it).
fn callgrind_dumps(dir: &std::path::Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut dumps = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("callgrind.out"))
        {
            dumps.push(path);
        }
    }
    anyhow::ensure!(
        !dumps.is_empty(),
        "callgrind wrote no dump in {}",
        dir.display()
    );
    Ok(dumps)
}

/// The instructions (`Ir`) of every callgrind dump in `dir`, summed.
fn callgrind_total(dir: &std::path::Path) -> anyhow::Result<u64> {
    let mut total = 0u64;
    for path in callgrind_dumps(dir)? {
        let text = std::fs::read_to_string(&path)?;
        let figure = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        total += figure("totals:")
            .or_else(|| figure("summary:"))
            .ok_or_else(|| anyhow::anyhow!("{}: no totals", path.display()))?;
    }
    Ok(total)
}

/// Where the performance monitor's own code is, in a callgrind function name (`file:function`,
/// code inlined from elsewhere named by its file and the function it was inlined into): the
/// monitor module, the Prometheus recorder and the `metrics` facade, the database-timing sink
/// and the security timer. Some of these run with the monitor off as well (the facade without
/// a recorder, the timing sink without a receiver); the off side's count is subtracted.
const MONITOR_CODE: &[&str] = &[
    "eventdesk_api::monitor",
    "/api/src/monitor.rs:",
    "eventdesk_api::metrics",
    "/api/src/metrics.rs:",
    "metrics_exporter_prometheus",
    "metrics-exporter-prometheus-",
    "metrics_util",
    "metrics::",
    "/metrics-0.",
    "eventdesk_store::timing",
    "/store/src/timing.rs:",
    "SecurityTimer",
];

/// The instructions of every callgrind dump in `dir` spent in [`MONITOR_CODE`] (exclusive
/// costs, as `callgrind_annotate` lists them per function).
fn callgrind_monitor_share(dir: &std::path::Path) -> anyhow::Result<u64> {
    let mut total = 0u64;
    for path in callgrind_dumps(dir)? {
        let out = std::process::Command::new("callgrind_annotate")
            .args(["--auto=no", "--threshold=100"])
            .arg(&path)
            .output()
            .map_err(|e| anyhow::anyhow!("running callgrind_annotate: {e}"))?;
        anyhow::ensure!(
            out.status.success(),
            "callgrind_annotate {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // `   63,873 ( 0.03%)  /path/file.rs:crate::function [/path/binary]`
            let mut parts = line.split_whitespace();
            let Some(Ok(ir)) = parts.next().map(|n| n.replace(',', "").parse::<u64>()) else {
                continue;
            };
            let name = line.split_once("%)").map_or("", |(_, rest)| rest.trim());
            if !name.is_empty() && MONITOR_CODE.iter().any(|m| name.contains(m)) {
                total += ir;
            }
        }
    }
    Ok(total)
}

/// One `--instructions` phase: a server with the monitor `on` or `off` under callgrind, its
/// instrumentation off while it starts and warms up, then on for exactly the counted requests,
/// then off, dumped and read. Returns (server instructions per request, of them in
/// [`MONITOR_CODE`], the requests, wall s).
async fn instructions_phase(
    config: &Config,
    a: &MonitorArgs,
    on: bool,
    tenant: &crate::bench::BenchTenant,
    key: &mut Option<String>,
) -> anyhow::Result<(f64, f64, Sample, f64)> {
    let out = std::env::temp_dir().join(format!(
        "eventdesk-callgrind-{}",
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&out)?;
    let wrapper: Vec<String> = vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        "--instr-atstart=no".into(),
        "--vgdb=yes".into(),
        format!(
            "--callgrind-out-file={}",
            out.join("callgrind.out").display()
        ),
    ];
    let wrapper = [wrapper, a.callgrind_args.clone()].concat();
    let result = async {
        let (mut server, http) = start(config, on, &[], &wrapper).await?;
        let load = load_for(&server, http, tenant, key).await?;
        let per_client = (a.requests / a.clients / 4).max(1) * 4;
        let warm = run_counted(&load, a.clients, 24).await?;
        anyhow::ensure!(
            warm.error_count() == 0,
            "warm-up errors: {}",
            warm.error_summary()
        );
        let pid = server.pid().to_string();
        run_tool("callgrind_control", &["--instr=on", &pid])?;
        let t0 = Instant::now();
        let s = run_counted(&load, a.clients, per_client).await?;
        let wall = t0.elapsed().as_secs_f64();
        run_tool("callgrind_control", &["--instr=off", &pid])?;
        run_tool("callgrind_control", &["--dump", &pid])?;
        server.stop()?;
        let total = callgrind_total(&out)?;
        let monitor = callgrind_monitor_share(&out)?;
        let served = (s.events + s.error_count()).max(1) as f64;
        Ok((total as f64 / served, monitor as f64 / served, s, wall))
    }
    .await;
    if a.keep {
        println!("      callgrind dumps kept in {}", out.display());
    } else {
        let _ = std::fs::remove_dir_all(&out);
    }
    result
}

/// `bench monitor --instructions`: the server's instructions per request with the monitor on
/// and off, ABBA, judged like the timed figures (per-round cost, 95 % interval).
async fn bench_instructions(
    config: &Config,
    a: &MonitorArgs,
    tenant: &crate::bench::BenchTenant,
) -> anyhow::Result<()> {
    let per_client = (a.requests / a.clients / 4).max(1) * 4;
    println!(
        "\nbench monitor --instructions: each phase's server under valgrind's callgrind, \
         instructions counted over exactly {} requests ({} clients × {per_client}: per client 3 \
         GETs then 1 create, API key) after a warm-up; {} pair(s) of phases (ABBA)",
        per_client * a.clients,
        a.clients,
        a.rounds
    );
    println!(
        "{} | {} | {:>16} | {:>21} | {:>8} | {:>7}",
        pad("phase", 5),
        pad("monitor", 7),
        "instructions/req",
        "of them monitor code",
        "wall s",
        "errors"
    );
    let mut key = None;
    let (mut on_ir, mut off_ir) = (Vec::new(), Vec::new());
    let (mut on_code, mut off_code) = (Vec::new(), Vec::new());
    let mut errors = 0;
    let mut n = 0;
    for round in 0..a.rounds {
        for on in abba(round) {
            n += 1;
            let (ir, code, s, wall) = instructions_phase(config, a, on, tenant, &mut key).await?;
            println!(
                "{} | {} | {:>16.0} | {:>12.0} {:>7.3} % | {:>8.1} | {:>7}",
                pad(&n.to_string(), 5),
                pad(if on { "on" } else { "off" }, 7),
                ir,
                code,
                code / ir * 100.0,
                wall,
                s.error_count()
            );
            if s.error_count() > 0 {
                println!("      errors: {}", s.error_summary());
            }
            errors += s.error_count();
            if on { &mut on_ir } else { &mut off_ir }.push(ir);
            if on { &mut on_code } else { &mut off_code }.push(code);
        }
    }
    let (on_med, off_med) = (median(&on_ir), median(&off_ir));
    println!(
        "\nmedian instructions per request: monitor on {on_med:.0}, off {off_med:.0} \
         (difference {:.0} per request)",
        on_med - off_med
    );
    let cost: Vec<f64> = on_ir
        .iter()
        .zip(&off_ir)
        .map(|(on, off)| (on / off - 1.0) * 100.0)
        .collect();
    let (mark, text) = cost_verdict(&cost);
    // The direct figure: instructions in the monitor's own code with it on, less what the same
    // code (the facade without a recorder, the timing sink) runs with it off, per round.
    let direct: Vec<f64> = on_code
        .iter()
        .zip(&off_code)
        .zip(on_ir.iter().zip(&off_ir))
        .map(|((on_c, off_c), (_, off))| (on_c - off_c) / off * 100.0)
        .collect();
    let (direct_mark, direct_text) = cost_verdict(&direct);
    println!(
        "monitor code per request: on {:.0}, off {:.0} instructions (median)",
        median(&on_code),
        median(&off_code)
    );
    println!(
        "\ntargets (cost: mean of the {} rounds' on/off differences, ± its 95 % interval; the \
         server is one of the processes a request costs CPU in, beside PostgreSQL, so on a \
         CPU-bound machine its throughput drops by at most this share):",
        a.rounds
    );
    println!(
        "  {direct_mark} the monitor's own code costs < 2 % of the server's instructions per \
         request: {direct_text}"
    );
    println!(
        "  {mark} the whole server's instructions per request differ by < 2 %: {text} \
         (includes the projections' and pollers' work, which depends on timing)"
    );
    println!("  {} no failed requests: {errors}", verdict(errors == 0));
    Ok(())
}

/// Runs the benchmark.
pub async fn bench_monitor(config: &Config, a: MonitorArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.clients > 0 && a.rounds > 0 && a.seconds > 0 && a.requests > 0,
        "nothing to run"
    );
    let tenant = tenant_in(config).await?;
    if a.instructions {
        return bench_instructions(config, &a, &tenant).await;
    }
    if a.concurrent {
        println!(
            "\nbench monitor --concurrent: {} clients, half on a server with the monitor on and \
             half on one with it off at the same time (each over its own scratch database, \
             swapped every phase), {} s per phase after a 2 s warm-up, {} phase(s); per client \
             3 GETs (incident list, analytics summary, teams) then 1 create, API key; {} CPUs \
             shared by the client, the servers and PostgreSQL",
            a.clients,
            a.seconds,
            a.rounds,
            std::thread::available_parallelism().map_or(0, usize::from)
        );
    } else {
        println!(
            "\nbench monitor: {} clients, {} s per phase after a 2 s warm-up, {} pair(s) of \
             phases (ABBA); per client 3 GETs (incident list, analytics summary, teams) then 1 \
             create, API key; {} CPUs shared by this client, the server and PostgreSQL",
            a.clients,
            a.seconds,
            a.rounds,
            std::thread::available_parallelism().map_or(0, usize::from)
        );
    }
    println!(
        "{} | {} | {:>9} {:>8} {:>8} {:>13} | {:>7}",
        pad("phase", 5),
        pad("monitor", 7),
        "req/s",
        "p50 ms",
        "p99 ms",
        "server µs/req",
        "errors"
    );
    let mut key = None;
    let mut on_all = (Vec::new(), Sample::default(), Vec::new());
    let mut off_all = (Vec::new(), Sample::default(), Vec::new());
    let mut n = 0;
    let mut record = |n: usize, on: bool, (rate, mut s, cpu_us): Figures| {
        println!(
            "{} | {} | {:>9.0} {:>8.2} {:>8.2} {:>13.0} | {:>7}",
            pad(&n.to_string(), 5),
            pad(if on { "on" } else { "off" }, 7),
            rate,
            s.pct(0.50),
            s.pct(0.99),
            cpu_us,
            s.error_count()
        );
        if s.error_count() > 0 {
            println!("      errors: {}", s.error_summary());
        }
        let side = if on { &mut on_all } else { &mut off_all };
        side.0.push(rate);
        side.1.merge(s);
        side.2.push(cpu_us);
    };
    if a.concurrent {
        let (second, second_url) = second_database(config).await?;
        let run = async {
            let mut dbs = [
                Database {
                    config: config.clone(),
                    tenant: tenant.clone(),
                    key: None,
                },
                Database {
                    tenant: tenant_in(&second).await?,
                    config: second,
                    key: None,
                },
            ];
            let mut figures = Vec::new();
            for round in 0..a.rounds {
                // The databases swap sides every round.
                let [x, y] = &mut dbs;
                let (on_db, off_db) = if round % 2 == 0 { (x, y) } else { (y, x) };
                figures.push(concurrent_phase(&a, on_db, off_db).await?);
            }
            anyhow::Ok(figures)
        }
        .await;
        if !a.keep {
            eventdesk_store::db::drop_database(&second_url).await?;
        }
        for (f_on, f_off) in run? {
            n += 1;
            record(n, true, f_on);
            record(n, false, f_off);
        }
    } else {
        for round in 0..a.rounds {
            for on in abba(round) {
                n += 1;
                let f = phase(config, &a, on, &tenant, &mut key).await?;
                record(n, on, f);
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (on_rate, off_rate) = (mean(&on_all.0), mean(&off_all.0));
    let ratio = on_rate / off_rate;
    let (on_med, off_med) = (median(&on_all.0), median(&off_all.0));
    let (on_cpu, off_cpu) = (median(&on_all.2), median(&off_all.2));
    println!(
        "\n{} | {:>10} {:>12} {:>8} {:>8} {:>14}",
        pad("side", 13),
        "mean req/s",
        "median req/s",
        "p50 ms",
        "p99 ms",
        "median µs/req"
    );
    println!(
        "{} | {:>10.0} {:>12.0} {:>8.2} {:>8.2} {:>14.0}",
        pad("monitor on", 13),
        on_rate,
        on_med,
        on_all.1.pct(0.50),
        on_all.1.pct(0.99),
        on_cpu
    );
    println!(
        "{} | {:>10.0} {:>12.0} {:>8.2} {:>8.2} {:>14.0}",
        pad("monitor off", 13),
        off_rate,
        off_med,
        off_all.1.pct(0.50),
        off_all.1.pct(0.99),
        off_cpu
    );
    println!(
        "ratio on/off: throughput {ratio:.4} ({:+.2} %; medians {:.4}), p50 {:.3}, p99 {:.3}, \
         server CPU per request {:.4}",
        (ratio - 1.0) * 100.0,
        on_med / off_med,
        on_all.1.pct(0.50) / off_all.1.pct(0.50),
        on_all.1.pct(0.99) / off_all.1.pct(0.99),
        on_cpu / off_cpu
    );
    // The verdicts: each round's two phases ran back to back, so the per-round differences
    // estimate the monitor's cost and their spread the machine's noise. A target is met only
    // if the whole 95 % interval of the mean cost is below 2 %, missed only if it is above.
    let throughput_cost: Vec<f64> = on_all
        .0
        .iter()
        .zip(&off_all.0)
        .map(|(on, off)| (1.0 - on / off) * 100.0)
        .collect();
    let cpu_cost: Vec<f64> = on_all
        .2
        .iter()
        .zip(&off_all.2)
        .map(|(on, off)| (on / off - 1.0) * 100.0)
        .collect();
    let spread = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (hi - lo) / mean(v) * 100.0
    };
    println!(
        "noise: phases of the same side differ by up to {:.1} % (on) and {:.1} % (off) in \
         req/s, {:.1} % and {:.1} % in server µs/req",
        spread(&on_all.0),
        spread(&off_all.0),
        spread(&on_all.2),
        spread(&off_all.2)
    );
    let (book_on, book_off) = tokio::task::spawn_blocking(bookkeeping).await??;
    println!(
        "in-process, without network or database (the monitor's own work on the same router \
         structure, CPU time of one thread): {:.2} µs per request on, {:.2} µs off: the \
         monitor's bookkeeping is {:.2} µs, {:.2} % of the off side's server CPU per request",
        book_on / 1000.0,
        book_off / 1000.0,
        (book_on - book_off) / 1000.0,
        (book_on - book_off) / 1000.0 / off_cpu * 100.0
    );
    let errors = on_all.1.error_count() + off_all.1.error_count();
    println!(
        "\ntargets (cost: mean of the {} rounds' on/off differences, ± its 95 % interval):",
        a.rounds
    );
    let (mark, text) = cost_verdict(&throughput_cost);
    println!("  {mark} the monitor costs < 2 % of the throughput: {text}");
    let (mark, text) = cost_verdict(&cpu_cost);
    println!(
        "  {mark} the monitor costs < 2 % of the server's CPU per request: {text} (the figure \
         other load on the machine disturbs least)"
    );
    println!("  {} no failed requests: {errors}", verdict(errors == 0));
    Ok(())
}

/// A cost target of 2 % judged from per-round costs (percent): met if the 95 % interval of
/// their mean is entirely below 2 %, not met if entirely above, unresolved otherwise (the noise
/// is larger than what separates the cost from the target; more or longer rounds, or a quieter
/// machine, would tell).
fn cost_verdict(costs: &[f64]) -> (&'static str, String) {
    let n = costs.len();
    let m = costs.iter().sum::<f64>() / n.max(1) as f64;
    if n < 2 {
        return (
            "[unresolved]",
            format!("{m:.2} % from one round (no estimate of the noise: use --rounds 2 or more)"),
        );
    }
    let var = costs.iter().map(|c| (c - m).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = student_t95(n - 1) * (var / n as f64).sqrt();
    let text = format!(
        "{m:.2} % ± {half:.2} (95 % interval {:.2} … {:.2} %; rounds: {})",
        m - half,
        m + half,
        costs
            .iter()
            .map(|c| format!("{c:+.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mark = if m + half < 2.0 {
        verdict(true)
    } else if m - half > 2.0 {
        verdict(false)
    } else {
        "[unresolved]"
    };
    (mark, text)
}

/// The two-sided 95 % quantile of Student's t with `df` degrees of freedom.
fn student_t95(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        d if d <= T.len() => T[d - 1],
        _ => 1.96,
    }
}

//! `eventdesk bench monitor`: what the performance monitor (ADR 0020) costs the API.
//!
//! The same closed-loop load — per client, three authenticated GETs (`/api/v1/incidents`,
//! `/api/v1/analytics/summary`, `/api/v1/auth/profile`) then one `POST /api/v1/incidents`,
//! with a live API key — runs against `eventdesk serve` child processes started with
//! `EVENTDESK_MONITOR=on` and `off` alternately (ABBA order, so that the database growing
//! under the creates biases neither side) over one scratch database. A separate process per
//! phase, because the Prometheus recorder is process-wide: `off` then really has none.
//! Prints req/s, p50 and p99 of every phase and of each side, and the ratio on/off.

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
    /// Pairs of phases (each pair is on+off; the order alternates ABBA).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Keep the scratch database.
    #[arg(long)]
    pub(crate) keep: bool,
}

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
                self.http.get(format!("{}/api/v1/auth/profile", self.base)),
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

/// One phase: a fresh server with the monitor `on` or `off`, a warm-up, then the load.
async fn phase(
    config: &Config,
    a: &MonitorArgs,
    on: bool,
    tenant: &crate::bench::BenchTenant,
    key: &mut Option<String>,
) -> anyhow::Result<(f64, Sample)> {
    let mode = if on { "on" } else { "off" };
    let mut server = ServerProcess::spawn_with(
        config.database_url.expose(),
        false,
        &[
            ("EVENTDESK_MONITOR", mode),
            ("EVENTDESK_METRICS_TOKEN", "bench"),
        ],
    )?;
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    server.wait_ready(&http).await?;
    let k = match key {
        Some(k) => k.clone(),
        None => {
            let token = login(&http, &server.base, tenant).await?;
            let k = create_api_key(&http, &server.base, &token).await?;
            *key = Some(k.clone());
            k
        }
    };
    let load = Arc::new(Load {
        http,
        base: server.base.clone(),
        key: k,
        bodies: (0..64)
            .map(|i| serde_json::to_vec(&incident_body(i)))
            .collect::<Result<_, _>>()?,
    });
    let (_, warm) = run_clients(a.clients, 2, |c, d| client(load.clone(), c, d)).await?;
    if warm.error_count() > 0 {
        println!("  warm-up errors ({mode}): {}", warm.error_summary());
    }
    let r = run_clients(a.clients, a.seconds, |c, d| client(load.clone(), c, d)).await?;
    server.stop()?;
    Ok(r)
}

/// Runs the benchmark.
pub async fn bench_monitor(config: &Config, a: MonitorArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.clients > 0 && a.rounds > 0 && a.seconds > 0,
        "nothing to run"
    );
    let sys = system_db(config, 2).await?;
    let tenant = create_bench_tenant(&PgEventStore::new(sys.pool.clone(), Upcasters::new())).await;
    sys.pool.close().await;
    let tenant = tenant?;
    println!(
        "\nbench monitor: {} clients, {} s per phase after a 2 s warm-up, {} pair(s) of phases \
         (ABBA); per client 3 GETs (incident list, analytics summary, profile) then 1 create, \
         API key; {} CPUs shared by this client, the server and PostgreSQL",
        a.clients,
        a.seconds,
        a.rounds,
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!(
        "{} | {} | {:>9} {:>8} {:>8} | {:>7}",
        pad("phase", 5),
        pad("monitor", 7),
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors"
    );
    let mut key = None;
    let mut on_all = (Vec::new(), Sample::default());
    let mut off_all = (Vec::new(), Sample::default());
    let mut n = 0;
    for round in 0..a.rounds {
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for on in order {
            n += 1;
            let (rate, mut s) = phase(config, &a, on, &tenant, &mut key).await?;
            println!(
                "{} | {} | {:>9.0} {:>8.2} {:>8.2} | {:>7}",
                pad(&n.to_string(), 5),
                pad(if on { "on" } else { "off" }, 7),
                rate,
                s.pct(0.50),
                s.pct(0.99),
                s.error_count()
            );
            if s.error_count() > 0 {
                println!("      errors: {}", s.error_summary());
            }
            let side = if on { &mut on_all } else { &mut off_all };
            side.0.push(rate);
            side.1.merge(s);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (on_rate, off_rate) = (mean(&on_all.0), mean(&off_all.0));
    let ratio = on_rate / off_rate;
    println!(
        "\n{} | {:>9} {:>8} {:>8}",
        pad("side", 13),
        "req/s",
        "p50 ms",
        "p99 ms"
    );
    println!(
        "{} | {:>9.0} {:>8.2} {:>8.2}",
        pad("monitor on", 13),
        on_rate,
        on_all.1.pct(0.50),
        on_all.1.pct(0.99)
    );
    println!(
        "{} | {:>9.0} {:>8.2} {:>8.2}",
        pad("monitor off", 13),
        off_rate,
        off_all.1.pct(0.50),
        off_all.1.pct(0.99)
    );
    println!(
        "ratio on/off: throughput {ratio:.4} ({:+.2} %), p50 {:.3}, p99 {:.3}",
        (ratio - 1.0) * 100.0,
        on_all.1.pct(0.50) / off_all.1.pct(0.50),
        on_all.1.pct(0.99) / off_all.1.pct(0.99)
    );
    let errors = on_all.1.error_count() + off_all.1.error_count();
    println!("\ntargets:");
    println!(
        "  {} the monitor costs < 2 % of the throughput: {:.2} %",
        verdict(ratio > 0.98),
        (1.0 - ratio) * 100.0
    );
    println!("  {} no failed requests: {errors}", verdict(errors == 0));
    Ok(())
}

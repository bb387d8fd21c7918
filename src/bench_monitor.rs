//! `eventdesk bench monitor`: what the performance monitor (ADR 0020) costs the API.
//!
//! The same closed-loop load — per client, three authenticated GETs (`/api/v1/incidents`,
//! `/api/v1/analytics/summary`, `/api/v1/teams`) then one `POST /api/v1/incidents`,
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
) -> anyhow::Result<(f64, Sample, f64)> {
    let mode = if on { "on" } else { "off" };
    let mut server = ServerProcess::spawn_with(
        config.database_url.expose(),
        false,
        &[
            ("EVENTDESK_MONITOR", mode),
            ("EVENTDESK_METRICS_TOKEN", "bench"),
            // The same secrets in every phase: the API key created in the first stays valid.
            ("EVENTDESK_API_KEY_PEPPER", PEPPER),
            ("EVENTDESK_JWT_SECRET", PEPPER),
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
    let cpu0 = cpu_seconds(server.pid())?;
    let (rate, s) = run_clients(a.clients, a.seconds, |c, d| client(load.clone(), c, d)).await?;
    let cpu = cpu_seconds(server.pid())? - cpu0;
    server.stop()?;
    let served = s.events + s.error_count();
    Ok((rate, s, cpu * 1e6 / served.max(1) as f64))
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
         (ABBA); per client 3 GETs (incident list, analytics summary, teams) then 1 create, \
         API key; {} CPUs shared by this client, the server and PostgreSQL",
        a.clients,
        a.seconds,
        a.rounds,
        std::thread::available_parallelism().map_or(0, usize::from)
    );
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
    for round in 0..a.rounds {
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for on in order {
            n += 1;
            let (rate, mut s, cpu_us) = phase(config, &a, on, &tenant, &mut key).await?;
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
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
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
    let errors = on_all.1.error_count() + off_all.1.error_count();
    println!("\ntargets:");
    println!(
        "  {} the monitor costs < 2 % of the throughput: {:.2} %",
        verdict(off_rate > 0.0 && ratio > 0.98),
        (1.0 - ratio) * 100.0
    );
    println!(
        "  {} the monitor costs < 2 % of the server's CPU per request: {:.2} % (the figure \
         other load on the machine disturbs least)",
        verdict(off_cpu > 0.0 && on_cpu / off_cpu < 1.02),
        (on_cpu / off_cpu - 1.0) * 100.0
    );
    println!("  {} no failed requests: {errors}", verdict(errors == 0));
    Ok(())
}

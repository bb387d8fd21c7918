//! `bench ratelimit`: what the rate limiter costs (ADR 0019). Three servers in this process on
//! the scratch database — limiter off, in memory, through Redis — answer the same cheap
//! authenticated GET (`/api/v1/auth/profile`: one JWT check and one indexed read) to the same
//! closed-loop clients, in alternating rounds; then the limiter's check alone, without HTTP.
//! Quotas are set so high that nothing is refused: this measures the cost of counting.

use crate::bench::{
    BenchTenant, Sample, create_bench_tenant, login, median, run_clients, system_db,
};
use anyhow::Context;
use clap::Args;
use eventdesk_api::rate_limit::{Quota, RateLimiter};
use eventdesk_api::{Application, Config};
use eventdesk_store::{PgEventStore, Upcasters};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `bench ratelimit`.
#[derive(Args, Debug)]
pub struct RateLimitArgs {
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds per round and variant.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Alternating rounds; the median of each variant is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Sequential limiter checks per backend in the direct measurement.
    #[arg(long, default_value_t = 100_000)]
    checks: usize,
    /// Keep the scratch database.
    #[arg(long)]
    pub keep: bool,
}

/// One running server variant.
struct Variant {
    name: &'static str,
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(name: &'static str, mut config: Config) -> anyhow::Result<Variant> {
    config.bind = ([127, 0, 0, 1], 0).into();
    config.run_bus = false;
    config.run_sla_scheduler = false;
    config.checkpoint_interval = Duration::ZERO;
    let app = Application::build(config)
        .await
        .with_context(|| format!("starting the {name} server"))?;
    let base = format!("http://{}", app.local_addr()?);
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = app
            .run_until(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(Variant {
        name,
        base,
        stop,
        task,
    })
}

async fn profile_client(
    http: reqwest::Client,
    url: Arc<String>,
    token: Arc<String>,
    deadline: Instant,
) -> anyhow::Result<Sample> {
    let mut s = Sample::default();
    while Instant::now() < deadline {
        let t0 = Instant::now();
        let outcome = match http
            .get(url.as_str())
            .bearer_auth(token.as_str())
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                let _ = r.bytes().await;
                Ok(())
            }
            Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Err(format!("transport: {e}")),
        };
        s.record(t0.elapsed(), outcome);
    }
    Ok(s)
}

/// Runs the benchmark.
pub async fn bench_ratelimit(
    _pool: &PgPool,
    config: &Config,
    a: RateLimitArgs,
) -> anyhow::Result<()> {
    let sys = system_db(config, 4).await?;
    let tenant: BenchTenant =
        create_bench_tenant(&PgEventStore::new(sys.pool.clone(), Upcasters::new())).await?;
    sys.pool.close().await;
    let redis_url = config
        .redis_url
        .as_ref()
        .map(|s| s.expose().to_owned())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("eventdesk:bench:{}", uuid::Uuid::now_v7().simple());
    let huge = Quota::new(1_000_000_000, 1);
    let mut base = config.clone();
    base.rate_limits.jwt = huge;
    base.rate_limits.ip = huge;
    base.rate_limits.redis_prefix = prefix.clone();
    base.rate_limits.redis_timeout = Duration::from_millis(50);

    let mut off = base.clone();
    off.rate_limits.enabled = false;
    off.redis_url = None;
    let mut memory = base.clone();
    memory.rate_limits.enabled = true;
    memory.redis_url = None;
    let mut redis = base.clone();
    redis.rate_limits.enabled = true;
    redis.redis_url = Some(eventdesk_api::Secret::new(redis_url.clone()));

    let variants = vec![
        start("off", off).await?,
        start("memory", memory).await?,
        start("redis", redis).await?,
    ];
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(a.clients)
        .build()?;
    let token = Arc::new(login(&http, &variants[0].base, &tenant).await?);

    println!(
        "\nbench ratelimit: GET /api/v1/auth/profile, {} clients, {} rounds × {} s per variant \
         (Redis at {})",
        a.clients,
        a.rounds,
        a.seconds,
        eventdesk_store::db::redact_url(&redis_url)
    );
    let mut results: Vec<Vec<(f64, Sample)>> = variants.iter().map(|_| Vec::new()).collect();
    for _ in 0..a.rounds.max(1) {
        for (i, v) in variants.iter().enumerate() {
            let url = Arc::new(format!("{}/api/v1/auth/profile", v.base));
            let (http, token) = (http.clone(), token.clone());
            let r = run_clients(a.clients, a.seconds, move |_, deadline| {
                profile_client(http.clone(), url.clone(), token.clone(), deadline)
            })
            .await?;
            results[i].push(r);
        }
    }
    println!(
        "{:>8} | {:>10} {:>8} {:>8} | {:>8} | errors",
        "limiter", "req/s", "p50 ms", "p99 ms", "vs off"
    );
    let mut off_rate = None;
    for (v, rounds) in variants.iter().zip(results) {
        let (rate, mut s) = median(rounds);
        let off = *off_rate.get_or_insert(rate);
        println!(
            "{:>8} | {:>10.0} {:>8.2} {:>8.2} | {:>7.1}% | {}",
            v.name,
            rate,
            s.pct(0.5),
            s.pct(0.99),
            (rate / off - 1.0) * 100.0,
            s.error_summary()
        );
    }
    for v in variants {
        let _ = v.stop.send(());
        let _ = v.task.await;
    }

    // The check alone.
    println!(
        "\nlimiter check alone ({} sequential checks of one key):",
        a.checks
    );
    let mem = RateLimiter::new(base.rate_limits.clone(), None)?;
    let red = RateLimiter::new(base.rate_limits.clone(), Some(&redis_url))?;
    for (name, l) in [("memory", mem), ("redis", red)] {
        let key = format!("bench:{name}");
        l.check(&key, huge).await;
        let t0 = Instant::now();
        for _ in 0..a.checks {
            l.check(&key, huge).await;
        }
        let per = t0.elapsed().as_secs_f64() / a.checks.max(1) as f64;
        println!(
            "{name:>8}: {:>8.2} µs/check, {:>10.0} checks/s{}",
            per * 1e6,
            1.0 / per,
            if l.redis_degraded() {
                " (Redis unavailable: fell back to memory)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

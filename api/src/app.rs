//! Building and running the application: state, router, projector runtime, graceful shutdown.

use crate::config::{Config, Secret};
use crate::routes;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use eventdesk_commands::{Clock, SystemClock};
use eventdesk_projections::runtime::Progress;
use eventdesk_projections::{Projection, ProjectorRuntime, RuntimeConfig, RuntimeHandle};
use eventdesk_store::subscription::StopToken;
use eventdesk_store::{Checkpoint, Db, PgEventStore, Upcasters};
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Shared state of every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The application pool (role `eventdesk_app`, row-level security applies).
    pub db: Db,
    /// The system pool (role `eventdesk_system`, BYPASSRLS): lookups before the tenant is
    /// known (login, API keys) and the projector. Every use is cross-tenant by design.
    pub system: PgPool,
    /// A second system pool for the background work (projector runtime, SLA scheduler,
    /// reactors, checkpointer, integration bus, monitor flusher, live tailer), so that their
    /// batches never take the connections the request path's lookups need (API keys, login).
    pub background: PgPool,
    /// The event store (appends through the application pool).
    pub store: PgEventStore,
    /// Configuration.
    pub config: Arc<Config>,
    /// JWT signing and verification.
    pub jwt: Arc<eventdesk_auth::JwtConfig>,
    /// HMAC key of API-key hashes.
    pub pepper: Secret,
    /// The clock (the system clock in production).
    pub clock: Arc<dyn Clock>,
    /// Projection progress, for read-your-writes.
    pub progress: Progress,
    /// Group commit of incident creation (gap-free numbers without one fsync per create).
    pub creates: eventdesk_commands::incident::CreateBatcher,
    /// The tenants' SLA rules (precomputed calendars cached by id and version).
    pub sla_rules: eventdesk_workers::SlaRulesCache,
    /// The permission sets of custom roles, briefly cached (ADR 0011).
    pub roles: crate::auth::RoleCache,
    /// Verified API keys, briefly cached (ADR 0024).
    pub api_keys: crate::auth::ApiKeyCache,
    /// The tenants' priority matrices and SLA rules, briefly cached (ADR 0023).
    pub tenant_rules: crate::tenant_rules::TenantRulesCache,
    /// The integration bus (ADR 0016): its SSRF guard and credential box serve the webhook and
    /// integration routes; it runs beside the server when `EVENTDESK_INTEGRATION_BUS` is on.
    pub bus: eventdesk_bus::Bus,
    /// The performance monitor (ADR 0020; inert when `EVENTDESK_MONITOR=off`).
    pub monitor: crate::monitor::Monitor,
    /// Live events (ADR 0019): the per-process tailer's fan-out to WebSocket clients.
    pub live: crate::ws::LiveHub,
    /// Per-tenant rate limits (ADR 0019), in memory or shared through Redis.
    pub limiter: crate::rate_limit::RateLimiter,
    /// Read-your-writes floors of writes that answered before their read models (ADR 0024).
    pub sessions: Arc<crate::consistency::Sessions>,
}

impl AppState {
    /// A read-only transaction on the application pool scoped to `tenant` by `SET LOCAL
    /// app.tenant_id` (the row-level-security policies read it). It is `REPEATABLE READ`: every
    /// statement of one answer sees the same snapshot, so a page and its total (two statements)
    /// agree even while projections commit.
    pub async fn tenant_tx(
        &self,
        tenant: eventdesk_domain::TenantId,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        let started = std::time::Instant::now();
        // One round trip: both statements go in one simple-protocol query. The tenant id is
        // a UUID's canonical text (hex digits and dashes), so inlining it cannot inject.
        let tx = self
            .db
            .pool
            .begin_with(format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                 SELECT set_config('app.tenant_id', '{}', true)",
                tenant.0.hyphenated()
            ))
            .await?;
        // The pool's wait and the round trip: the performance monitor's `db` category.
        eventdesk_store::timing::record("read_tx_begin", started.elapsed());
        Ok(tx)
    }

    /// Waits (bounded by `EVENTDESK_CONSISTENCY_WAIT_MS`) until `projection` has applied the
    /// write at `cp`, so the client that gets our 2xx can read its write at once.
    pub async fn wait_visible(&self, projection: &str, cp: Option<Checkpoint>) {
        if let Some(cp) = cp {
            let seen = self
                .progress
                .wait_for(&self.system, projection, cp, self.config.consistency_wait)
                .await;
            if !seen {
                tracing::warn!(
                    projection,
                    ?cp,
                    "read model lagging past the consistency wait"
                );
            }
        }
    }
}

/// The HTTP router with every layer.
pub fn router(state: AppState) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    // The rate limiter inside the monitor, so that its authentication and its 429s are
    // measured too.
    let routed = routes::router(state.clone()).layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::rate_limit::limit,
    ));
    // The routed application is one service in an outer router, with the monitor (when on)
    // around it, inside the header, trace and timeout layers. `Router::layer` would wrap every
    // route instead, and each request would clone the stack of layers below (ADR 0020,
    // addendum of session 5); the outer router is there in both modes, so that `off` differs
    // only by the monitor.
    let app = match state.monitor.layer() {
        Some(track) => Router::new().fallback_service(tower::Layer::layer(&track, routed)),
        None => Router::new().fallback_service(routed),
    };
    app.layer(DefaultBodyLimit::max(routes::JSON_BODY_LIMIT))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(TraceLayer::new_for_http())
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            state.config.request_timeout,
        ))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
}

/// The projections this build runs.
pub fn projections() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(eventdesk_projections::event_counts::EventCounts),
        Arc::new(eventdesk_projections::DirectoryProjection),
        Arc::new(eventdesk_projections::IncidentProjection),
        Arc::new(eventdesk_projections::SlaConfigProjection),
        Arc::new(eventdesk_projections::SlaTimerProjection),
        Arc::new(eventdesk_projections::CmdbProjection),
        Arc::new(eventdesk_projections::ProblemProjection),
        Arc::new(eventdesk_projections::ChangeProjection),
        Arc::new(eventdesk_projections::AnalyticsProjection),
    ]
}

/// A built, bound application, ready to run.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    runtime: Option<ProjectorRuntime>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.listener.local_addr().ok())
            .finish()
    }
}

impl Application {
    /// Migrates, connects and binds (port 0 picks a free port).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], with an injected clock (tests).
    pub async fn build_with_clock(
        mut config: Config,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        for name in config.ensure_secrets()? {
            tracing::warn!(
                variable = name,
                dir = %config.data_dir.display(),
                "generated a development secret in the data directory; set it in production"
            );
        }
        let jwt = config.jwt()?;
        Db::migrate(&config.db()).await?;
        let db = Db::connect(config.db()).await?;
        let system = Db::connect(config.system_db()).await?;
        let background = Db::connect(config.system_db()).await?;
        let store = PgEventStore::new(db.pool.clone(), Upcasters::new());
        let system_store = store.with_pool(background.pool.clone());
        let runtime = config.run_projections.then(|| {
            ProjectorRuntime::new(
                system_store.clone(),
                projections(),
                RuntimeConfig::default(),
            )
        });
        let progress = runtime.as_ref().map(|r| r.progress()).unwrap_or_default();
        eventdesk_auth::password::warm_up();
        let listener = TcpListener::bind(config.bind).await?;
        let pepper = config.api_key_pepper.clone();
        let creates =
            eventdesk_commands::incident::CreateBatcher::new(store.clone(), clock.clone(), 128);
        let monitor = crate::monitor::Monitor::new(config.monitor.clone());
        if monitor.enabled() {
            crate::metrics::install();
        }
        let mut bus_config = config.bus();
        bus_config.observer = monitor.delivery_observer();
        let bus = eventdesk_bus::Bus::new(
            background.pool.clone(),
            system_store.clone(),
            config.secret_box()?,
            eventdesk_bus::ssrf::Guard::new(config.allow_private_targets, config.bus_timeout),
            bus_config,
        );
        let live =
            crate::ws::LiveHub::new(config.live.clone(), system_store.head_checkpoint().await?);
        let limiter = crate::rate_limit::RateLimiter::new(
            config.rate_limits.clone(),
            config.redis_url.as_ref().map(|u| u.expose()),
        )?;
        if config.allow_private_targets {
            tracing::warn!(
                "EVENTDESK_ALLOW_PRIVATE_TARGETS is on: webhooks, Slack and Jira may reach \
                 private addresses over http (development only)"
            );
        }
        Ok(Self {
            listener,
            state: AppState {
                db,
                system: system.pool,
                background: background.pool,
                store,
                config: Arc::new(config),
                jwt: Arc::new(jwt),
                pepper,
                clock,
                progress,
                creates,
                sla_rules: eventdesk_workers::SlaRulesCache::default(),
                roles: crate::auth::RoleCache::default(),
                api_keys: crate::auth::ApiKeyCache::default(),
                tenant_rules: crate::tenant_rules::TenantRulesCache::default(),
                bus,
                monitor,
                live,
                limiter,
                sessions: Default::default(),
            },
            runtime,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The state (for tests).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then drains requests and stops the projectors.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = StopToken::new();
        // One wake-up signal serves both stores (they share it): LISTEN for other nodes'
        // appends, and the coalesced NOTIFY of ours.
        let waker_task = self
            .state
            .store
            .waker()
            .spawn_background(self.state.db.pool.clone(), stop.clone());
        let handle: Option<RuntimeHandle> = self.runtime.as_ref().map(|r| r.spawn());
        // The SLA scheduler; several nodes may run it, they share its rows.
        let scheduler = self.state.config.run_sla_scheduler.then(|| {
            let s = eventdesk_workers::SlaScheduler::new(
                self.state.background.clone(),
                self.state.store.with_pool(self.state.background.clone()),
                self.state.clock.clone(),
                self.state.sla_rules.clone(),
                eventdesk_workers::SchedulerConfig::default(),
            );
            tokio::spawn(s.run(stop.clone()))
        });
        // The problem reactor (ADR 0021); several nodes may run it, they share its rows.
        let reactor = self.state.config.run_reactors.then(|| {
            let r = eventdesk_workers::ProblemReactor::new(
                self.state.background.clone(),
                self.state.store.with_pool(self.state.background.clone()),
                self.state.clock.clone(),
                eventdesk_workers::ReactorConfig::default(),
            );
            tokio::spawn(r.run(stop.clone()))
        });
        // The audit trail's periodic tenant checkpoints (ADR 0010).
        let interval = self.state.config.checkpoint_interval;
        let checkpointer = (!interval.is_zero()).then(|| {
            let c = eventdesk_workers::Checkpointer::new(self.state.background.clone(), interval);
            tokio::spawn(c.run(stop.clone()))
        });
        // The integration bus (ADR 0016); several nodes may run it, they share its rows.
        let bus = self
            .state
            .config
            .run_bus
            .then(|| tokio::spawn(self.state.bus.clone().run(stop.clone())));
        // The performance monitor's alert flusher (ADR 0020).
        let monitor = tokio::spawn(
            self.state
                .monitor
                .clone()
                .run(self.state.background.clone(), stop.clone()),
        );
        // Live events: one tailer for every WebSocket client of this process (ADR 0019).
        let live = tokio::spawn(self.state.live.clone().run(
            self.state.store.with_pool(self.state.background.clone()),
            stop.clone(),
        ));
        let app = router(self.state.clone());
        tracing::info!(addr = ?self.listener.local_addr().ok(), "eventdesk serving");
        // WebSocket sessions are told to close as soon as shutdown starts (they would hold the
        // graceful drain open otherwise).
        let hub = self.state.live.clone();
        let shutdown = async move {
            shutdown.await;
            hub.shutdown();
        };
        axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await?;
        tracing::info!("http drained; stopping projectors");
        if let Some(h) = handle {
            h.shutdown().await;
        }
        stop.cancel();
        if let Some(s) = scheduler {
            let _ = s.await;
        }
        if let Some(r) = reactor {
            let _ = r.await;
        }
        if let Some(c) = checkpointer {
            let _ = c.await;
        }
        if let Some(b) = bus {
            let _ = b.await;
        }
        let _ = monitor.await;
        let _ = live.await;
        let _ = waker_task.await;
        self.state.db.pool.close().await;
        self.state.system.close().await;
        self.state.background.close().await;
        Ok(())
    }
}

//! Building and running the application: router, state, projector runtime, graceful shutdown.

use crate::config::Config;
use crate::health;
use axum::Router;
use axum::routing::get;
use eventdesk_projections::{Projection, ProjectorRuntime, RuntimeConfig, RuntimeHandle};
use eventdesk_store::subscription::StopToken;
use eventdesk_store::{Db, PgEventStore, Upcasters};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Shared state of every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Database pools.
    pub db: Db,
    /// The event store.
    pub store: PgEventStore,
    /// Configuration.
    pub config: Arc<Config>,
}

/// The HTTP router.
pub fn router(state: AppState) -> Router {
    let x_request_id = axum::http::HeaderName::from_static("x-request-id");
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(state.clone())
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
    vec![Arc::new(eventdesk_projections::event_counts::EventCounts)]
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
        Db::migrate(&config.db()).await?;
        let db = Db::connect(config.db()).await?;
        let store = PgEventStore::new(db.pool.clone(), Upcasters::new());
        let runtime = config
            .run_projections
            .then(|| ProjectorRuntime::new(store.clone(), projections(), RuntimeConfig::default()));
        let listener = TcpListener::bind(config.bind).await?;
        Ok(Self {
            listener,
            state: AppState {
                db,
                store,
                config: Arc::new(config),
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
        let waker_task = self
            .state
            .store
            .waker()
            .spawn_background(self.state.db.pool.clone(), stop.clone());
        let handle: Option<RuntimeHandle> = self.runtime.as_ref().map(|r| r.spawn());
        let app = router(self.state.clone());
        tracing::info!(addr = ?self.listener.local_addr().ok(), "eventdesk serving");
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await?;
        tracing::info!("http drained; stopping projectors");
        if let Some(h) = handle {
            h.shutdown().await;
        }
        stop.cancel();
        let _ = waker_task.await;
        self.state.db.pool.close().await;
        Ok(())
    }
}

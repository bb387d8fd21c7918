//! `GET /metrics`: Prometheus text exposition (issue #5, ADR 0020).
//!
//! **Owns:** the process's one `metrics` recorder ([`install`], idempotent: several servers in
//! one process — the tests — share it), the names of the HTTP metrics, and the scrape handler,
//! which renders the recorder and appends figures read from this server's database at scrape
//! time (projection lag per projection, dead letters, SLA timers breached now).
//!
//! **Must not:** label anything with tenant names or ids (the scrape is not per tenant; per
//! tenant figures are in `GET /api/v1/analytics/performance`), or answer without the bearer
//! token of `EVENTDESK_METRICS_TOKEN` (unset: the route is a plain 404).

use crate::app::AppState;
use crate::error::ApiError;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::fmt::Write as _;
use std::sync::OnceLock;
use subtle::ConstantTimeEq;

/// Requests served (counter; `method`, `route` template, `status`).
pub const HTTP_REQUESTS: &str = "eventdesk_http_requests_total";
/// Request latency (histogram, seconds; `method`, `route`, `status`).
pub const HTTP_SECONDS: &str = "eventdesk_http_request_duration_seconds";
/// Budget violations (counter; `category`).
pub const BUDGET_VIOLATIONS: &str = "eventdesk_budget_violations_total";
/// Repeated-violation alerts raised (counter; `category`).
pub const MONITOR_ALERTS: &str = "eventdesk_monitor_alerts_total";
/// Timed database operations (histogram, seconds; `op`).
pub const DB_SECONDS: &str = "eventdesk_db_operation_duration_seconds";

/// Latency buckets (seconds) of every histogram: 1 ms … 10 s around the budgets.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its handle (`None` if another
/// recorder was installed first, e.g. by an embedding program).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .and_then(|b| b.install_recorder());
            match built {
                Ok(h) => {
                    describe();
                    // The exporter keeps histogram samples until upkeep folds them into the
                    // buckets: without scrapes, memory would grow with every request. One
                    // process-wide thread, like the recorder (test runtimes come and go).
                    let upkeep = h.clone();
                    let spawned = std::thread::Builder::new()
                        .name("metrics-upkeep".into())
                        .spawn(move || {
                            loop {
                                std::thread::sleep(UPKEEP_EVERY);
                                upkeep.run_upkeep();
                            }
                        });
                    if let Err(e) = spawned {
                        tracing::warn!(error = %e, "could not start the metrics upkeep thread");
                    }
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not install the Prometheus recorder");
                    None
                }
            }
        })
        .clone()
}

/// The recorder's handle, if [`install`] succeeded.
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE.get().cloned().flatten()
}

fn describe() {
    use eventdesk_store::timing as t;
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests served, by route template");
    metrics::describe_histogram!(
        HTTP_SECONDS,
        metrics::Unit::Seconds,
        "HTTP request latency, by route template"
    );
    metrics::describe_counter!(
        BUDGET_VIOLATIONS,
        "Latency budget violations (api 100 ms, auth 50 ms, db 30 ms, security 10 ms, \
         integration 5 s by default)"
    );
    metrics::describe_counter!(MONITOR_ALERTS, "Repeated-violation alerts raised");
    metrics::describe_histogram!(
        DB_SECONDS,
        metrics::Unit::Seconds,
        "Timed database operations of requests"
    );
    metrics::describe_counter!(t::APPENDS, "Successful event-store appends");
    metrics::describe_counter!(t::APPENDED_EVENTS, "Events appended");
    metrics::describe_counter!(t::CONFLICTS, "Appends refused on the expected version");
    metrics::describe_histogram!(
        t::APPEND_SECONDS,
        metrics::Unit::Seconds,
        "Latency of one event-store append"
    );
    metrics::describe_counter!(
        eventdesk_bus::metrics::DELIVERIES,
        "Integration-bus delivery attempts, by target and outcome"
    );
    metrics::describe_histogram!(
        eventdesk_bus::metrics::DELIVERY_SECONDS,
        metrics::Unit::Seconds,
        "Integration-bus delivery latency, by target"
    );
}

/// A static label of a status code (no allocation for the usual ones).
pub fn status_label(s: StatusCode) -> metrics::SharedString {
    let known = match s.as_u16() {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        409 => "409",
        412 => "412",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => return metrics::SharedString::from(s.as_u16().to_string()),
    };
    metrics::SharedString::const_str(known)
}

/// `GET /metrics` (public: it checks its own token; not part of the API document).
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/metrics", axum::routing::get(scrape))
}

/// `GET /metrics` with `Authorization: Bearer <EVENTDESK_METRICS_TOKEN>`.
pub async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(expected) = state.config.metrics_token.as_ref() else {
        return ApiError::NotFound.into_response();
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let Some(presented) = presented else {
        let mut r = ApiError::Unauthorized.into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"metrics\""),
        );
        return r;
    };
    if !bool::from(presented.as_bytes().ct_eq(expected.expose().as_bytes())) {
        return ApiError::Forbidden.into_response();
    }
    let mut body = handle().map(|h| h.render()).unwrap_or_default();
    if let Err(e) = append_database_figures(&state, &mut body).await {
        tracing::warn!(error = %e, "metrics: could not read the database figures");
        let _ = writeln!(body, "# database figures unavailable: {e}");
        let _ = writeln!(body, "eventdesk_metrics_database_up 0");
    } else {
        let _ = writeln!(body, "eventdesk_metrics_database_up 1");
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Figures of this server's database, read at scrape time (they are not the recorder's: in a
/// process with several servers each scrape shows its own database).
async fn append_database_figures(state: &AppState, out: &mut String) -> Result<(), sqlx::Error> {
    let status = eventdesk_projections::status::projection_status(&state.system).await?;
    let _ = writeln!(
        out,
        "# HELP eventdesk_projection_lag_events Events committed and not yet applied, per \
         projection\n# TYPE eventdesk_projection_lag_events gauge"
    );
    for s in &status {
        let _ = writeln!(
            out,
            "eventdesk_projection_lag_events{{projection=\"{}\",version=\"{}\"}} {}",
            escape(&s.name),
            s.version,
            s.lag_events
        );
    }
    let _ = writeln!(
        out,
        "# HELP eventdesk_projection_lag_milliseconds Age of the oldest unapplied event, per \
         projection\n# TYPE eventdesk_projection_lag_milliseconds gauge"
    );
    for s in &status {
        let _ = writeln!(
            out,
            "eventdesk_projection_lag_milliseconds{{projection=\"{}\",version=\"{}\"}} {}",
            escape(&s.name),
            s.version,
            s.lag_ms
        );
    }
    let _ = writeln!(
        out,
        "# HELP eventdesk_projection_dead_letters Unresolved dead letters, per projection\n\
         # TYPE eventdesk_projection_dead_letters gauge"
    );
    let mut total = 0i64;
    for s in &status {
        total += s.dead_letters;
        let _ = writeln!(
            out,
            "eventdesk_projection_dead_letters{{projection=\"{}\",version=\"{}\"}} {}",
            escape(&s.name),
            s.version,
            s.dead_letters
        );
    }
    let _ = writeln!(
        out,
        "# HELP eventdesk_dead_letters Unresolved dead letters of all projections\n\
         # TYPE eventdesk_dead_letters gauge\neventdesk_dead_letters {total}"
    );
    let (breached_total, breached_now): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM rm_sla_timers WHERE breached), \
                (SELECT count(*) FROM rm_sla_timers WHERE breached AND stage IN ('in_progress', 'paused'))",
    )
    .fetch_one(&state.system)
    .await?;
    let _ = writeln!(
        out,
        "# HELP eventdesk_sla_breaches SLA timers that breached their target (all tenants)\n\
         # TYPE eventdesk_sla_breaches gauge\neventdesk_sla_breaches {breached_total}\n\
         # HELP eventdesk_sla_breached_running SLA timers breached and still running\n\
         # TYPE eventdesk_sla_breached_running gauge\neventdesk_sla_breached_running {breached_now}"
    );
    Ok(())
}

/// Escapes a Prometheus label value.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

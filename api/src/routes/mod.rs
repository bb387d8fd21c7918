//! Routes and their permissions.
//!
//! Every protected route is listed in [`PERMISSIONS`] with the one permission it needs; the
//! [`authorize`] middleware enforces it for every request and **denies anything not listed**,
//! so a route added without a declaration is unreachable rather than open.

pub mod analytics;
pub mod api_keys;
pub mod attachments;
pub mod audit;
pub mod auth;
pub mod changes;
pub mod cmdb;
pub mod directory;
pub mod incidents;
pub mod integrations;
pub mod problems;
pub mod rate_limits;
pub mod roles;
pub mod sla;
pub mod sla_timers;
pub mod webhooks;

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::health;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use eventdesk_auth::rbac::{Action, Permission, Resource};

/// Largest JSON body accepted (attachments have their own limit).
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;

const fn p(r: Resource, a: Action) -> Permission {
    Permission::new(r, a)
}

/// The permission of every protected route: (method, route template, permission).
pub const PERMISSIONS: &[(Method, &str, Permission)] = &[
    // Live events and rate limits (issue #7, ADR 0019).
    (
        Method::GET,
        crate::auth::WS_PATH,
        p(Resource::Incident, Action::Read),
    ),
    (
        Method::GET,
        "/api/v1/rate-limits",
        p(Resource::TenantSettings, Action::Read),
    ),
    (
        Method::GET,
        "/api/v1/tenants/{id}/rate-limits",
        eventdesk_auth::rbac::PLATFORM,
    ),
    (
        Method::PUT,
        "/api/v1/tenants/{id}/rate-limits",
        eventdesk_auth::rbac::PLATFORM,
    ),
    // The audit trail.
    (
        Method::GET,
        "/api/v1/audit/events",
        p(Resource::Audit, Action::Read),
    ),
    (
        Method::GET,
        "/api/v1/audit/streams/{stream_id}",
        p(Resource::Audit, Action::Read),
    ),
    (
        Method::GET,
        "/api/v1/security/events",
        p(Resource::Security, Action::Read),
    ),
    // Analytics (issue #5, ADR 0015).
    (
        Method::GET,
        "/api/v1/analytics/summary",
        p(Resource::Analytics, Action::Read),
    ),
    (
        Method::GET,
        "/api/v1/analytics/trends",
        p(Resource::Analytics, Action::Read),
    ),
    (
        Method::GET,
        "/api/v1/analytics/mttr",
        p(Resource::Analytics, Action::Read),
    ),
    (
        Method::GET,
        "/api/v1/analytics/mtta",
        p(Resource::Analytics, Action::Read),
    ),
    (
        Method::GET,
        "/api/v1/analytics/sla",
        p(Resource::Analytics, Action::Read),
    ),
    (
        Method::GET,
        "/api/v1/analytics/backlog",
        p(Resource::Analytics, Action::Read),
    ),
    (
        Method::GET,
        "/api/v1/analytics/performance",
        p(Resource::Analytics, Action::Read),
    ),
    // Incidents.
    (
        Method::GET,
        "/api/v1/incidents",
        p(Resource::Incident, Action::Read),
    ),
    (
        Method::GET,
        "/api/v1/incidents/{id}/sla",
        p(Resource::Incident, Action::Read),
    ),
    (
        Method::GET,
        "/api/v1/sla/timers",
        p(Resource::Sla, Action::Read),
    ),
    (
        Method::POST,
        "/api/v1/incidents",
        p(Resource::Incident, Action::Create),
    ),
    (
        Method::GET,
        "/api/v1/incidents/{id}",
        p(Resource::Incident, Action::Read),
    ),
    (
        Method::PATCH,
        "/api/v1/incidents/{id}",
        p(Resource::Incident, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/incidents/{id}/assign",
        p(Resource::Incident, Action::Assign),
    ),
    (
        Method::POST,
        "/api/v1/incidents/{id}/start",
        p(Resource::Incident, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/incidents/{id}/hold",
        p(Resource::Incident, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/incidents/{id}/resume",
        p(Resource::Incident, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/incidents/{id}/resolve",
        p(Resource::Incident, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/incidents/{id}/reopen",
        p(Resource::Incident, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/incidents/{id}/close",
        p(Resource::Incident, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/incidents/{id}/cancel",
        p(Resource::Incident, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/incidents/{id}/work-notes",
        p(Resource::Incident, Action::Comment),
    ),
    (
        Method::POST,
        "/api/v1/incidents/{id}/attachments",
        p(Resource::Incident, Action::Comment),
    ),
    (
        Method::GET,
        "/api/v1/incidents/{id}/attachments/{aid}",
        p(Resource::Incident, Action::Read),
    ),
    // Problems and the known-error database (ADR 0021).
    (
        Method::GET,
        "/api/v1/problems",
        p(Resource::Problem, Action::Read),
    ),
    (
        Method::POST,
        "/api/v1/problems",
        p(Resource::Problem, Action::Create),
    ),
    (
        Method::GET,
        "/api/v1/problems/{id}",
        p(Resource::Problem, Action::Read),
    ),
    (
        Method::PATCH,
        "/api/v1/problems/{id}",
        p(Resource::Problem, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/problems/{id}/investigate",
        p(Resource::Problem, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/problems/{id}/known-error",
        p(Resource::Problem, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/problems/{id}/resolve",
        p(Resource::Problem, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/problems/{id}/close",
        p(Resource::Problem, Action::Write),
    ),
    (
        Method::GET,
        "/api/v1/problems/{id}/incidents",
        p(Resource::Problem, Action::Read),
    ),
    (
        Method::POST,
        "/api/v1/problems/{id}/incidents",
        p(Resource::Problem, Action::Write),
    ),
    (
        Method::DELETE,
        "/api/v1/problems/{id}/incidents/{incident_id}",
        p(Resource::Problem, Action::Write),
    ),
    (
        Method::GET,
        "/api/v1/known-errors",
        p(Resource::Problem, Action::Read),
    ),
    // Changes with CAB approvals, tasks, the calendar and conflicts (ADR 0022).
    (
        Method::GET,
        "/api/v1/changes",
        p(Resource::Change, Action::Read),
    ),
    (
        Method::POST,
        "/api/v1/changes",
        p(Resource::Change, Action::Create),
    ),
    (
        Method::GET,
        "/api/v1/changes/calendar",
        p(Resource::Change, Action::Read),
    ),
    (
        Method::GET,
        "/api/v1/changes/conflicts",
        p(Resource::Change, Action::Read),
    ),
    (
        Method::GET,
        "/api/v1/changes/{id}",
        p(Resource::Change, Action::Read),
    ),
    (
        Method::PATCH,
        "/api/v1/changes/{id}",
        p(Resource::Change, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/changes/{id}/submit",
        p(Resource::Change, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/changes/{id}/assess",
        p(Resource::Change, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/changes/{id}/schedule",
        p(Resource::Change, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/changes/{id}/implement",
        p(Resource::Change, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/changes/{id}/complete",
        p(Resource::Change, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/changes/{id}/close",
        p(Resource::Change, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/changes/{id}/cancel",
        p(Resource::Change, Action::Write),
    ),
    (
        Method::GET,
        "/api/v1/changes/{id}/tasks",
        p(Resource::Change, Action::Read),
    ),
    (
        Method::POST,
        "/api/v1/changes/{id}/tasks",
        p(Resource::Change, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/changes/{id}/tasks/reorder",
        p(Resource::Change, Action::Write),
    ),
    (
        Method::PATCH,
        "/api/v1/changes/{id}/tasks/{task_id}",
        p(Resource::Change, Action::Write),
    ),
    (
        Method::GET,
        "/api/v1/changes/{id}/approvals",
        p(Resource::Change, Action::Read),
    ),
    (
        Method::POST,
        "/api/v1/changes/{id}/approvals",
        p(Resource::Change, Action::Write),
    ),
    // Directory.
    (
        Method::GET,
        "/api/v1/users",
        p(Resource::User, Action::Read),
    ),
    (
        Method::POST,
        "/api/v1/users",
        p(Resource::User, Action::Create),
    ),
    (
        Method::GET,
        "/api/v1/users/{id}",
        p(Resource::User, Action::Read),
    ),
    (
        Method::GET,
        "/api/v1/teams",
        p(Resource::Team, Action::Read),
    ),
    (
        Method::POST,
        "/api/v1/teams",
        p(Resource::Team, Action::Create),
    ),
    (
        Method::GET,
        "/api/v1/categories",
        p(Resource::Category, Action::Read),
    ),
    (
        Method::POST,
        "/api/v1/categories",
        p(Resource::Category, Action::Create),
    ),
    (
        Method::PATCH,
        "/api/v1/users/{id}",
        p(Resource::User, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/users/{id}/deactivate",
        p(Resource::User, Action::Delete),
    ),
    (
        Method::POST,
        "/api/v1/users/{id}/reactivate",
        p(Resource::User, Action::Write),
    ),
    (
        Method::GET,
        "/api/v1/teams/{id}",
        p(Resource::Team, Action::Read),
    ),
    (
        Method::PATCH,
        "/api/v1/teams/{id}",
        p(Resource::Team, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/teams/{id}/deactivate",
        p(Resource::Team, Action::Delete),
    ),
    (
        Method::GET,
        "/api/v1/categories/{id}",
        p(Resource::Category, Action::Read),
    ),
    (
        Method::PATCH,
        "/api/v1/categories/{id}",
        p(Resource::Category, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/categories/{id}/deactivate",
        p(Resource::Category, Action::Delete),
    ),
    // Custom roles (ADR 0011).
    (
        Method::GET,
        "/api/v1/roles",
        p(Resource::Role, Action::Read),
    ),
    (
        Method::POST,
        "/api/v1/roles",
        p(Resource::Role, Action::Create),
    ),
    (
        Method::GET,
        "/api/v1/roles/{id}",
        p(Resource::Role, Action::Read),
    ),
    (
        Method::PATCH,
        "/api/v1/roles/{id}",
        p(Resource::Role, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/roles/{id}/deactivate",
        p(Resource::Role, Action::Delete),
    ),
    // SLA configuration.
    (
        Method::POST,
        "/api/v1/sla/calendars",
        p(Resource::Sla, Action::Create),
    ),
    (
        Method::GET,
        "/api/v1/sla/calendars",
        p(Resource::Sla, Action::Read),
    ),
    (
        Method::GET,
        "/api/v1/sla/calendars/{id}",
        p(Resource::Sla, Action::Read),
    ),
    (
        Method::PATCH,
        "/api/v1/sla/calendars/{id}",
        p(Resource::Sla, Action::Write),
    ),
    (
        Method::DELETE,
        "/api/v1/sla/calendars/{id}",
        p(Resource::Sla, Action::Delete),
    ),
    (
        Method::POST,
        "/api/v1/sla/calendars/{id}/holidays/import",
        p(Resource::Sla, Action::Write),
    ),
    (
        Method::POST,
        "/api/v1/sla/policies",
        p(Resource::Sla, Action::Create),
    ),
    (
        Method::GET,
        "/api/v1/sla/policies",
        p(Resource::Sla, Action::Read),
    ),
    (
        Method::GET,
        "/api/v1/sla/policies/{id}",
        p(Resource::Sla, Action::Read),
    ),
    (
        Method::PATCH,
        "/api/v1/sla/policies/{id}",
        p(Resource::Sla, Action::Write),
    ),
    (
        Method::DELETE,
        "/api/v1/sla/policies/{id}",
        p(Resource::Sla, Action::Delete),
    ),
    (
        Method::POST,
        "/api/v1/sla/policies/{id}/reactivate",
        p(Resource::Sla, Action::Write),
    ),
    // CMDB (issue #8, ADR 0017).
    (Method::GET, "/api/v1/cis", p(Resource::Ci, Action::Read)),
    (Method::POST, "/api/v1/cis", p(Resource::Ci, Action::Create)),
    (
        Method::GET,
        "/api/v1/cis/{id}",
        p(Resource::Ci, Action::Read),
    ),
    (
        Method::PATCH,
        "/api/v1/cis/{id}",
        p(Resource::Ci, Action::Write),
    ),
    (
        Method::GET,
        "/api/v1/cis/{id}/relationships",
        p(Resource::Ci, Action::Read),
    ),
    (
        Method::POST,
        "/api/v1/cis/{id}/relationships",
        p(Resource::Ci, Action::Write),
    ),
    (
        Method::DELETE,
        "/api/v1/cis/{id}/relationships/{rel_id}",
        p(Resource::Ci, Action::Write),
    ),
    (
        Method::GET,
        "/api/v1/cis/{id}/impact",
        p(Resource::Ci, Action::Read),
    ),
    (
        Method::POST,
        "/api/v1/cis/{id}/retire",
        p(Resource::Ci, Action::Delete),
    ),
    (
        Method::GET,
        "/api/v1/ci-types",
        p(Resource::CiType, Action::Read),
    ),
    (
        Method::POST,
        "/api/v1/ci-types",
        p(Resource::CiType, Action::Create),
    ),
    (
        Method::GET,
        "/api/v1/ci-types/{id}",
        p(Resource::CiType, Action::Read),
    ),
    // The integration bus (issue #7, ADR 0016).
    (
        Method::GET,
        "/api/v1/webhooks",
        p(Resource::Webhook, Action::Read),
    ),
    (
        Method::POST,
        "/api/v1/webhooks",
        p(Resource::Webhook, Action::Create),
    ),
    (
        Method::GET,
        "/api/v1/webhooks/{id}",
        p(Resource::Webhook, Action::Read),
    ),
    (
        Method::PATCH,
        "/api/v1/webhooks/{id}",
        p(Resource::Webhook, Action::Write),
    ),
    (
        Method::DELETE,
        "/api/v1/webhooks/{id}",
        p(Resource::Webhook, Action::Delete),
    ),
    (
        Method::POST,
        "/api/v1/webhooks/{id}/rotate-secret",
        p(Resource::Webhook, Action::Write),
    ),
    (
        Method::GET,
        "/api/v1/webhooks/{id}/deliveries",
        p(Resource::Webhook, Action::Read),
    ),
    (
        Method::POST,
        "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
        p(Resource::Webhook, Action::Write),
    ),
    (
        Method::GET,
        "/api/v1/integrations",
        p(Resource::Integration, Action::Read),
    ),
    (
        Method::GET,
        "/api/v1/integrations/slack",
        p(Resource::Integration, Action::Read),
    ),
    (
        Method::PUT,
        "/api/v1/integrations/slack",
        p(Resource::Integration, Action::Write),
    ),
    (
        Method::GET,
        "/api/v1/integrations/jira",
        p(Resource::Integration, Action::Read),
    ),
    (
        Method::PUT,
        "/api/v1/integrations/jira",
        p(Resource::Integration, Action::Write),
    ),
    // API keys.
    (
        Method::GET,
        "/api/v1/api-keys",
        p(Resource::ApiKey, Action::Read),
    ),
    (
        Method::POST,
        "/api/v1/api-keys",
        p(Resource::ApiKey, Action::Create),
    ),
    (
        Method::DELETE,
        "/api/v1/api-keys/{id}",
        p(Resource::ApiKey, Action::Delete),
    ),
    // Platform.
    (
        Method::GET,
        "/api/v1/tenants",
        eventdesk_auth::rbac::PLATFORM,
    ),
    (
        Method::POST,
        "/api/v1/tenants",
        eventdesk_auth::rbac::PLATFORM,
    ),
];

/// Routes any authenticated caller may use (about the caller themself).
pub const AUTHENTICATED: &[(Method, &str)] = &[(Method::GET, "/api/v1/auth/profile")];

/// The declared permission of `(method, route)`.
pub fn permission_for(method: &Method, route: &str) -> Option<Permission> {
    PERMISSIONS
        .iter()
        .find(|(m, r, _)| m == method && *r == route)
        .map(|(_, _, p)| *p)
}

/// Authenticates the caller and checks the route's declared permission (deny by default).
pub async fn authorize(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let auth_started = std::time::Instant::now();
    // Already authenticated by the rate limiter (which reported the time to the monitor)?
    let authenticated_before = parts.extensions.get::<Principal>().is_some();
    // Without the read-your-writes wait: the handler's own extractor does it (ADR 0024), and
    // the create, which needs none, skips it.
    let crate::auth::Writer(principal) = <crate::auth::Writer as axum::extract::FromRequestParts<
        AppState,
    >>::from_request_parts(&mut parts, &state)
    .await?;
    // The performance monitor (ADR 0020): whose request, and how long authentication took.
    crate::monitor::note_tenant(principal.tenant);
    if !authenticated_before {
        crate::monitor::note(crate::monitor::Category::Auth, auth_started.elapsed());
    }
    // Times the decision only: dropped before the handler runs.
    let security = SecurityTimer(std::time::Instant::now());
    let route = matched.as_ref().map(MatchedPath::as_str).unwrap_or("");
    if AUTHENTICATED
        .iter()
        .any(|(m, r)| *m == parts.method && *r == route)
    {
        drop(security);
        return Ok(next.run(Request::from_parts(parts, body)).await);
    }
    let Some(needed) = permission_for(&parts.method, route) else {
        tracing::warn!(route, method = %parts.method, "route without a declared permission: denied");
        return Err(ApiError::Forbidden);
    };
    if !principal.permissions.contains(needed) {
        tracing::info!(
            tenant_id = %principal.tenant,
            actor = %principal.actor_label(),
            permission = %needed,
            route,
            "permission denied"
        );
        // A security event too (issue #6), recorded off the request's path: the 403 does not
        // wait for it.
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let data = serde_json::json!({
            "method": parts.method.as_str(),
            "route": route,
            "permission": needed.to_string(),
        });
        let (state, tenant, actor) = (state.clone(), principal.tenant, principal.actor_label());
        tokio::spawn(async move {
            crate::security::record(&state, tenant, "PermissionDenied", &actor, request_id, data)
                .await;
        });
        return Err(ApiError::Forbidden);
    }
    drop(security);
    Ok(next.run(Request::from_parts(parts, body)).await)
}

/// Times the authorisation decision (the monitor's `security` category) until dropped.
struct SecurityTimer(std::time::Instant);

impl Drop for SecurityTimer {
    fn drop(&mut self) {
        crate::monitor::note(crate::monitor::Category::Security, self.0.elapsed());
    }
}

/// All routes.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/api/v1/auth/profile", get(auth::profile))
        .route(
            "/api/v1/incidents",
            get(incidents::list).post(incidents::create),
        )
        .route(
            "/api/v1/incidents/{id}",
            get(incidents::get_one).patch(incidents::patch),
        )
        .route("/api/v1/incidents/{id}/sla", get(sla_timers::incident_sla))
        .route("/api/v1/sla/timers", get(sla_timers::list))
        .route("/api/v1/analytics/summary", get(analytics::summary))
        .route("/api/v1/analytics/trends", get(analytics::trends))
        .route("/api/v1/analytics/mttr", get(analytics::mttr))
        .route("/api/v1/analytics/mtta", get(analytics::mtta))
        .route("/api/v1/analytics/sla", get(analytics::sla))
        .route("/api/v1/analytics/backlog", get(analytics::backlog))
        .route("/api/v1/analytics/performance", get(analytics::performance))
        .route("/api/v1/audit/events", get(audit::events))
        .route("/api/v1/audit/streams/{stream_id}", get(audit::stream))
        .route("/api/v1/security/events", get(audit::security_events))
        .route("/api/v1/incidents/{id}/assign", post(incidents::assign))
        .route("/api/v1/incidents/{id}/start", post(incidents::start))
        .route("/api/v1/incidents/{id}/hold", post(incidents::hold))
        .route("/api/v1/incidents/{id}/resume", post(incidents::resume))
        .route("/api/v1/incidents/{id}/resolve", post(incidents::resolve))
        .route("/api/v1/incidents/{id}/reopen", post(incidents::reopen))
        .route("/api/v1/incidents/{id}/close", post(incidents::close))
        .route("/api/v1/incidents/{id}/cancel", post(incidents::cancel))
        .route(
            "/api/v1/incidents/{id}/work-notes",
            post(incidents::add_work_note),
        )
        .route(
            "/api/v1/incidents/{id}/attachments",
            post(attachments::upload).layer(DefaultBodyLimit::max(
                usize::try_from(state.config.attachment_max_bytes)
                    .unwrap_or(usize::MAX)
                    .saturating_add(64 * 1024),
            )),
        )
        .route(
            "/api/v1/incidents/{id}/attachments/{aid}",
            get(attachments::download),
        )
        .route(
            "/api/v1/users",
            get(directory::list_users).post(directory::create_user),
        )
        .route(
            "/api/v1/users/{id}",
            get(directory::get_user).patch(directory::update_user),
        )
        .route(
            "/api/v1/users/{id}/deactivate",
            post(directory::deactivate_user),
        )
        .route(
            "/api/v1/users/{id}/reactivate",
            post(directory::reactivate_user),
        )
        .route(
            "/api/v1/teams/{id}",
            get(directory::get_team).patch(directory::update_team),
        )
        .route(
            "/api/v1/teams/{id}/deactivate",
            post(directory::deactivate_team),
        )
        .route(
            "/api/v1/categories/{id}",
            get(directory::get_category).patch(directory::update_category),
        )
        .route(
            "/api/v1/categories/{id}/deactivate",
            post(directory::deactivate_category),
        )
        .route(
            "/api/v1/teams",
            get(directory::list_teams).post(directory::create_team),
        )
        .route(
            "/api/v1/categories",
            get(directory::list_categories).post(directory::create_category),
        )
        .route(
            "/api/v1/roles",
            get(roles::list_roles).post(roles::create_role),
        )
        .route(
            "/api/v1/roles/{id}",
            get(roles::get_role).patch(roles::update_role),
        )
        .route(
            "/api/v1/roles/{id}/deactivate",
            post(roles::deactivate_role),
        )
        .route(
            "/api/v1/sla/calendars",
            get(sla::list_calendars).post(sla::create_calendar),
        )
        .route(
            "/api/v1/sla/calendars/{id}",
            get(sla::get_calendar)
                .patch(sla::update_calendar)
                .delete(sla::delete_calendar),
        )
        .route(
            "/api/v1/sla/calendars/{id}/holidays/import",
            post(sla::import_holidays),
        )
        .route(
            "/api/v1/sla/policies",
            get(sla::list_policies).post(sla::create_policy),
        )
        .route(
            "/api/v1/sla/policies/{id}",
            get(sla::get_policy)
                .patch(sla::update_policy)
                .delete(sla::delete_policy),
        )
        .route(
            "/api/v1/sla/policies/{id}/reactivate",
            post(sla::reactivate_policy),
        )
        .route(
            "/api/v1/problems",
            get(problems::list).post(problems::create),
        )
        .route(
            "/api/v1/problems/{id}",
            get(problems::get_one).patch(problems::patch),
        )
        .route(
            "/api/v1/problems/{id}/investigate",
            post(problems::investigate),
        )
        .route(
            "/api/v1/problems/{id}/known-error",
            post(problems::mark_known_error),
        )
        .route("/api/v1/problems/{id}/resolve", post(problems::resolve))
        .route("/api/v1/problems/{id}/close", post(problems::close))
        .route(
            "/api/v1/problems/{id}/incidents",
            get(problems::list_incidents).post(problems::link),
        )
        .route(
            "/api/v1/problems/{id}/incidents/{incident_id}",
            axum::routing::delete(problems::unlink),
        )
        .route("/api/v1/known-errors", get(problems::known_errors))
        .route("/api/v1/changes", get(changes::list).post(changes::create))
        .route("/api/v1/changes/calendar", get(changes::calendar))
        .route("/api/v1/changes/conflicts", get(changes::conflicts))
        .route(
            "/api/v1/changes/{id}",
            get(changes::get_one).patch(changes::patch),
        )
        .route("/api/v1/changes/{id}/submit", post(changes::submit))
        .route("/api/v1/changes/{id}/assess", post(changes::assess))
        .route("/api/v1/changes/{id}/schedule", post(changes::schedule))
        .route("/api/v1/changes/{id}/implement", post(changes::implement))
        .route("/api/v1/changes/{id}/complete", post(changes::complete))
        .route("/api/v1/changes/{id}/close", post(changes::close))
        .route("/api/v1/changes/{id}/cancel", post(changes::cancel))
        .route(
            "/api/v1/changes/{id}/tasks",
            get(changes::list_tasks).post(changes::add_task),
        )
        .route(
            "/api/v1/changes/{id}/tasks/reorder",
            post(changes::reorder_tasks),
        )
        .route(
            "/api/v1/changes/{id}/tasks/{task_id}",
            axum::routing::patch(changes::update_task),
        )
        .route(
            "/api/v1/changes/{id}/approvals",
            get(changes::approvals).post(changes::vote),
        )
        .route("/api/v1/cis", get(cmdb::list_cis).post(cmdb::create_ci))
        .route("/api/v1/cis/{id}", get(cmdb::get_ci).patch(cmdb::patch_ci))
        .route(
            "/api/v1/cis/{id}/relationships",
            get(cmdb::list_relationships).post(cmdb::create_relationship),
        )
        .route(
            "/api/v1/cis/{id}/relationships/{rel_id}",
            axum::routing::delete(cmdb::delete_relationship),
        )
        .route("/api/v1/cis/{id}/impact", get(cmdb::impact))
        .route("/api/v1/cis/{id}/retire", post(cmdb::retire_ci))
        .route(
            "/api/v1/ci-types",
            get(cmdb::list_ci_types).post(cmdb::create_ci_type),
        )
        .route("/api/v1/ci-types/{id}", get(cmdb::get_ci_type))
        .route(
            "/api/v1/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route(
            "/api/v1/webhooks/{id}",
            get(webhooks::get_one)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route(
            "/api/v1/webhooks/{id}/rotate-secret",
            post(webhooks::rotate_secret),
        )
        .route(
            "/api/v1/webhooks/{id}/deliveries",
            get(webhooks::deliveries),
        )
        .route(
            "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            post(webhooks::redeliver),
        )
        .route("/api/v1/integrations", get(integrations::list))
        .route(
            "/api/v1/integrations/slack",
            get(integrations::get_slack).put(integrations::put_slack),
        )
        .route(
            "/api/v1/integrations/jira",
            get(integrations::get_jira).put(integrations::put_jira),
        )
        .route(
            "/api/v1/api-keys",
            get(api_keys::list).post(api_keys::create),
        )
        .route(
            "/api/v1/api-keys/{id}",
            axum::routing::delete(api_keys::revoke),
        )
        .route(
            "/api/v1/tenants",
            get(directory::list_tenants).post(directory::create_tenant),
        )
        .route(crate::auth::WS_PATH, get(crate::ws::connect))
        .route("/api/v1/rate-limits", get(rate_limits::get_own))
        .route(
            "/api/v1/tenants/{id}/rate-limits",
            get(rate_limits::get_tenant).put(rate_limits::put_tenant),
        )
        // Layers run outside in: authorize (added last) first, then Idempotency-Key.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::idempotency::idempotency,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(
            crate::openapi::OPENAPI_PATH,
            get(crate::openapi::openapi_json),
        )
        .merge(crate::openapi::docs())
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/refresh", post(auth::refresh))
        // Operator and browser routes outside the API document (ADR 0020).
        .merge(crate::metrics::routes())
        .merge(crate::dashboard::routes())
        .merge(protected)
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_route_is_unique() {
        for (i, (m, r, _)) in PERMISSIONS.iter().enumerate() {
            assert!(
                !PERMISSIONS[i + 1..]
                    .iter()
                    .any(|(m2, r2, _)| m2 == m && r2 == r),
                "{m} {r} declared twice"
            );
        }
    }
}

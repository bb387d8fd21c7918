//! The OpenAPI 3.1 document (`GET /api/v1/openapi.json`) and the Swagger UI that renders it
//! (`GET /api/v1/docs/`, assets embedded in the binary).
//!
//! **How the document stays true to the server:**
//!
//! - The operations are generated from the router's own declarations: every row of
//!   [`PERMISSIONS`] (method, route template, permission) and [`AUTHENTICATED`], plus
//!   [`PUBLIC_ROUTES`]. Each
//!   is described by its row of [`OPERATIONS`], the one table mapping a route to its request
//!   schema, success status and response schema. A declared route without a row still appears
//!   (marked `x-undocumented`) and makes the unit tests fail; so does a row for no route, and a
//!   `.route("…")` in `routes/mod.rs` that is neither protected nor public.
//! - Path parameters come from the `{name}` segments of the template, the required permission
//!   from `PERMISSIONS`, and every enumeration (statuses, priorities, roles, sorts, permissions,
//!   …) and length limit from the domain's own constants.
//! - The tests check the schemas against the real types: the fields of every request DTO (read
//!   from its `Deserialize` impl) equal the schema's properties, a value generated from each
//!   request schema is accepted by the real DTO, and serialised read-model views and
//!   [`ApiError`](crate::error::ApiError) bodies validate against the (closed) response schemas.

use crate::routes::{AUTHENTICATED, PERMISSIONS};
use axum::Router;
use axum::http::{HeaderValue, Method, header};
use axum::response::IntoResponse;
use eventdesk_auth::Permission;
use eventdesk_auth::apikey::KeyMode;
use eventdesk_domain::cmdb::{AttributeKind, BuiltinCiType, CiName, CiStatus};
use eventdesk_domain::values::{
    CategoryName, Department, Description, HoldReason, Impact, IncidentStatus, PersonName,
    Priority, ReasonText, ResolutionText, Role, TeamName, TenantName, Title, Urgency, WorkNoteBody,
    WorkNoteType,
};
use eventdesk_projections::queries::cmdb::{DEFAULT_IMPACT_DEPTH, Direction, MAX_IMPACT_DEPTH};
use eventdesk_projections::queries::incidents::IncidentSort;
use eventdesk_projections::queries::paging::{DEFAULT_LIMIT, MAX_LIMIT};
use serde_json::{Map, Value, json};
use std::sync::LazyLock;
use tower_http::set_header::SetResponseHeaderLayer;

mod bus;
mod itil;
mod live;
mod monitor;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";
/// Where the Swagger UI is served (`/api/v1/docs` redirects to `/api/v1/docs/`).
pub const DOCS_PATH: &str = "/api/v1/docs";
/// The content security policy of the docs UI: its own scripts and styles only (Swagger UI
/// sets inline styles and uses `data:` images), requests to this origin only, never framed.
pub const DOCS_CSP: &str = "default-src 'self'; img-src 'self' data:; \
    style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The routes reachable without credentials that the document describes (the docs UI itself
/// is not an API operation).
pub const PUBLIC_ROUTES: &[(Method, &str)] = &[
    (Method::POST, "/api/v1/auth/login"),
    (Method::POST, "/api/v1/auth/refresh"),
    (Method::GET, "/healthz"),
    (Method::GET, "/readyz"),
    (Method::GET, OPENAPI_PATH),
];

// ------------------------------------------------------------------------------------------
// The route table
// ------------------------------------------------------------------------------------------

/// The request body of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// No body.
    None,
    /// A required `application/json` body (strict: 415 for another type, 422 for an unknown
    /// field), of this schema.
    Json(&'static str),
    /// An optional JSON body (an empty body counts as `{}`), of this schema. The content type is
    /// not checked.
    Optional(&'static str),
    /// A `multipart/form-data` body of this schema.
    Multipart(&'static str),
}

/// The success body of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    /// JSON of this schema.
    Json(&'static str),
    /// No body.
    Empty,
    /// A file download (the stored content type).
    File,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Credentials holding this permission ([`PERMISSIONS`]).
    Permission(Permission),
    /// Any valid credentials ([`AUTHENTICATED`]).
    Authenticated,
    /// No credentials ([`PUBLIC_ROUTES`]).
    Public,
}

/// The query parameters of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Query {
    /// None.
    None,
    /// `page`, `limit`, `cursor`.
    Paging,
    /// The incident list's filters, search and sort, plus paging.
    Incidents,
    /// The SLA timer list's filters, plus paging.
    SlaTimers,
    /// The audit log's filters, plus paging.
    AuditEvents,
    /// The security log's filters, plus paging.
    SecurityEvents,
    /// `as_of` (time travel).
    AsOf,
    /// The CI list's filters and search, plus paging.
    Cis,
    /// A CI's relationship list: `direction`, `type`, plus paging.
    CiRelationships,
    /// Impact analysis: `depth`.
    Impact,
    /// Analytics snapshots: `team_id`, `category_id`.
    AnalyticsFilters,
    /// Analytics over a range: `from`, `to`, `team_id`, `category_id`.
    AnalyticsRange,
    /// Analytics trends: the range, `bucket`, `tz`.
    AnalyticsTrends,
    /// A webhook's delivery log: `status`, `limit`, `before`.
    Deliveries,
    /// The WebSocket: `access_token`, `after`.
    Live,
    /// The problem list's filters and search, plus paging.
    Problems,
    /// The known-error search (`q`), plus paging.
    KnownErrors,
    /// The change list's filters, plus paging.
    Changes,
    /// The change calendar's range.
    Calendar,
}

/// One operation: everything about a route that its declaration does not already say.
#[derive(Debug)]
struct Op {
    method: Method,
    route: &'static str,
    operation_id: &'static str,
    tag: &'static str,
    summary: &'static str,
    /// Markdown; the required permission is appended.
    description: &'static str,
    query: Query,
    body: Body,
    /// The success status.
    status: u16,
    /// The success body.
    response: Out,
    /// Honours `Idempotency-Key`.
    idempotency_key: bool,
    /// Honours `If-Match`.
    if_match: bool,
    /// The success response carries `ETag`.
    etag: bool,
    /// The success response carries `Location`.
    location: bool,
    /// Error statuses beyond those implied by authentication, path ids, bodies, queries and
    /// `If-Match` (see [`error_statuses`]).
    errors: &'static [u16],
}

/// A row with every optional part off.
const fn op(
    method: Method,
    route: &'static str,
    operation_id: &'static str,
    tag: &'static str,
    summary: &'static str,
    status: u16,
    response: Out,
) -> Op {
    Op {
        method,
        route,
        operation_id,
        tag,
        summary,
        description: "",
        query: Query::None,
        body: Body::None,
        status,
        response,
        idempotency_key: false,
        if_match: false,
        etag: false,
        location: false,
        errors: &[],
    }
}

impl Op {
    const fn describe(mut self, description: &'static str) -> Self {
        self.description = description;
        self
    }
    const fn query(mut self, query: Query) -> Self {
        self.query = query;
        self
    }
    const fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }
    const fn errors(mut self, errors: &'static [u16]) -> Self {
        self.errors = errors;
        self
    }
    const fn idempotent(mut self) -> Self {
        self.idempotency_key = true;
        self
    }
    /// An incident write: `If-Match` honoured, `ETag` returned, concurrent writes are 409.
    const fn conditional(mut self) -> Self {
        self.if_match = true;
        self.etag = true;
        self
    }
    const fn etag(mut self) -> Self {
        self.etag = true;
        self
    }
    /// A create answering `201` with `Location` (and no `ETag`).
    const fn located(mut self) -> Self {
        self.location = true;
        self
    }
    /// A create answering `201` with `Location` and `ETag`.
    const fn created(mut self) -> Self {
        self.location = true;
        self.etag = true;
        self
    }
}

const ACTION_NOTE: &str = "Runs one lifecycle transition; a transition the state machine does \
    not allow is `422 invalid_transition`. The body may be empty where it has no required field. \
    Answers with the incident as it is after the change.";

/// One row per (method, route): request schema, success status and response schema.
const OPERATIONS: &[Op] = &[
    // CMDB (ADR 0017).
    op(
        Method::GET,
        "/api/v1/cis",
        "listCis",
        "cmdb",
        "List configuration items",
        200,
        Out::Json("CiPage"),
    )
    .describe(
        "Sorted by name. Filters: `type` and `status` (repeat a parameter for OR), \
         `owner_team_id`, and `q`, a case-insensitive substring of the name. Page with \
         `page`/`limit` (exact totals) or with `cursor`. An unknown parameter is `422`.",
    )
    .query(Query::Cis),
    op(
        Method::POST,
        "/api/v1/cis",
        "createCi",
        "cmdb",
        "Register a configuration item",
        201,
        Out::Json("Ci"),
    )
    .describe(
        "`type` is a built-in type (`service`, `application`, `server`, `database`, \
         `network_device`) or one of the tenant's custom types (`/api/v1/ci-types`); an \
         unknown type is `422` on `type`. `attributes` are validated against the type's \
         schema: each unknown or invalid attribute, and each missing required one, is named \
         in the `422` (`attributes.ip_address`). `status` defaults to `active` (`retired` is \
         refused). `owner_team_id` must be a team of the tenant.",
    )
    .body(Body::Json("CiCreate"))
    .created(),
    op(
        Method::GET,
        "/api/v1/cis/{id}",
        "getCi",
        "cmdb",
        "A configuration item",
        200,
        Out::Json("Ci"),
    )
    .describe("The `ETag` is the CI's version, for `If-Match` on later writes.")
    .etag(),
    op(
        Method::PATCH,
        "/api/v1/cis/{id}",
        "updateCi",
        "cmdb",
        "Update a configuration item",
        200,
        Out::Json("Ci"),
    )
    .describe(
        "Absent fields are kept; `attributes` replaces the whole attribute object and is \
         validated again; `description: null` and `owner_team_id: null` clear them. `status` \
         moves freely among `planned`, `active` and `maintenance` (`retired` only through the \
         retire action). The type never changes. A retired CI accepts no change \
         (`422 ci_retired`).",
    )
    .body(Body::Json("CiUpdate"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/cis/{id}/retire",
        "retireCi",
        "cmdb",
        "Retire a configuration item",
        200,
        Out::Json("Ci"),
    )
    .describe(
        "Decommissions the CI: `retired` is final (retiring again changes nothing). Its \
         relationships stay, and it still appears in impact analyses; no new relationship may \
         reach it.",
    )
    .body(Body::Optional("EmptyRequest"))
    .conditional(),
    op(
        Method::GET,
        "/api/v1/cis/{id}/relationships",
        "listCiRelationships",
        "cmdb",
        "A configuration item's relationships (both directions)",
        200,
        Out::Json("CiRelationshipPage"),
    )
    .describe(
        "Every live relationship with the CI at either end, oldest first: `outgoing` ones \
         (`this depends_on related`) and `incoming` ones (`related depends_on this`). Narrow \
         with `direction` and `type`.",
    )
    .query(Query::CiRelationships),
    op(
        Method::POST,
        "/api/v1/cis/{id}/relationships",
        "createCiRelationship",
        "cmdb",
        "Relate a configuration item to another",
        201,
        Out::Json("CiRelationship"),
    )
    .describe(
        "Creates `{id} —type→ target_id`. `type` is `depends_on` (`{id}` needs the target), \
         `runs_on` (`{id}` is hosted by it), `connected_to`, or a custom type (2 to 63 \
         characters of `a-z`, `0-9`, `_`). Both CIs must be of the caller's tenant (`404` \
         otherwise) and not retired (`422 ci_retired`); a CI cannot relate to itself (`422`). \
         The same source, target and type twice is `409`. A `depends_on` or `runs_on` edge \
         that would close a dependency cycle (over both types) is \
         `422 dependency_cycle`, the message naming the cycle; the check is serialised per \
         tenant, so two concurrent edges that together close a cycle cannot both succeed.",
    )
    .body(Body::Json("CiRelationshipCreate"))
    .errors(&[409]),
    op(
        Method::DELETE,
        "/api/v1/cis/{id}/relationships/{rel_id}",
        "deleteCiRelationship",
        "cmdb",
        "Delete a relationship",
        204,
        Out::Empty,
    )
    .describe(
        "`404` unless `rel_id` is a live relationship of the tenant with `{id}` at one end \
         (deleting twice is `404`).",
    ),
    op(
        Method::GET,
        "/api/v1/cis/{id}/impact",
        "getCiImpact",
        "cmdb",
        "What is affected if this configuration item fails",
        200,
        Out::Json("CiImpact"),
    )
    .describe(
        "Every CI that depends on or runs on this one, transitively (following `depends_on` \
         and `runs_on` from target to source; `connected_to` and custom types carry no \
         impact), up to `depth` relationships away. Each affected CI appears once, at its \
         shortest distance, with a shortest path of CI ids from the failed CI (ties: the \
         predecessor with the lowest id), and with its open incidents (those the caller may \
         read: none without `incident:read`, their own for a requester). \
         `scheduled_changes` lists the scheduled changes (or those being implemented) on \
         each CI (ADR 0022). `more_beyond_depth` says \
         whether CIs farther away are affected too.",
    )
    .query(Query::Impact),
    op(
        Method::GET,
        "/api/v1/ci-types",
        "listCiTypes",
        "cmdb",
        "The CI types: built-in and the tenant's",
        200,
        Out::Json("CiTypePage"),
    )
    .describe(
        "The built-in types (`builtin: true`, no id) and the tenant's custom types, by key, \
         each with its attribute schema.",
    )
    .query(Query::Paging),
    op(
        Method::POST,
        "/api/v1/ci-types",
        "createCiType",
        "cmdb",
        "Define a custom CI type",
        201,
        Out::Json("CiType"),
    )
    .describe(
        "`attributes` maps attribute names (1 to 63 characters of `a-z`, `0-9`, `_`) to \
         `{\"type\": t, \"required\": bool, \"values\": [...]}` where `t` is `string`, \
         `integer`, `number`, `boolean`, `ip`, `url` or `enum` (with `values`); \
         `\"type\": \"enum[a,b]\"` is shorthand for an enum. Every problem is named in the \
         `422` (`attributes.tier.values`). The key must not be a built-in type's (`422`) nor \
         one the tenant already uses (`409`). A type is not edited once defined.",
    )
    .body(Body::Json("CiTypeCreate"))
    .created()
    .errors(&[409]),
    op(
        Method::GET,
        "/api/v1/ci-types/{id}",
        "getCiType",
        "cmdb",
        "A custom CI type",
        200,
        Out::Json("CiType"),
    )
    .describe("One of the tenant's custom types (built-in types have no id).")
    .etag(),
    // Auth.
    op(
        Method::POST,
        "/api/v1/auth/login",
        "login",
        "auth",
        "Log in with username and password",
        200,
        Out::Json("TokenResponse"),
    )
    .describe(
        "Issues an access token (JWT, `Authorization: Bearer …`) and a refresh token. A wrong \
         password, an unknown username and a disabled account all get the same \
         `401 invalid_credentials`, after the same amount of work.",
    )
    .body(Body::Json("LoginRequest"))
    .errors(&[401]),
    op(
        Method::POST,
        "/api/v1/auth/refresh",
        "refreshToken",
        "auth",
        "Exchange a refresh token for new tokens",
        200,
        Out::Json("TokenResponse"),
    )
    .describe(
        "Rotates the refresh token: the one presented is spent and a new one is returned. A \
         refresh token presented twice is refused and revokes its whole family (log in again).",
    )
    .body(Body::Json("RefreshRequest"))
    .errors(&[401]),
    op(
        Method::GET,
        "/api/v1/auth/profile",
        "getProfile",
        "auth",
        "The signed-in user",
        200,
        Out::Json("User"),
    )
    .describe("`404` when the caller is an API key (it is no user).")
    .errors(&[404]),
    // Analytics (ADR 0015).
    op(
        Method::GET,
        "/api/v1/analytics/summary",
        "getAnalyticsSummary",
        "analytics",
        "Open incidents now, by status, priority, team and category",
        200,
        Out::Json("AnalyticsSummary"),
    )
    .describe(
        "The open incidents (new, assigned, in progress, on hold) now, with the critical and \
         the unassigned ones. `team_id` and `category_id` restrict every figure to the \
         incidents currently in that team / category. Read from counts the analytics \
         projection keeps, so the figures lag writes by the projection's latency \
         (milliseconds).",
    )
    .query(Query::AnalyticsFilters),
    op(
        Method::GET,
        "/api/v1/analytics/trends",
        "getAnalyticsTrends",
        "analytics",
        "Created, resolved, closed and reopened per hour, day or week",
        200,
        Out::Json("AnalyticsTrends"),
    )
    .describe(
        "Counts per bucket of local time in `tz` (an IANA zone, default `UTC`; tenants have \
         no time-zone setting): `hour` (a repeated hour at a DST fold is two buckets), `day` \
         (23 or 25 hours across DST) or `week` (ISO, from Monday 00:00). The buckets are the \
         whole buckets that intersect `[from, to)` (default: the 30 days before now), at most \
         1000 (`422` on `bucket` beyond). Exact in every zone, 30- and 45-minute offsets \
         included. An event counts under the team and category the incident had when it \
         happened.",
    )
    .query(Query::AnalyticsTrends),
    op(
        Method::GET,
        "/api/v1/analytics/mttr",
        "getAnalyticsMttr",
        "analytics",
        "Mean and median time to resolve, by priority and team",
        200,
        Out::Json("AnalyticsDurations"),
    )
    .describe(
        "One sample per resolution in `[from, to)` (default: the 30 days before now): from the \
         start of its resolution cycle (creation, or the reopen) to the resolution. `wall` is \
         clock time (holds and nights included); `business` is the SLA resolution timer's \
         business time on the incident's policy calendar, holds excluded (samples whose \
         incident had a resolution target). Whole seconds; the median of an even count is the \
         mean of the two middle values. Exact. Priority and team are those at the resolution.",
    )
    .query(Query::AnalyticsRange),
    op(
        Method::GET,
        "/api/v1/analytics/mtta",
        "getAnalyticsMtta",
        "analytics",
        "Mean and median time to respond, by priority and team",
        200,
        Out::Json("AnalyticsDurations"),
    )
    .describe(
        "One sample per incident whose first response (the first transition out of `new`, or \
         the first public work note by an agent) falls in `[from, to)`: from creation to the \
         response, in `wall` clock time and in the SLA response timer's `business` time. As \
         for `mttr` otherwise.",
    )
    .query(Query::AnalyticsRange),
    op(
        Method::GET,
        "/api/v1/analytics/sla",
        "getAnalyticsSla",
        "analytics",
        "SLA compliance, breaches by priority, timers at risk and breached now",
        200,
        Out::Json("AnalyticsSla"),
    )
    .describe(
        "For each metric, the timers completed in `[from, to)` (response given, incident \
         resolved): how many met and missed their target, overall, per priority and per team \
         at completion; the breaches per priority among them; and the running timers now past \
         their 75 % warning (`at_risk`) or breached, as `GET /api/v1/sla/timers?state=` \
         counts them.",
    )
    .query(Query::AnalyticsRange),
    op(
        Method::GET,
        "/api/v1/analytics/backlog",
        "getAnalyticsBacklog",
        "analytics",
        "Backlog aging, reopen rate and workload per agent",
        200,
        Out::Json("AnalyticsBacklog"),
    )
    .describe(
        "The open incidents by age now (`< 1 d`, `1–3 d`, `3–7 d`, `7–30 d`, `> 30 d`), the \
         share of incidents ever resolved that were reopened, and the open incidents assigned \
         to each agent. `team_id` and `category_id` restrict them to the incidents currently \
         in that team / category.",
    )
    .query(Query::AnalyticsFilters),
    op(
        Method::GET,
        "/api/v1/analytics/performance",
        "getAnalyticsPerformance",
        "analytics",
        "The performance monitor's view of the tenant",
        200,
        Out::Json("AnalyticsPerformance"),
    )
    .describe(
        "Latency of the tenant's requests on the answering node since it started — per \
         category (`api` 100 ms, `auth` 50 ms, `db` 30 ms, `security` 10 ms, `integration` 5 s \
         by default) and per route template: p50/p95/p99 (upper bounds of log-spaced buckets), \
         violations of the budget and the current run of violations — and the tenant's most \
         recent repeated-violation alerts (N violations in a row; stored by every node). No \
         parameters (`422` for any).",
    )
    .errors(&[422]),
    // SLA timers.
    op(
        Method::GET,
        "/api/v1/incidents/{id}/sla",
        "getIncidentSla",
        "sla",
        "The SLA timers of an incident",
        200,
        Out::Json("IncidentSla"),
    )
    .describe(
        "The current response and resolution timers and every earlier cycle (a reopen starts a \
         new resolution cycle). Elapsed, remaining and percent are computed in business time on \
         the timer's calendar at the moment of the request; pauses (on hold) are excluded. \
         Visible to whoever may read the incident.",
    ),
    op(
        Method::GET,
        "/api/v1/sla/timers",
        "listSlaTimers",
        "sla",
        "List SLA timers (at risk, breached, paused …)",
        200,
        Out::Json("SlaTimerPage"),
    )
    .describe(
        "The current timer of each metric of the tenant's incidents, soonest due first. Page \
         with `page`/`limit` or `cursor` as for incidents.",
    )
    .query(Query::SlaTimers),
    // The audit trail.
    op(
        Method::GET,
        "/api/v1/audit/events",
        "listAuditEvents",
        "audit",
        "The tenant's event log (who did what, when, in answer to which request)",
        200,
        Out::Json("AuditEventPage"),
    )
    .describe(
        "The stored events of the caller's tenant, newest first in the log's reading order, \
         and only below the gap-free horizon, so a cursor walk never skips an event that \
         commits late. Page mode totals are exact up to 10,000 (then `total_items_exact: \
         false`).",
    )
    .query(Query::AuditEvents),
    op(
        Method::GET,
        "/api/v1/audit/streams/{stream_id}",
        "getAuditStream",
        "audit",
        "One stream's events, with its hash-chain verification",
        200,
        Out::Json("AuditStream"),
    )
    .describe(
        "The stream's events in version order and whether its hash chain (each event's hash \
         chained onto the previous one's) verifies as stored now. `404` for another tenant's \
         stream.",
    )
    .query(Query::Paging),
    op(
        Method::GET,
        "/api/v1/security/events",
        "listSecurityEvents",
        "audit",
        "The tenant's security log",
        200,
        Out::Json("AuditEventPage"),
    )
    .describe(
        "Logins and failed logins, refresh-token reuse, permission denials, API-key creation \
         and revocation, role and permission changes, audit exports: newest first.",
    )
    .query(Query::SecurityEvents),
    // Incidents.
    op(
        Method::GET,
        "/api/v1/incidents",
        "listIncidents",
        "incidents",
        "List incidents",
        200,
        Out::Json("IncidentPage"),
    )
    .describe(
        "Filters: a repeated parameter means OR (`status=new&status=assigned`), different \
         parameters combine with AND. Page with `page`/`limit` (totals included) or with \
         `cursor` (`cursor=` starts, then pass `pagination.next_cursor`; no totals). An unknown \
         parameter is `422`. Requesters (role `user`) see only the incidents they reported.",
    )
    .query(Query::Incidents),
    op(
        Method::POST,
        "/api/v1/incidents",
        "createIncident",
        "incidents",
        "Log an incident",
        201,
        Out::Json("IncidentDetail"),
    )
    .describe(
        "The caller is the reporter (for an API key: the user who created the key). Without \
         `priority` it is derived from `impact` × `urgency` (both default to `medium`) by the \
         tenant's priority matrix. Referenced users, teams and categories must exist (`422`).",
    )
    .body(Body::Json("IncidentCreate"))
    .idempotent()
    .created()
    .errors(&[409]),
    op(
        Method::GET,
        "/api/v1/incidents/{id}",
        "getIncident",
        "incidents",
        "An incident with its history, work notes and attachments",
        200,
        Out::Json("IncidentDetail"),
    )
    .describe(
        "Non-agents see only public work notes, and requesters only their own incidents (`404` \
         otherwise). The `ETag` is the incident's version, for `If-Match` on later writes. \
         With `as_of`, the incident as it was at that instant, replayed from its events (its \
         `ETag` is the version it had then).",
    )
    .query(Query::AsOf)
    .etag(),
    op(
        Method::PATCH,
        "/api/v1/incidents/{id}",
        "updateIncident",
        "incidents",
        "Update an incident",
        200,
        Out::Json("IncidentDetail"),
    )
    .describe(
        "Absent fields are kept; `priority: null` returns to the matrix-derived priority and \
         `category_id: null` clears the category. A `status` change follows the lifecycle rules \
         of the actions: `on_hold` needs `hold_reason`, `resolved` needs `resolution`, \
         `cancelled` and reopening a resolved incident need `reason`, `assigned` needs \
         `assignee_id` or `team_id`.",
    )
    .body(Body::Json("IncidentUpdate"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/incidents/{id}/assign",
        "assignIncident",
        "incidents",
        "Assign an incident to a person and/or a team",
        200,
        Out::Json("IncidentDetail"),
    )
    .describe(ACTION_NOTE)
    .body(Body::Optional("AssignRequest"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/incidents/{id}/start",
        "startIncident",
        "incidents",
        "Start work on an incident",
        200,
        Out::Json("IncidentDetail"),
    )
    .describe(ACTION_NOTE)
    .body(Body::Optional("EmptyRequest"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/incidents/{id}/hold",
        "holdIncident",
        "incidents",
        "Put an incident on hold",
        200,
        Out::Json("IncidentDetail"),
    )
    .describe(ACTION_NOTE)
    .body(Body::Optional("HoldRequest"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/incidents/{id}/resume",
        "resumeIncident",
        "incidents",
        "Resume work on an incident on hold",
        200,
        Out::Json("IncidentDetail"),
    )
    .describe(ACTION_NOTE)
    .body(Body::Optional("EmptyRequest"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/incidents/{id}/resolve",
        "resolveIncident",
        "incidents",
        "Resolve an incident",
        200,
        Out::Json("IncidentDetail"),
    )
    .describe(ACTION_NOTE)
    .body(Body::Optional("ResolveRequest"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/incidents/{id}/reopen",
        "reopenIncident",
        "incidents",
        "Reopen a resolved incident",
        200,
        Out::Json("IncidentDetail"),
    )
    .describe(ACTION_NOTE)
    .body(Body::Optional("ReasonRequest"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/incidents/{id}/close",
        "closeIncident",
        "incidents",
        "Close a resolved incident",
        200,
        Out::Json("IncidentDetail"),
    )
    .describe(ACTION_NOTE)
    .body(Body::Optional("EmptyRequest"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/incidents/{id}/cancel",
        "cancelIncident",
        "incidents",
        "Cancel an incident",
        200,
        Out::Json("IncidentDetail"),
    )
    .describe(ACTION_NOTE)
    .body(Body::Optional("ReasonRequest"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/incidents/{id}/work-notes",
        "addWorkNote",
        "incidents",
        "Add a work note or comment",
        201,
        Out::Json("IncidentDetail"),
    )
    .describe(
        "Answers with the whole incident. Requesters may only comment on their own incidents \
         (`404` otherwise); their notes are always public `work_note`s.",
    )
    .body(Body::Json("WorkNoteCreate"))
    .etag()
    .errors(&[409]),
    op(
        Method::POST,
        "/api/v1/incidents/{id}/attachments",
        "uploadAttachment",
        "incidents",
        "Attach a file to an incident",
        201,
        Out::Json("IncidentDetail"),
    )
    .describe(
        "One multipart part named `file` (its file name and content type are recorded). Larger \
         than `EVENTDESK_ATTACHMENT_MAX_BYTES` is `413`. Answers with the whole incident.",
    )
    .body(Body::Multipart("AttachmentUpload"))
    .etag()
    .errors(&[409]),
    op(
        Method::GET,
        "/api/v1/incidents/{id}/attachments/{aid}",
        "downloadAttachment",
        "incidents",
        "Download an attachment",
        200,
        Out::File,
    )
    .describe(
        "The file, with its recorded content type and `Content-Disposition: attachment`. Only \
         attachments of incidents visible to the caller can be downloaded.",
    ),
    // Directory.
    op(
        Method::GET,
        "/api/v1/users",
        "listUsers",
        "users",
        "List the tenant's users",
        200,
        Out::Json("UserPage"),
    )
    .query(Query::Paging),
    op(
        Method::POST,
        "/api/v1/users",
        "createUser",
        "users",
        "Register a user in the caller's tenant",
        201,
        Out::Json("User"),
    )
    .describe("A username or e-mail address already taken is `422` naming the field.")
    .body(Body::Json("UserCreate"))
    .created()
    .errors(&[409]),
    op(
        Method::GET,
        "/api/v1/users/{id}",
        "getUser",
        "users",
        "A user",
        200,
        Out::Json("User"),
    ),
    op(
        Method::PATCH,
        "/api/v1/users/{id}",
        "updateUser",
        "users",
        "Update a user's profile or role",
        200,
        Out::Json("User"),
    )
    .describe(
        "Absent fields are kept; `phone: null` and `department: null` clear them. \
         `custom_role_id` assigns one of the tenant's custom roles (its permissions replace the \
         built-in role's, which stays the base role that decides incident scoping; the change \
         applies from the user's next login or refresh), `null` removes it. An unknown role, or \
         another tenant's, is `404`; a deactivated one is `422` on `custom_role_id`. Nobody \
         grants what they do not hold: a `role` or `custom_role_id` carrying a permission the \
         caller lacks is `422` naming that field (and removing a custom role counts as granting \
         the user's built-in role). Role and custom role changes are recorded in the security \
         log.",
    )
    .body(Body::Json("UserUpdate"))
    .etag()
    .errors(&[409]),
    op(
        Method::POST,
        "/api/v1/users/{id}/deactivate",
        "deactivateUser",
        "users",
        "Deactivate a user",
        200,
        Out::Json("User"),
    )
    .describe(
        "The user can no longer log in, and their refresh tokens are revoked. Deactivating \
         oneself is `422 cannot_deactivate_self`. No body.",
    )
    .etag()
    .errors(&[409, 422]),
    op(
        Method::POST,
        "/api/v1/users/{id}/reactivate",
        "reactivateUser",
        "users",
        "Reactivate a user",
        200,
        Out::Json("User"),
    )
    .describe("No body.")
    .etag()
    .errors(&[409, 422]),
    op(
        Method::GET,
        "/api/v1/teams",
        "listTeams",
        "teams",
        "List the tenant's teams",
        200,
        Out::Json("TeamPage"),
    )
    .query(Query::Paging),
    op(
        Method::POST,
        "/api/v1/teams",
        "createTeam",
        "teams",
        "Create a team (assignment group)",
        201,
        Out::Json("Team"),
    )
    .body(Body::Json("TeamCreate"))
    .created()
    .errors(&[409]),
    op(
        Method::GET,
        "/api/v1/teams/{id}",
        "getTeam",
        "teams",
        "A team",
        200,
        Out::Json("Team"),
    ),
    op(
        Method::PATCH,
        "/api/v1/teams/{id}",
        "updateTeam",
        "teams",
        "Update a team and its membership",
        200,
        Out::Json("Team"),
    )
    .describe(
        "Absent fields are kept; `manager_id: null` and `description: null` clear them. \
         `add_members` and `remove_members` change the membership; every user must exist \
         (`422`).",
    )
    .body(Body::Json("TeamUpdate"))
    .errors(&[409]),
    op(
        Method::POST,
        "/api/v1/teams/{id}/deactivate",
        "deactivateTeam",
        "teams",
        "Deactivate a team",
        200,
        Out::Json("Team"),
    )
    .describe("No body.")
    .errors(&[409, 422]),
    op(
        Method::GET,
        "/api/v1/categories",
        "listCategories",
        "categories",
        "List the tenant's categories",
        200,
        Out::Json("CategoryPage"),
    )
    .query(Query::Paging),
    op(
        Method::POST,
        "/api/v1/categories",
        "createCategory",
        "categories",
        "Create a category",
        201,
        Out::Json("Category"),
    )
    .body(Body::Json("CategoryCreate"))
    .created()
    .errors(&[409]),
    op(
        Method::GET,
        "/api/v1/categories/{id}",
        "getCategory",
        "categories",
        "A category",
        200,
        Out::Json("Category"),
    ),
    op(
        Method::PATCH,
        "/api/v1/categories/{id}",
        "updateCategory",
        "categories",
        "Update or move a category",
        200,
        Out::Json("Category"),
    )
    .describe(
        "Absent fields are kept; `parent_id: null` makes it a root and `description: null` \
         clears the description. Moving a category under one of its own descendants is `422` on \
         `parent_id`.",
    )
    .body(Body::Json("CategoryUpdate"))
    .errors(&[409]),
    op(
        Method::POST,
        "/api/v1/categories/{id}/deactivate",
        "deactivateCategory",
        "categories",
        "Deactivate a category",
        200,
        Out::Json("Category"),
    )
    .describe("No body.")
    .errors(&[409, 422]),
    // Custom roles.
    op(
        Method::GET,
        "/api/v1/roles",
        "listRoles",
        "roles",
        "List the tenant's custom roles",
        200,
        Out::Json("CustomRolePage"),
    )
    .describe(
        "Active and deactivated roles, by name. The built-in roles (`admin`, `manager`, \
         `operator`, `user`, `viewer`) are not listed: their permissions are the role matrix.",
    )
    .query(Query::Paging),
    op(
        Method::POST,
        "/api/v1/roles",
        "createRole",
        "roles",
        "Define a custom role",
        201,
        Out::Json("CustomRole"),
    )
    .describe(
        "A named set of `resource:action` permissions. An unknown permission, or the platform \
         permission `tenant:manage`, is `422` naming `permissions[i]`; so is a permission the \
         caller does not hold (nobody grants what they lack). A built-in role's name is `422` on \
         `name`; the name of another active role of the tenant (in any letter case) is `409`. \
         Recorded in the security log.",
    )
    .body(Body::Json("CustomRoleCreate"))
    .created()
    .errors(&[409]),
    op(
        Method::GET,
        "/api/v1/roles/{id}",
        "getRole",
        "roles",
        "A custom role",
        200,
        Out::Json("CustomRole"),
    )
    .etag(),
    op(
        Method::PATCH,
        "/api/v1/roles/{id}",
        "updateRole",
        "roles",
        "Update a custom role",
        200,
        Out::Json("CustomRole"),
    )
    .describe(
        "Absent fields are kept; `description: null` clears it; `permissions` replaces the whole \
         set. Permissions are checked as for a create, and every permission *added* must be \
         one the caller holds (`422` naming `permissions[i]`). The role's holders hold the new \
         set within 2 seconds, without new tokens. A deactivated role is `422 deactivated`. \
         Recorded in the security log.",
    )
    .body(Body::Json("CustomRoleUpdate"))
    .conditional()
    .errors(&[409]),
    op(
        Method::POST,
        "/api/v1/roles/{id}/deactivate",
        "deactivateRole",
        "roles",
        "Deactivate (delete) a custom role",
        200,
        Out::Json("CustomRole"),
    )
    .describe(
        "No body. The role stays readable and its name is free again; its holders hold no \
         permission from then on (within 2 seconds). Recorded in the security log.",
    )
    .conditional(),
    // SLA configuration.
    op(
        Method::POST,
        "/api/v1/sla/calendars",
        "createSlaCalendar",
        "sla",
        "Create a business-hours calendar",
        201,
        Out::Json("SlaCalendar"),
    )
    .describe(
        "An IANA `time_zone`, weekly opening ranges in local wall-clock time (several per day; \
         `end` at or before `start` runs overnight into the next day; `24:00` ends a day) and \
         holidays (whole days, or partial closures in `closed`). An invalid definition is `422` \
         naming the field, e.g. `weekly_hours[2].end` for an overlapping range.",
    )
    .body(Body::Json("SlaCalendarCreate"))
    .created()
    .errors(&[409]),
    op(
        Method::GET,
        "/api/v1/sla/calendars",
        "listSlaCalendars",
        "sla",
        "List business-hours calendars",
        200,
        Out::Json("SlaCalendarPage"),
    )
    .describe(
        "The built-in calendar comes first: `\"id\": null`, `\"name\": \"24x7\"`, \
         `\"builtin\": true` (open all the time, UTC, no holidays). Policies and targets without \
         a calendar are measured on it; it cannot be read by id or changed. It is the first item \
         of the first page and counts in `total_items`. Then the tenant's calendars (active and \
         deactivated) by name.",
    )
    .query(Query::Paging),
    op(
        Method::GET,
        "/api/v1/sla/calendars/{id}",
        "getSlaCalendar",
        "sla",
        "A business-hours calendar",
        200,
        Out::Json("SlaCalendar"),
    )
    .describe("The `ETag` is the calendar's version, which SLA timers record.")
    .etag(),
    op(
        Method::PATCH,
        "/api/v1/sla/calendars/{id}",
        "updateSlaCalendar",
        "sla",
        "Update a business-hours calendar",
        200,
        Out::Json("SlaCalendar"),
    )
    .describe(
        "Absent fields are kept; `weekly_hours` and `holidays` replace the whole list. The \
         resulting definition is validated as a whole (`422` naming the field). A deactivated \
         calendar is `422 deactivated`. Every change bumps the version.",
    )
    .body(Body::Json("SlaCalendarUpdate"))
    .conditional(),
    op(
        Method::DELETE,
        "/api/v1/sla/calendars/{id}",
        "deleteSlaCalendar",
        "sla",
        "Deactivate a business-hours calendar",
        200,
        Out::Json("SlaCalendar"),
    )
    .describe(
        "Deactivates (the calendar stays readable, and timers already measured on it keep it). \
         `409 calendar_in_use` while an active policy refers to it, as its calendar or a \
         target's. Answers with the deactivated calendar.",
    )
    .conditional(),
    op(
        Method::POST,
        "/api/v1/sla/calendars/{id}/holidays/import",
        "importSlaCalendarHolidays",
        "sla",
        "Import holidays from an iCalendar file",
        200,
        Out::Json("SlaCalendar"),
    )
    .describe(
        "The `ics` text (RFC 5545) is read in the calendar's own time zone; yearly recurring \
         events are expanded over `from_year`..=`to_year` (default: this year and the next; at \
         most 10 years). Imported holidays are merged in (one on a date that already has a \
         holiday replaces it), or replace all holidays with `\"replace\": true`. A line the \
         parser rejects is `422` on field `ics`, the message starting with `line N:`.",
    )
    .body(Body::Json("HolidayImport"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/sla/policies",
        "createSlaPolicy",
        "sla",
        "Create an SLA policy",
        201,
        Out::Json("SlaPolicy"),
    )
    .describe(
        "Policies are tried in `rank` order (then oldest first); the first active one whose \
         `condition` matches an incident governs it (every given condition field must match; \
         `{}` matches all). Without a match the built-in default applies (24x7: critical 15 min \
         / 4 h, high 1 h / 8 h, medium 4 h / 24 h, low 8 h / 72 h). Targets are in business \
         minutes (1 to 525600), at most one per priority; each is measured on its own \
         `calendar_id`, else the policy's, else 24x7. A calendar, team or category that is not \
         the tenant's (or a deactivated calendar) is `422` naming the field.",
    )
    .body(Body::Json("SlaPolicyCreate"))
    .created()
    .errors(&[409]),
    op(
        Method::GET,
        "/api/v1/sla/policies",
        "listSlaPolicies",
        "sla",
        "List SLA policies in evaluation order",
        200,
        Out::Json("SlaPolicyPage"),
    )
    .describe("By rank, then oldest first; active and deactivated policies.")
    .query(Query::Paging),
    op(
        Method::GET,
        "/api/v1/sla/policies/{id}",
        "getSlaPolicy",
        "sla",
        "An SLA policy",
        200,
        Out::Json("SlaPolicy"),
    )
    .describe("The `ETag` is the policy's version, which SLA timers record.")
    .etag(),
    op(
        Method::PATCH,
        "/api/v1/sla/policies/{id}",
        "updateSlaPolicy",
        "sla",
        "Update an SLA policy",
        200,
        Out::Json("SlaPolicy"),
    )
    .describe(
        "Absent fields are kept; `condition` and `targets` replace the whole value; \
         `calendar_id: null` returns to the built-in 24x7 calendar. A deactivated policy may be \
         edited too (it stays deactivated). Every change bumps the version.",
    )
    .body(Body::Json("SlaPolicyUpdate"))
    .conditional(),
    op(
        Method::DELETE,
        "/api/v1/sla/policies/{id}",
        "deleteSlaPolicy",
        "sla",
        "Deactivate an SLA policy",
        200,
        Out::Json("SlaPolicy"),
    )
    .describe(
        "Takes the policy out of force (it stays readable; `POST …/reactivate` brings it back). \
         Answers with the deactivated policy.",
    )
    .conditional(),
    op(
        Method::POST,
        "/api/v1/sla/policies/{id}/reactivate",
        "reactivateSlaPolicy",
        "sla",
        "Reactivate an SLA policy",
        200,
        Out::Json("SlaPolicy"),
    )
    .describe(
        "No body. `409 calendar_deactivated` if a calendar it refers to was deactivated \
         meanwhile: change the policy's calendars first.",
    )
    .conditional(),
    // The integration bus (ADR 0016).
    op(
        Method::GET,
        "/api/v1/webhooks",
        "listWebhooks",
        "webhooks",
        "List the tenant's webhooks (never a secret)",
        200,
        Out::Json("WebhookList"),
    ),
    op(
        Method::POST,
        "/api/v1/webhooks",
        "createWebhook",
        "webhooks",
        "Subscribe a URL to the tenant's incident events",
        201,
        Out::Json("WebhookWithSecret"),
    )
    .describe(bus::WEBHOOK_NOTE)
    .body(Body::Json("WebhookCreate"))
    .located(),
    op(
        Method::GET,
        "/api/v1/webhooks/{id}",
        "getWebhook",
        "webhooks",
        "A webhook",
        200,
        Out::Json("Webhook"),
    ),
    op(
        Method::PATCH,
        "/api/v1/webhooks/{id}",
        "updateWebhook",
        "webhooks",
        "Change a webhook's URL, filter, description or status",
        200,
        Out::Json("Webhook"),
    )
    .describe("A new `url` passes the SSRF guard (`422` naming `url`).")
    .body(Body::Json("WebhookUpdate")),
    op(
        Method::DELETE,
        "/api/v1/webhooks/{id}",
        "deleteWebhook",
        "webhooks",
        "Delete a webhook and its delivery log",
        204,
        Out::Empty,
    ),
    op(
        Method::POST,
        "/api/v1/webhooks/{id}/rotate-secret",
        "rotateWebhookSecret",
        "webhooks",
        "Replace a webhook's secret",
        200,
        Out::Json("WebhookWithSecret"),
    )
    .describe(
        "The new `secret` appears only in this response. The old one keeps signing beside it \
         for `grace_period_seconds` (default 24 h): `webhook-signature` then carries both \
         signatures, space-separated.",
    )
    .body(Body::Optional("WebhookSecretRotate")),
    op(
        Method::GET,
        "/api/v1/webhooks/{id}/deliveries",
        "listWebhookDeliveries",
        "webhooks",
        "The delivery log: every delivery with its attempts",
        200,
        Out::Json("WebhookDeliveryList"),
    )
    .describe("Newest first; each attempt with its status code, latency and error.")
    .query(Query::Deliveries),
    op(
        Method::POST,
        "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
        "redeliverWebhookDelivery",
        "webhooks",
        "Send a dead delivery again",
        202,
        Out::Json("WebhookDelivery"),
    )
    .describe(
        "A `dead` (or `succeeded`, `skipped`) delivery becomes `pending`, due now, with a new \
         round of the retry policy and the same `webhook-id`. `409` for a `pending` or \
         `dry_run` one; `422 test_mode_key` for a test-mode API key (it never sends).",
    )
    .errors(&[409, 422]),
    op(
        Method::GET,
        "/api/v1/integrations",
        "listIntegrations",
        "integrations",
        "The tenant's Slack and Jira settings (never a credential)",
        200,
        Out::Json("IntegrationList"),
    ),
    op(
        Method::GET,
        "/api/v1/integrations/slack",
        "getSlackIntegration",
        "integrations",
        "The Slack settings",
        200,
        Out::Json("SlackIntegration"),
    ),
    op(
        Method::PUT,
        "/api/v1/integrations/slack",
        "putSlackIntegration",
        "integrations",
        "Configure Slack (incoming webhook)",
        200,
        Out::Json("SlackIntegration"),
    )
    .describe(
        "Messages (Block Kit `blocks`) for new critical incidents, SLA warnings and breaches, \
         and a daily summary at `daily_summary_time` in `time_zone`. Slack's `429` is \
         honoured (`Retry-After`). The URL is stored encrypted and never returned \
         (`configured: true`); it passes the SSRF guard (`422` naming `webhook_url`).",
    )
    .body(Body::Json("SlackIntegrationUpdate")),
    op(
        Method::GET,
        "/api/v1/integrations/jira",
        "getJiraIntegration",
        "integrations",
        "The Jira settings",
        200,
        Out::Json("JiraIntegration"),
    ),
    op(
        Method::PUT,
        "/api/v1/integrations/jira",
        "putJiraIntegration",
        "integrations",
        "Configure Jira (REST v3)",
        200,
        Out::Json("JiraIntegration"),
    )
    .describe(
        "Creates an issue (`POST /rest/api/3/issue`, description in Atlassian Document \
         Format) for the configured triggers, records its key on the incident \
         (`IncidentExternalLinked`), and comments later changes. Email and API token are \
         stored encrypted and never returned (`configured: true`); `base_url` passes the SSRF \
         guard (`422` naming `base_url`).",
    )
    .body(Body::Json("JiraIntegrationUpdate")),
    // API keys.
    op(
        Method::GET,
        "/api/v1/api-keys",
        "listApiKeys",
        "api-keys",
        "List the tenant's API keys (prefixes only, never a secret)",
        200,
        Out::Json("ApiKeyList"),
    ),
    op(
        Method::POST,
        "/api/v1/api-keys",
        "createApiKey",
        "api-keys",
        "Create an API key",
        201,
        Out::Json("ApiKeyCreated"),
    )
    .describe(
        "The plaintext key (`api_key`) appears only in this response. A key cannot hold a \
         permission its creator lacks (`422`); without `permissions` it gets the creator's.",
    )
    .body(Body::Json("ApiKeyCreate")),
    op(
        Method::DELETE,
        "/api/v1/api-keys/{id}",
        "revokeApiKey",
        "api-keys",
        "Revoke an API key",
        204,
        Out::Empty,
    ),
    // Platform.
    op(
        Method::GET,
        "/api/v1/tenants",
        "listTenants",
        "tenants",
        "List tenants (platform key only)",
        200,
        Out::Json("TenantPage"),
    )
    .query(Query::Paging),
    op(
        Method::POST,
        "/api/v1/tenants",
        "createTenant",
        "tenants",
        "Create a tenant (platform key only)",
        201,
        Out::Json("Tenant"),
    )
    .describe("Without `priority_matrix` the tenant gets the ITIL default matrix.")
    .body(Body::Json("TenantCreate"))
    .created()
    .errors(&[409]),
    // Live events and rate limits (ADR 0019).
    op(
        Method::GET,
        crate::auth::WS_PATH,
        "liveEvents",
        "live",
        "Live incident events of the tenant (WebSocket)",
        101,
        Out::Empty,
    )
    .describe(live::WS_NOTE)
    .query(Query::Live),
    op(
        Method::GET,
        "/api/v1/rate-limits",
        "getRateLimits",
        "rate-limits",
        "The tenant's effective rate limits",
        200,
        Out::Json("RateLimits"),
    )
    .describe(
        "Every request counts against its tenant's quota for its auth type (JWT, live key, \
         test key); requests without valid credentials count per client IP. Answers carry \
         `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds) and \
         `RateLimit-Policy`; past the limit, `429` with `Retry-After`.",
    ),
    op(
        Method::GET,
        "/api/v1/tenants/{id}/rate-limits",
        "getTenantRateLimits",
        "rate-limits",
        "A tenant's effective rate limits (platform key only)",
        200,
        Out::Json("RateLimits"),
    ),
    op(
        Method::PUT,
        "/api/v1/tenants/{id}/rate-limits",
        "putTenantRateLimits",
        "rate-limits",
        "Set a tenant's rate-limit overrides (platform key only)",
        200,
        Out::Json("RateLimits"),
    )
    .describe(
        "Replaces the tenant's overrides; an auth type left out uses the node's default. \
         Nodes apply it within 5 seconds. Recorded in the tenant's security log.",
    )
    .body(Body::Json("RateLimitsPut")),
    // Health and the document itself.
    op(
        Method::GET,
        "/healthz",
        "healthz",
        "health",
        "Liveness: the process answers",
        200,
        Out::Json("Health"),
    ),
    op(
        Method::GET,
        "/readyz",
        "readyz",
        "health",
        "Readiness: the database answers and is migrated",
        200,
        Out::Json("Readiness"),
    ),
    op(
        Method::GET,
        OPENAPI_PATH,
        "getOpenApi",
        "meta",
        "This OpenAPI document",
        200,
        Out::Json("OpenApiDocument"),
    ),
];

/// The table row of `(method, route)`.
fn operation_spec(method: &Method, route: &str) -> Option<&'static Op> {
    all_operations().find(|o| o.method == *method && o.route == route)
}

/// Every row: [`OPERATIONS`] and those of the parts kept in their own modules.
fn all_operations() -> impl Iterator<Item = &'static Op> {
    OPERATIONS.iter().chain(itil::OPERATIONS)
}

/// Every documented `(method, route, access)`: the routes needing a permission, those needing
/// only credentials, then the public ones.
fn declared_routes() -> impl Iterator<Item = (&'static Method, &'static str, Access)> {
    PERMISSIONS
        .iter()
        .map(|(m, r, p)| (m, *r, Access::Permission(*p)))
        .chain(
            AUTHENTICATED
                .iter()
                .map(|(m, r)| (m, *r, Access::Authenticated)),
        )
        .chain(PUBLIC_ROUTES.iter().map(|(m, r)| (m, *r, Access::Public)))
}

/// The `{name}` parameters of a route template.
fn path_params(route: &str) -> impl Iterator<Item = &str> {
    route
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

/// Whether the route answers from the database (so it can be 503/500) and is rate limited.
fn is_api(route: &str) -> bool {
    route.starts_with("/api/v1/") && route != OPENAPI_PATH
}

/// The error statuses of an operation: implied by its shape, plus its own.
fn error_statuses(op: &Op, access: Access) -> Vec<u16> {
    let mut s: Vec<u16> = op.errors.to_vec();
    match access {
        // 422: a malformed `X-Consistency-Token`.
        Access::Permission(_) => s.extend([401, 403, 422]),
        Access::Authenticated => s.extend([401, 422]),
        Access::Public => {}
    }
    if path_params(op.route).next().is_some() {
        s.push(404);
    }
    match op.body {
        Body::None => {}
        Body::Json(_) => s.extend([400, 413, 415, 422]),
        Body::Optional(_) | Body::Multipart(_) => s.extend([400, 413, 422]),
    }
    if op.query != Query::None {
        s.push(422);
    }
    if takes_idempotency_key(op) {
        // 409: a request with the same key is still running.
        s.extend([400, 409, 422]);
    }
    if op.if_match {
        // 409: a concurrent write between our read and append; 412: `If-Match` is stale.
        s.extend([400, 409, 412]);
    }
    if is_api(op.route) {
        s.extend([429, 500, 503]);
    }
    s.sort_unstable();
    s.dedup();
    s
}

/// The shared error responses (`#/components/responses/…`), by status.
const ERROR_RESPONSES: &[(u16, &str, &str)] = &[
    (
        400,
        "BadRequest",
        "`bad_request`: the body is not JSON, or a header is malformed.",
    ),
    (
        401,
        "Unauthorized",
        "`unauthorized`: missing, invalid or expired credentials (`invalid_credentials` for a \
         failed login).",
    ),
    (
        403,
        "Forbidden",
        "`forbidden`: authenticated, but the required permission is missing.",
    ),
    (
        404,
        "NotFound",
        "`not_found`: no such object in the caller's tenant (also for another tenant's object \
         or an id that is not a UUID).",
    ),
    (
        409,
        "Conflict",
        "`conflict`: the object was modified concurrently (retry), or it already exists.",
    ),
    (
        412,
        "PreconditionFailed",
        "`precondition_failed`: `If-Match` does not match the current `ETag`; read the object \
         again.",
    ),
    (
        413,
        "PayloadTooLarge",
        "`payload_too_large`: the body exceeds 1 MiB.",
    ),
    (
        415,
        "UnsupportedMediaType",
        "`unsupported_media_type`: the body must be `application/json`.",
    ),
    (
        422,
        "UnprocessableEntity",
        "`validation_error` (each invalid or unknown field named in `details`), a domain rule's \
         code such as `invalid_transition`, or `idempotency_key_reused`.",
    ),
    (
        429,
        "TooManyRequests",
        "`rate_limited`: too many requests; retry after `Retry-After` seconds.",
    ),
    (
        500,
        "InternalError",
        "`internal_error`: an unexpected failure (logged; no details are disclosed).",
    ),
    (
        503,
        "ServiceUnavailable",
        "`unavailable`: the database is unavailable.",
    ),
];

fn error_response_name(status: u16) -> Option<&'static str> {
    ERROR_RESPONSES
        .iter()
        .find(|(s, _, _)| *s == status)
        .map(|(_, n, _)| *n)
}

// ------------------------------------------------------------------------------------------
// The document
// ------------------------------------------------------------------------------------------

/// The OpenAPI document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, route, access) in declared_routes() {
        let operation = match operation_spec(method, route) {
            Some(op) => operation(op, access),
            None => undocumented(method, route, access),
        };
        let item = paths
            .entry(route.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(item) = item.as_object_mut() {
            item.insert(method.as_str().to_ascii_lowercase(), operation);
        }
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "eventdesk API",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "Event-sourced, multi-tenant ITSM backend",
            "description": INFO_DESCRIPTION,
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        },
        "tags": [
            { "name": "auth", "description": "Login, token refresh and the signed-in user." },
            { "name": "incidents", "description": "Incidents: list, log, update, lifecycle actions and work notes." },
            { "name": "users", "description": "The tenant's users (tenant administration)." },
            { "name": "teams", "description": "Assignment groups." },
            { "name": "categories", "description": "Incident categories (a tree)." },
            { "name": "roles", "description": "The tenant's custom roles: named permission sets." },
            { "name": "sla", "description": "SLA: business-hours calendars, policies and timers." },
            { "name": "analytics", "description": "Dashboards: open incidents, trends, MTTR/MTTA, SLA compliance and backlog, from the analytics projection (exact figures)." },
            { "name": "api-keys", "description": "API keys for integrations." },
            { "name": "webhooks", "description": "Webhook subscriptions of the integration bus, signed the Standard Webhooks way, with their delivery log." },
            { "name": "integrations", "description": "Slack and Jira settings of the integration bus." },
            { "name": "audit", "description": "The audit trail: the event log, streams with their hash-chain verification, the security log." },
            { "name": "tenants", "description": "Organisations (platform key only)." },
            { "name": "live", "description": "Live incident events over WebSocket, resumable from a log position." },
            { "name": "rate-limits", "description": "Per-tenant, per-auth-type rate limits and their overrides." },
            { "name": "cmdb", "description": "The CMDB: configuration items, their types and relationships, impact analysis." },
            { "name": "problems", "description": "Problems, their linked incidents, and the known-error database." },
            { "name": "changes", "description": "Changes: CAB approvals, tasks, the calendar and conflicts." },
            { "name": "health", "description": "Liveness and readiness probes." },
            { "name": "meta", "description": "This document." },
        ],
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "responses": error_responses(),
            "parameters": parameters(),
            "headers": headers(),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "`Authorization: Bearer <access_token>` with a token from \
                        `POST /api/v1/auth/login`, or `Authorization: Bearer qg_…` with an API key.",
                },
                "apiKeyAuth": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": "An API key (`qg_live_…` or `qg_test_…`) from \
                        `POST /api/v1/api-keys`. Takes precedence over `Authorization`.",
                },
            },
        },
    })
}

const INFO_DESCRIPTION: &str = "Every `/api/v1` route but login, refresh and this document needs \
credentials: a JWT access token or an API key (see the security schemes). Each operation names \
the permission it needs (`x-required-permission`); built-in roles hold the permissions of the \
role matrix, an API key those it was created with. Everything is scoped to the caller's tenant: \
another tenant's object is `404`.\n\n\
Errors always have the body `{\"error\": {\"code\", \"message\", \"details\": [{\"field\", \
\"message\"}]}}`. Request bodies are strict: an unknown field is `422` naming it. Incident writes \
answer with the incident and its `ETag`; send it back as `If-Match` to make a write conditional \
(`412` if the incident changed meanwhile). Writes are visible to reads as soon as they return.";

/// The document as served.
static DOCUMENT_JSON: LazyLock<String> = LazyLock::new(|| document().to_string());

/// `GET /api/v1/openapi.json`.
pub async fn openapi_json() -> axum::response::Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT_JSON.as_str(),
    )
        .into_response()
}

/// The Swagger UI at [`DOCS_PATH`], reading [`OPENAPI_PATH`], with its own CSP (the app's
/// default `default-src 'none'` would stop it from running).
pub fn docs<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let config = utoipa_swagger_ui::Config::new([OPENAPI_PATH])
        .validator_url("none")
        .display_operation_id(true)
        .persist_authorization(false);
    Router::from(utoipa_swagger_ui::SwaggerUi::new(DOCS_PATH).config(config)).layer(
        SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CSP),
        ),
    )
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The security requirement of a route needing credentials: a JWT or an API key.
fn security() -> Value {
    json!([{ "bearerAuth": [] }, { "apiKeyAuth": [] }])
}

/// Adds `security` and `x-required-permission` for `access`; returns the sentence naming it.
fn apply_access(o: &mut Map<String, Value>, access: Access) -> Option<String> {
    match access {
        Access::Permission(p) => {
            o.insert("x-required-permission".into(), json!(p.to_string()));
            o.insert("security".into(), security());
            let platform = if p == eventdesk_auth::rbac::PLATFORM {
                " (held only by the platform API key)"
            } else {
                ""
            };
            Some(format!("Required permission: `{p}`{platform}."))
        }
        Access::Authenticated => {
            o.insert("security".into(), security());
            Some("Any authenticated caller (no particular permission).".to_owned())
        }
        Access::Public => None,
    }
}

fn operation(op: &Op, access: Access) -> Value {
    let mut o = Map::new();
    o.insert("operationId".into(), json!(op.operation_id));
    o.insert("tags".into(), json!([op.tag]));
    o.insert("summary".into(), json!(op.summary));
    let mut description = op.description.to_owned();
    if let Some(sentence) = apply_access(&mut o, access) {
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str(&sentence);
    }
    if !description.is_empty() {
        o.insert("description".into(), json!(description));
    }

    let mut params: Vec<Value> = path_params(op.route)
        .map(|name| {
            json!({
                "name": name,
                "in": "path",
                "required": true,
                "description": format!("{} (a UUID; anything else is `404`).", param_description(name)),
                "schema": { "type": "string", "format": "uuid" },
            })
        })
        .collect();
    match op.query {
        Query::None => {}
        Query::Paging => params.extend(paging_params()),
        Query::Incidents => params.extend(incident_query_params()),
        Query::SlaTimers => params.extend(sla_timer_query_params()),
        Query::AuditEvents => params.extend(audit_query_params(true)),
        Query::SecurityEvents => params.extend(audit_query_params(false)),
        Query::Cis => params.extend(ci_query_params()),
        Query::CiRelationships => params.extend(ci_relationship_query_params()),
        Query::Impact => params.push(json!({
            "name": "depth",
            "in": "query",
            "description": format!(
                "How many relationships away to look (default {DEFAULT_IMPACT_DEPTH}, at most \
                 {MAX_IMPACT_DEPTH}; anything else is `422`)."
            ),
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_IMPACT_DEPTH,
                "default": DEFAULT_IMPACT_DEPTH,
            },
        })),
        Query::AnalyticsFilters => params.extend(analytics_query_params(false, false)),
        Query::AnalyticsRange => params.extend(analytics_query_params(true, false)),
        Query::AnalyticsTrends => params.extend(analytics_query_params(true, true)),
        Query::Deliveries => params.extend(bus::delivery_query_params()),
        Query::Live => params.extend(live::ws_query_params()),
        Query::Problems => {
            params.extend(itil::problem_query_params());
            params.extend(paging_params());
        }
        Query::KnownErrors => {
            params.extend(itil::known_error_query_params());
            params.extend(paging_params());
        }
        Query::Changes => {
            params.extend(itil::change_query_params());
            params.extend(paging_params());
        }
        Query::Calendar => params.extend(itil::calendar_query_params()),
        Query::AsOf => params.push(json!({
            "name": "as_of",
            "in": "query",
            "description": "An RFC 3339 instant: the incident as it was then, folded from its \
                            events with the domain's own `evolve` (`404` if it did not exist \
                            yet). Names of users, teams and categories are today's.",
            "schema": timestamp("The instant."),
        })),
    }
    if takes_idempotency_key(op) {
        params.push(json!({ "$ref": "#/components/parameters/IdempotencyKey" }));
    }
    if op.if_match {
        params.push(json!({ "$ref": "#/components/parameters/IfMatch" }));
    }
    if access != Access::Public {
        params.push(json!({ "$ref": "#/components/parameters/ConsistencyToken" }));
    }
    if !params.is_empty() {
        o.insert("parameters".into(), Value::Array(params));
    }

    match op.body {
        Body::None => {}
        Body::Json(schema) => {
            o.insert(
                "requestBody".into(),
                json!({
                    "required": true,
                    "content": { "application/json": { "schema": schema_ref(schema) } },
                }),
            );
        }
        Body::Optional(schema) => {
            o.insert(
                "requestBody".into(),
                json!({
                    "required": false,
                    "description": "May be empty (the same as `{}`).",
                    "content": { "application/json": { "schema": schema_ref(schema) } },
                }),
            );
        }
        Body::Multipart(schema) => {
            o.insert(
                "requestBody".into(),
                json!({
                    "required": true,
                    "content": { "multipart/form-data": { "schema": schema_ref(schema) } },
                }),
            );
        }
    }

    let mut responses = Map::new();
    let mut success = Map::new();
    success.insert(
        "description".into(),
        json!(match op.status {
            200 => "OK.",
            201 => "Created.",
            204 => "Done; no body.",
            _ => "Success.",
        }),
    );
    let mut hdrs = Map::new();
    match op.response {
        Out::Json(schema) => {
            success.insert(
                "content".into(),
                json!({ "application/json": { "schema": schema_ref(schema) } }),
            );
        }
        Out::Empty => {}
        Out::File => {
            // Arbitrary bytes in the recorded content type: OAS 3.1 describes those by the
            // media type alone, without a schema.
            success.insert("content".into(), json!({ "*/*": {} }));
            hdrs.insert(
                "Content-Disposition".into(),
                json!({ "$ref": "#/components/headers/ContentDisposition" }),
            );
        }
    }
    if op.etag {
        hdrs.insert(
            "ETag".into(),
            json!({ "$ref": "#/components/headers/ETag" }),
        );
    }
    if op.location {
        hdrs.insert(
            "Location".into(),
            json!({ "$ref": "#/components/headers/Location" }),
        );
    }
    if op.method == Method::POST && op.route == "/api/v1/incidents" {
        hdrs.insert(
            "X-Consistency-Token".into(),
            json!({ "$ref": "#/components/headers/ConsistencyToken" }),
        );
    }
    if !hdrs.is_empty() {
        success.insert("headers".into(), Value::Object(hdrs));
    }
    responses.insert(op.status.to_string(), Value::Object(success));
    for status in error_statuses(op, access) {
        if let Some(name) = error_response_name(status) {
            responses.insert(
                status.to_string(),
                json!({ "$ref": format!("#/components/responses/{name}") }),
            );
        }
    }
    if op.route == "/readyz" {
        responses.insert(
            "503".into(),
            json!({
                "description": "The database does not answer or is not migrated.",
                "content": { "application/json": { "schema": schema_ref("Readiness") } },
            }),
        );
    }
    o.insert("responses".into(), Value::Object(responses));
    Value::Object(o)
}

/// A declared route missing from [`OPERATIONS`]: listed, but flagged (and the tests fail).
fn undocumented(method: &Method, route: &str, access: Access) -> Value {
    let mut o = json!({
        "operationId": format!("{}{}", method.as_str().to_ascii_lowercase(), route.replace(['/', '{', '}', '-', '.'], "_")),
        "summary": "Not yet documented",
        "x-undocumented": true,
        "parameters": path_params(route).map(|name| json!({
            "name": name, "in": "path", "required": true, "schema": { "type": "string" },
        })).collect::<Vec<_>>(),
        "responses": { "default": { "description": "Not yet documented." } },
    });
    if let Some(obj) = o.as_object_mut() {
        apply_access(obj, access);
    }
    o
}

/// What a path parameter names.
fn param_description(name: &str) -> &'static str {
    match name {
        "aid" => "The attachment's id",
        "rel_id" => "The relationship's id",
        _ => "The object's id",
    }
}

/// Every authenticated POST honours `Idempotency-Key` (api/src/idempotency.rs).
fn takes_idempotency_key(op: &Op) -> bool {
    op.idempotency_key
        || (op.method == Method::POST
            && !PUBLIC_ROUTES
                .iter()
                .any(|(m, r)| *m == op.method && *r == op.route))
}

fn sla_timer_query_params() -> Vec<Value> {
    let param = |name: &str, schema: Value, description: &str| json!({ "name": name, "in": "query", "description": description, "schema": schema });
    let mut params = vec![
        param(
            "state",
            enumeration(
                eventdesk_projections::queries::sla_timers::TimerState::NAMES
                    .iter()
                    .copied(),
                "Which timers.",
            ),
            "`at_risk`: running, past the 75 % warning, not breached; `breached`: breached and \
             still running or paused; `paused`; `active` (running or paused); `stopped` \
             (completed or cancelled). Without it, every current timer.",
        ),
        param(
            "metric",
            enumeration(["response", "resolution"], "The metric."),
            "Only this metric.",
        ),
        param(
            "priority",
            schema_ref("Priority"),
            "Only incidents of this priority.",
        ),
        param("team_id", uuid("A team."), "Only incidents of this team."),
        param(
            "assignee_id",
            uuid("A user."),
            "Only incidents assigned to this user.",
        ),
    ];
    params.extend(paging_params());
    params
}

/// The query parameters of the analytics endpoints.
fn analytics_query_params(range: bool, trends: bool) -> Vec<Value> {
    let param = |name: &str, schema: Value, description: &str| json!({ "name": name, "in": "query", "description": description, "schema": schema });
    let mut params = Vec::new();
    if range {
        params.push(param(
            "from",
            timestamp("An instant."),
            "Start of the range (inclusive, RFC 3339). Default: `to` minus 30 days. After `to`: `422`.",
        ));
        params.push(param(
            "to",
            timestamp("An instant."),
            "End of the range (exclusive, RFC 3339). Default: now.",
        ));
    }
    if trends {
        params.push(param(
            "bucket",
            json!({
                "type": "string",
                "enum": eventdesk_projections::queries::analytics::Bucket::NAMES,
                "default": "day",
            }),
            "Bucket size, in local time of `tz`.",
        ));
        params.push(param(
            "tz",
            json!({ "type": "string", "default": "UTC" }),
            "IANA time zone of the buckets, e.g. `Europe/Berlin`, `Asia/Kolkata`.",
        ));
    }
    params.push(param(
        "team_id",
        uuid("A team."),
        "Only incidents of this team.",
    ));
    params.push(param(
        "category_id",
        uuid("A category."),
        "Only incidents of this category.",
    ));
    params
}

fn audit_query_params(whole_log: bool) -> Vec<Value> {
    let param = |name: &str, schema: Value, description: &str| json!({ "name": name, "in": "query", "description": description, "schema": schema });
    let mut params = Vec::new();
    if whole_log {
        params.push(param(
            "stream_id",
            uuid("A stream."),
            "Only this stream's events (an incident's, a user's …).",
        ));
        params.push(param(
            "stream_type",
            string("A stream type."),
            "Only streams of this type: `incident`, `user`, `team`, `category`, `role`, \
             `tenant`, `sla_calendar`, `sla_policy`, `ci`, `ci_type`, `ci_relationship`, \
             `security`.",
        ));
    }
    params.extend([
        param(
            "type",
            string("Event types, comma-separated."),
            "Only these event types, e.g. `IncidentCreated,IncidentResolved`.",
        ),
        param(
            "actor",
            string("An actor."),
            "Only events by this actor: `user:<id>`, `api_key:<id>`, `system:<name>`, or a bare \
             user or key id.",
        ),
        param("since", timestamp("An instant."), "Recorded at or after."),
        param("until", timestamp("An instant."), "Recorded before."),
    ]);
    params.extend(paging_params());
    params
}

fn ci_query_params() -> Vec<Value> {
    let mut v = vec![
        json!({
            "name": "type",
            "in": "query",
            "style": "form",
            "explode": true,
            "description": "Only CIs of any of these types (repeat for OR): a built-in key or a custom type's.",
            "schema": { "type": "array", "items": { "type": "string" } },
        }),
        json!({
            "name": "status",
            "in": "query",
            "style": "form",
            "explode": true,
            "description": "Only CIs with any of these statuses (repeat for OR).",
            "schema": { "type": "array", "items": schema_ref("CiStatus") },
        }),
        json!({
            "name": "owner_team_id",
            "in": "query",
            "description": "Only CIs owned by this team.",
            "schema": { "type": "string", "format": "uuid" },
        }),
        json!({
            "name": "q",
            "in": "query",
            "description": "Case-insensitive substring of the name.",
            "schema": { "type": "string", "maxLength": 200 },
        }),
    ];
    v.extend(paging_params());
    v
}

fn ci_relationship_query_params() -> Vec<Value> {
    let mut v = vec![
        json!({
            "name": "direction",
            "in": "query",
            "description": "Only `outgoing` (the CI is the source) or `incoming` (the CI is the target) relationships.",
            "schema": { "type": "string", "enum": Direction::NAMES },
        }),
        json!({
            "name": "type",
            "in": "query",
            "style": "form",
            "explode": true,
            "description": "Only relationships of any of these types (repeat for OR).",
            "schema": { "type": "array", "items": { "type": "string" } },
        }),
    ];
    v.extend(paging_params());
    v
}

fn paging_params() -> Vec<Value> {
    vec![
        json!({ "$ref": "#/components/parameters/Page" }),
        json!({ "$ref": "#/components/parameters/Limit" }),
        json!({ "$ref": "#/components/parameters/Cursor" }),
    ]
}

fn incident_query_params() -> Vec<Value> {
    let repeated = |name: &str, schema: &str, what: &str| {
        json!({
            "name": name,
            "in": "query",
            "style": "form",
            "explode": true,
            "description": format!("Only incidents with any of these {what} (repeat the parameter for OR)."),
            "schema": { "type": "array", "items": schema_ref(schema) },
        })
    };
    let id = |name: &str, what: &str| {
        json!({
            "name": name,
            "in": "query",
            "description": what,
            "schema": { "type": "string", "format": "uuid" },
        })
    };
    let mut v = vec![
        repeated("status", "IncidentStatus", "statuses"),
        repeated("priority", "Priority", "priorities"),
        repeated("impact", "Impact", "impacts"),
        repeated("urgency", "Urgency", "urgencies"),
        id("assignee_id", "Only incidents assigned to this user."),
        id("team_id", "Only incidents routed to this team."),
        id("category_id", "Only incidents in this category."),
        id("reporter_id", "Only incidents reported by this user."),
        id("ci_id", "Only incidents affecting this configuration item."),
        json!({
            "name": "created_after",
            "in": "query",
            "description": "Only incidents created at or after this instant (RFC 3339).",
            "schema": { "type": "string", "format": "date-time" },
        }),
        json!({
            "name": "created_before",
            "in": "query",
            "description": "Only incidents created strictly before this instant (RFC 3339).",
            "schema": { "type": "string", "format": "date-time" },
        }),
        json!({
            "name": "q",
            "in": "query",
            "description": "Case-insensitive substring of the number, title or description.",
            "schema": { "type": "string", "maxLength": 200 },
        }),
        json!({
            "name": "sort",
            "in": "query",
            "description": "Sort order (`-` = descending). `resolution_due_at` puts incidents without an SLA target last.",
            "schema": {
                "type": "string",
                "enum": IncidentSort::NAMES,
                "default": IncidentSort::default().as_str(),
            },
        }),
    ];
    v.extend(paging_params());
    v
}

fn parameters() -> Value {
    json!({
        "Page": {
            "name": "page",
            "in": "query",
            "description": "1-based page number (ignored with `cursor`).",
            "schema": { "type": "integer", "minimum": 1, "default": 1 },
        },
        "Limit": {
            "name": "limit",
            "in": "query",
            "description": "Items per page.",
            "schema": { "type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT },
        },
        "Cursor": {
            "name": "cursor",
            "in": "query",
            "description": "Keyset paging: empty to start, then `pagination.next_cursor` of the previous page (with the same sort). No totals are computed in this mode.",
            "schema": { "type": "string" },
        },
        "IdempotencyKey": {
            "name": "Idempotency-Key",
            "in": "header",
            "description": "Makes the request safe to retry (per tenant, kept 24 h): a repeat with the same key, route and body answers with the first answer (status, body, `Location`, `ETag`) and `Idempotent-Replayed: true`; the same key with a different request is `422 idempotency_key_reused`; a repeat while the first still runs is `409`. Answers 409, 412, 429 and 5xx are not kept: a retry runs again.",
            "schema": { "type": "string", "minLength": 1, "maxLength": 255 },
        },
        "ConsistencyToken": {
            "name": "X-Consistency-Token",
            "in": "header",
            "description": "The `X-Consistency-Token` of an earlier write (ADR 0024): the request first waits, for at most `EVENTDESK_CONSISTENCY_WAIT_MS`, until the read models show that write. Needed only on another node than the write's: on the same node a credential's requests always see its own writes. `422` if malformed.",
            "schema": { "type": "string", "pattern": "^[0-9]+\\.[0-9]+$" },
            "example": "1234.56789",
        },
        "IfMatch": {
            "name": "If-Match",
            "in": "header",
            "description": "The `ETag` of the version the change is based on (`\"<version>\"`; `W/` is accepted, `*` matches any). `412` if the incident has changed since. Without it the change applies to the current version.",
            "schema": { "type": "string" },
            "example": "\"3\"",
        },
    })
}

fn headers() -> Value {
    json!({
        "ETag": {
            "description": "The object's version as a strong entity tag, for `If-Match`.",
            "schema": { "type": "string" },
            "example": "\"3\"",
        },
        "Location": {
            "description": "The path of the created object.",
            "schema": { "type": "string" },
        },
        "ConsistencyToken": {
            "description": "The write's position in the log. The answer comes from the write's own events, before the read models have them; send it back as `X-Consistency-Token` on another node to read the write there (ADR 0024).",
            "schema": { "type": "string" },
        },
        "ContentDisposition": {
            "description": "`attachment` with the file name (RFC 6266: an ASCII `filename` and a UTF-8 `filename*`).",
            "schema": { "type": "string" },
        },
        "RetryAfter": {
            "description": "Seconds until a retry may succeed.",
            "schema": { "type": "integer", "minimum": 0 },
        },
    })
}

fn error_responses() -> Value {
    let mut m = Map::new();
    for (status, name, description) in ERROR_RESPONSES {
        let mut r = json!({
            "description": description,
            "content": { "application/json": { "schema": schema_ref("Error") } },
        });
        if *status == 429
            && let Some(obj) = r.as_object_mut()
        {
            obj.insert(
                "headers".into(),
                json!({ "Retry-After": { "$ref": "#/components/headers/RetryAfter" } }),
            );
        }
        m.insert((*name).to_owned(), r);
    }
    Value::Object(m)
}

// ------------------------------------------------------------------------------------------
// Schemas
// ------------------------------------------------------------------------------------------

/// A property of an object schema.
struct Field {
    name: &'static str,
    required: bool,
    schema: Value,
}

/// A property always present (responses) or required (requests).
fn req(name: &'static str, schema: Value) -> Field {
    Field {
        name,
        required: true,
        schema,
    }
}

/// A property that may be absent.
fn opt(name: &'static str, schema: Value) -> Field {
    Field {
        name,
        required: false,
        schema,
    }
}

fn object(description: &str, fields: Vec<Field>) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in fields {
        if f.required {
            required.push(f.name);
        }
        props.insert(f.name.to_owned(), f.schema);
    }
    json!({
        "type": "object",
        "description": description,
        "properties": props,
        "required": required,
    })
}

/// A request body: unknown properties are rejected (`422`).
fn request(description: &str, fields: Vec<Field>) -> Value {
    let mut o = object(description, fields);
    if let Some(obj) = o.as_object_mut() {
        obj.insert("additionalProperties".into(), json!(false));
    }
    o
}

fn with_description(mut v: Value, description: &str) -> Value {
    if let Some(obj) = v.as_object_mut() {
        obj.insert("description".into(), json!(description));
    }
    v
}

fn string(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

/// A string of at most `max` characters (`min`.. after trimming where the type trims).
fn text(min: usize, max: usize, description: &str) -> Value {
    let mut v = json!({ "type": "string", "maxLength": max, "description": description });
    if min > 0
        && let Some(obj) = v.as_object_mut()
    {
        obj.insert("minLength".into(), json!(min));
    }
    v
}

fn uuid(description: &str) -> Value {
    json!({ "type": "string", "format": "uuid", "description": description })
}

fn timestamp(description: &str) -> Value {
    json!({ "type": "string", "format": "date-time", "description": description })
}

fn int64(description: &str) -> Value {
    json!({ "type": "integer", "format": "int64", "description": description })
}

fn int32(description: &str) -> Value {
    json!({ "type": "integer", "format": "int32", "description": description })
}

fn unsigned(description: &str) -> Value {
    json!({ "type": "integer", "minimum": 0, "description": description })
}

fn boolean(description: &str) -> Value {
    json!({ "type": "boolean", "description": description })
}

fn array(items: Value, description: &str) -> Value {
    json!({ "type": "array", "items": items, "description": description })
}

fn reference(name: &str, description: &str) -> Value {
    with_description(schema_ref(name), description)
}

/// The schema, or `null`.
fn nullable(v: Value) -> Value {
    let description = v.get("description").cloned();
    if let Some(r) = v.get("$ref") {
        let mut n = json!({ "oneOf": [{ "$ref": r }, { "type": "null" }] });
        if let (Some(d), Some(obj)) = (description, n.as_object_mut()) {
            obj.insert("description".into(), d);
        }
        return n;
    }
    let mut v = v;
    if let Some(obj) = v.as_object_mut()
        && let Some(Value::String(t)) = obj.get("type").cloned()
    {
        obj.insert("type".into(), json!([t, "null"]));
    }
    v
}

fn enumeration<'a>(values: impl IntoIterator<Item = &'a str>, description: &str) -> Value {
    let values: Vec<&str> = values.into_iter().collect();
    json!({ "type": "string", "enum": values, "description": description })
}

/// The wire names of the API key modes (a new mode fails to compile here until listed).
fn key_modes() -> [&'static str; 2] {
    let check = |m: KeyMode| match m {
        KeyMode::Live | KeyMode::Test => m.as_str(),
    };
    [check(KeyMode::Live), check(KeyMode::Test)]
}

/// `{data: [item], pagination}`.
fn page_of(item: &str) -> Value {
    object(
        &format!("A page of {item} items."),
        vec![
            req("data", array(schema_ref(item), "The items.")),
            req(
                "pagination",
                reference("Pagination", "Where this page is in the list."),
            ),
        ],
    )
}

fn sla_timer_fields() -> Vec<Field> {
    vec![
        req(
            "metric",
            enumeration(["response", "resolution"], "The metric."),
        ),
        req(
            "cycle",
            unsigned("1 for the first; the resolution timer counts reopens."),
        ),
        req(
            "stage",
            enumeration(
                ["in_progress", "paused", "completed", "cancelled"],
                "Where the timer is.",
            ),
        ),
        req("started_at", timestamp("When the clock started.")),
        req("due_at", timestamp("The current due time.")),
        req(
            "original_due_at",
            timestamp("The due time first promised for this cycle."),
        ),
        req("stopped_at", nullable(timestamp("When it stopped."))),
        req("target_seconds", int64("The target, in business seconds.")),
        req(
            "business_elapsed_seconds",
            int64("Business seconds elapsed, pauses excluded."),
        ),
        req(
            "business_remaining_seconds",
            int64("Target minus elapsed; negative after a breach."),
        ),
        req(
            "pause_duration_seconds",
            int64("Wall-clock seconds spent on hold."),
        ),
        req(
            "paused_business_seconds",
            int64("Business seconds spent on hold (ended pauses)."),
        ),
        req(
            "percent",
            int64("Elapsed in percent of the target (may exceed 100)."),
        ),
        req("breached", boolean("Whether the target is missed.")),
        req(
            "last_threshold",
            unsigned("The highest threshold recorded: 0, 50, 75, 90 or 100 (the breach)."),
        ),
        req(
            "policy_id",
            nullable(uuid("The policy (null: the built-in default).")),
        ),
        req("calendar_id", nullable(uuid("The calendar (null: 24x7)."))),
    ]
}

fn incident_list_item_fields() -> Vec<Field> {
    vec![
        req("id", uuid("Id.")),
        req(
            "incident_number",
            json!({
                "type": "string",
                "pattern": "^INC[0-9]{6,}$",
                "description": "Per-tenant number, `INC` and at least six digits.",
                "examples": ["INC000123"],
            }),
        ),
        req("title", string("Title.")),
        req("description", string("Description (possibly empty).")),
        req("status", reference("IncidentStatus", "Lifecycle status.")),
        req("priority", reference("Priority", "Priority.")),
        req("impact", reference("Impact", "Impact.")),
        req("urgency", reference("Urgency", "Urgency.")),
        req("reporter", reference("UserSummary", "Who reported it.")),
        req(
            "assignee",
            nullable(reference("UserSummary", "The assigned person.")),
        ),
        req(
            "team",
            nullable(reference("NamedRef", "The assignment group.")),
        ),
        req("category", nullable(reference("NamedRef", "The category."))),
        req(
            "ci_id",
            nullable(uuid("The configuration item it affects (CMDB).")),
        ),
        req(
            "hold_reason",
            nullable(reference(
                "HoldReason",
                "Why it is on hold (while `on_hold`).",
            )),
        ),
        req(
            "resolution",
            nullable(string("How it was resolved (while resolved or closed).")),
        ),
        req("reopen_count", int32("How many times it was reopened.")),
        req(
            "response_due_at",
            nullable(timestamp("Response target (SLA).")),
        ),
        req(
            "resolution_due_at",
            nullable(timestamp("Resolution target (SLA).")),
        ),
        req("responded_at", nullable(timestamp("First response."))),
        req(
            "resolved_at",
            nullable(timestamp("Last resolution (cleared by a reopen).")),
        ),
        req("closed_at", nullable(timestamp("Closure."))),
        req("cancelled_at", nullable(timestamp("Cancellation."))),
        req("created_at", timestamp("Logged.")),
        req("updated_at", timestamp("Last change.")),
        req(
            "version",
            int64("Version of the incident (its `ETag` is `\"<version>\"`)."),
        ),
    ]
}

fn schemas() -> Map<String, Value> {
    let mut s = Map::new();
    let mut add = |name: &str, v: Value| {
        s.insert(name.to_owned(), v);
    };

    // Enumerations, from the domain's own name lists.
    add(
        "IncidentStatus",
        enumeration(
            IncidentStatus::NAMES.iter().copied(),
            "Lifecycle status of an incident.",
        ),
    );
    add(
        "Priority",
        enumeration(Priority::NAMES.iter().copied(), "Priority."),
    );
    add(
        "Impact",
        enumeration(
            Impact::NAMES.iter().copied(),
            "How much of the business is affected.",
        ),
    );
    add(
        "Urgency",
        enumeration(Urgency::NAMES.iter().copied(), "How time-critical it is."),
    );
    add(
        "HoldReason",
        enumeration(
            HoldReason::NAMES.iter().copied(),
            "Why an incident is on hold.",
        ),
    );
    add(
        "WorkNoteType",
        enumeration(WorkNoteType::NAMES.iter().copied(), "Kind of work note."),
    );
    add(
        "Role",
        enumeration(Role::NAMES.iter().copied(), "Built-in role."),
    );
    add(
        "ApiKeyMode",
        enumeration(
            key_modes(),
            "`live` keys act on external systems; `test` keys run integrations dry.",
        ),
    );
    let permissions: Vec<String> = eventdesk_auth::rbac::MATRIX
        .iter()
        .map(|(p, _)| p.to_string())
        .collect();
    add(
        "Permission",
        enumeration(
            permissions.iter().map(String::as_str),
            "A `resource:action` permission.",
        ),
    );

    // Errors.
    add(
        "Error",
        object(
            "Every error response.",
            vec![req(
                "error",
                object(
                    "The error.",
                    vec![
                        req(
                            "code",
                            string(
                                "Stable machine-readable code: `bad_request`, `unauthorized`, \
                                 `invalid_credentials`, `forbidden`, `not_found`, `conflict`, \
                                 `precondition_failed`, `payload_too_large`, \
                                 `unsupported_media_type`, `validation_error`, \
                                 `idempotency_key_reused`, `rate_limited`, `unavailable`, \
                                 `internal_error`, or a domain rule's code (e.g. \
                                 `invalid_transition`).",
                            ),
                        ),
                        req("message", string("Human-readable explanation.")),
                        req(
                            "details",
                            array(
                                schema_ref("FieldError"),
                                "The invalid fields (for `validation_error`; otherwise empty).",
                            ),
                        ),
                    ],
                ),
            )],
        ),
    );
    add(
        "FieldError",
        object(
            "One invalid field.",
            vec![
                req(
                    "field",
                    string("The field (a dotted path for nested fields, `body` for the body)."),
                ),
                req("message", string("What is wrong with it.")),
            ],
        ),
    );

    // Auth.
    add(
        "LoginRequest",
        request(
            "Credentials.",
            vec![
                req("username", string("Login name (case-insensitive).")),
                req("password", string("Password.")),
            ],
        ),
    );
    add(
        "RefreshRequest",
        request(
            "A refresh token.",
            vec![req(
                "refresh_token",
                string("The refresh token from login or the last refresh."),
            )],
        ),
    );
    add(
        "TokenResponse",
        object(
            "Tokens.",
            vec![
                req("access_token", string("JWT for `Authorization: Bearer …`.")),
                req(
                    "token_type",
                    json!({ "type": "string", "const": "bearer", "description": "Always `bearer`." }),
                ),
                req(
                    "expires_in",
                    int64("Seconds until the access token expires."),
                ),
                req(
                    "refresh_token",
                    string("Single-use token for `POST /api/v1/auth/refresh`."),
                ),
            ],
        ),
    );

    // Paging.
    add(
        "Pagination",
        object(
            "Position in a list. With `page`/`limit` the totals are present and `next_cursor` \
             absent; with `cursor` the totals are absent and `next_cursor` is present while \
             `has_next`.",
            vec![
                opt("current_page", unsigned("1-based page number (page mode).")),
                opt(
                    "total_pages",
                    unsigned("Number of pages (page mode; 0 for an empty list)."),
                ),
                req("page_size", unsigned("Items per page.")),
                opt(
                    "total_items",
                    unsigned("Items matching the filters (page mode)."),
                ),
                opt(
                    "total_items_exact",
                    boolean(
                        "Present, and `false`, only when `total_items` is a lower bound (lists \
                         whose exact count would be expensive: incident search and filters \
                         beyond the counted fields, the audit log).",
                    ),
                ),
                req("has_next", boolean("Whether a next page exists.")),
                req(
                    "has_prev",
                    boolean(
                        "Whether a previous page exists (cursor mode: whether a cursor was given).",
                    ),
                ),
                opt(
                    "next_cursor",
                    string("Continues the list (cursor mode, while `has_next`)."),
                ),
            ],
        ),
    );

    // Incidents: embedded objects.
    add(
        "UserSummary",
        object(
            "A user embedded in another object. The names are `null` until the directory has \
             caught up with the user.",
            vec![
                req("id", uuid("Id.")),
                req("username", nullable(string("Login name."))),
                req("first_name", nullable(string("First name."))),
                req("last_name", nullable(string("Last name."))),
            ],
        ),
    );
    add(
        "NamedRef",
        object(
            "A team or category embedded in another object (`name` is `null` until projected).",
            vec![
                req("id", uuid("Id.")),
                req("name", nullable(string("Name."))),
            ],
        ),
    );
    add(
        "ActorSummary",
        object(
            "Who did something. For a user, `id` and (once projected) the names follow.",
            vec![
                req(
                    "actor",
                    string("`user:<uuid>`, `api_key:<uuid>` or `system`."),
                ),
                opt("id", uuid("The user's id (users only).")),
                opt("username", string("Login name.")),
                opt("first_name", string("First name.")),
                opt("last_name", string("Last name.")),
            ],
        ),
    );
    let actor_kind = |kind: &str, with_id: bool, description: &str| {
        let mut fields = vec![req(
            "kind",
            json!({ "type": "string", "const": kind, "description": "Kind of actor." }),
        )];
        if with_id {
            fields.push(req("id", uuid("Id.")));
        }
        object(description, fields)
    };
    add(
        "Actor",
        json!({
            "description": "The issuer of a command.",
            "oneOf": [
                actor_kind("user", true, "A signed-in user."),
                actor_kind("api_key", true, "An integration authenticated by an API key."),
                actor_kind("system", false, "The system itself."),
            ],
        }),
    );
    add(
        "IncidentHistoryEntry",
        object(
            "One field change.",
            vec![
                req(
                    "field_name",
                    string("The field (`status`, `assignee_id`, `priority`, …)."),
                ),
                req("old_value", nullable(string("Value before, as text."))),
                req("new_value", nullable(string("Value after, as text."))),
                req("changed_by", reference("ActorSummary", "Who.")),
                req("changed_at", timestamp("When.")),
                req(
                    "version",
                    int64("The incident version the change was made in."),
                ),
                req("seq", int32("Position among that version's changes.")),
            ],
        ),
    );
    add(
        "WorkNote",
        object(
            "A work note or comment.",
            vec![
                req("id", uuid("Id.")),
                req("content", string("Text.")),
                req("note_type", reference("WorkNoteType", "Kind.")),
                req("is_public", boolean("Visible to the requester.")),
                req("by_agent", boolean("Written by an agent.")),
                req("created_by", reference("ActorSummary", "Author.")),
                req("created_at", timestamp("When.")),
            ],
        ),
    );
    add(
        "Attachment",
        object(
            "An attachment's metadata.",
            vec![
                req("id", uuid("Id.")),
                req("file_name", string("File name.")),
                req("file_size", int64("Size in bytes.")),
                req("content_type", string("MIME type.")),
                req(
                    "sha256",
                    json!({ "type": "string", "pattern": "^[0-9a-f]{64}$", "description": "Content address (hex SHA-256)." }),
                ),
                req("uploaded_by", reference("ActorSummary", "Uploader.")),
                req("uploaded_at", timestamp("When.")),
            ],
        ),
    );

    // Incidents.
    add(
        "IncidentListItem",
        object("An incident as listed.", incident_list_item_fields()),
    );
    let mut detail_fields = incident_list_item_fields();
    detail_fields.extend([
        req(
            "priority_overridden",
            boolean("Whether the priority was set explicitly rather than derived from impact × urgency."),
        ),
        req("created_by", reference("Actor", "Who logged it.")),
        req("updated_by", reference("Actor", "Who last changed it.")),
        req(
            "history",
            array(schema_ref("IncidentHistoryEntry"), "Field changes, oldest first."),
        ),
        req(
            "work_notes",
            array(
                schema_ref("WorkNote"),
                "Work notes, oldest first (non-agents see only public ones).",
            ),
        ),
        req(
            "attachments",
            array(schema_ref("Attachment"), "Attachments, oldest first."),
        ),
        req(
            "problem_id",
            nullable(uuid("The problem the incident is linked to.")),
        ),
        req(
            "suggested_known_errors",
            array(
                schema_ref("KnownError"),
                "Known errors whose category or configuration item match the incident's, with \
                 their workarounds, newest first (at most 10; empty for requesters).",
            ),
        ),
    ]);
    add(
        "IncidentDetail",
        object(
            "An incident with its history, work notes and attachments.",
            detail_fields,
        ),
    );
    add("IncidentPage", page_of("IncidentListItem"));
    add(
        "SlaTimer",
        object(
            "An SLA timer at the moment of the request.",
            sla_timer_fields(),
        ),
    );
    add(
        "IncidentSla",
        object(
            "The SLA timers of an incident.",
            vec![
                req("incident_id", uuid("The incident.")),
                req(
                    "response",
                    nullable(reference("SlaTimer", "The response timer, if any.")),
                ),
                req(
                    "resolution",
                    nullable(reference(
                        "SlaTimer",
                        "The current resolution timer, if any.",
                    )),
                ),
                req(
                    "timers",
                    array(
                        schema_ref("SlaTimer"),
                        "Every cycle of both timers, response first, oldest cycle first.",
                    ),
                ),
            ],
        ),
    );
    let mut item = vec![
        req("incident_id", uuid("The incident.")),
        req("incident_number", string("Its number, e.g. `INC000123`.")),
        req("title", string("Its title.")),
        req("status", schema_ref("IncidentStatus")),
        req("priority", schema_ref("Priority")),
    ];
    item.extend(sla_timer_fields());
    add(
        "SlaTimerListItem",
        object("A timer with its incident.", item),
    );
    add("SlaTimerPage", page_of("SlaTimerListItem"));

    // The audit trail.
    add(
        "AuditEvent",
        object(
            "One stored event of the audit trail (payload fields named `password_hash` are \
             shown as `[redacted]`).",
            vec![
                req(
                    "position",
                    int64("Global position (the log's identity column)."),
                ),
                req(
                    "transaction_id",
                    int64("The writing transaction; with `position`, the reading order."),
                ),
                req("recorded_at", timestamp("When it was recorded.")),
                req(
                    "stream_type",
                    string("Stream type, e.g. `incident`, `security`."),
                ),
                req("stream_id", uuid("Stream (aggregate) id.")),
                req(
                    "version",
                    int64("Version in the stream (1-based, gap-free)."),
                ),
                req("event_id", uuid("Event id.")),
                req("event_type", string("Event type, e.g. `IncidentCreated`.")),
                req("schema_version", int32("Schema version as stored.")),
                req(
                    "actor",
                    nullable(string("`user:<id>`, `api_key:<id>` or `system:<name>`.")),
                ),
                req(
                    "request_id",
                    nullable(string("The HTTP request id that caused it.")),
                ),
                req(
                    "correlation_id",
                    nullable(string("Correlates the events of one user intent.")),
                ),
                req(
                    "causation_id",
                    nullable(string("The event that caused it.")),
                ),
                req(
                    "data",
                    json!({ "description": "The payload as stored (any JSON)." }),
                ),
                req(
                    "hash",
                    string("The event's link in its stream's hash chain (hex)."),
                ),
            ],
        ),
    );
    add("AuditEventPage", page_of("AuditEvent"));
    add(
        "AuditStreamSummary",
        object(
            "A stream of the tenant.",
            vec![
                req("stream_id", uuid("Stream id.")),
                req("stream_type", string("Stream type.")),
                req("head_version", int64("The last version.")),
                req(
                    "first_recorded_at",
                    timestamp("The first event's recording."),
                ),
                req("last_recorded_at", timestamp("The last event's recording.")),
            ],
        ),
    );
    add(
        "AuditStream",
        object(
            "A stream's events in version order, with whether its hash chain verifies.",
            vec![
                req("stream", schema_ref("AuditStreamSummary")),
                req(
                    "chain_verified",
                    boolean("Whether the stored hash chain of the whole stream verifies."),
                ),
                req(
                    "chain_fault",
                    nullable(string("What is wrong at the first bad event, if any.")),
                ),
                req("data", array(schema_ref("AuditEvent"), "The events.")),
                req(
                    "pagination",
                    reference("Pagination", "Where this page is in the stream."),
                ),
            ],
        ),
    );
    add(
        "IncidentCreate",
        request(
            "A new incident.",
            vec![
                req(
                    "title",
                    text(Title::MIN_CHARS, Title::MAX_CHARS, "One line."),
                ),
                opt(
                    "description",
                    text(0, Description::MAX_CHARS, "Details (default empty)."),
                ),
                opt(
                    "priority",
                    reference(
                        "Priority",
                        "Explicit priority; without it, derived from impact × urgency.",
                    ),
                ),
                opt("impact", reference("Impact", "Default `medium`.")),
                opt("urgency", reference("Urgency", "Default `medium`.")),
                opt("category_id", uuid("A category of the tenant.")),
                opt("team_id", uuid("The assignment group.")),
                opt("assignee_id", uuid("The assigned person.")),
                opt(
                    "ci_id",
                    uuid("The configuration item it affects (a CI of the tenant)."),
                ),
            ],
        ),
    );
    add(
        "IncidentUpdate",
        request(
            "Changes to an incident; absent fields are kept.",
            vec![
                opt(
                    "title",
                    text(Title::MIN_CHARS, Title::MAX_CHARS, "One line."),
                ),
                opt("description", text(0, Description::MAX_CHARS, "Details.")),
                opt(
                    "status",
                    reference("IncidentStatus", "Target status (lifecycle rules apply)."),
                ),
                opt(
                    "priority",
                    nullable(reference(
                        "Priority",
                        "Explicit priority; `null` returns to the derived priority.",
                    )),
                ),
                opt("impact", reference("Impact", "Impact.")),
                opt("urgency", reference("Urgency", "Urgency.")),
                opt("assignee_id", uuid("Assign to this user.")),
                opt("team_id", uuid("Route to this team.")),
                opt("category_id", nullable(uuid("Category; `null` clears it."))),
                opt(
                    "ci_id",
                    nullable(uuid("The affected configuration item; `null` clears it.")),
                ),
                opt(
                    "resolution",
                    text(
                        ResolutionText::MIN_CHARS,
                        ResolutionText::MAX_CHARS,
                        "Required with `status: resolved`.",
                    ),
                ),
                opt(
                    "hold_reason",
                    reference("HoldReason", "Required with `status: on_hold`."),
                ),
                opt(
                    "reason",
                    text(
                        ReasonText::MIN_CHARS,
                        ReasonText::MAX_CHARS,
                        "Required to cancel or to reopen a resolved incident; the comment when putting on hold.",
                    ),
                ),
            ],
        ),
    );
    add(
        "AssignRequest",
        request(
            "At least one of `assignee_id` and `team_id`.",
            vec![
                opt("assignee_id", uuid("Assign to this user.")),
                opt("team_id", uuid("Route to this team.")),
            ],
        ),
    );
    add(
        "EmptyRequest",
        request("No fields (an empty body is accepted too).", vec![]),
    );
    add(
        "HoldRequest",
        request(
            "Why the incident waits.",
            vec![
                req("reason", reference("HoldReason", "Why it is on hold.")),
                opt(
                    "comment",
                    text(ReasonText::MIN_CHARS, ReasonText::MAX_CHARS, "Free text."),
                ),
            ],
        ),
    );
    add(
        "ResolveRequest",
        request(
            "How the incident was resolved.",
            vec![req(
                "resolution",
                text(
                    ResolutionText::MIN_CHARS,
                    ResolutionText::MAX_CHARS,
                    "Resolution text.",
                ),
            )],
        ),
    );
    add(
        "ReasonRequest",
        request(
            "A justification.",
            vec![req(
                "reason",
                text(ReasonText::MIN_CHARS, ReasonText::MAX_CHARS, "Why."),
            )],
        ),
    );
    add(
        "AttachmentUpload",
        request(
            "A multipart upload.",
            vec![req(
                "file",
                json!({
                    "type": "string",
                    "contentMediaType": "application/octet-stream",
                    "description": "The file (the part's file name and content type are recorded).",
                }),
            )],
        ),
    );
    add(
        "WorkNoteCreate",
        request(
            "A work note.",
            vec![
                req(
                    "content",
                    text(WorkNoteBody::MIN_CHARS, WorkNoteBody::MAX_CHARS, "Text."),
                ),
                opt(
                    "note_type",
                    reference("WorkNoteType", "Default `work_note` (requesters: always)."),
                ),
                opt(
                    "is_public",
                    json!({
                        "description": "Visible to the requester: a boolean or `\"Y\"`/`\"N\"`. Default false (requesters: always true).",
                        "oneOf": [
                            { "type": "boolean" },
                            { "type": "string", "enum": ["Y", "N"] },
                        ],
                    }),
                ),
            ],
        ),
    );

    // Directory.
    add(
        "User",
        object(
            "A user (never the password hash).",
            vec![
                req("id", uuid("Id.")),
                req("tenant_id", uuid("Tenant.")),
                req("username", string("Login name (case preserved).")),
                req("email", string("E-mail address (lower-cased).")),
                req("first_name", string("First name.")),
                req("last_name", string("Last name.")),
                req("phone", nullable(string("Phone."))),
                req("department", nullable(string("Department."))),
                req("role", reference("Role", "Role.")),
                req(
                    "custom_role_id",
                    nullable(uuid(
                        "The tenant's custom role whose permissions the user holds; `role` is \
                         then only the base role that decides incident scoping.",
                    )),
                ),
                req("is_active", boolean("Whether the account is enabled.")),
                req("created_at", timestamp("Registered.")),
                req("updated_at", timestamp("Last change.")),
                req("version", int64("Version.")),
            ],
        ),
    );
    add("UserPage", page_of("User"));
    add(
        "UserUpdate",
        request(
            "Changes to a user; absent fields are kept.",
            vec![
                opt(
                    "email",
                    json!({ "type": "string", "format": "email", "maxLength": 254, "description": "Unique e-mail address." }),
                ),
                opt(
                    "first_name",
                    text(PersonName::MIN_CHARS, PersonName::MAX_CHARS, "First name."),
                ),
                opt(
                    "last_name",
                    text(PersonName::MIN_CHARS, PersonName::MAX_CHARS, "Last name."),
                ),
                opt(
                    "phone",
                    nullable(
                        json!({ "type": "string", "maxLength": 32, "description": "Phone; `null` clears it." }),
                    ),
                ),
                opt(
                    "department",
                    nullable(text(
                        Department::MIN_CHARS,
                        Department::MAX_CHARS,
                        "Department; `null` clears it.",
                    )),
                ),
                opt(
                    "role",
                    reference("Role", "New role (recorded in the security log)."),
                ),
                opt(
                    "custom_role_id",
                    nullable(uuid(
                        "One of the tenant's active custom roles for the user to hold; `null` \
                         removes it (recorded in the security log).",
                    )),
                ),
            ],
        ),
    );
    add(
        "UserCreate",
        request(
            "A new user.",
            vec![
                req(
                    "username",
                    json!({
                        "type": "string",
                        "minLength": 3,
                        "maxLength": 64,
                        "pattern": "^\\s*[A-Za-z0-9_.-]+\\s*$",
                        "description": "3 to 64 of `A-Z a-z 0-9 _ . -`; unique case-insensitively.",
                    }),
                ),
                req(
                    "email",
                    json!({ "type": "string", "format": "email", "maxLength": 254, "description": "Unique e-mail address." }),
                ),
                req(
                    "password",
                    json!({
                        "type": "string",
                        "minLength": eventdesk_auth::password::MIN_PASSWORD_CHARS,
                        "maxLength": eventdesk_auth::password::MAX_PASSWORD_CHARS,
                        "description": "Initial password.",
                        "writeOnly": true,
                    }),
                ),
                req(
                    "first_name",
                    text(PersonName::MIN_CHARS, PersonName::MAX_CHARS, "First name."),
                ),
                req(
                    "last_name",
                    text(PersonName::MIN_CHARS, PersonName::MAX_CHARS, "Last name."),
                ),
                opt(
                    "phone",
                    json!({ "type": "string", "maxLength": 32, "description": "Digits, spaces and `+ ( ) - .` (3 to 20 digits)." }),
                ),
                opt(
                    "department",
                    text(Department::MIN_CHARS, Department::MAX_CHARS, "Department."),
                ),
                req("role", reference("Role", "Role.")),
            ],
        ),
    );
    add(
        "Team",
        object(
            "A team (assignment group).",
            vec![
                req("id", uuid("Id.")),
                req("name", string("Name.")),
                req("manager_id", nullable(uuid("Manager."))),
                req("description", nullable(string("Description."))),
                req(
                    "members",
                    array(
                        json!({ "type": "string", "format": "uuid" }),
                        "Member user ids.",
                    ),
                ),
                req("is_active", boolean("Whether the team is active.")),
                req("created_at", timestamp("Created.")),
                req("updated_at", timestamp("Last change.")),
                req("version", int64("Version.")),
            ],
        ),
    );
    add("TeamPage", page_of("Team"));
    add(
        "TeamUpdate",
        request(
            "Changes to a team; absent fields are kept.",
            vec![
                opt(
                    "name",
                    text(TeamName::MIN_CHARS, TeamName::MAX_CHARS, "Name."),
                ),
                opt("manager_id", nullable(uuid("Manager; `null` clears it."))),
                opt(
                    "description",
                    nullable(text(
                        0,
                        Description::MAX_CHARS,
                        "Description; `null` clears it.",
                    )),
                ),
                opt(
                    "add_members",
                    array(
                        json!({ "type": "string", "format": "uuid" }),
                        "Users to add.",
                    ),
                ),
                opt(
                    "remove_members",
                    array(
                        json!({ "type": "string", "format": "uuid" }),
                        "Users to remove.",
                    ),
                ),
            ],
        ),
    );
    add(
        "TeamCreate",
        request(
            "A new team.",
            vec![
                req(
                    "name",
                    text(TeamName::MIN_CHARS, TeamName::MAX_CHARS, "Name."),
                ),
                opt("manager_id", uuid("Manager.")),
                opt(
                    "description",
                    text(0, Description::MAX_CHARS, "Description."),
                ),
            ],
        ),
    );
    add(
        "Category",
        object(
            "A category (a node of the category tree).",
            vec![
                req("id", uuid("Id.")),
                req("name", string("Name.")),
                req("parent_id", nullable(uuid("Parent category."))),
                req("description", nullable(string("Description."))),
                req("is_active", boolean("Whether the category is active.")),
                req("created_at", timestamp("Created.")),
                req("updated_at", timestamp("Last change.")),
                req("version", int64("Version.")),
            ],
        ),
    );
    add("CategoryPage", page_of("Category"));
    add(
        "CategoryUpdate",
        request(
            "Changes to a category; absent fields are kept.",
            vec![
                opt(
                    "name",
                    text(CategoryName::MIN_CHARS, CategoryName::MAX_CHARS, "Name."),
                ),
                opt(
                    "parent_id",
                    nullable(uuid("New parent; `null` makes it a root category.")),
                ),
                opt(
                    "description",
                    nullable(text(
                        0,
                        Description::MAX_CHARS,
                        "Description; `null` clears it.",
                    )),
                ),
            ],
        ),
    );
    add(
        "CategoryCreate",
        request(
            "A new category.",
            vec![
                req(
                    "name",
                    text(CategoryName::MIN_CHARS, CategoryName::MAX_CHARS, "Name."),
                ),
                opt("parent_id", uuid("Parent category (must exist).")),
                opt(
                    "description",
                    text(0, Description::MAX_CHARS, "Description."),
                ),
            ],
        ),
    );
    let row = |description: &str| {
        request(
            description,
            ["low", "medium", "high", "critical"]
                .into_iter()
                .map(|u| req(u, schema_ref("Priority")))
                .collect(),
        )
    };
    add(
        "PriorityMatrixRow",
        row("The priorities of one impact level, by urgency."),
    );
    add(
        "PriorityMatrix",
        request(
            "Impact × urgency → priority: one row per impact level, keyed by urgency.",
            ["low", "medium", "high", "extensive"]
                .into_iter()
                .map(|i| req(i, schema_ref("PriorityMatrixRow")))
                .collect(),
        ),
    );
    add(
        "Tenant",
        object(
            "A tenant (organisation).",
            vec![
                req("id", uuid("Id.")),
                req("name", string("Name.")),
                req("is_active", boolean("Whether the tenant is active.")),
                req(
                    "priority_matrix",
                    reference("PriorityMatrix", "Impact × urgency → priority."),
                ),
                req("created_at", timestamp("Created.")),
                req("updated_at", timestamp("Last change.")),
                req("version", int64("Version.")),
            ],
        ),
    );
    add("TenantPage", page_of("Tenant"));
    add(
        "TenantCreate",
        request(
            "A new tenant.",
            vec![
                req(
                    "name",
                    text(TenantName::MIN_CHARS, TenantName::MAX_CHARS, "Name."),
                ),
                opt(
                    "priority_matrix",
                    reference("PriorityMatrix", "Default: the ITIL matrix."),
                ),
            ],
        ),
    );

    // SLA configuration.
    add(
        "Weekday",
        enumeration(
            [
                "monday",
                "tuesday",
                "wednesday",
                "thursday",
                "friday",
                "saturday",
                "sunday",
            ],
            "A day of the week.",
        ),
    );
    add(
        "LocalTime",
        json!({
            "type": "string",
            "pattern": "^(([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?|24:00(:00)?)$",
            "description": "Local wall-clock time `HH:MM` (or `HH:MM:SS`), `00:00` to `24:00`.",
            "examples": ["08:00"],
        }),
    );
    add(
        "WeeklyRange",
        request(
            "A weekly opening range; `end` at or before `start` runs overnight into the next day.",
            vec![
                req("day", reference("Weekday", "The day the range starts on.")),
                req("start", reference("LocalTime", "Local start time.")),
                req("end", reference("LocalTime", "Local end time.")),
            ],
        ),
    );
    add(
        "ClosureRange",
        request(
            "A closed range within one local date.",
            vec![
                req("start", reference("LocalTime", "Local start time.")),
                req(
                    "end",
                    reference("LocalTime", "Local end time (after `start`)."),
                ),
            ],
        ),
    );
    add(
        "Holiday",
        request(
            "A holiday: the business time of this local date is closed — all of it, or only the \
             `closed` ranges.",
            vec![
                req(
                    "date",
                    json!({
                        "type": "string",
                        "format": "date",
                        "description": "The local date (`YYYY-MM-DD`).",
                        "examples": ["2025-12-25"],
                    }),
                ),
                opt(
                    "name",
                    string("A label, e.g. `Christmas Day` (default empty)."),
                ),
                opt(
                    "closed",
                    array(
                        schema_ref("ClosureRange"),
                        "Partial closures; absent or empty: the whole day is closed.",
                    ),
                ),
            ],
        ),
    );
    let time_zone = || {
        json!({
            "type": "string",
            "description": "IANA time zone, e.g. `Europe/Berlin`.",
            "examples": ["Europe/Berlin"],
        })
    };
    let sla_name = |what: &str| {
        text(
            1,
            eventdesk_domain::sla::config::NAME_MAX_CHARS,
            &format!("Name of the {what} (trimmed)."),
        )
    };
    add(
        "SlaCalendar",
        object(
            "A business-hours calendar. The built-in 24x7 calendar has `id: null`, \
             `builtin: true`, `version: 0` and no timestamps.",
            vec![
                req(
                    "id",
                    nullable(uuid("Id (`null` for the built-in 24x7 calendar).")),
                ),
                req("name", string("Name (`24x7` for the built-in calendar).")),
                req("time_zone", string("IANA time zone.")),
                req(
                    "weekly_hours",
                    array(schema_ref("WeeklyRange"), "Weekly opening ranges."),
                ),
                req(
                    "holidays",
                    array(schema_ref("Holiday"), "Holidays, by date."),
                ),
                req(
                    "builtin",
                    boolean("Whether it is the built-in 24x7 calendar."),
                ),
                req("active", boolean("Whether policies may refer to it.")),
                req("created_at", nullable(timestamp("Created."))),
                req("updated_at", nullable(timestamp("Last change."))),
                req(
                    "version",
                    int64("Version (its `ETag`; SLA timers record it). Bumped by every change."),
                ),
            ],
        ),
    );
    add("SlaCalendarPage", page_of("SlaCalendar"));
    add(
        "SlaCalendarCreate",
        request(
            "A new business-hours calendar.",
            vec![
                req("name", sla_name("calendar")),
                req("time_zone", time_zone()),
                req(
                    "weekly_hours",
                    array(
                        schema_ref("WeeklyRange"),
                        "Weekly opening ranges (several per day allowed; no overlaps).",
                    ),
                ),
                opt(
                    "holidays",
                    array(schema_ref("Holiday"), "Holidays (default none)."),
                ),
            ],
        ),
    );
    add(
        "SlaCalendarUpdate",
        request(
            "Changes to a calendar; absent fields are kept, lists are replaced whole.",
            vec![
                opt("name", sla_name("calendar")),
                opt("time_zone", time_zone()),
                opt(
                    "weekly_hours",
                    array(schema_ref("WeeklyRange"), "All weekly opening ranges."),
                ),
                opt("holidays", array(schema_ref("Holiday"), "All holidays.")),
            ],
        ),
    );
    add(
        "HolidayImport",
        request(
            "Holidays to import from an iCalendar file.",
            vec![
                req(
                    "ics",
                    string("The iCalendar text (`BEGIN:VCALENDAR` … `END:VCALENDAR`)."),
                ),
                opt(
                    "replace",
                    boolean("Replace all existing holidays instead of merging (default false)."),
                ),
                opt(
                    "from_year",
                    int32("First year of recurring events to expand (default: this year)."),
                ),
                opt(
                    "to_year",
                    int32("Last year (default `from_year + 1`; at most `from_year + 9`)."),
                ),
            ],
        ),
    );
    add(
        "PolicyCondition",
        request(
            "Which incidents a policy applies to: every given field must match; `{}` matches all.",
            vec![
                opt("team_id", uuid("The incident's assignment group.")),
                opt("category_id", uuid("The incident's category.")),
                opt("impact", reference("Impact", "The incident's impact.")),
            ],
        ),
    );
    let minutes = |what: &str| {
        json!({
            "type": "integer",
            "minimum": 1,
            "maximum": eventdesk_domain::sla::config::MAX_TARGET_MINUTES,
            "description": format!("{what}, in business minutes (absent: no {what} timer)."),
        })
    };
    add(
        "SlaTarget",
        request(
            "The targets for one priority.",
            vec![
                req(
                    "priority",
                    reference("Priority", "The priority (one target each)."),
                ),
                opt("response_minutes", minutes("Time to first response")),
                opt("resolution_minutes", minutes("Time to resolution")),
                opt(
                    "calendar_id",
                    uuid("The calendar these targets are measured on (default: the policy's)."),
                ),
            ],
        ),
    );
    add(
        "SlaPolicy",
        object(
            "An SLA policy.",
            vec![
                req("id", uuid("Id.")),
                req("name", string("Name.")),
                req(
                    "rank",
                    int32("Order of evaluation: lower first, then oldest first."),
                ),
                req(
                    "condition",
                    reference("PolicyCondition", "Which incidents it applies to."),
                ),
                req(
                    "calendar_id",
                    nullable(uuid("The calendar of targets without one (`null`: 24x7).")),
                ),
                req(
                    "targets",
                    array(
                        schema_ref("SlaTarget"),
                        "Targets, most urgent priority first.",
                    ),
                ),
                req("active", boolean("Whether it is in force.")),
                req("created_at", timestamp("Created.")),
                req("updated_at", timestamp("Last change.")),
                req(
                    "version",
                    int64("Version (its `ETag`; SLA timers record it). Bumped by every change."),
                ),
            ],
        ),
    );
    add("SlaPolicyPage", page_of("SlaPolicy"));
    add(
        "SlaPolicyCreate",
        request(
            "A new SLA policy (active).",
            vec![
                req("name", sla_name("policy")),
                opt(
                    "rank",
                    int32("Order of evaluation: lower first (default 100)."),
                ),
                opt(
                    "condition",
                    reference("PolicyCondition", "Default `{}`: every incident."),
                ),
                opt(
                    "calendar_id",
                    uuid("The calendar of targets without one (default: the built-in 24x7)."),
                ),
                req(
                    "targets",
                    array(
                        schema_ref("SlaTarget"),
                        "At most one per priority; a priority without a target gets no timers.",
                    ),
                ),
            ],
        ),
    );
    add(
        "SlaPolicyUpdate",
        request(
            "Changes to an SLA policy; absent fields are kept.",
            vec![
                opt("name", sla_name("policy")),
                opt("rank", int32("Order of evaluation: lower first.")),
                opt(
                    "condition",
                    reference("PolicyCondition", "Replaces the whole condition."),
                ),
                opt(
                    "calendar_id",
                    nullable(uuid("Default calendar; `null`: the built-in 24x7.")),
                ),
                opt(
                    "targets",
                    array(schema_ref("SlaTarget"), "Replaces all targets."),
                ),
            ],
        ),
    );

    // Custom roles.
    add(
        "CustomRole",
        object(
            "A custom role of the tenant: a named set of permissions.",
            vec![
                req("id", uuid("Id.")),
                req(
                    "name",
                    string("Name (unique among the tenant's active roles)."),
                ),
                req("description", nullable(string("Description."))),
                req(
                    "permissions",
                    array(schema_ref("Permission"), "What holders may do, sorted."),
                ),
                req(
                    "is_active",
                    boolean("Whether holders hold its permissions (false once deactivated)."),
                ),
                req("created_at", timestamp("Created.")),
                req("updated_at", timestamp("Last change.")),
                req("version", int64("Version (the `ETag`).")),
            ],
        ),
    );
    add("CustomRolePage", page_of("CustomRole"));
    let role_name = || {
        json!({
            "type": "string",
            "minLength": eventdesk_domain::directory::RoleName::MIN_CHARS,
            "maxLength": eventdesk_domain::directory::RoleName::MAX_CHARS,
            "description": "One line; not a built-in role's name; unique among the tenant's \
                active roles, case-insensitively.",
        })
    };
    add(
        "CustomRoleCreate",
        request(
            "A new custom role.",
            vec![
                req("name", role_name()),
                opt(
                    "description",
                    text(0, Description::MAX_CHARS, "Description."),
                ),
                req(
                    "permissions",
                    array(
                        schema_ref("Permission"),
                        "What holders may do: permissions the caller holds, never \
                         `tenant:manage`.",
                    ),
                ),
            ],
        ),
    );
    add(
        "CustomRoleUpdate",
        request(
            "Changes to a custom role; absent fields are kept.",
            vec![
                opt("name", role_name()),
                opt(
                    "description",
                    nullable(text(
                        0,
                        Description::MAX_CHARS,
                        "Description; `null` clears it.",
                    )),
                ),
                opt(
                    "permissions",
                    array(
                        schema_ref("Permission"),
                        "Replaces the whole set; every permission added must be one the caller \
                         holds.",
                    ),
                ),
            ],
        ),
    );

    // CMDB (ADR 0017).
    add(
        "CiStatus",
        enumeration(
            CiStatus::NAMES.iter().copied(),
            "Lifecycle status of a configuration item (`retired` is final).",
        ),
    );
    let type_key = |description: &str| {
        json!({
            "type": "string",
            "pattern": "^[a-z][a-z0-9_]{1,62}$",
            "description": description,
        })
    };
    add(
        "AttributeSpec",
        object(
            "How one attribute is checked.",
            vec![
                req(
                    "type",
                    enumeration(
                        AttributeKind::NAMES.iter().copied(),
                        "The attribute's type.",
                    ),
                ),
                req(
                    "required",
                    boolean("Whether every CI of the type must have it."),
                ),
                opt(
                    "values",
                    array(string("A value."), "The allowed values (`enum` only)."),
                ),
            ],
        ),
    );
    let ci_fields = || {
        vec![
            req("id", uuid("Id.")),
            req(
                "type",
                string(&format!(
                    "The type's key: built-in ({}) or a custom type's.",
                    BuiltinCiType::NAMES.join(", ")
                )),
            ),
            req("name", string("Name.")),
            req("description", nullable(string("Description."))),
            req("status", reference("CiStatus", "Status.")),
            req(
                "attributes",
                json!({ "type": "object", "description": "The attributes, validated against the type's schema." }),
            ),
            req(
                "owner_team",
                nullable(reference("NamedRef", "The team that owns it.")),
            ),
            req("created_at", timestamp("Registered.")),
            req("created_by", reference("Actor", "Who registered it.")),
            req("updated_at", timestamp("Last change.")),
            req("updated_by", reference("Actor", "Who changed it last.")),
            req("retired_at", nullable(timestamp("When it was retired."))),
            req(
                "version",
                int64("Version of the CI (its `ETag` is `\"<version>\"`)."),
            ),
        ]
    };
    add("Ci", object("A configuration item.", ci_fields()));
    add("CiPage", page_of("Ci"));
    add(
        "CiCreate",
        request(
            "A new configuration item.",
            vec![
                req(
                    "type",
                    type_key("A built-in type's key or one of the tenant's custom types'."),
                ),
                req("name", text(1, CiName::MAX_CHARS, "One line.")),
                opt(
                    "description",
                    text(0, Description::MAX_CHARS, "Description."),
                ),
                opt(
                    "attributes",
                    json!({ "type": "object", "description": "Attribute name → value, as the type's schema says (default none)." }),
                ),
                opt("owner_team_id", uuid("A team of the tenant.")),
                opt(
                    "status",
                    reference("CiStatus", "Default `active`; `retired` is refused."),
                ),
            ],
        ),
    );
    add(
        "CiUpdate",
        request(
            "Changes to a configuration item; absent fields are kept.",
            vec![
                opt("name", text(1, CiName::MAX_CHARS, "One line.")),
                opt(
                    "description",
                    nullable(text(
                        0,
                        Description::MAX_CHARS,
                        "Description; `null` clears it.",
                    )),
                ),
                opt(
                    "attributes",
                    json!({ "type": "object", "description": "Replaces the whole attribute object (validated again)." }),
                ),
                opt(
                    "owner_team_id",
                    nullable(uuid("Owner team; `null` clears it.")),
                ),
                opt(
                    "status",
                    reference(
                        "CiStatus",
                        "`planned`, `active` or `maintenance` (`retired` only by the retire action).",
                    ),
                ),
            ],
        ),
    );
    add(
        "CiType",
        object(
            "A CI type: built in, or one of the tenant's.",
            vec![
                req("id", nullable(uuid("Id (custom types only)."))),
                req("key", string("What CIs name as their `type`.")),
                req("name", string("Display name.")),
                req("description", nullable(string("Description."))),
                req("builtin", boolean("Whether it is a built-in type.")),
                req(
                    "attributes",
                    json!({
                        "type": "object",
                        "description": "The schema: attribute name → spec.",
                        "additionalProperties": schema_ref("AttributeSpec"),
                    }),
                ),
                req(
                    "created_at",
                    nullable(timestamp("Defined (custom types only).")),
                ),
                req(
                    "updated_at",
                    nullable(timestamp("Last change (custom types only).")),
                ),
                req(
                    "version",
                    int64("Version (its `ETag`; 0 for a built-in type)."),
                ),
            ],
        ),
    );
    add("CiTypePage", page_of("CiType"));
    add(
        "CiTypeCreate",
        request(
            "A custom CI type.",
            vec![
                req(
                    "key",
                    type_key(
                        "2 to 63 characters of a-z, 0-9 and _, starting with a letter; not a \
                         built-in type's.",
                    ),
                ),
                req("name", text(1, CiName::MAX_CHARS, "Display name.")),
                opt(
                    "description",
                    text(0, Description::MAX_CHARS, "Description."),
                ),
                opt(
                    "attributes",
                    json!({
                        "type": "object",
                        "description": "Attribute name → `{type, required, values}` (default: no attributes). `type` is string, integer, number, boolean, ip, url or enum (with `values`); `enum[a,b]` is shorthand.",
                    }),
                ),
            ],
        ),
    );
    add(
        "CiRef",
        object(
            "A configuration item embedded in another object.",
            vec![
                req("id", uuid("Id.")),
                req("name", string("Name.")),
                req("type", string("Type key.")),
                req("status", reference("CiStatus", "Status.")),
            ],
        ),
    );
    add(
        "CiRelationship",
        object(
            "A relationship, as listed for one of its CIs.",
            vec![
                req("id", uuid("Id.")),
                req(
                    "type",
                    string("`depends_on`, `runs_on`, `connected_to` or a custom type."),
                ),
                req(
                    "direction",
                    enumeration(
                        Direction::NAMES.iter().copied(),
                        "`outgoing`: the listed CI is the source; `incoming`: the target.",
                    ),
                ),
                req("source_id", uuid("The source CI (`source type target`).")),
                req("target_id", uuid("The target CI.")),
                req("related", reference("CiRef", "The CI at the other end.")),
                req("created_at", timestamp("Created.")),
                req("created_by", reference("Actor", "Who created it.")),
            ],
        ),
    );
    add("CiRelationshipPage", page_of("CiRelationship"));
    add(
        "CiRelationshipCreate",
        request(
            "A relationship from the CI of the path to `target_id`.",
            vec![
                req("target_id", uuid("A CI of the tenant.")),
                req(
                    "type",
                    type_key("`depends_on`, `runs_on`, `connected_to` or a custom type."),
                ),
            ],
        ),
    );
    add(
        "ImpactIncident",
        object(
            "An open incident on an affected CI.",
            vec![
                req("id", uuid("Id.")),
                req("incident_number", string("Its number, e.g. `INC000123`.")),
                req("title", string("Title.")),
                req("status", reference("IncidentStatus", "An open status.")),
                req("priority", reference("Priority", "Priority.")),
            ],
        ),
    );
    let scheduled = || {
        array(
            schema_ref("ChangeSummary"),
            "Scheduled changes (or changes being implemented) on the CI.",
        )
    };
    add(
        "ImpactedCi",
        object(
            "A CI affected by the failure.",
            vec![
                req("id", uuid("Id.")),
                req("name", string("Name.")),
                req("type", string("Type key.")),
                req("status", reference("CiStatus", "Status.")),
                req(
                    "depth",
                    unsigned("Relationships away from the failed CI (1: directly)."),
                ),
                req(
                    "path",
                    array(
                        uuid("A CI id."),
                        "A shortest path from the failed CI to this one, both included.",
                    ),
                ),
                req(
                    "relationship",
                    string("The type of the path's last relationship (`depends_on` or `runs_on`)."),
                ),
                req(
                    "open_incidents",
                    array(schema_ref("ImpactIncident"), "Its open incidents."),
                ),
                req("scheduled_changes", scheduled()),
            ],
        ),
    );
    add(
        "ImpactSummary",
        object(
            "Counts of an impact analysis.",
            vec![
                req(
                    "affected_cis",
                    unsigned("Affected CIs (the failed one not counted)."),
                ),
                req(
                    "affected_services",
                    unsigned("Affected CIs of type `service`."),
                ),
                req(
                    "open_incidents",
                    unsigned("Open incidents on the failed and the affected CIs."),
                ),
                req(
                    "scheduled_changes",
                    unsigned("Scheduled changes on the failed and the affected CIs."),
                ),
            ],
        ),
    );
    add(
        "CiImpact",
        object(
            "What is affected if a configuration item fails.",
            vec![
                req("ci", reference("CiRef", "The failed CI.")),
                req("depth", unsigned("The depth limit applied.")),
                req(
                    "more_beyond_depth",
                    boolean("Whether CIs beyond the depth limit are affected too."),
                ),
                req(
                    "open_incidents",
                    array(
                        schema_ref("ImpactIncident"),
                        "The failed CI's own open incidents.",
                    ),
                ),
                req("scheduled_changes", scheduled()),
                req(
                    "affected",
                    array(
                        schema_ref("ImpactedCi"),
                        "The affected CIs, nearest first, then by name.",
                    ),
                ),
                req("summary", reference("ImpactSummary", "Counts.")),
            ],
        ),
    );

    // API keys.
    let api_key_fields = || {
        vec![
            req("id", uuid("Id.")),
            req("tenant_id", uuid("Owning tenant.")),
            req("name", string("Display name.")),
            req(
                "prefix",
                string("Lookup prefix, e.g. `qg_live_Ab3x-9Qz` (safe to show)."),
            ),
            req("mode", reference("ApiKeyMode", "Live or test.")),
            req(
                "permissions",
                array(schema_ref("Permission"), "What the key may do."),
            ),
            req("created_by", nullable(uuid("The user who created it."))),
            req("created_at", timestamp("Created.")),
            req(
                "last_used_at",
                nullable(timestamp(
                    "Last successful use (updated at most once a minute).",
                )),
            ),
            req(
                "revoked_at",
                nullable(timestamp(
                    "Revocation; a revoked key authenticates nothing.",
                )),
            ),
        ]
    };
    add(
        "ApiKey",
        object("An API key (never its secret).", api_key_fields()),
    );
    let mut created = api_key_fields();
    created.push(req(
        "api_key",
        string("The key itself (`qg_live_…`/`qg_test_…`). Shown only once: store it now."),
    ));
    add(
        "ApiKeyCreated",
        object("A new API key, with its secret.", created),
    );
    add(
        "ApiKeyList",
        object(
            "The tenant's API keys.",
            vec![req("data", array(schema_ref("ApiKey"), "The keys."))],
        ),
    );
    add(
        "ApiKeyCreate",
        request(
            "A new API key.",
            vec![
                req(
                    "name",
                    json!({ "type": "string", "minLength": 1, "maxLength": 200, "description": "Display name." }),
                ),
                opt("mode", reference("ApiKeyMode", "Default `live`.")),
                opt(
                    "permissions",
                    array(
                        schema_ref("Permission"),
                        "Default: the creator's permissions. Must be a subset of them.",
                    ),
                ),
            ],
        ),
    );

    // The integration bus (ADR 0016).
    bus::add_schemas(&mut add);
    // The performance monitor (ADR 0020).
    monitor::add_schemas(&mut add);
    // Rate limits (ADR 0019).
    live::add_schemas(&mut add);

    // Problems and known errors (ADR 0021).
    itil::add_schemas(&mut add);

    // Health and meta.
    add(
        "Health",
        object(
            "Liveness.",
            vec![req("status", json!({ "type": "string", "const": "ok" }))],
        ),
    );
    add(
        "Readiness",
        object(
            "Readiness.",
            vec![req(
                "status",
                enumeration(
                    ["ready", "unavailable"],
                    "`ready`, or `unavailable` with 503.",
                ),
            )],
        ),
    );
    add(
        "OpenApiDocument",
        json!({ "type": "object", "description": "An OpenAPI 3.1 document." }),
    );
    for (name, v) in analytics_schemas() {
        s.insert(name.to_owned(), v);
    }
    s
}

/// A number (`mean`, `median`, `percent`), or `null` when there is nothing to average.
fn maybe_number(description: &str) -> Value {
    json!({ "type": ["number", "null"], "description": description })
}

/// The schemas of `GET /api/v1/analytics/…` (ADR 0015).
fn analytics_schemas() -> Vec<(&'static str, Value)> {
    let priority = || reference("Priority", "The priority.");
    let team = || nullable(uuid("The team (`null`: incidents without a team)."));
    let count = |d: &str| int64(d);
    let stats = || reference("AnalyticsDurationStats", "Figures.");
    let compliance_fields = || {
        vec![
            req("completed", count("Timers completed in the range.")),
            req("met", count("Of those, within their target.")),
            req("breached", count("Of those, past their target.")),
            req(
                "compliance_percent",
                maybe_number("`met / completed × 100`; `null` when none completed."),
            ),
        ]
    };
    let with = |first: Field, rest: Vec<Field>| {
        let mut v = vec![first];
        v.extend(rest);
        v
    };
    vec![
        (
            "AnalyticsStatusCount",
            object(
                "Open incidents in one status.",
                vec![
                    req("status", reference("IncidentStatus", "An open status.")),
                    req("count", count("Open incidents in it.")),
                ],
            ),
        ),
        (
            "AnalyticsPriorityCount",
            object(
                "Open incidents of one priority.",
                vec![
                    req("priority", priority()),
                    req("count", count("The count.")),
                ],
            ),
        ),
        (
            "AnalyticsTeamCount",
            object(
                "Open incidents of one team.",
                vec![req("team_id", team()), req("count", count("The count."))],
            ),
        ),
        (
            "AnalyticsCategoryCount",
            object(
                "Open incidents of one category.",
                vec![
                    req(
                        "category_id",
                        nullable(uuid("The category (`null`: incidents without one).")),
                    ),
                    req("count", count("The count.")),
                ],
            ),
        ),
        (
            "AnalyticsSummary",
            object(
                "The open incidents now.",
                vec![
                    req(
                        "total_open",
                        count("Open incidents (new, assigned, in progress, on hold)."),
                    ),
                    req(
                        "critical_open",
                        count("Open incidents of priority critical."),
                    ),
                    req("unassigned", count("Open incidents without an assignee.")),
                    req(
                        "by_status",
                        array(
                            schema_ref("AnalyticsStatusCount"),
                            "Every open status, zeros included.",
                        ),
                    ),
                    req(
                        "by_priority",
                        array(
                            schema_ref("AnalyticsPriorityCount"),
                            "Every priority, most severe first.",
                        ),
                    ),
                    req(
                        "by_team",
                        array(
                            schema_ref("AnalyticsTeamCount"),
                            "Teams with open incidents, largest first.",
                        ),
                    ),
                    req(
                        "by_category",
                        array(
                            schema_ref("AnalyticsCategoryCount"),
                            "Categories with open incidents, largest first.",
                        ),
                    ),
                ],
            ),
        ),
        (
            "AnalyticsTrendPoint",
            object(
                "The flows of one bucket.",
                vec![
                    req(
                        "start",
                        timestamp("Bucket start, local time with its offset."),
                    ),
                    req(
                        "end",
                        timestamp("Bucket end (exclusive), local time with its offset."),
                    ),
                    req("created", count("Incidents created.")),
                    req("resolved", count("Resolutions (again after a reopen).")),
                    req("closed", count("Incidents closed.")),
                    req("reopened", count("Reopens.")),
                ],
            ),
        ),
        (
            "AnalyticsTrendTotals",
            object(
                "Sums over the buckets.",
                vec![
                    req("created", count("Incidents created.")),
                    req("resolved", count("Resolutions.")),
                    req("closed", count("Incidents closed.")),
                    req("reopened", count("Reopens.")),
                ],
            ),
        ),
        (
            "AnalyticsTrends",
            object(
                "Flows per bucket of local time.",
                vec![
                    req(
                        "bucket",
                        enumeration(
                            eventdesk_projections::queries::analytics::Bucket::NAMES
                                .iter()
                                .copied(),
                            "The bucket size.",
                        ),
                    ),
                    req("tz", string("The IANA zone of the buckets.")),
                    req("from", timestamp("The requested range start.")),
                    req("to", timestamp("The requested range end.")),
                    req(
                        "data",
                        array(
                            schema_ref("AnalyticsTrendPoint"),
                            "One point per bucket, oldest first (whole buckets).",
                        ),
                    ),
                    req(
                        "totals",
                        reference("AnalyticsTrendTotals", "Sums over `data`."),
                    ),
                ],
            ),
        ),
        (
            "AnalyticsDurationStats",
            object(
                "Count, mean and median of a set of durations, in seconds.",
                vec![
                    req("count", count("Samples.")),
                    req(
                        "mean_seconds",
                        maybe_number("Mean; `null` without samples."),
                    ),
                    req(
                        "median_seconds",
                        maybe_number(
                            "Median (mean of the two middle values for an even count); `null` \
                             without samples.",
                        ),
                    ),
                ],
            ),
        ),
        (
            "AnalyticsDurationFigures",
            object(
                "Wall-clock and business-time figures.",
                vec![req("wall", stats()), req("business", stats())],
            ),
        ),
        (
            "AnalyticsPriorityDurations",
            object(
                "The figures of one priority.",
                vec![
                    req("priority", priority()),
                    req("wall", stats()),
                    req("business", stats()),
                ],
            ),
        ),
        (
            "AnalyticsTeamDurations",
            object(
                "The figures of one team.",
                vec![
                    req("team_id", team()),
                    req("wall", stats()),
                    req("business", stats()),
                ],
            ),
        ),
        (
            "AnalyticsDurations",
            object(
                "Time to resolve (`mttr`) or to respond (`mtta`).",
                vec![
                    req(
                        "metric",
                        enumeration(["resolution", "response"], "Which duration."),
                    ),
                    req(
                        "from",
                        timestamp("Samples taken at or after this instant …"),
                    ),
                    req("to", timestamp("… and before this one.")),
                    req(
                        "overall",
                        reference("AnalyticsDurationFigures", "All samples."),
                    ),
                    req(
                        "by_priority",
                        array(
                            schema_ref("AnalyticsPriorityDurations"),
                            "Every priority, most severe first.",
                        ),
                    ),
                    req(
                        "by_team",
                        array(schema_ref("AnalyticsTeamDurations"), "Teams with samples."),
                    ),
                ],
            ),
        ),
        (
            "AnalyticsComplianceFigures",
            object("Compliance of completed timers.", compliance_fields()),
        ),
        (
            "AnalyticsPriorityCompliance",
            object(
                "Compliance of one priority.",
                with(req("priority", priority()), compliance_fields()),
            ),
        ),
        (
            "AnalyticsTeamCompliance",
            object(
                "Compliance of one team.",
                with(req("team_id", team()), compliance_fields()),
            ),
        ),
        (
            "AnalyticsCompliance",
            object(
                "Compliance of one metric.",
                vec![
                    req(
                        "overall",
                        reference("AnalyticsComplianceFigures", "All completed timers."),
                    ),
                    req(
                        "by_priority",
                        array(
                            schema_ref("AnalyticsPriorityCompliance"),
                            "Every priority, most severe first.",
                        ),
                    ),
                    req(
                        "by_team",
                        array(
                            schema_ref("AnalyticsTeamCompliance"),
                            "Teams with completed timers.",
                        ),
                    ),
                ],
            ),
        ),
        (
            "AnalyticsPriorityBreaches",
            object(
                "Breached completions of one priority.",
                vec![
                    req("priority", priority()),
                    req("response", count("Response timers completed past target.")),
                    req(
                        "resolution",
                        count("Resolution timers completed past target."),
                    ),
                ],
            ),
        ),
        (
            "AnalyticsCurrentTimers",
            object(
                "Running timers of one metric now.",
                vec![
                    req(
                        "at_risk",
                        count("Running, 75 % warning recorded, not breached."),
                    ),
                    req("breached", count("Running or paused, breached.")),
                ],
            ),
        ),
        (
            "AnalyticsCurrentSla",
            object(
                "Running timers now.",
                vec![
                    req(
                        "response",
                        reference("AnalyticsCurrentTimers", "Response timers."),
                    ),
                    req(
                        "resolution",
                        reference("AnalyticsCurrentTimers", "Resolution timers."),
                    ),
                ],
            ),
        ),
        (
            "AnalyticsSla",
            object(
                "SLA compliance and timers at risk.",
                vec![
                    req(
                        "from",
                        timestamp("Timers completed at or after this instant …"),
                    ),
                    req("to", timestamp("… and before this one.")),
                    req(
                        "response",
                        reference("AnalyticsCompliance", "Response compliance."),
                    ),
                    req(
                        "resolution",
                        reference("AnalyticsCompliance", "Resolution compliance."),
                    ),
                    req(
                        "breaches_by_priority",
                        array(
                            schema_ref("AnalyticsPriorityBreaches"),
                            "Breached completions per priority, most severe first.",
                        ),
                    ),
                    req(
                        "current",
                        reference("AnalyticsCurrentSla", "Running timers now."),
                    ),
                ],
            ),
        ),
        (
            "AnalyticsAgingBucket",
            object(
                "Open incidents of one age range.",
                vec![
                    req(
                        "bucket",
                        enumeration(
                            eventdesk_projections::queries::analytics::AGING_BUCKETS
                                .iter()
                                .map(|b| b.0),
                            "The age range.",
                        ),
                    ),
                    req(
                        "min_age_days",
                        count("Lower bound of the age in days (inclusive)."),
                    ),
                    req(
                        "max_age_days",
                        nullable(int64("Upper bound in days (exclusive); `null`: none.")),
                    ),
                    req("count", count("Open incidents of that age.")),
                ],
            ),
        ),
        (
            "AnalyticsReopenRate",
            object(
                "Reopens among the incidents ever resolved.",
                vec![
                    req(
                        "resolved_incidents",
                        count("Incidents resolved at least once."),
                    ),
                    req(
                        "reopened_incidents",
                        count("Of those, reopened at least once."),
                    ),
                    req(
                        "rate_percent",
                        maybe_number("`reopened / resolved × 100`; `null` when none resolved."),
                    ),
                ],
            ),
        ),
        (
            "AnalyticsWorkload",
            object(
                "Open incidents assigned to one agent.",
                vec![
                    req("assignee_id", uuid("The agent.")),
                    req("open", count("Open incidents assigned to them.")),
                ],
            ),
        ),
        (
            "AnalyticsBacklog",
            object(
                "The backlog now.",
                vec![
                    req("as_of", timestamp("The instant ages are measured at.")),
                    req("open_total", count("Open incidents.")),
                    req(
                        "aging",
                        array(
                            schema_ref("AnalyticsAgingBucket"),
                            "By age, youngest first.",
                        ),
                    ),
                    req("reopen", reference("AnalyticsReopenRate", "Reopen rate.")),
                    req(
                        "workload",
                        array(
                            schema_ref("AnalyticsWorkload"),
                            "Per assignee, busiest first.",
                        ),
                    ),
                ],
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn doc() -> Value {
        document()
    }

    fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                out.push((method.clone(), path.clone(), op));
            }
        }
        out
    }

    /// Resolves a local `$ref` (`#/a/b/c`).
    fn resolve<'a>(doc: &'a Value, r: &str) -> Option<&'a Value> {
        let pointer = r.strip_prefix('#')?;
        doc.pointer(pointer)
    }

    fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => deref(
                doc,
                resolve(doc, r).unwrap_or_else(|| panic!("dangling {r}")),
            ),
            None => v,
        }
    }

    fn collect_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if k == "$ref" {
                        out.push(x.as_str().expect("$ref is a string"));
                    } else {
                        collect_refs(x, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn is_openapi_3_1_json() {
        let text = DOCUMENT_JSON.as_str();
        let v: Value = serde_json::from_str(text).unwrap();
        assert!(v["openapi"].as_str().unwrap().starts_with("3.1"));
        assert!(v["info"]["title"].is_string() && v["info"]["version"].is_string());
    }

    #[test]
    fn every_declared_route_appears_exactly_once() {
        let d = doc();
        let ops = operations(&d);
        let listed: Vec<(String, String)> = ops
            .iter()
            .map(|(m, p, _)| (m.to_uppercase(), p.clone()))
            .collect();
        let declared: Vec<(String, String)> = declared_routes()
            .map(|(m, r, _)| (m.as_str().to_owned(), r.to_owned()))
            .collect();
        for route in &declared {
            assert_eq!(
                listed.iter().filter(|l| *l == route).count(),
                1,
                "{route:?} must appear exactly once"
            );
        }
        for l in &listed {
            assert!(declared.contains(l), "{l:?} is documented but not routed");
        }
        // Declarations themselves are unique (a public route is not also protected).
        let unique: BTreeSet<_> = declared.iter().collect();
        assert_eq!(unique.len(), declared.len(), "a route is declared twice");
    }

    #[test]
    fn the_table_covers_exactly_the_declared_routes() {
        for (m, r, _) in declared_routes() {
            assert!(
                operation_spec(m, r).is_some(),
                "{m} {r} has no row in openapi::OPERATIONS: describe its request, status and response"
            );
        }
        for op in all_operations() {
            assert!(
                declared_routes().any(|(m, r, _)| *m == op.method && r == op.route),
                "OPERATIONS row {} {} matches no declared route",
                op.method,
                op.route
            );
        }
        let d = doc();
        for (m, p, op) in operations(&d) {
            assert!(
                op.get("x-undocumented").is_none(),
                "{m} {p} is undocumented"
            );
        }
    }

    /// A `.route("…", …)` in `routes/mod.rs` that is neither in `PERMISSIONS` nor public would
    /// be an undocumented (and, being outside the protected router, unauthenticated) route.
    #[test]
    fn every_route_in_the_router_source_is_declared() {
        let src = include_str!("routes/mod.rs");
        let body = src.split("pub fn router(").nth(1).expect("routes::router");
        let body = body.split("#[cfg(test)]").next().unwrap_or(body);
        let chunks: Vec<&str> = body.split(".route(").skip(1).collect();
        assert!(chunks.len() >= 10, "could not parse routes/mod.rs");
        let mut seen = 0;
        for chunk in chunks {
            let chunk = chunk.trim_start();
            let Some(rest) = chunk.strip_prefix('"') else {
                // A constant path, e.g. `openapi::OPENAPI_PATH`.
                continue;
            };
            let path = &rest[..rest.find('"').unwrap()];
            let end = [".route(", ".route_layer(", ".merge(", ".fallback(", ";"]
                .iter()
                .filter_map(|t| rest.find(t))
                .min()
                .unwrap_or(rest.len());
            let handlers = &rest[..end];
            for method in ["get", "post", "put", "patch", "delete"] {
                let needle = format!("{method}(");
                let used = handlers.match_indices(&needle).any(|(i, _)| {
                    i == 0 || {
                        let c = handlers.as_bytes()[i - 1];
                        !(c.is_ascii_alphanumeric() || c == b'_')
                    }
                });
                if used {
                    seen += 1;
                    let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                    assert!(
                        declared_routes().any(|(dm, r, _)| *dm == m && r == path),
                        "{m} {path} is routed but neither in PERMISSIONS nor in openapi::PUBLIC_ROUTES"
                    );
                }
            }
        }
        assert!(seen >= PERMISSIONS.len(), "parsed only {seen} routes");
    }

    #[test]
    fn every_ref_resolves() {
        let d = doc();
        let mut refs = Vec::new();
        collect_refs(&d, &mut refs);
        assert!(refs.len() > 50);
        for r in refs {
            assert!(r.starts_with("#/components/"), "non-local $ref {r}");
            assert!(resolve(&d, r).is_some(), "dangling $ref {r}");
        }
    }

    #[test]
    fn every_component_is_used() {
        let d = doc();
        let mut refs = Vec::new();
        collect_refs(&d, &mut refs);
        let refs: BTreeSet<&str> = refs.into_iter().collect();
        for kind in ["schemas", "responses", "parameters", "headers"] {
            for name in d["components"][kind].as_object().unwrap().keys() {
                let r = format!("#/components/{kind}/{name}");
                assert!(refs.contains(r.as_str()), "{r} is never used");
            }
        }
    }

    #[test]
    fn every_api_operation_documents_errors_with_the_error_schema() {
        let d = doc();
        for (m, p, op) in operations(&d) {
            let responses = op["responses"].as_object().unwrap();
            let error_4xx = responses
                .iter()
                .filter(|(code, _)| code.starts_with('4'))
                .filter(|(_, r)| {
                    deref(&d, r)["content"]["application/json"]["schema"]["$ref"]
                        == "#/components/schemas/Error"
                })
                .count();
            if p.starts_with("/api/v1/") && p != OPENAPI_PATH {
                assert!(error_4xx > 0, "{m} {p} has no 4xx referencing Error");
            }
            // Every non-success answer uses the shared error shape (readiness excepted).
            for (code, r) in responses {
                if (code.starts_with('4') || code.starts_with('5')) && p != "/readyz" {
                    assert_eq!(
                        deref(&d, r)["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/Error",
                        "{m} {p} {code}"
                    );
                }
            }
            // (The WebSocket's success is `101 Switching Protocols`.)
            let success: Vec<_> = responses
                .keys()
                .filter(|c| c.starts_with('2') || *c == "101")
                .collect();
            assert_eq!(success.len(), 1, "{m} {p}: one success status");
        }
    }

    #[test]
    fn security_matches_the_permission_table() {
        let d = doc();
        for (m, r, access) in declared_routes() {
            let op = &d["paths"][r][m.as_str().to_ascii_lowercase()];
            let check_security = || {
                let sec = op["security"].as_array().expect("protected: security");
                assert!(!sec.is_empty());
                for req in sec {
                    for scheme in req.as_object().unwrap().keys() {
                        assert!(
                            d["components"]["securitySchemes"][scheme].is_object(),
                            "unknown scheme {scheme}"
                        );
                    }
                }
                assert!(op["responses"]["401"].is_object(), "{m} {r}: 401");
            };
            match access {
                Access::Permission(p) => {
                    check_security();
                    assert_eq!(op["x-required-permission"], p.to_string());
                    assert!(
                        op["description"]
                            .as_str()
                            .unwrap()
                            .contains(&format!("`{p}`")),
                        "{m} {r}: the description names the permission"
                    );
                    assert!(op["responses"]["403"].is_object(), "{m} {r}: 403");
                }
                Access::Authenticated => {
                    check_security();
                    assert!(op.get("x-required-permission").is_none());
                }
                Access::Public => {
                    assert!(op.get("security").is_none(), "{m} {r} is public");
                    assert!(op.get("x-required-permission").is_none());
                }
            }
        }
        assert!(
            d.get("security").is_none(),
            "no global security requirement"
        );
    }

    #[test]
    fn operation_ids_are_unique_and_path_parameters_declared() {
        let d = doc();
        let mut ids = BTreeSet::new();
        for (m, p, op) in operations(&d) {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
            let declared: BTreeSet<String> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|x| deref(&d, x))
                        .filter(|x| x["in"] == "path")
                        .map(|x| x["name"].as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            let in_path: BTreeSet<String> = path_params(&p).map(str::to_owned).collect();
            assert_eq!(declared, in_path, "{m} {p}");
            let tag = op["tags"][0].as_str().unwrap();
            assert!(
                d["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t["name"] == tag),
                "{m} {p}: undeclared tag {tag}"
            );
        }
    }

    #[test]
    fn headers_follow_the_handlers() {
        let d = doc();
        let op = |m: &str, p: &str| d["paths"][p][m].clone();
        let params = |o: &Value| -> Vec<String> {
            o["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|x| deref(&d, x)["name"].as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let create = op("post", "/api/v1/incidents");
        assert!(params(&create).contains(&"Idempotency-Key".to_owned()));
        assert!(create["responses"]["201"]["headers"]["ETag"].is_object());
        assert!(create["responses"]["201"]["headers"]["Location"].is_object());
        let patch = op("patch", "/api/v1/incidents/{id}");
        assert!(params(&patch).contains(&"If-Match".to_owned()));
        assert!(patch["responses"]["200"]["headers"]["ETag"].is_object());
        assert!(patch["responses"]["412"].is_object());
        for action in [
            "assign", "start", "hold", "resume", "resolve", "reopen", "close", "cancel",
        ] {
            let o = op("post", &format!("/api/v1/incidents/{{id}}/{action}"));
            assert!(params(&o).contains(&"If-Match".to_owned()), "{action}");
            assert!(
                o["responses"]["200"]["headers"]["ETag"].is_object(),
                "{action}"
            );
        }
        assert!(
            op("get", "/api/v1/incidents/{id}")["responses"]["200"]["headers"]["ETag"].is_object()
        );
        // Retry-After on 429.
        assert!(
            d["components"]["responses"]["TooManyRequests"]["headers"]["Retry-After"].is_object()
        );
    }

    #[test]
    fn request_schemas_are_closed() {
        let d = doc();
        for op in all_operations() {
            if let Body::Json(s) | Body::Optional(s) = op.body {
                assert_eq!(
                    d["components"]["schemas"][s]["additionalProperties"],
                    json!(false),
                    "{s}"
                );
            }
        }
    }

    // --------------------------------------------------------------------------------------
    // Schemas against the real types
    // --------------------------------------------------------------------------------------

    /// A minimal JSON Schema validator for the keywords this document uses. `closed` treats
    /// every object schema with `properties` as `additionalProperties: false`, so a field the
    /// server sends but the schema lacks is caught.
    fn validate(doc: &Value, schema: &Value, v: &Value, path: &str, closed: bool) -> Vec<String> {
        const KNOWN: &[&str] = &[
            "$ref",
            "type",
            "properties",
            "required",
            "additionalProperties",
            "items",
            "enum",
            "const",
            "oneOf",
            "description",
            "format",
            "pattern",
            "minLength",
            "maxLength",
            "minimum",
            "maximum",
            "default",
            "examples",
            "writeOnly",
            "contentMediaType",
        ];
        let mut errs = Vec::new();
        let obj = schema.as_object().expect("schema object");
        for k in obj.keys() {
            assert!(
                KNOWN.contains(&k.as_str()),
                "unsupported keyword {k} at {path}"
            );
        }
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            errs.extend(validate(doc, resolve(doc, r).unwrap(), v, path, closed));
        }
        if let Some(t) = obj.get("type") {
            let types: Vec<&str> = match t {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => panic!("bad type"),
            };
            let ok = types.iter().any(|t| match *t {
                "string" => v.is_string(),
                "integer" => v.is_i64() || v.is_u64(),
                "number" => v.is_number(),
                "boolean" => v.is_boolean(),
                "array" => v.is_array(),
                "object" => v.is_object(),
                "null" => v.is_null(),
                _ => false,
            });
            if !ok {
                errs.push(format!("{path}: {v} is not {types:?}"));
                return errs;
            }
        }
        if let Some(e) = obj.get("enum").and_then(Value::as_array)
            && !e.contains(v)
        {
            errs.push(format!("{path}: {v} not in {e:?}"));
        }
        if let Some(c) = obj.get("const")
            && c != v
        {
            errs.push(format!("{path}: {v} != {c}"));
        }
        if let (Some(n), Some(s)) = (obj.get("maxLength").and_then(Value::as_u64), v.as_str())
            && s.chars().count() as u64 > n
        {
            errs.push(format!("{path}: longer than {n}"));
        }
        if let (Some(n), Some(s)) = (obj.get("minLength").and_then(Value::as_u64), v.as_str())
            && (s.chars().count() as u64) < n
        {
            errs.push(format!("{path}: shorter than {n}"));
        }
        if let (Some(n), Some(x)) = (obj.get("minimum").and_then(Value::as_f64), v.as_f64())
            && x < n
        {
            errs.push(format!("{path}: below {n}"));
        }
        if let (Some(n), Some(x)) = (obj.get("maximum").and_then(Value::as_f64), v.as_f64())
            && x > n
        {
            errs.push(format!("{path}: above {n}"));
        }
        if obj.get("format").and_then(Value::as_str) == Some("uuid")
            && let Some(s) = v.as_str()
            && s.parse::<uuid::Uuid>().is_err()
        {
            errs.push(format!("{path}: {s} is not a uuid"));
        }
        if obj.get("format").and_then(Value::as_str) == Some("date-time")
            && let Some(s) = v.as_str()
            && chrono::DateTime::parse_from_rfc3339(s).is_err()
        {
            errs.push(format!("{path}: {s} is not a date-time"));
        }
        if let Some(one_of) = obj.get("oneOf").and_then(Value::as_array) {
            let matching = one_of
                .iter()
                .filter(|s| validate(doc, s, v, path, closed).is_empty())
                .count();
            if matching != 1 {
                errs.push(format!("{path}: {v} matches {matching} of oneOf"));
            }
        }
        if let (Some(props), Some(o)) = (
            obj.get("properties").and_then(Value::as_object),
            v.as_object(),
        ) {
            for (k, x) in o {
                match props.get(k) {
                    Some(s) => errs.extend(validate(doc, s, x, &format!("{path}.{k}"), closed)),
                    None => {
                        if closed || obj.get("additionalProperties") == Some(&json!(false)) {
                            errs.push(format!("{path}: unexpected property {k}"));
                        }
                    }
                }
            }
            for r in obj
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let r = r.as_str().unwrap();
                if !o.contains_key(r) {
                    errs.push(format!("{path}: missing {r}"));
                }
            }
        }
        if let (Some(items), Some(a)) = (obj.get("items"), v.as_array()) {
            for (i, x) in a.iter().enumerate() {
                errs.extend(validate(doc, items, x, &format!("{path}[{i}]"), closed));
            }
        }
        errs
    }

    fn schema<'a>(d: &'a Value, name: &str) -> &'a Value {
        let s = &d["components"]["schemas"][name];
        assert!(s.is_object(), "no schema {name}");
        s
    }

    fn assert_valid(d: &Value, name: &str, v: &Value) {
        let errs = validate(d, schema(d, name), v, name, true);
        assert!(errs.is_empty(), "{name}: {errs:#?}\n{v:#}");
    }

    /// Every property of `name` (following refs and nullable wrappers one level) appears in
    /// at least one of the samples: the schema has no property the server never sends.
    fn assert_covered(d: &Value, name: &str, samples: &[Value]) {
        let props = schema(d, name)["properties"].as_object().unwrap();
        for p in props.keys() {
            assert!(
                samples.iter().any(|s| s.get(p).is_some()),
                "{name}.{p} appears in no serialised sample"
            );
        }
    }

    /// A value of the schema, with every optional property present (`all`) or only the
    /// required ones.
    fn sample(d: &Value, s: &Value, all: bool) -> Value {
        let s = deref(d, s);
        if let Some(c) = s.get("const") {
            return c.clone();
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            return e[0].clone();
        }
        if let Some(e) = s.get("examples").and_then(Value::as_array) {
            return e[0].clone();
        }
        if let Some(o) = s.get("oneOf").and_then(Value::as_array) {
            return sample(d, &o[0], all);
        }
        let ty = match &s["type"] {
            Value::String(t) => t.clone(),
            Value::Array(a) => a[0].as_str().unwrap().to_owned(),
            other => panic!("no type in {other}"),
        };
        match ty.as_str() {
            "object" => {
                let required: Vec<&str> = s["required"]
                    .as_array()
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let mut m = Map::new();
                for (k, p) in s["properties"].as_object().into_iter().flatten() {
                    if all || required.contains(&k.as_str()) {
                        m.insert(k.clone(), sample(d, p, all));
                    }
                }
                Value::Object(m)
            }
            "array" => json!([sample(d, &s["items"], all)]),
            "boolean" => json!(true),
            "integer" => json!(s.get("minimum").and_then(Value::as_i64).unwrap_or(1).max(1)),
            "string" => match s.get("format").and_then(Value::as_str) {
                Some("uuid") => json!("0190f3a0-0000-7000-8000-000000000001"),
                Some("date-time") => json!("2025-01-02T03:04:05Z"),
                Some("email") => json!("ada@example.com"),
                _ if s["minLength"].as_u64().unwrap_or(0) > 3 => {
                    json!("x".repeat(s["minLength"].as_u64().unwrap_or(0) as usize))
                }
                _ => json!("abcd"),
            },
            other => panic!("type {other}"),
        }
    }

    /// The field names of a `#[derive(Deserialize)]` struct, read from its impl.
    fn fields_of<T: serde::de::DeserializeOwned>() -> BTreeSet<&'static str> {
        use serde::de::{Error as _, Visitor};
        struct Capture<'a>(&'a mut Option<&'static [&'static str]>);
        impl<'de> serde::Deserializer<'de> for Capture<'_> {
            type Error = serde::de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(Self::Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                *self.0 = Some(fields);
                Err(Self::Error::custom("captured"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }
        let mut out = None;
        let _ = T::deserialize(Capture(&mut out));
        out.expect("a struct with named fields")
            .iter()
            .copied()
            .collect()
    }

    /// The schema of a request DTO has exactly its fields, its required properties are exactly
    /// the ones the DTO cannot do without, and a value of the schema is accepted by the DTO.
    fn check_request<T: serde::de::DeserializeOwned>(d: &Value, name: &str) {
        let s = schema(d, name);
        let props: BTreeSet<&str> = s["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(props, fields_of::<T>(), "{name}: properties != DTO fields");
        let full = sample(d, s, true);
        assert_valid(d, name, &full);
        crate::extract::parse_strict::<T>(full.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{name}: {full} rejected: {e:?}"));
        let minimal = sample(d, s, false);
        crate::extract::parse_strict::<T>(minimal.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{name}: {minimal} rejected: {e:?}"));
        for r in s["required"].as_array().unwrap() {
            let mut without = minimal.clone();
            without.as_object_mut().unwrap().remove(r.as_str().unwrap());
            assert!(
                crate::extract::parse_strict::<T>(without.to_string().as_bytes()).is_err(),
                "{name}.{r} is required in the schema but optional in the DTO"
            );
        }
        let mut extra = minimal.clone();
        extra
            .as_object_mut()
            .unwrap()
            .insert("tenant_id".into(), json!("x"));
        assert!(crate::extract::parse_strict::<T>(extra.to_string().as_bytes()).is_err());
    }

    #[test]
    fn request_schemas_match_the_dtos() {
        use crate::routes::{api_keys, auth, directory, incidents};
        let d = doc();
        check_request::<auth::LoginRequest>(&d, "LoginRequest");
        check_request::<auth::RefreshRequest>(&d, "RefreshRequest");
        check_request::<incidents::IncidentCreate>(&d, "IncidentCreate");
        check_request::<incidents::IncidentUpdate>(&d, "IncidentUpdate");
        check_request::<incidents::WorkNoteCreate>(&d, "WorkNoteCreate");
        check_request::<directory::UserCreate>(&d, "UserCreate");
        check_request::<directory::UserUpdate>(&d, "UserUpdate");
        check_request::<directory::TeamUpdate>(&d, "TeamUpdate");
        check_request::<directory::CategoryUpdate>(&d, "CategoryUpdate");
        check_request::<directory::TeamCreate>(&d, "TeamCreate");
        check_request::<directory::CategoryCreate>(&d, "CategoryCreate");
        check_request::<directory::TenantCreate>(&d, "TenantCreate");
        check_request::<api_keys::ApiKeyCreate>(&d, "ApiKeyCreate");
    }

    #[test]
    fn custom_role_schemas_match_the_dtos_and_views() {
        use crate::routes::roles::{RoleCreate, RoleUpdate};
        use eventdesk_projections::queries::directory::RoleView;
        let d = doc();
        check_request::<RoleCreate>(&d, "CustomRoleCreate");
        check_request::<RoleUpdate>(&d, "CustomRoleUpdate");
        crate::extract::parse_strict::<RoleUpdate>(br#"{"description":null}"#).unwrap();
        crate::extract::parse_strict::<crate::routes::directory::UserUpdate>(
            br#"{"custom_role_id":null}"#,
        )
        .unwrap();
        let full = RoleView {
            id: eventdesk_domain::RoleId(uuid::Uuid::from_u128(1)),
            name: "Triage".into(),
            description: Some("First line".into()),
            permissions: vec!["incident:create".into(), "incident:read".into()],
            is_active: true,
            created_at: samples::now(),
            updated_at: samples::now(),
            version: 2,
        };
        let bare = RoleView {
            description: None,
            permissions: vec![],
            is_active: false,
            ..full.clone()
        };
        let roles = vec![full, bare];
        check_response(&d, "CustomRole", &roles);
        check_response(&d, "CustomRolePage", &samples::page(roles));
        // Every permission of the schema is accepted by the route's parser but the platform's.
        for v in schema(&d, "Permission")["enum"].as_array().unwrap() {
            let p = v.as_str().unwrap();
            let body = json!({ "name": "R", "permissions": [p] }).to_string();
            crate::extract::parse_strict::<RoleCreate>(body.as_bytes()).unwrap();
        }
    }

    #[test]
    fn sla_config_request_schemas_match_the_dtos() {
        use crate::routes::sla;
        let d = doc();
        check_request::<sla::CalendarCreate>(&d, "SlaCalendarCreate");
        check_request::<sla::CalendarUpdate>(&d, "SlaCalendarUpdate");
        check_request::<sla::HolidayImport>(&d, "HolidayImport");
        check_request::<sla::PolicyCreate>(&d, "SlaPolicyCreate");
        check_request::<sla::PolicyUpdate>(&d, "SlaPolicyUpdate");
        crate::extract::parse_strict::<sla::PolicyUpdate>(br#"{"calendar_id":null}"#).unwrap();
        // The enumerations and the time format are those of the domain types.
        use eventdesk_domain::sla::calendar::WeeklyRange;
        for v in schema(&d, "Weekday")["enum"].as_array().unwrap() {
            let body = json!({"day": v, "start": "00:00", "end": "24:00"}).to_string();
            crate::extract::parse_strict::<WeeklyRange>(body.as_bytes())
                .unwrap_or_else(|e| panic!("{v}: {e:?}"));
        }
        let pattern = schema(&d, "LocalTime")["pattern"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(pattern.contains("24:00"));
        for bad in ["24:01", "8:00", "08:60", "x"] {
            let body = json!({"day": "monday", "start": bad, "end": "09:00"}).to_string();
            assert!(crate::extract::parse_strict::<WeeklyRange>(body.as_bytes()).is_err());
        }
    }

    #[test]
    fn sla_config_response_schemas_match_the_views() {
        use eventdesk_domain::sla::calendar::{ClosureRange, Holiday, LocalTime};
        use eventdesk_domain::sla::policy::{PolicyCondition, SlaTarget};
        use eventdesk_domain::values::{Impact, Priority};
        use eventdesk_domain::{CalendarId, CategoryId, SlaPolicyId, TeamId};
        use eventdesk_projections::queries::sla_config::{SlaCalendarView, SlaPolicyView};
        let d = doc();
        let id = |n: u128| uuid::Uuid::from_u128(n);
        let mut stored = SlaCalendarView::builtin();
        stored.id = Some(CalendarId(id(1)));
        stored.name = "Office".into();
        stored.builtin = false;
        stored.active = false;
        stored.created_at = Some(samples::now());
        stored.updated_at = Some(samples::now());
        stored.version = 3;
        stored.definition.time_zone = "Europe/Berlin".into();
        stored.definition.holidays = vec![
            Holiday {
                date: chrono::NaiveDate::from_ymd_opt(2025, 12, 24).unwrap(),
                name: "Christmas Eve".into(),
                closed: vec![ClosureRange {
                    start: LocalTime::parse("12:00").unwrap(),
                    end: LocalTime::parse("24:00").unwrap(),
                }],
            },
            Holiday {
                date: chrono::NaiveDate::from_ymd_opt(2025, 12, 25).unwrap(),
                name: String::new(),
                closed: vec![],
            },
        ];
        let calendars = vec![SlaCalendarView::builtin(), stored];
        let values = check_response(&d, "SlaCalendar", &calendars);
        let holidays: Vec<Value> = values
            .iter()
            .flat_map(|v| v["holidays"].as_array().cloned().unwrap_or_default())
            .collect();
        assert_covered(&d, "Holiday", &holidays);
        check_response(&d, "SlaCalendarPage", &samples::page(calendars));
        let full = SlaPolicyView {
            id: SlaPolicyId(id(2)),
            name: "Network".into(),
            rank: 10,
            condition: PolicyCondition {
                team_id: Some(TeamId(id(3))),
                category_id: Some(CategoryId(id(4))),
                impact: Some(Impact::High),
            },
            calendar_id: Some(CalendarId(id(1))),
            targets: vec![
                SlaTarget {
                    priority: Priority::Critical,
                    response_minutes: Some(15),
                    resolution_minutes: Some(240),
                    calendar_id: Some(CalendarId(id(5))),
                },
                SlaTarget {
                    priority: Priority::Low,
                    response_minutes: None,
                    resolution_minutes: Some(4320),
                    calendar_id: None,
                },
            ],
            active: true,
            created_at: samples::now(),
            updated_at: samples::now(),
            version: 2,
        };
        let bare = SlaPolicyView {
            condition: PolicyCondition::default(),
            calendar_id: None,
            targets: vec![],
            active: false,
            ..full.clone()
        };
        let policies = vec![full, bare];
        let values = check_response(&d, "SlaPolicy", &policies);
        assert_covered(&d, "PolicyCondition", &[values[0]["condition"].clone()]);
        assert_covered(
            &d,
            "SlaTarget",
            &values[0]["targets"].as_array().cloned().unwrap(),
        );
        check_response(&d, "SlaPolicyPage", &samples::page(policies));
    }

    #[test]
    fn problem_schemas_match_the_dtos_and_views() {
        use crate::routes::problems::{
            IncidentLink, KnownErrorRequest, LinkedIncident, ProblemCreate, ProblemResolve,
            ProblemUpdate,
        };
        use eventdesk_domain::problem::{Problem, ProblemStatus};
        use eventdesk_domain::values::{
            Description, Priority, ResolutionText, RootCause, Title, Workaround,
        };
        use eventdesk_domain::{Actor, CategoryId, CiId, IncidentId, ProblemId, UserId};
        use eventdesk_projections::queries::problems::{KnownErrorView, ProblemView};
        let d = doc();
        check_request::<ProblemCreate>(&d, "ProblemCreate");
        check_request::<ProblemUpdate>(&d, "ProblemUpdate");
        check_request::<KnownErrorRequest>(&d, "KnownErrorRequest");
        check_request::<ProblemResolve>(&d, "ProblemResolve");
        check_request::<IncidentLink>(&d, "ProblemIncidentLink");
        for body in [
            r#"{"category_id":null}"#,
            r#"{"workaround":null}"#,
            r#"{"root_cause":null,"assignee_id":null,"ci_id":null}"#,
        ] {
            crate::extract::parse_strict::<ProblemUpdate>(body.as_bytes()).unwrap();
        }
        let id = |n: u128| uuid::Uuid::from_u128(n);
        let problem = Problem {
            id: ProblemId(id(1)),
            title: Title::parse("Relay drops mail").unwrap(),
            description: Description::parse("d").unwrap(),
            status: ProblemStatus::Resolved,
            priority: Priority::High,
            category_id: Some(CategoryId(id(2))),
            ci_id: Some(CiId(id(3))),
            assignee_id: Some(UserId(id(4))),
            root_cause: Some(RootCause::parse("cert").unwrap()),
            workaround: Some(Workaround::parse("restart").unwrap()),
            resolution: Some(ResolutionText::parse("renewed").unwrap()),
            incident_ids: vec![IncidentId(id(5))],
            known_error_at: Some(samples::now()),
            resolved_at: Some(samples::now()),
            closed_at: Some(samples::now()),
            created_at: samples::now(),
            created_by: Actor::User(UserId(id(4))),
            updated_at: samples::now(),
            updated_by: Actor::System,
        };
        let full = ProblemView {
            known_error: true,
            allowed_actions: problem.allowed_actions(),
            problem: problem.clone(),
            version: 7,
        };
        let bare = ProblemView {
            problem: Problem {
                status: ProblemStatus::New,
                category_id: None,
                ci_id: None,
                assignee_id: None,
                root_cause: None,
                workaround: None,
                resolution: None,
                incident_ids: vec![],
                known_error_at: None,
                resolved_at: None,
                closed_at: None,
                ..problem
            },
            known_error: false,
            allowed_actions: vec![],
            version: 1,
        };
        let problems = vec![full, bare];
        check_response(&d, "Problem", &problems);
        check_response(&d, "ProblemPage", &samples::page(problems));
        let ke = KnownErrorView {
            problem_id: ProblemId(id(1)),
            title: "t".into(),
            status: ProblemStatus::KnownError,
            root_cause: Some("r".into()),
            workaround: Some("w".into()),
            category_id: Some(CategoryId(id(2))),
            ci_id: Some(CiId(id(3))),
            known_error_at: samples::now(),
        };
        let kes = vec![
            ke.clone(),
            KnownErrorView {
                root_cause: None,
                category_id: None,
                ci_id: None,
                ..ke
            },
        ];
        check_response(&d, "KnownError", &kes);
        check_response(&d, "KnownErrorPage", &samples::page(kes));
        let linked = vec![
            LinkedIncident {
                id: IncidentId(id(5)),
                incident_number: Some("INC000001".into()),
                title: Some("t".into()),
                status: Some("new".into()),
            },
            LinkedIncident {
                id: IncidentId(id(6)),
                incident_number: None,
                title: None,
                status: None,
            },
        ];
        check_response(&d, "LinkedIncident", &linked);
        check_response(&d, "LinkedIncidentList", &[json!({ "data": linked })]);
    }

    #[test]
    fn change_schemas_match_the_dtos_and_views() {
        use crate::routes::changes::{
            ApprovalsView, ChangeCancel, ChangeCreate, ChangeSchedule, ChangeUpdate, TaskCreate,
            TaskOrder, TaskUpdate, VoteRequest,
        };
        use eventdesk_domain::change_request::{
            ChangeRequest, ChangeStatus, ChangeTask, ChangeType, Quorum, RejectionPolicy, Risk,
            TaskStatus, Vote, VoteDecision,
        };
        use eventdesk_domain::values::{Description, ReasonText, Title};
        use eventdesk_domain::{Actor, ChangeId, ChangeTaskId, CiId, IncidentId, UserId};
        use eventdesk_projections::queries::changes::{ChangeSummary, ChangeView, ConflictView};
        let d = doc();
        check_request::<ChangeCreate>(&d, "ChangeCreate");
        check_request::<ChangeUpdate>(&d, "ChangeUpdate");
        check_request::<ChangeSchedule>(&d, "ChangeSchedule");
        check_request::<ChangeCancel>(&d, "ChangeCancel");
        check_request::<TaskCreate>(&d, "ChangeTaskCreate");
        check_request::<TaskUpdate>(&d, "ChangeTaskUpdate");
        check_request::<TaskOrder>(&d, "ChangeTaskOrder");
        check_request::<VoteRequest>(&d, "ChangeVoteRequest");
        for body in [r#"{"planned_start":null}"#, r#"{"assignee_id":null}"#] {
            if body.contains("assignee") {
                crate::extract::parse_strict::<TaskUpdate>(body.as_bytes()).unwrap();
            } else {
                crate::extract::parse_strict::<ChangeUpdate>(body.as_bytes()).unwrap();
            }
        }
        let id = |n: u128| uuid::Uuid::from_u128(n);
        let vote = Vote {
            approver: UserId(id(1)),
            decision: VoteDecision::Reject,
            comment: ReasonText::parse("too risky").unwrap(),
            at: samples::now(),
        };
        let task = ChangeTask {
            id: ChangeTaskId(id(2)),
            title: Title::parse("Back up").unwrap(),
            assignee_id: Some(UserId(id(1))),
            status: TaskStatus::Closed,
            closed_at: Some(samples::now()),
        };
        let full = ChangeRequest {
            id: ChangeId(id(3)),
            title: Title::parse("Upgrade").unwrap(),
            description: Description::parse("d").unwrap(),
            change_type: ChangeType::Normal,
            status: ChangeStatus::Scheduled,
            risk: Risk::High,
            planned_start: Some(samples::now()),
            planned_end: Some(samples::now()),
            ci_ids: vec![CiId(id(4))],
            incident_ids: vec![IncidentId(id(5))],
            approvers: vec![UserId(id(1))],
            quorum: Quorum::Majority,
            on_rejection: RejectionPolicy::Cancel,
            approval_round: 2,
            votes: vec![vote.clone()],
            approved_at: Some(samples::now()),
            tasks: vec![task.clone()],
            overridden_conflicts: vec![ChangeId(id(6))],
            override_reason: Some(ReasonText::parse("agreed").unwrap()),
            scheduled_at: Some(samples::now()),
            closed_at: Some(samples::now()),
            cancelled_at: Some(samples::now()),
            cancel_reason: Some(ReasonText::parse("no").unwrap()),
            created_at: samples::now(),
            created_by: Actor::User(UserId(id(1))),
            updated_at: samples::now(),
            updated_by: Actor::System,
        };
        let bare = ChangeRequest {
            planned_start: None,
            planned_end: None,
            approved_at: None,
            tasks: vec![ChangeTask {
                assignee_id: None,
                status: TaskStatus::Open,
                closed_at: None,
                ..task
            }],
            override_reason: None,
            scheduled_at: None,
            closed_at: None,
            cancelled_at: None,
            cancel_reason: None,
            ..full.clone()
        };
        let views: Vec<ChangeView> = [full, bare]
            .into_iter()
            .map(|c| ChangeView {
                allowed_actions: c.allowed_actions(),
                change: c,
                version: 4,
            })
            .collect();
        check_response(&d, "Change", &views);
        check_response(&d, "ChangePage", &samples::page(views.clone()));
        let approvals: Vec<ApprovalsView> = views.iter().map(ApprovalsView::from).collect();
        check_response(&d, "ChangeApprovals", &approvals);
        check_response(
            &d,
            "ChangeTaskList",
            &[json!({ "data": views[0].change.tasks })],
        );
        let summary = ChangeSummary {
            id: ChangeId(id(3)),
            title: "Upgrade".into(),
            change_type: ChangeType::Standard,
            status: ChangeStatus::Scheduled,
            risk: Risk::Low,
            planned_start: samples::now(),
            planned_end: samples::now(),
            ci_ids: vec![CiId(id(4))],
        };
        check_response(&d, "ChangeSummary", std::slice::from_ref(&summary));
        check_response(
            &d,
            "ChangeCalendar",
            &[json!({ "data": [summary.clone()] })],
        );
        let conflict = ConflictView {
            change: summary.clone(),
            conflicts_with: vec![summary],
        };
        check_response(&d, "ChangeConflict", std::slice::from_ref(&conflict));
        check_response(&d, "ChangeConflictList", &[json!({ "data": [conflict] })]);
    }

    #[test]
    fn cmdb_schemas_match_the_dtos_and_views() {
        use crate::routes::cmdb::{CiCreate, CiTypeCreate, CiUpdate, RelationshipCreate};
        use eventdesk_domain::cmdb::CiStatus;
        use eventdesk_domain::values::{IncidentStatus, Priority};
        use eventdesk_domain::{Actor, CiId, CiRelationshipId, CiTypeId, IncidentId, UserId};
        use eventdesk_projections::queries::cmdb::{
            CiRef, CiTypeView, CiView, Direction, ImpactIncident, ImpactSummary, ImpactView,
            ImpactedCi, RelationshipView,
        };
        use eventdesk_projections::queries::incidents::NamedRef;
        let d = doc();
        check_request::<CiCreate>(&d, "CiCreate");
        check_request::<CiUpdate>(&d, "CiUpdate");
        check_request::<CiTypeCreate>(&d, "CiTypeCreate");
        check_request::<RelationshipCreate>(&d, "CiRelationshipCreate");
        for body in [r#"{"description":null}"#, r#"{"owner_team_id":null}"#] {
            crate::extract::parse_strict::<CiUpdate>(body.as_bytes()).unwrap();
        }
        for v in schema(&d, "CiStatus")["enum"].as_array().unwrap() {
            let body = json!({ "status": v }).to_string();
            crate::extract::parse_strict::<CiUpdate>(body.as_bytes()).unwrap();
        }
        let id = |n: u128| uuid::Uuid::from_u128(n);
        let full = CiView {
            id: CiId(id(1)),
            ci_type: "server".into(),
            name: "web-01".into(),
            description: Some("Front".into()),
            status: CiStatus::Retired,
            attributes: json!({"ip_address": "10.0.0.1"}),
            owner_team: Some(NamedRef {
                id: id(2),
                name: Some("Ops".into()),
            }),
            created_at: samples::now(),
            created_by: Actor::User(UserId(id(3))),
            updated_at: samples::now(),
            updated_by: Actor::System,
            retired_at: Some(samples::now()),
            version: 3,
        };
        let bare = CiView {
            description: None,
            status: CiStatus::Active,
            attributes: json!({}),
            owner_team: None,
            retired_at: None,
            ..full.clone()
        };
        let cis = vec![full, bare];
        check_response(&d, "Ci", &cis);
        check_response(&d, "CiPage", &samples::page(cis));
        let builtin = CiTypeView {
            id: None,
            key: "database".into(),
            name: "Database".into(),
            description: Some("A database.".into()),
            builtin: true,
            attributes: serde_json::to_value(
                eventdesk_domain::cmdb::BuiltinCiType::Database.schema(),
            )
            .unwrap(),
            created_at: None,
            updated_at: None,
            version: 0,
        };
        let custom = CiTypeView {
            id: Some(CiTypeId(id(4))),
            key: "load_balancer".into(),
            name: "Load balancer".into(),
            description: None,
            builtin: false,
            attributes: json!({}),
            created_at: Some(samples::now()),
            updated_at: Some(samples::now()),
            version: 1,
        };
        let specs: Vec<Value> = builtin
            .attributes
            .as_object()
            .unwrap()
            .values()
            .cloned()
            .collect();
        for spec in &specs {
            assert_valid(&d, "AttributeSpec", spec);
        }
        assert_covered(&d, "AttributeSpec", &specs);
        let types = vec![builtin, custom];
        check_response(&d, "CiType", &types);
        check_response(&d, "CiTypePage", &samples::page(types));
        let ci_ref = |n: u128| CiRef {
            id: CiId(id(n)),
            name: format!("ci {n}"),
            ci_type: "application".into(),
            status: CiStatus::Planned,
        };
        let rel = RelationshipView {
            id: CiRelationshipId(id(5)),
            rel_type: "depends_on".into(),
            direction: Direction::Outgoing,
            source_id: CiId(id(1)),
            target_id: CiId(id(6)),
            related: ci_ref(6),
            created_at: samples::now(),
            created_by: Actor::User(UserId(id(3))),
        };
        let incoming = RelationshipView {
            direction: Direction::Incoming,
            ..rel.clone()
        };
        let rels = vec![rel, incoming];
        check_response(&d, "CiRelationship", &rels);
        check_response(&d, "CiRelationshipPage", &samples::page(rels));
        let incident = ImpactIncident {
            id: IncidentId(id(7)),
            incident_number: "INC000007".into(),
            title: "Checkout fails".into(),
            status: IncidentStatus::InProgress,
            priority: Priority::Critical,
        };
        let impact = ImpactView {
            ci: ci_ref(1),
            depth: 5,
            more_beyond_depth: true,
            open_incidents: vec![incident.clone()],
            scheduled_changes: vec![],
            affected: vec![ImpactedCi {
                ci: ci_ref(8),
                depth: 1,
                path: vec![CiId(id(1)), CiId(id(8))],
                relationship: "runs_on".into(),
                open_incidents: vec![incident],
                scheduled_changes: vec![],
            }],
            summary: ImpactSummary {
                affected_cis: 1,
                affected_services: 0,
                open_incidents: 2,
                scheduled_changes: 0,
            },
        };
        let v = check_response(&d, "CiImpact", &[impact]);
        let affected = v[0]["affected"].as_array().cloned().unwrap();
        assert_covered(&d, "ImpactedCi", &affected);
        assert_covered(
            &d,
            "ImpactIncident",
            &v[0]["open_incidents"].as_array().cloned().unwrap(),
        );
        assert_covered(&d, "CiRef", &[v[0]["ci"].clone()]);
        assert_covered(&d, "ImpactSummary", &[v[0]["summary"].clone()]);
    }

    #[test]
    fn paging_parameters_match_list_params() {
        use crate::routes::directory::ListParams;
        let d = doc();
        let params = paging_params();
        let names: BTreeSet<&str> = params
            .iter()
            .map(|p| deref(&d, p)["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, fields_of::<ListParams>());
    }

    #[test]
    fn nullable_request_fields_accept_null() {
        use crate::routes::incidents::{IncidentUpdate, WorkNoteCreate};
        for body in [r#"{"priority":null}"#, r#"{"category_id":null}"#] {
            crate::extract::parse_strict::<IncidentUpdate>(body.as_bytes()).unwrap();
        }
        for flag in ["true", "false", "\"Y\"", "\"N\""] {
            let body = format!(r#"{{"content":"x","is_public":{flag}}}"#);
            crate::extract::parse_strict::<WorkNoteCreate>(body.as_bytes()).unwrap();
        }
        assert!(
            crate::extract::parse_strict::<WorkNoteCreate>(br#"{"content":"x","is_public":"yes"}"#)
                .is_err()
        );
    }

    #[test]
    fn enum_values_are_accepted_by_the_dtos() {
        use crate::routes::incidents::IncidentUpdate;
        let d = doc();
        for (field, schema_name) in [
            ("status", "IncidentStatus"),
            ("priority", "Priority"),
            ("impact", "Impact"),
            ("urgency", "Urgency"),
            ("hold_reason", "HoldReason"),
        ] {
            for v in schema(&d, schema_name)["enum"].as_array().unwrap() {
                let body = json!({ field: v }).to_string();
                crate::extract::parse_strict::<IncidentUpdate>(body.as_bytes())
                    .unwrap_or_else(|e| panic!("{field}={v}: {e:?}"));
            }
        }
        for v in schema(&d, "Permission")["enum"].as_array().unwrap() {
            eventdesk_auth::Permission::parse(v.as_str().unwrap()).unwrap();
        }
        for v in schema(&d, "ApiKeyMode")["enum"].as_array().unwrap() {
            v.as_str().unwrap().parse::<KeyMode>().unwrap();
        }
    }

    mod samples {
        use chrono::{TimeZone, Utc};
        use eventdesk_domain::values::{
            HoldReason, Impact, IncidentStatus, Priority, Role, Urgency, WorkNoteType,
        };
        use eventdesk_domain::{
            Actor, ApiKeyId, AttachmentId, CategoryId, IncidentId, PriorityMatrix, TeamId,
            TenantId, UserId, WorkNoteId,
        };
        use eventdesk_projections::queries::directory::{
            CategoryView, TeamView, TenantView, UserView,
        };
        use eventdesk_projections::queries::incidents::{
            ActorSummary, AttachmentView, IncidentDetail, IncidentHistoryEntry, IncidentListItem,
            NamedRef, UserSummary, WorkNoteView,
        };
        use eventdesk_projections::queries::{Page, Pagination};
        use uuid::Uuid;

        fn id(n: u128) -> Uuid {
            Uuid::from_u128(n)
        }

        pub fn now() -> chrono::DateTime<Utc> {
            Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap()
        }

        fn user_actor() -> ActorSummary {
            ActorSummary {
                actor: format!("user:{}", id(1)),
                id: Some(UserId(id(1))),
                username: Some("ada".into()),
                first_name: Some("Ada".into()),
                last_name: Some("Lovelace".into()),
            }
        }

        fn system_actor() -> ActorSummary {
            ActorSummary {
                actor: "system".into(),
                id: None,
                username: None,
                first_name: None,
                last_name: None,
            }
        }

        pub fn list_items() -> Vec<IncidentListItem> {
            let full = IncidentListItem {
                id: IncidentId(id(10)),
                incident_number: "INC000001".into(),
                title: "Printer on fire".into(),
                description: String::new(),
                status: IncidentStatus::OnHold,
                priority: Priority::High,
                impact: Impact::Medium,
                urgency: Urgency::High,
                reporter: UserSummary {
                    id: UserId(id(1)),
                    username: Some("ada".into()),
                    first_name: Some("Ada".into()),
                    last_name: Some("Lovelace".into()),
                },
                assignee: Some(UserSummary {
                    id: UserId(id(2)),
                    username: None,
                    first_name: None,
                    last_name: None,
                }),
                team: Some(NamedRef {
                    id: id(3),
                    name: Some("Ops".into()),
                }),
                category: Some(NamedRef {
                    id: id(4),
                    name: None,
                }),
                ci_id: Some(eventdesk_domain::CiId(id(11))),
                hold_reason: Some(HoldReason::AwaitingVendor),
                resolution: Some("Replaced".into()),
                reopen_count: 1,
                response_due_at: Some(now()),
                resolution_due_at: Some(now()),
                responded_at: Some(now()),
                resolved_at: Some(now()),
                closed_at: Some(now()),
                cancelled_at: Some(now()),
                created_at: now(),
                updated_at: now(),
                version: 7,
            };
            let bare = IncidentListItem {
                assignee: None,
                team: None,
                category: None,
                ci_id: None,
                hold_reason: None,
                resolution: None,
                response_due_at: None,
                resolution_due_at: None,
                responded_at: None,
                resolved_at: None,
                closed_at: None,
                cancelled_at: None,
                status: IncidentStatus::New,
                ..full.clone()
            };
            vec![full, bare]
        }

        pub fn details() -> Vec<IncidentDetail> {
            let items = list_items();
            let full = IncidentDetail {
                incident: items[0].clone(),
                priority_overridden: true,
                created_by: Actor::User(UserId(id(1))),
                updated_by: Actor::ApiKey(ApiKeyId(id(5))),
                history: vec![
                    IncidentHistoryEntry {
                        field_name: "status".into(),
                        old_value: Some("new".into()),
                        new_value: Some("on_hold".into()),
                        changed_by: user_actor(),
                        changed_at: now(),
                        version: 2,
                        seq: 0,
                    },
                    IncidentHistoryEntry {
                        field_name: "assignee_id".into(),
                        old_value: None,
                        new_value: None,
                        changed_by: system_actor(),
                        changed_at: now(),
                        version: 3,
                        seq: 1,
                    },
                ],
                work_notes: vec![WorkNoteView {
                    id: WorkNoteId(id(6)),
                    content: "Called the vendor".into(),
                    note_type: WorkNoteType::ResolutionNote,
                    is_public: false,
                    by_agent: true,
                    created_by: user_actor(),
                    created_at: now(),
                }],
                attachments: vec![AttachmentView {
                    id: AttachmentId(id(7)),
                    file_name: "log.txt".into(),
                    file_size: 12,
                    content_type: "text/plain".into(),
                    sha256: "a".repeat(64),
                    uploaded_by: system_actor(),
                    uploaded_at: now(),
                }],
                problem_id: Some(eventdesk_domain::ProblemId(id(8))),
                suggested_known_errors: vec![
                    eventdesk_projections::queries::problems::KnownErrorView {
                        problem_id: eventdesk_domain::ProblemId(id(8)),
                        title: "Relay drops mail".into(),
                        status: eventdesk_domain::problem::ProblemStatus::KnownError,
                        root_cause: Some("Expired certificate".into()),
                        workaround: Some("Restart the relay".into()),
                        category_id: Some(eventdesk_domain::CategoryId(id(9))),
                        ci_id: Some(eventdesk_domain::CiId(id(10))),
                        known_error_at: now(),
                    },
                ],
            };
            let bare = IncidentDetail {
                incident: items[1].clone(),
                priority_overridden: false,
                created_by: Actor::System,
                updated_by: Actor::System,
                history: vec![],
                work_notes: vec![],
                attachments: vec![],
                problem_id: None,
                suggested_known_errors: vec![],
            };
            vec![full, bare]
        }

        pub fn paginations() -> Vec<Pagination> {
            vec![
                Pagination {
                    current_page: Some(1),
                    total_pages: Some(3),
                    page_size: 20,
                    total_items: Some(41),
                    has_next: true,
                    has_prev: false,
                    next_cursor: None,
                },
                Pagination {
                    current_page: None,
                    total_pages: None,
                    page_size: 20,
                    total_items: None,
                    has_next: true,
                    has_prev: true,
                    next_cursor: Some("opaque".into()),
                },
            ]
        }

        pub fn page<T: Clone>(items: Vec<T>) -> Vec<Page<T>> {
            paginations()
                .into_iter()
                .map(|pagination| Page {
                    data: items.clone(),
                    pagination,
                })
                .collect()
        }

        pub fn users() -> Vec<UserView> {
            let full = UserView {
                id: UserId(id(1)),
                tenant_id: TenantId(id(9)),
                username: "Ada".into(),
                username_canonical: "ada".into(),
                email: "ada@example.com".into(),
                first_name: "Ada".into(),
                last_name: "Lovelace".into(),
                phone: Some("+44 20 1234".into()),
                department: Some("Engines".into()),
                role: Role::Admin,
                custom_role_id: None,
                is_active: true,
                created_at: now(),
                updated_at: now(),
                version: 1,
            };
            let bare = UserView {
                phone: None,
                department: None,
                role: Role::Viewer,
                ..full.clone()
            };
            vec![full, bare]
        }

        pub fn teams() -> Vec<TeamView> {
            let full = TeamView {
                id: TeamId(id(3)),
                name: "Ops".into(),
                manager_id: Some(UserId(id(1))),
                description: Some("Operations".into()),
                members: vec![UserId(id(1)), UserId(id(2))],
                is_active: true,
                created_at: now(),
                updated_at: now(),
                version: 2,
            };
            let bare = TeamView {
                manager_id: None,
                description: None,
                members: vec![],
                ..full.clone()
            };
            vec![full, bare]
        }

        pub fn categories() -> Vec<CategoryView> {
            let full = CategoryView {
                id: CategoryId(id(4)),
                name: "Hardware".into(),
                parent_id: Some(CategoryId(id(8))),
                description: Some("Things".into()),
                is_active: true,
                created_at: now(),
                updated_at: now(),
                version: 1,
            };
            let bare = CategoryView {
                parent_id: None,
                description: None,
                ..full.clone()
            };
            vec![full, bare]
        }

        pub fn tenants() -> Vec<TenantView> {
            vec![TenantView {
                id: TenantId(id(9)),
                name: "Acme".into(),
                is_active: true,
                priority_matrix: PriorityMatrix::default(),
                created_at: now(),
                updated_at: now(),
                version: 1,
            }]
        }
    }

    fn to_values<T: serde::Serialize>(items: &[T]) -> Vec<Value> {
        items
            .iter()
            .map(|x| serde_json::to_value(x).unwrap())
            .collect()
    }

    fn check_response<T: serde::Serialize>(d: &Value, name: &str, items: &[T]) -> Vec<Value> {
        let values = to_values(items);
        for v in &values {
            assert_valid(d, name, v);
        }
        assert_covered(d, name, &values);
        values
    }

    #[test]
    fn response_schemas_match_the_serialised_views() {
        let d = doc();
        let details = check_response(&d, "IncidentDetail", &samples::details());
        check_response(&d, "IncidentListItem", &samples::list_items());
        check_response(&d, "IncidentPage", &samples::page(samples::list_items()));
        // Every shape of the object, including a capped total (`total_items_exact: false`).
        let mut paginations: Vec<eventdesk_projections::queries::CappedPagination> =
            samples::paginations()
                .into_iter()
                .map(
                    |pagination| eventdesk_projections::queries::CappedPagination {
                        pagination,
                        total_items_exact: None,
                    },
                )
                .collect();
        paginations.push(eventdesk_projections::queries::CappedPagination {
            pagination: samples::paginations()[0].clone(),
            total_items_exact: Some(false),
        });
        check_response(&d, "Pagination", &paginations);
        // Nested objects: every property of the embedded schemas is produced too.
        let nested = |f: &dyn Fn(&Value) -> Vec<Value>| -> Vec<Value> {
            details.iter().flat_map(f).collect()
        };
        let arr = |v: &Value, k: &str| v[k].as_array().cloned().unwrap_or_default();
        assert_covered(&d, "IncidentHistoryEntry", &nested(&|v| arr(v, "history")));
        assert_covered(&d, "WorkNote", &nested(&|v| arr(v, "work_notes")));
        assert_covered(&d, "Attachment", &nested(&|v| arr(v, "attachments")));
        assert_covered(
            &d,
            "ActorSummary",
            &nested(&|v| {
                arr(v, "history")
                    .iter()
                    .map(|h| h["changed_by"].clone())
                    .collect()
            }),
        );
        assert_covered(&d, "UserSummary", &nested(&|v| vec![v["reporter"].clone()]));
        assert_covered(&d, "NamedRef", &nested(&|v| vec![v["team"].clone()]));

        check_response(&d, "User", &samples::users());
        check_response(&d, "UserPage", &samples::page(samples::users()));
        check_response(&d, "Team", &samples::teams());
        check_response(&d, "TeamPage", &samples::page(samples::teams()));
        check_response(&d, "Category", &samples::categories());
        check_response(&d, "CategoryPage", &samples::page(samples::categories()));
        check_response(&d, "Tenant", &samples::tenants());
        check_response(&d, "TenantPage", &samples::page(samples::tenants()));
        // The matrix round-trips through the request schema too.
        let matrix = serde_json::to_value(eventdesk_domain::PriorityMatrix::default()).unwrap();
        assert_valid(&d, "PriorityMatrix", &matrix);
    }

    #[test]
    fn performance_schema_matches_the_serialised_view() {
        use crate::monitor::{AlertView, Category, Monitor, MonitorConfig};
        use std::time::Duration;
        let d = doc();
        let m = Monitor::new(MonitorConfig::default());
        let t = uuid::Uuid::now_v7();
        m.record_request(t, "GET /api/v1/incidents", Duration::from_millis(150));
        for c in Category::ALL {
            m.record(t, c, Duration::from_millis(3));
        }
        let alert = AlertView {
            id: uuid::Uuid::now_v7(),
            category: "api".into(),
            route: Some("GET /api/v1/incidents".into()),
            consecutive: 5,
            suppressed: 3,
            budget_ms: 100.0,
            observed_ms: 150.2,
            node: "host:1".into(),
            raised_at: chrono::Utc::now(),
        };
        let on = crate::routes::analytics::performance_body(m.snapshot(t), vec![alert], 1);
        let off = crate::routes::analytics::performance_body(
            Monitor::new(MonitorConfig {
                enabled: false,
                ..MonitorConfig::default()
            })
            .snapshot(t),
            Vec::new(),
            0,
        );
        let v = check_response(&d, "AnalyticsPerformance", &[on, off]);
        let arr = |k: &str| v[0][k].as_array().cloned().unwrap_or_default();
        assert_covered(&d, "PerformanceCategory", &arr("categories"));
        assert_covered(&d, "PerformanceRoute", &arr("routes"));
        assert_covered(&d, "PerformanceAlert", &arr("alerts"));
        for c in arr("categories") {
            assert_valid(&d, "PerformanceCategory", &c);
        }
    }

    #[test]
    fn analytics_schemas_match_the_serialised_views() {
        use eventdesk_projections::queries::analytics as a;
        let d = doc();
        let now = chrono::Utc::now();
        let id = uuid::Uuid::now_v7();
        let summary = a::Summary {
            total_open: 3,
            critical_open: 1,
            unassigned: 1,
            by_status: vec![a::StatusCount {
                status: "new",
                count: 3,
            }],
            by_priority: vec![a::PriorityCount {
                priority: "critical",
                count: 1,
            }],
            by_team: vec![
                a::TeamCount {
                    team_id: Some(id),
                    count: 2,
                },
                a::TeamCount {
                    team_id: None,
                    count: 1,
                },
            ],
            by_category: vec![a::CategoryCount {
                category_id: None,
                count: 3,
            }],
        };
        let v = check_response(&d, "AnalyticsSummary", &[summary]);
        let arr = |v: &[Value], k: &str| -> Vec<Value> {
            v.iter()
                .flat_map(|x| x[k].as_array().cloned().unwrap_or_default())
                .collect()
        };
        assert_covered(&d, "AnalyticsStatusCount", &arr(&v, "by_status"));
        assert_covered(&d, "AnalyticsPriorityCount", &arr(&v, "by_priority"));
        assert_covered(&d, "AnalyticsTeamCount", &arr(&v, "by_team"));
        assert_covered(&d, "AnalyticsCategoryCount", &arr(&v, "by_category"));

        let stats = |n: i64| a::DurationStats {
            count: n,
            mean_seconds: (n > 0).then_some(12.5),
            median_seconds: (n > 0).then_some(10.0),
        };
        let durations = a::DurationReport {
            metric: "resolution",
            from: now,
            to: now,
            overall: a::DurationFigures {
                wall: stats(2),
                business: stats(0),
            },
            by_priority: vec![a::PriorityDurations {
                priority: "high",
                wall: stats(2),
                business: stats(1),
            }],
            by_team: vec![a::TeamDurations {
                team_id: Some(id),
                wall: stats(1),
                business: stats(0),
            }],
        };
        let v = check_response(&d, "AnalyticsDurations", &[durations]);
        assert_covered(
            &d,
            "AnalyticsDurationFigures",
            &v.iter().map(|x| x["overall"].clone()).collect::<Vec<_>>(),
        );
        assert_covered(&d, "AnalyticsPriorityDurations", &arr(&v, "by_priority"));
        assert_covered(&d, "AnalyticsTeamDurations", &arr(&v, "by_team"));
        assert_covered(
            &d,
            "AnalyticsDurationStats",
            &v.iter()
                .map(|x| x["overall"]["wall"].clone())
                .collect::<Vec<_>>(),
        );

        let trends = a::Trends {
            bucket: "day",
            tz: "Asia/Kolkata",
            from: now,
            to: now,
            data: vec![a::TrendPoint {
                start: "2026-03-01T00:00:00+05:30".into(),
                end: "2026-03-02T00:00:00+05:30".into(),
                created: 2,
                resolved: 1,
                closed: 1,
                reopened: 0,
            }],
            totals: a::TrendTotals {
                created: 2,
                resolved: 1,
                closed: 1,
                reopened: 0,
            },
        };
        let v = check_response(&d, "AnalyticsTrends", &[trends]);
        assert_covered(&d, "AnalyticsTrendPoint", &arr(&v, "data"));
        assert_covered(
            &d,
            "AnalyticsTrendTotals",
            &v.iter().map(|x| x["totals"].clone()).collect::<Vec<_>>(),
        );

        let figures = |completed: i64, breached: i64| a::ComplianceFigures {
            completed,
            met: completed - breached,
            breached,
            compliance_percent: (completed > 0)
                .then(|| (completed - breached) as f64 * 100.0 / completed as f64),
        };
        let compliance = || a::Compliance {
            overall: figures(3, 1),
            by_priority: vec![
                a::PriorityCompliance {
                    priority: "critical",
                    completed: 0,
                    met: 0,
                    breached: 0,
                    compliance_percent: None,
                },
                a::PriorityCompliance {
                    priority: "high",
                    completed: 3,
                    met: 2,
                    breached: 1,
                    compliance_percent: Some(66.6),
                },
            ],
            by_team: vec![a::TeamCompliance {
                team_id: None,
                completed: 3,
                met: 2,
                breached: 1,
                compliance_percent: Some(66.6),
            }],
        };
        let sla = a::SlaReport {
            from: now,
            to: now,
            response: compliance(),
            resolution: compliance(),
            breaches_by_priority: vec![a::PriorityBreaches {
                priority: "high",
                response: 1,
                resolution: 0,
            }],
            current: a::CurrentSla {
                response: a::CurrentTimers {
                    at_risk: 1,
                    breached: 0,
                },
                resolution: a::CurrentTimers::default(),
            },
        };
        let v = check_response(&d, "AnalyticsSla", &[sla]);
        let field = |k: &str| v.iter().map(|x| x[k].clone()).collect::<Vec<_>>();
        assert_covered(&d, "AnalyticsCompliance", &field("response"));
        assert_covered(
            &d,
            "AnalyticsComplianceFigures",
            &v.iter()
                .map(|x| x["response"]["overall"].clone())
                .collect::<Vec<_>>(),
        );
        let resp = field("response");
        assert_covered(
            &d,
            "AnalyticsPriorityCompliance",
            &arr(&resp, "by_priority"),
        );
        assert_covered(&d, "AnalyticsTeamCompliance", &arr(&resp, "by_team"));
        assert_covered(
            &d,
            "AnalyticsPriorityBreaches",
            &arr(&v, "breaches_by_priority"),
        );
        assert_covered(&d, "AnalyticsCurrentSla", &field("current"));
        assert_covered(
            &d,
            "AnalyticsCurrentTimers",
            &v.iter()
                .map(|x| x["current"]["response"].clone())
                .collect::<Vec<_>>(),
        );

        let backlog = a::Backlog {
            as_of: now,
            open_total: 4,
            aging: a::AGING_BUCKETS
                .iter()
                .map(|(bucket, min, max)| a::AgingBucket {
                    bucket,
                    min_age_days: *min,
                    max_age_days: *max,
                    count: 1,
                })
                .collect(),
            reopen: a::ReopenRate {
                resolved_incidents: 2,
                reopened_incidents: 1,
                rate_percent: Some(50.0),
            },
            workload: vec![a::Workload {
                assignee_id: id,
                open: 2,
            }],
        };
        let v = check_response(&d, "AnalyticsBacklog", &[backlog]);
        assert_covered(&d, "AnalyticsAgingBucket", &arr(&v, "aging"));
        assert_covered(
            &d,
            "AnalyticsReopenRate",
            &v.iter().map(|x| x["reopen"].clone()).collect::<Vec<_>>(),
        );
        assert_covered(&d, "AnalyticsWorkload", &arr(&v, "workload"));
    }

    #[test]
    fn api_key_schemas_match_the_store_type() {
        use eventdesk_auth::store::ApiKeySummary;
        let d = doc();
        let summary = |revoked: bool| ApiKeySummary {
            id: eventdesk_domain::ApiKeyId(uuid::Uuid::from_u128(1)),
            tenant_id: eventdesk_domain::TenantId(uuid::Uuid::from_u128(2)),
            name: "ci".into(),
            prefix: "qg_live_Ab3x-9Qz".into(),
            mode: KeyMode::Live,
            permissions: eventdesk_auth::PermissionSet::from_role(Role::Admin),
            created_by: revoked.then(|| eventdesk_domain::UserId(uuid::Uuid::from_u128(3))),
            created_at: samples::now(),
            last_used_at: revoked.then(samples::now),
            revoked_at: revoked.then(samples::now),
        };
        let keys = [summary(true), summary(false)];
        let values = check_response(&d, "ApiKey", &keys);
        // The create response is the summary plus `api_key`, as the handler builds it.
        let created: Vec<Value> = values
            .iter()
            .map(|v| {
                let mut v = v.clone();
                v.as_object_mut()
                    .unwrap()
                    .insert("api_key".into(), json!("qg_live_secret"));
                v
            })
            .collect();
        for v in &created {
            assert_valid(&d, "ApiKeyCreated", v);
        }
        assert_covered(&d, "ApiKeyCreated", &created);
        assert_valid(&d, "ApiKeyList", &json!({ "data": values }));
    }

    #[test]
    fn integration_bus_schemas_match_the_dtos_and_views() {
        use crate::routes::integrations::{JiraPut, JiraView, SlackPut, SlackView};
        use crate::routes::webhooks::{DeliveryParams, SecretRotate, WebhookCreate, WebhookUpdate};
        use eventdesk_bus::model::{
            AttemptView, DeliveryView, IntegrationRow, JiraSettings, JiraTrigger, SlackSettings,
            WebhookView,
        };
        fn row<S>(settings: S) -> IntegrationRow<S> {
            IntegrationRow {
                tenant_id: uuid::Uuid::from_u128(9),
                enabled: true,
                settings,
                credentials_enc: Some("v1:sealed".into()),
                created_at: samples::now(),
                updated_at: samples::now(),
            }
        }
        let d = doc();
        check_request::<WebhookCreate>(&d, "WebhookCreate");
        check_request::<WebhookUpdate>(&d, "WebhookUpdate");
        check_request::<SecretRotate>(&d, "WebhookSecretRotate");
        check_request::<SlackPut>(&d, "SlackIntegrationUpdate");
        check_request::<JiraPut>(&d, "JiraIntegrationUpdate");
        crate::extract::parse_strict::<WebhookUpdate>(br#"{"description":null}"#).unwrap();
        crate::extract::parse_strict::<SlackPut>(br#"{"enabled":false,"daily_summary_time":null}"#)
            .unwrap();
        let params = bus::delivery_query_params();
        let names: BTreeSet<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, fields_of::<DeliveryParams>());
        for v in schema(&d, "JiraTrigger")["enum"].as_array().unwrap() {
            assert!(JiraTrigger::ALL.iter().any(|t| t.as_str() == v));
        }

        let id = uuid::Uuid::from_u128;
        let full = WebhookView {
            id: id(1),
            url: "https://hooks.example.com/x".into(),
            description: Some("ops".into()),
            event_types: vec!["*".into()],
            status: "active".into(),
            previous_secret_expires_at: Some(samples::now()),
            created_at: samples::now(),
            updated_at: samples::now(),
        };
        let bare = WebhookView {
            description: None,
            event_types: vec!["IncidentCreated".into(), "SlaBreached".into()],
            previous_secret_expires_at: None,
            status: "paused".into(),
            ..full.clone()
        };
        let values = check_response(&d, "Webhook", &[full, bare]);
        let with: Vec<Value> = values
            .iter()
            .map(|v| {
                let mut v = v.clone();
                v.as_object_mut()
                    .unwrap()
                    .insert("secret".into(), json!("whsec_abc"));
                v
            })
            .collect();
        for v in &with {
            assert_valid(&d, "WebhookWithSecret", v);
        }
        assert_covered(&d, "WebhookWithSecret", &with);
        assert_valid(&d, "WebhookList", &json!({ "data": values }));

        let failed = AttemptView {
            attempt: 1,
            at: samples::now(),
            status_code: Some(500),
            latency_ms: 12,
            error: Some("HTTP 500".into()),
            outcome: "failed".into(),
        };
        let timed_out = AttemptView {
            attempt: 2,
            status_code: None,
            error: Some("timed out after 5000 ms".into()),
            ..failed.clone()
        };
        let dead = DeliveryView {
            id: id(2),
            webhook_id: Some(id(1)),
            event_id: Some(id(3)),
            event_type: Some("IncidentCreated".into()),
            status: "dead".into(),
            attempts: 2,
            next_attempt_at: Some(samples::now()),
            last_attempt_at: Some(samples::now()),
            last_status_code: Some(500),
            last_error: Some("HTTP 500".into()),
            last_latency_ms: Some(12),
            created_at: samples::now(),
            completed_at: Some(samples::now()),
            attempt_log: vec![failed, timed_out],
        };
        let fresh = DeliveryView {
            webhook_id: None,
            event_id: None,
            event_type: None,
            status: "pending".into(),
            attempts: 0,
            next_attempt_at: None,
            last_attempt_at: None,
            last_status_code: None,
            last_error: None,
            last_latency_ms: None,
            completed_at: None,
            attempt_log: vec![],
            ..dead.clone()
        };
        let values = check_response(&d, "WebhookDelivery", &[dead, fresh]);
        assert_covered(
            &d,
            "WebhookDeliveryAttempt",
            &values[0]["attempt_log"].as_array().cloned().unwrap(),
        );
        assert_valid(&d, "WebhookDeliveryList", &json!({ "data": values }));

        let slack = SlackSettings {
            daily_summary_time: Some("09:00".into()),
            time_zone: "Asia/Tokyo".into(),
            ..SlackSettings::default()
        };
        let sv = check_response(
            &d,
            "SlackIntegration",
            &[SlackView::of(Some(&row(slack))), SlackView::of(None)],
        );
        let jira = JiraSettings {
            base_url: "https://acme.atlassian.net".into(),
            project_key: "OPS".into(),
            issue_type: "Task".into(),
            triggers: JiraTrigger::ALL.to_vec(),
            comment_on_updates: true,
        };
        let jv = check_response(
            &d,
            "JiraIntegration",
            &[JiraView::of(Some(&row(jira))), JiraView::of(None)],
        );
        assert_valid(
            &d,
            "IntegrationList",
            &json!({ "data": [sv[0].clone(), jv[0].clone()] }),
        );
        for v in sv.iter().chain(&jv) {
            let t = v.to_string();
            assert!(
                !t.contains("sealed") && !t.contains("webhook_url") && !t.contains("api_token")
            );
        }
    }

    #[tokio::test]
    async fn error_bodies_match_the_error_schema() {
        use crate::error::{ApiError, FieldError};
        let d = doc();
        let errors = vec![
            ApiError::BadRequest("bad".into()),
            ApiError::Unauthorized,
            ApiError::InvalidCredentials,
            ApiError::Forbidden,
            ApiError::NotFound,
            ApiError::Conflict("busy".into()),
            ApiError::PreconditionFailed,
            ApiError::PayloadTooLarge,
            ApiError::UnsupportedMediaType,
            ApiError::Validation(vec![FieldError::new("title", "required")]),
            ApiError::Rule {
                code: "invalid_transition",
                message: "no".into(),
            },
            ApiError::IdempotencyMismatch,
            ApiError::TooManyRequests { retry_after: 3 },
            ApiError::Unavailable,
            ApiError::Internal("boom".into()),
        ];
        for e in errors {
            let resp = e.into_response();
            let status = resp.status().as_u16();
            let name = error_response_name(status)
                .unwrap_or_else(|| panic!("status {status} has no shared response"));
            assert!(d["components"]["responses"][name].is_object());
            if status == 429 {
                assert!(resp.headers().contains_key(header::RETRY_AFTER));
            }
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            assert_valid(&d, "Error", &v);
        }
    }

    #[tokio::test]
    async fn public_responses_match() {
        let d = doc();
        let body = |r: axum::response::Response| async move {
            let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap();
            serde_json::from_slice::<Value>(&bytes).unwrap()
        };
        let health = crate::health::healthz().await.into_response();
        assert_valid(&d, "Health", &body(health).await);
        // The served document is this document.
        let served = body(openapi_json().await).await;
        assert_eq!(served, d);
    }

    // --------------------------------------------------------------------------------------
    // The docs UI
    // --------------------------------------------------------------------------------------

    async fn get(uri: &str) -> axum::response::Response {
        use tower::ServiceExt;
        docs::<()>()
            .oneshot(
                axum::http::Request::get(uri)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn docs_ui_is_served_from_embedded_assets_with_a_csp() {
        let index = get("/api/v1/docs/").await;
        assert_eq!(index.status(), 200);
        assert!(
            index.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let csp = index.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(csp, DOCS_CSP);
        assert!(csp.contains("frame-ancestors 'none'"));
        let html = axum::body::to_bytes(index.into_body(), usize::MAX)
            .await
            .unwrap();
        let html = String::from_utf8_lossy(&html);
        assert!(html.contains("swagger-ui"));
        // Nothing is loaded from another origin.
        assert!(!html.contains("http://") && !html.contains("https://"));

        let init = get("/api/v1/docs/swagger-initializer.js").await;
        assert_eq!(init.status(), 200);
        let js = axum::body::to_bytes(init.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&js).contains(OPENAPI_PATH));

        for asset in ["swagger-ui-bundle.js", "swagger-ui.css"] {
            let r = get(&format!("/api/v1/docs/{asset}")).await;
            assert_eq!(r.status(), 200, "{asset}");
            assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], DOCS_CSP);
        }
        // Without the trailing slash: a redirect to it.
        let r = get("/api/v1/docs").await;
        assert!(r.status().is_redirection());
        assert_eq!(r.headers()[header::LOCATION], "/api/v1/docs/");
    }

    #[test]
    fn known_statuses_have_shared_responses() {
        let statuses: BTreeMap<u16, &str> =
            ERROR_RESPONSES.iter().map(|(s, n, _)| (*s, *n)).collect();
        for s in [400, 401, 403, 404, 409, 412, 413, 415, 422, 429, 500, 503] {
            assert!(statuses.contains_key(&s), "{s}");
        }
    }
}

//! The ITIL part of the document: problems and the known-error database (ADR 0021) — their
//! operations, query parameters and schemas.

use super::{
    Body, Op, Out, Query, array, boolean, enumeration, int64, nullable, object, op, opt, page_of,
    reference, req, request, schema_ref, string, text, timestamp, uuid,
};
use axum::http::Method;
use eventdesk_domain::problem::{ProblemAction, ProblemStatus};
use eventdesk_domain::values::{Description, ResolutionText, RootCause, Title, Workaround};
use serde_json::{Value, json};

const PROBLEM_ACTION_NOTE: &str = "Runs one lifecycle transition of the problem; a transition \
    the state machine does not allow is `422 invalid_transition` (`new → investigating → \
    known_error → resolved → closed`; `known_error` may be skipped, `resolved` needs an \
    investigation first). Answers with the problem as it is after the change.";

/// One row per (method, route) of the problem endpoints.
pub(super) const OPERATIONS: &[Op] = &[
    op(
        Method::GET,
        "/api/v1/problems",
        "listProblems",
        "problems",
        "List problems",
        200,
        Out::Json("ProblemPage"),
    )
    .describe(
        "Newest first. Filters: `status` and `priority` (repeat a parameter for OR), \
         `assignee_id`, `category_id`, `ci_id`, `incident_id` (the problem an incident is \
         linked to), and `q`, a case-insensitive substring (any script) of the title, \
         description, root cause or workaround. Page with `page`/`limit` (exact totals) or \
         `cursor`. An unknown parameter is `422`.",
    )
    .query(Query::Problems),
    op(
        Method::POST,
        "/api/v1/problems",
        "createProblem",
        "problems",
        "Log a problem",
        201,
        Out::Json("Problem"),
    )
    .describe(
        "Status `new`; `priority` defaults to `medium`. `category_id`, `assignee_id` and \
         `ci_id` must exist in the tenant (`422` naming the field).",
    )
    .body(Body::Json("ProblemCreate"))
    .idempotent()
    .created(),
    op(
        Method::GET,
        "/api/v1/problems/{id}",
        "getProblem",
        "problems",
        "A problem",
        200,
        Out::Json("Problem"),
    )
    .describe("The `ETag` is the problem's version, for `If-Match` on later writes.")
    .etag(),
    op(
        Method::PATCH,
        "/api/v1/problems/{id}",
        "updateProblem",
        "problems",
        "Update a problem",
        200,
        Out::Json("Problem"),
    )
    .describe(
        "Absent fields are kept; `null` clears an optional one. A published known error's \
         workaround can be changed but not cleared (`422` on `workaround`). A closed problem \
         accepts no change (`422 action_not_allowed`).",
    )
    .body(Body::Json("ProblemUpdate"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/problems/{id}/investigate",
        "investigateProblem",
        "problems",
        "Start the investigation",
        200,
        Out::Json("Problem"),
    )
    .describe(PROBLEM_ACTION_NOTE)
    .body(Body::Optional("EmptyRequest"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/problems/{id}/known-error",
        "markKnownError",
        "problems",
        "Publish as a known error",
        200,
        Out::Json("Problem"),
    )
    .describe(
        "`investigating → known_error`: the problem enters the known-error database \
         (`GET /api/v1/known-errors`), and its workaround is suggested on the incidents whose \
         category or configuration item match. `root_cause` and `workaround` default to the \
         recorded ones; without any workaround it is `422` on `workaround`.",
    )
    .body(Body::Optional("KnownErrorRequest"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/problems/{id}/resolve",
        "resolveProblem",
        "problems",
        "Resolve a problem",
        200,
        Out::Json("Problem"),
    )
    .describe(
        "`investigating | known_error → resolved`. Each incident linked at that moment then \
         gets an internal work note saying so, added shortly after by the problem reactor \
         (exactly one per incident, whatever the retries).",
    )
    .body(Body::Json("ProblemResolve"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/problems/{id}/close",
        "closeProblem",
        "problems",
        "Close a problem",
        200,
        Out::Json("Problem"),
    )
    .describe(PROBLEM_ACTION_NOTE)
    .body(Body::Optional("EmptyRequest"))
    .conditional(),
    op(
        Method::GET,
        "/api/v1/problems/{id}/incidents",
        "listProblemIncidents",
        "problems",
        "The incidents linked to a problem",
        200,
        Out::Json("LinkedIncidentList"),
    )
    .describe("In link order."),
    op(
        Method::POST,
        "/api/v1/problems/{id}/incidents",
        "linkProblemIncident",
        "problems",
        "Link an incident",
        200,
        Out::Json("Problem"),
    )
    .describe(
        "An incident belongs to at most one problem: one linked elsewhere is `409` naming that \
         problem. An incident that is not the tenant's is `422` on `incident_id`. Linking it \
         again changes nothing. Not allowed on a closed problem.",
    )
    .body(Body::Json("ProblemIncidentLink"))
    .conditional()
    .errors(&[409]),
    op(
        Method::DELETE,
        "/api/v1/problems/{id}/incidents/{incident_id}",
        "unlinkProblemIncident",
        "problems",
        "Unlink an incident",
        200,
        Out::Json("Problem"),
    )
    .describe("`404` if the incident is not linked to this problem.")
    .conditional(),
    op(
        Method::GET,
        "/api/v1/known-errors",
        "listKnownErrors",
        "problems",
        "Search the known-error database",
        200,
        Out::Json("KnownErrorPage"),
    )
    .describe(
        "Problems published as known errors and not closed, newest publication first. `q` is \
         a case-insensitive substring (any script, Japanese included) of the title, \
         description, root cause or workaround.",
    )
    .query(Query::KnownErrors),
];

fn param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "description": description, "schema": schema })
}

fn repeated(name: &str, description: &str, item: Value) -> Value {
    json!({
        "name": name,
        "in": "query",
        "style": "form",
        "explode": true,
        "description": description,
        "schema": { "type": "array", "items": item },
    })
}

fn q_param() -> Value {
    param(
        "q",
        "Case-insensitive substring of the title, description, root cause or workaround.",
        json!({ "type": "string", "maxLength": 200 }),
    )
}

/// The problem list's query parameters (without paging).
pub(super) fn problem_query_params() -> Vec<Value> {
    let id = || json!({ "type": "string", "format": "uuid" });
    vec![
        repeated(
            "status",
            "Only problems with any of these statuses (repeat for OR).",
            schema_ref("ProblemStatus"),
        ),
        repeated(
            "priority",
            "Only problems with any of these priorities (repeat for OR).",
            schema_ref("Priority"),
        ),
        param("assignee_id", "Only problems assigned to this user.", id()),
        param("category_id", "Only problems of this category.", id()),
        param("ci_id", "Only problems of this configuration item.", id()),
        param(
            "incident_id",
            "Only the problem this incident is linked to.",
            id(),
        ),
        q_param(),
    ]
}

/// The known-error search's query parameters (without paging).
pub(super) fn known_error_query_params() -> Vec<Value> {
    vec![q_param()]
}

fn problem_fields() -> Vec<super::Field> {
    vec![
        req("id", uuid("Id.")),
        req("title", string("Title.")),
        req("description", string("Description (may be empty).")),
        req("status", reference("ProblemStatus", "Status.")),
        req("priority", reference("Priority", "Priority.")),
        req("category_id", nullable(uuid("Category."))),
        req("ci_id", nullable(uuid("The configuration item at fault."))),
        req("assignee_id", nullable(uuid("Who investigates."))),
        req("root_cause", nullable(string("Root cause, once known."))),
        req("workaround", nullable(string("Workaround, once known."))),
        req("resolution", nullable(string("The permanent fix."))),
        req(
            "incident_ids",
            array(uuid("An incident."), "Linked incidents, in link order."),
        ),
        req(
            "known_error",
            boolean("Whether it is in the known-error database (published, not closed)."),
        ),
        req(
            "known_error_at",
            nullable(timestamp("When it was published as a known error.")),
        ),
        req("resolved_at", nullable(timestamp("When resolved."))),
        req("closed_at", nullable(timestamp("When closed."))),
        req("created_at", timestamp("Logged.")),
        req("created_by", reference("Actor", "Who logged it.")),
        req("updated_at", timestamp("Last change.")),
        req("updated_by", reference("Actor", "Who changed it last.")),
        req(
            "allowed_actions",
            array(
                schema_ref("ProblemAction"),
                "The actions the state machine allows now.",
            ),
        ),
        req(
            "version",
            int64("Version of the problem (its `ETag` is `\"<version>\"`)."),
        ),
    ]
}

/// The problem schemas.
pub(super) fn add_schemas(add: &mut impl FnMut(&str, Value)) {
    add(
        "ProblemStatus",
        enumeration(
            ProblemStatus::NAMES.iter().copied(),
            "Lifecycle status of a problem.",
        ),
    );
    add(
        "ProblemAction",
        enumeration(
            ProblemAction::NAMES.iter().copied(),
            "An action on a problem.",
        ),
    );
    add("Problem", object("A problem.", problem_fields()));
    add("ProblemPage", page_of("Problem"));
    let uuid_or_null = |d: &str| nullable(uuid(d));
    add(
        "ProblemCreate",
        request(
            "A new problem.",
            vec![
                req("title", text(1, Title::MAX_CHARS, "One line.")),
                opt(
                    "description",
                    text(0, Description::MAX_CHARS, "Description."),
                ),
                opt(
                    "priority",
                    reference("Priority", "Priority (default `medium`)."),
                ),
                opt("category_id", uuid("A category of the tenant.")),
                opt("ci_id", uuid("A configuration item of the tenant.")),
                opt("assignee_id", uuid("A user of the tenant.")),
                opt(
                    "root_cause",
                    text(1, RootCause::MAX_CHARS, "Root cause, if known."),
                ),
                opt(
                    "workaround",
                    text(1, Workaround::MAX_CHARS, "Workaround, if known."),
                ),
            ],
        ),
    );
    add(
        "ProblemUpdate",
        request(
            "Changes to a problem; absent fields are kept, `null` clears an optional one.",
            vec![
                opt("title", text(1, Title::MAX_CHARS, "One line.")),
                opt(
                    "description",
                    text(0, Description::MAX_CHARS, "Description."),
                ),
                opt("priority", reference("Priority", "Priority.")),
                opt("category_id", uuid_or_null("Category; `null` clears it.")),
                opt(
                    "ci_id",
                    uuid_or_null("Configuration item; `null` clears it."),
                ),
                opt("assignee_id", uuid_or_null("Assignee; `null` clears it.")),
                opt(
                    "root_cause",
                    nullable(text(
                        1,
                        RootCause::MAX_CHARS,
                        "Root cause; `null` clears it.",
                    )),
                ),
                opt(
                    "workaround",
                    nullable(text(
                        1,
                        Workaround::MAX_CHARS,
                        "Workaround; `null` clears it (not once published).",
                    )),
                ),
            ],
        ),
    );
    add(
        "KnownErrorRequest",
        request(
            "What to publish; each defaults to the recorded one.",
            vec![
                opt(
                    "root_cause",
                    text(1, RootCause::MAX_CHARS, "The root cause."),
                ),
                opt(
                    "workaround",
                    text(1, Workaround::MAX_CHARS, "The workaround."),
                ),
            ],
        ),
    );
    add(
        "ProblemResolve",
        request(
            "The permanent fix.",
            vec![req(
                "resolution",
                text(1, ResolutionText::MAX_CHARS, "How it was fixed."),
            )],
        ),
    );
    add(
        "ProblemIncidentLink",
        request(
            "The incident to link.",
            vec![req("incident_id", uuid("An incident of the tenant."))],
        ),
    );
    add(
        "LinkedIncident",
        object(
            "An incident linked to a problem (the fields are null while the incident list \
             lags behind).",
            vec![
                req("id", uuid("Id.")),
                req("incident_number", nullable(string("`INC000123`."))),
                req("title", nullable(string("Title."))),
                req("status", nullable(string("Status."))),
            ],
        ),
    );
    add(
        "LinkedIncidentList",
        object(
            "The incidents linked to a problem.",
            vec![req(
                "data",
                array(schema_ref("LinkedIncident"), "In link order."),
            )],
        ),
    );
    add(
        "KnownError",
        object(
            "An entry of the known-error database: a published problem's workaround.",
            vec![
                req("problem_id", uuid("The problem.")),
                req("title", string("Title.")),
                req(
                    "status",
                    reference("ProblemStatus", "`known_error` or `resolved`."),
                ),
                req("root_cause", nullable(string("Root cause, if known."))),
                req("workaround", nullable(string("The workaround."))),
                req("category_id", nullable(uuid("Category."))),
                req("ci_id", nullable(uuid("Configuration item."))),
                req("known_error_at", timestamp("When it was published.")),
            ],
        ),
    );
    add("KnownErrorPage", page_of("KnownError"));
}

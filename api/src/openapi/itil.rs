//! The ITIL part of the document: problems and the known-error database (ADR 0021) — their
//! operations, query parameters and schemas.

use super::{
    Body, Op, Out, Query, array, boolean, enumeration, int64, nullable, object, op, opt, page_of,
    reference, req, request, schema_ref, string, text, timestamp, uuid,
};
use axum::http::Method;
use eventdesk_domain::change_request::{
    ChangeAction, ChangeStatus, ChangeType, Quorum, RejectionPolicy, Risk, TaskStatus, VoteDecision,
};
use eventdesk_domain::problem::{ProblemAction, ProblemStatus};
use eventdesk_domain::values::{
    Description, ReasonText, ResolutionText, RootCause, Title, Workaround,
};
use serde_json::{Value, json};

const PROBLEM_ACTION_NOTE: &str = "Runs one lifecycle transition of the problem; a transition \
    the state machine does not allow is `422 invalid_transition` (`new → investigating → \
    known_error → resolved → closed`; `known_error` may be skipped, `resolved` needs an \
    investigation first). Answers with the problem as it is after the change.";

const CHANGE_ACTION_NOTE: &str = "Runs one lifecycle transition of the change; one its type's \
    state machine does not allow is `422 invalid_transition` (normal: draft → assess → \
    authorize → scheduled → implement → review → closed; emergency skips assess; standard skips \
    assess and authorize). Answers with the change as it is after the change.";

/// One row per (method, route) of the problem and change endpoints.
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
    // Changes (ADR 0022).
    op(
        Method::GET,
        "/api/v1/changes",
        "listChanges",
        "changes",
        "List changes",
        200,
        Out::Json("ChangePage"),
    )
    .describe(
        "Newest first. Filters: `status`, `change_type` and `risk` (repeat a parameter for \
         OR) and `ci_id`. Page with `page`/`limit` (exact totals) or `cursor`.",
    )
    .query(Query::Changes),
    op(
        Method::POST,
        "/api/v1/changes",
        "createChange",
        "changes",
        "Record a change",
        201,
        Out::Json("Change"),
    )
    .describe(
        "Status `draft`. `risk` defaults to `medium`, `quorum` to `all`, `on_rejection` to \
         `reassess`. `planned_end` must be after `planned_start` (`422` on `planned_end`). \
         `approvers`, `ci_ids` and `incident_ids` must be the tenant's (`422` naming the \
         field).",
    )
    .body(Body::Json("ChangeCreate"))
    .idempotent()
    .created(),
    op(
        Method::GET,
        "/api/v1/changes/calendar",
        "changeCalendar",
        "changes",
        "The change calendar",
        200,
        Out::Json("ChangeCalendar"),
    )
    .describe(
        "The changes (not cancelled) whose window overlaps `[from, to)`, by start. Both are \
         required RFC 3339 instants; `to` after `from`, at most 366 days later.",
    )
    .query(Query::Calendar),
    op(
        Method::GET,
        "/api/v1/changes/conflicts",
        "changeConflicts",
        "changes",
        "Conflicting changes",
        200,
        Out::Json("ChangeConflictList"),
    )
    .describe(
        "Every open change with a window (draft to implement) that overlaps a scheduled change \
         (or one being implemented) on the same configuration item or on one related by \
         dependency (`depends_on`/`runs_on`, either way, transitively), with those changes.",
    ),
    op(
        Method::GET,
        "/api/v1/changes/{id}",
        "getChange",
        "changes",
        "A change",
        200,
        Out::Json("Change"),
    )
    .describe("The `ETag` is the change's version, for `If-Match` on later writes.")
    .etag(),
    op(
        Method::PATCH,
        "/api/v1/changes/{id}",
        "updateChange",
        "changes",
        "Update a change",
        200,
        Out::Json("Change"),
    )
    .describe(
        "In draft, assess and authorize (`422 action_not_allowed` later). Lists replace the \
         whole list; `null` clears a window end. The CAB (`approvers`, `quorum`, \
         `on_rejection`) is fixed once the round's first vote is cast \
         (`422 approval_in_progress`).",
    )
    .body(Body::Json("ChangeUpdate"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/changes/{id}/submit",
        "submitChange",
        "changes",
        "Submit a change",
        200,
        Out::Json("Change"),
    )
    .describe(CHANGE_ACTION_NOTE)
    .body(Body::Optional("EmptyRequest"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/changes/{id}/assess",
        "assessChange",
        "changes",
        "Complete the assessment",
        200,
        Out::Json("Change"),
    )
    .describe(CHANGE_ACTION_NOTE)
    .body(Body::Optional("EmptyRequest"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/changes/{id}/schedule",
        "scheduleChange",
        "changes",
        "Schedule a change",
        200,
        Out::Json("Change"),
    )
    .describe(
        "A standard change from draft; a normal or emergency change once the CAB approved it \
         (`422 not_approved` before). Needs a window. If scheduled changes on the same or \
         dependent CIs overlap it, `409 schedule_conflict` names them, unless \
         `override_conflicts: true` with a `reason`, which the event records with the \
         conflicting changes (the audit trail).",
    )
    .body(Body::Optional("ChangeSchedule"))
    .conditional()
    .errors(&[409]),
    op(
        Method::POST,
        "/api/v1/changes/{id}/implement",
        "implementChange",
        "changes",
        "Start the implementation",
        200,
        Out::Json("Change"),
    )
    .describe(CHANGE_ACTION_NOTE)
    .body(Body::Optional("EmptyRequest"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/changes/{id}/complete",
        "completeChange",
        "changes",
        "Complete the implementation",
        200,
        Out::Json("Change"),
    )
    .describe("`implement → review`; every task must be closed (`422 open_tasks`).")
    .body(Body::Optional("EmptyRequest"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/changes/{id}/close",
        "closeChange",
        "changes",
        "Close a change",
        200,
        Out::Json("Change"),
    )
    .describe(CHANGE_ACTION_NOTE)
    .body(Body::Optional("EmptyRequest"))
    .conditional(),
    op(
        Method::POST,
        "/api/v1/changes/{id}/cancel",
        "cancelChange",
        "changes",
        "Cancel a change",
        200,
        Out::Json("Change"),
    )
    .describe("From draft, assess, authorize or scheduled.")
    .body(Body::Json("ChangeCancel"))
    .conditional(),
    op(
        Method::GET,
        "/api/v1/changes/{id}/tasks",
        "listChangeTasks",
        "changes",
        "A change's tasks",
        200,
        Out::Json("ChangeTaskList"),
    )
    .describe("In order.")
    .etag(),
    op(
        Method::POST,
        "/api/v1/changes/{id}/tasks",
        "addChangeTask",
        "changes",
        "Add a task",
        201,
        Out::Json("Change"),
    )
    .describe("Appended after the others; answers with the change. Not on a final change.")
    .body(Body::Json("ChangeTaskCreate"))
    .conditional()
    .located(),
    op(
        Method::POST,
        "/api/v1/changes/{id}/tasks/reorder",
        "reorderChangeTasks",
        "changes",
        "Reorder the tasks",
        200,
        Out::Json("Change"),
    )
    .describe("`order` names every task exactly once (`422` on `order` otherwise).")
    .body(Body::Json("ChangeTaskOrder"))
    .conditional(),
    op(
        Method::PATCH,
        "/api/v1/changes/{id}/tasks/{task_id}",
        "updateChangeTask",
        "changes",
        "Assign or close a task",
        200,
        Out::Json("Change"),
    )
    .describe(
        "`assignee_id` (a user of the tenant; `null` unassigns) and/or `status: \"closed\"`. A \
         closed task cannot be reassigned (`422 task_closed`).",
    )
    .body(Body::Json("ChangeTaskUpdate"))
    .conditional(),
    op(
        Method::GET,
        "/api/v1/changes/{id}/approvals",
        "getChangeApprovals",
        "changes",
        "A change's CAB approval",
        200,
        Out::Json("ChangeApprovals"),
    )
    .describe("The approvers, the quorum rule and the current round's votes.")
    .etag(),
    op(
        Method::POST,
        "/api/v1/changes/{id}/approvals",
        "voteOnChange",
        "changes",
        "Vote on a change",
        200,
        Out::Json("ChangeApprovals"),
    )
    .describe(
        "The caller, a named approver, votes once per round while the change is in authorize \
         (`422 not_an_approver`, `already_voted`, `already_approved`, `action_not_allowed`). \
         The quorum rule decides after each vote: approved (the change may be scheduled), or \
         rejected (back to assess — draft for an emergency change — with a new round, or \
         cancelled, by `on_rejection`).",
    )
    .body(Body::Json("ChangeVoteRequest"))
    .conditional(),
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

/// The change list's query parameters (without paging).
pub(super) fn change_query_params() -> Vec<Value> {
    vec![
        repeated(
            "status",
            "Only changes with any of these statuses (repeat for OR).",
            schema_ref("ChangeStatus"),
        ),
        repeated(
            "change_type",
            "Only changes of any of these types (repeat for OR).",
            schema_ref("ChangeType"),
        ),
        repeated(
            "risk",
            "Only changes with any of these risks (repeat for OR).",
            schema_ref("ChangeRisk"),
        ),
        param(
            "ci_id",
            "Only changes touching this configuration item.",
            json!({ "type": "string", "format": "uuid" }),
        ),
    ]
}

/// The calendar's query parameters.
pub(super) fn calendar_query_params() -> Vec<Value> {
    let required = |name: &str, description: &str| {
        json!({
            "name": name,
            "in": "query",
            "required": true,
            "description": description,
            "schema": { "type": "string", "format": "date-time" },
        })
    };
    vec![
        required("from", "Start of the range (RFC 3339)."),
        required(
            "to",
            "End of the range (RFC 3339), after `from`, at most 366 days later.",
        ),
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
    add_change_schemas(add);
}

fn change_summary_fields() -> Vec<super::Field> {
    vec![
        req("id", uuid("Id.")),
        req("title", string("Title.")),
        req("change_type", reference("ChangeType", "Type.")),
        req("status", reference("ChangeStatus", "Status.")),
        req("risk", reference("ChangeRisk", "Risk.")),
        req("planned_start", timestamp("Window start.")),
        req("planned_end", timestamp("Window end.")),
        req(
            "ci_ids",
            array(uuid("A CI."), "The configuration items it touches."),
        ),
    ]
}

fn change_schemas_enums(add: &mut impl FnMut(&str, Value)) {
    add(
        "ChangeType",
        enumeration(ChangeType::NAMES.iter().copied(), "The kind of change."),
    );
    add(
        "ChangeStatus",
        enumeration(
            ChangeStatus::NAMES.iter().copied(),
            "Lifecycle status of a change.",
        ),
    );
    add(
        "ChangeRisk",
        enumeration(Risk::NAMES.iter().copied(), "Risk of a change."),
    );
    add(
        "Quorum",
        enumeration(
            Quorum::NAMES.iter().copied(),
            "`all` approvers, `any` one, or a `majority` (more than half).",
        ),
    );
    add(
        "RejectionPolicy",
        enumeration(
            RejectionPolicy::NAMES.iter().copied(),
            "`reassess`: back to assess (an emergency change to draft) for a new round; \
             `cancel`: the change is cancelled.",
        ),
    );
    add(
        "VoteDecision",
        enumeration(VoteDecision::NAMES.iter().copied(), "A vote."),
    );
    add(
        "ChangeTaskStatus",
        enumeration(TaskStatus::NAMES.iter().copied(), "A task's status."),
    );
    add(
        "ChangeAction",
        enumeration(
            ChangeAction::NAMES.iter().copied(),
            "An action on a change.",
        ),
    );
}

/// The change schemas.
fn add_change_schemas(add: &mut impl FnMut(&str, Value)) {
    change_schemas_enums(add);
    add(
        "ChangeVote",
        object(
            "A vote of the current round.",
            vec![
                req("approver", uuid("The approver.")),
                req("decision", reference("VoteDecision", "The vote.")),
                req("comment", string("Why.")),
                req("at", timestamp("When.")),
            ],
        ),
    );
    add(
        "ChangeTask",
        object(
            "A task of a change.",
            vec![
                req("id", uuid("Id.")),
                req("title", string("Title.")),
                req("assignee_id", nullable(uuid("Assignee."))),
                req("status", reference("ChangeTaskStatus", "Status.")),
                req("closed_at", nullable(timestamp("When closed."))),
            ],
        ),
    );
    add(
        "ChangeTaskList",
        object(
            "A change's tasks.",
            vec![req("data", array(schema_ref("ChangeTask"), "In order."))],
        ),
    );
    add(
        "Change",
        object(
            "A change.",
            vec![
                req("id", uuid("Id.")),
                req("title", string("Title.")),
                req("description", string("Description (may be empty).")),
                req("change_type", reference("ChangeType", "Type.")),
                req("status", reference("ChangeStatus", "Status.")),
                req("risk", reference("ChangeRisk", "Risk.")),
                req("planned_start", nullable(timestamp("Window start."))),
                req("planned_end", nullable(timestamp("Window end."))),
                req(
                    "ci_ids",
                    array(uuid("A CI."), "Configuration items it touches."),
                ),
                req(
                    "incident_ids",
                    array(uuid("An incident."), "Incidents it addresses."),
                ),
                req("approvers", array(uuid("A user."), "The CAB.")),
                req("quorum", reference("Quorum", "Quorum rule.")),
                req(
                    "on_rejection",
                    reference("RejectionPolicy", "What a rejection does."),
                ),
                req(
                    "approval_round",
                    int64("The approval round (1 for the first)."),
                ),
                req(
                    "votes",
                    array(schema_ref("ChangeVote"), "The current round's votes."),
                ),
                req(
                    "approved_at",
                    nullable(timestamp("When the current round approved it.")),
                ),
                req("tasks", array(schema_ref("ChangeTask"), "Tasks, in order.")),
                req(
                    "overridden_conflicts",
                    array(
                        uuid("A change."),
                        "The conflicting changes overridden when it was scheduled.",
                    ),
                ),
                req(
                    "override_reason",
                    nullable(string("Why they were overridden.")),
                ),
                req("scheduled_at", nullable(timestamp("When scheduled."))),
                req("closed_at", nullable(timestamp("When closed."))),
                req("cancelled_at", nullable(timestamp("When cancelled."))),
                req("cancel_reason", nullable(string("Why cancelled."))),
                req("created_at", timestamp("Recorded.")),
                req("created_by", reference("Actor", "Who recorded it.")),
                req("updated_at", timestamp("Last change.")),
                req("updated_by", reference("Actor", "Who changed it last.")),
                req(
                    "allowed_actions",
                    array(
                        schema_ref("ChangeAction"),
                        "The actions the state machine allows now.",
                    ),
                ),
                req(
                    "version",
                    int64("Version of the change (its `ETag` is `\"<version>\"`)."),
                ),
            ],
        ),
    );
    add("ChangePage", page_of("Change"));
    let ids = |d: &str| array(uuid("An id."), d);
    add(
        "ChangeCreate",
        request(
            "A new change.",
            vec![
                req("title", text(1, Title::MAX_CHARS, "One line.")),
                opt(
                    "description",
                    text(0, Description::MAX_CHARS, "Description."),
                ),
                req("change_type", reference("ChangeType", "Type.")),
                opt("risk", reference("ChangeRisk", "Risk (default `medium`).")),
                opt("planned_start", timestamp("Window start.")),
                opt("planned_end", timestamp("Window end (after the start).")),
                opt("ci_ids", ids("Configuration items of the tenant.")),
                opt("incident_ids", ids("Incidents of the tenant.")),
                opt("approvers", ids("Users of the tenant: the CAB.")),
                opt("quorum", reference("Quorum", "Default `all`.")),
                opt(
                    "on_rejection",
                    reference("RejectionPolicy", "Default `reassess`."),
                ),
            ],
        ),
    );
    add(
        "ChangeUpdate",
        request(
            "Changes to a change; absent fields are kept.",
            vec![
                opt("title", text(1, Title::MAX_CHARS, "One line.")),
                opt(
                    "description",
                    text(0, Description::MAX_CHARS, "Description."),
                ),
                opt("risk", reference("ChangeRisk", "Risk.")),
                opt(
                    "planned_start",
                    nullable(timestamp("Window start; `null` clears it.")),
                ),
                opt(
                    "planned_end",
                    nullable(timestamp("Window end; `null` clears it.")),
                ),
                opt("ci_ids", ids("The whole list.")),
                opt("incident_ids", ids("The whole list.")),
                opt(
                    "approvers",
                    ids("The whole list (not once voting started)."),
                ),
                opt("quorum", reference("Quorum", "Not once voting started.")),
                opt(
                    "on_rejection",
                    reference("RejectionPolicy", "Not once voting started."),
                ),
            ],
        ),
    );
    add(
        "ChangeSchedule",
        request(
            "How to schedule.",
            vec![
                opt(
                    "override_conflicts",
                    boolean("Schedule despite conflicting scheduled changes (default false)."),
                ),
                opt(
                    "reason",
                    text(
                        1,
                        ReasonText::MAX_CHARS,
                        "Why (required with, and only with, `override_conflicts`).",
                    ),
                ),
            ],
        ),
    );
    add(
        "ChangeCancel",
        request(
            "Why the change is cancelled.",
            vec![req("reason", text(1, ReasonText::MAX_CHARS, "Why."))],
        ),
    );
    add(
        "ChangeTaskCreate",
        request(
            "A new task.",
            vec![
                req("title", text(1, Title::MAX_CHARS, "One line.")),
                opt("assignee_id", uuid("A user of the tenant.")),
            ],
        ),
    );
    add(
        "ChangeTaskUpdate",
        request(
            "Reassign and/or close a task.",
            vec![
                opt(
                    "assignee_id",
                    nullable(uuid("A user of the tenant; `null` unassigns.")),
                ),
                opt(
                    "status",
                    json!({ "type": "string", "enum": ["closed"], "description": "`closed` closes the task." }),
                ),
            ],
        ),
    );
    add(
        "ChangeTaskOrder",
        request(
            "The new order of the tasks.",
            vec![req("order", ids("Every task id exactly once."))],
        ),
    );
    add(
        "ChangeVoteRequest",
        request(
            "The caller's vote.",
            vec![
                req("decision", reference("VoteDecision", "Approve or reject.")),
                req("comment", text(1, ReasonText::MAX_CHARS, "Why.")),
            ],
        ),
    );
    add(
        "ChangeApprovals",
        object(
            "The CAB's state of a change.",
            vec![
                req("status", reference("ChangeStatus", "The change's status.")),
                req("approvers", array(uuid("A user."), "The approvers.")),
                req("quorum", reference("Quorum", "Quorum rule.")),
                req(
                    "on_rejection",
                    reference("RejectionPolicy", "What a rejection does."),
                ),
                req("round", int64("The approval round (1 for the first).")),
                req(
                    "votes",
                    array(schema_ref("ChangeVote"), "The round's votes."),
                ),
                req(
                    "approved_at",
                    nullable(timestamp("When the round approved the change.")),
                ),
            ],
        ),
    );
    add(
        "ChangeSummary",
        object(
            "A change in the calendar and in conflicts.",
            change_summary_fields(),
        ),
    );
    add(
        "ChangeCalendar",
        object(
            "The changes in a range.",
            vec![req("data", array(schema_ref("ChangeSummary"), "By start."))],
        ),
    );
    add(
        "ChangeConflict",
        object(
            "A change and the scheduled changes it conflicts with.",
            vec![
                req("change", reference("ChangeSummary", "The change.")),
                req(
                    "conflicts_with",
                    array(
                        schema_ref("ChangeSummary"),
                        "Scheduled changes overlapping it on the same or dependent CIs.",
                    ),
                ),
            ],
        ),
    );
    add(
        "ChangeConflictList",
        object(
            "Conflicting changes.",
            vec![req(
                "data",
                array(schema_ref("ChangeConflict"), "By start."),
            )],
        ),
    );
}

//! Live events and rate limits in the document (ADR 0019): the WebSocket's query parameters
//! and message shapes (described in its operation: OpenAPI has no message schema for a
//! WebSocket), and the rate-limit schemas.

use super::{enumeration, int64, nullable, object, opt, reference, req, request, uuid};
use serde_json::{Value, json};

/// The WebSocket operation's description: handshake, resume, messages, close codes.
pub(super) const WS_NOTE: &str = "Upgrades to a WebSocket (`101`) pushing the caller's tenant's \
    live incident events, read from the event log in its order. Credentials: \
    `Authorization: Bearer <JWT or API key>` or `?access_token=` (browsers cannot set headers \
    on a handshake); failures are `401`/`403` before the upgrade. Requesters (role `user`) are \
    refused (`403`): they see only their own incidents.\n\n\
    Every text message is JSON `{\"type\", \"position\", \"event_id\", \"event_type\", \
    \"tenant_id\", \"incident_id\", \"occurred_at\", \"actor\", \"data\"}`:\n\
    - `incident_created`: `data.incident` = `{id, incident_number, title, description, status, \
    priority, impact, urgency, category_id, team_id, assignee_id, reporter_id, ci_id, \
    created_at, version}`;\n\
    - `incident_updated`: `data` = `{incident_id, version, changed_fields: [name…], changes: \
    [{field_name, old_value, new_value}]}` (the same rows as the incident's `history`);\n\
    - `sla_breach_warning`: `data` = `{incident_id, metric (response|resolution), threshold \
    (50|75|90, or 100 with `breached: true`), cycle, crossed_at, breached}`.\n\n\
    The first message is `{\"type\": \"connected\", \"tenant_id\", \"position\", \"resumed\"}`. \
    Keep the `position` of the last message handled and reconnect with `?after=<position>`: \
    the server first sends everything of the tenant after it from the log, then switches to \
    live, with no gap and no duplicate. The server pings periodically; a client that sends no \
    frame (pongs included) within the idle timeout is closed.\n\n\
    Close codes: `1001` server shutting down; `4001` idle timeout; `4008` slow consumer (the \
    client's queue filled: reconnect with `after`); `4410` the resume position is outside the \
    retention window (refetch over REST, then connect without `after`); `1011` the catch-up \
    failed.";

/// The WebSocket's query parameters.
pub(super) fn ws_query_params() -> Vec<Value> {
    vec![
        json!({
            "name": "access_token",
            "in": "query",
            "description": "The JWT or API key, when the `Authorization` header cannot be set.",
            "schema": { "type": "string" },
        }),
        json!({
            "name": "after",
            "in": "query",
            "description": "Resume after this position (`<transaction_id>:<position>`, from a \
                            message's `position`); malformed is `422`.",
            "schema": { "type": "string", "pattern": "^[0-9]+:[0-9]+$" },
        }),
    ]
}

/// The rate-limit schemas.
pub(super) fn add_schemas(add: &mut impl FnMut(&str, Value)) {
    let quota = |what: &str| {
        object(
            what,
            vec![
                req("limit", int64("Requests per period.")),
                req("period_secs", int64("The period, in seconds.")),
            ],
        )
    };
    let effective = || {
        object(
            "A quota in force.",
            vec![
                req("limit", int64("Requests per period.")),
                req("period_secs", int64("The period, in seconds.")),
                req(
                    "source",
                    enumeration(
                        ["default", "override"],
                        "The node's default, or the tenant's override.",
                    ),
                ),
            ],
        )
    };
    add(
        "RateLimits",
        object(
            "A tenant's effective rate limits (GCRA: bursts up to `limit`, `limit` per \
             `period_secs` sustained), one quota per tenant and auth type.",
            vec![
                req("tenant_id", uuid("The tenant.")),
                req(
                    "enabled",
                    json!({ "type": "boolean", "description": "Limiting is on." }),
                ),
                req(
                    "backend",
                    enumeration(
                        ["memory", "redis", "memory_fallback"],
                        "Where this node counts: in memory, in Redis (shared by every node), or \
                         in memory because Redis is failing.",
                    ),
                ),
                req(
                    "limits",
                    object(
                        "Per auth type.",
                        vec![
                            req("jwt", effective()),
                            req("live_key", effective()),
                            req("test_key", effective()),
                        ],
                    ),
                ),
                req(
                    "anonymous_per_ip",
                    quota("Requests without valid credentials, per client IP."),
                ),
            ],
        ),
    );
    add(
        "RateLimitQuota",
        request(
            "An override.",
            vec![
                req("limit", int64("Requests per period, 1 to 1000000000.")),
                req("period_secs", int64("The period, 1 to 86400 seconds.")),
            ],
        ),
    );
    let slot = |what: &str| {
        nullable(reference(
            "RateLimitQuota",
            &format!("{what}; absent or null: the default."),
        ))
    };
    add(
        "RateLimitsPut",
        request(
            "Replaces every override of the tenant.",
            vec![
                opt("jwt", slot("Signed-in users (JWT)")),
                opt("live_key", slot("`qg_live_` API keys")),
                opt("test_key", slot("`qg_test_` API keys")),
            ],
        ),
    );
}
